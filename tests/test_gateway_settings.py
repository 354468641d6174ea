"""Gateway settings: defaults, and the rules that depend on the stack's data classification."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
from conftest import config_problems

from llmops.settings import from_config
from llmops.settings.gateway import (
    IBAN_GROUPED_REGEX,
    PREBUILT_PII_PATTERNS,
    PROMPT_INJECTION_CATEGORIES,
    GatewaySettings,
)

OPENAI = {
    "name": "openai",
    "kind": "openai",
    "apiKeySecret": "llmops/openai",
    "models": [{"name": "gpt-4o-mini"}],
}
PATTERNS_JSON = "proxy/guardrails/guardrail_hooks/litellm_content_filter/patterns.json"


def stack(classification: str = "internal", **gateway) -> dict:
    return {
        "aws:region": "me-central-1",
        "llmops:environment": "test",
        "llmops:dataClassification": classification,
        "llmops:gateway": json.dumps(gateway),
    }


def test_defaults_mask_the_five_required_prebuilt_patterns():
    gw = GatewaySettings()
    by_name = {p.name: p for p in gw.pii_patterns}
    for name in ("email", "credit_card", "iban", "uae_emirates_id", "uae_phone"):
        assert by_name[name].regex is None and by_name[name].action == "MASK", name
    assert gw.external_providers == [] and gw.min_replicas == 2


def test_guardrail_and_message_logging_follow_the_classification():
    gw = GatewaySettings()
    assert gw.guardrail_on(sensitive=True) and not gw.guardrail_on(sensitive=False)
    assert not gw.message_logging_on(regulated=True) and gw.message_logging_on(regulated=False)
    assert gw.multi_az("prod") and not gw.multi_az("dev")


def test_prebuilt_names_match_the_installed_litellm():
    spec = importlib.util.find_spec("litellm")  # located, not imported (importing is slow)
    if spec is None:
        pytest.skip("litellm is not installed")
    path = Path(spec.origin).parent / PATTERNS_JSON
    names = {p["name"] for p in json.loads(path.read_text())["patterns"]}
    assert names == PREBUILT_PII_PATTERNS


def test_grouped_iban_regex_covers_what_the_prebuilt_iban_misses():
    prebuilt_iban = r"\b[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b"  # patterns.json, litellm 1.100.5
    printed = "AE07 0331 2345 6789 0123 456"
    assert not re.search(prebuilt_iban, printed, re.I)
    assert re.search(IBAN_GROUPED_REGEX, printed, re.I).group(0) == printed


def test_fails_when_a_regulated_stack_lists_providers_without_allowing_them():
    (msg,) = config_problems(stack("regulated", externalProviders=[OPENAI]))
    assert msg.startswith("llmops:gateway: externalProviders:") and "allowExternalProviders: true" in msg


def test_regulated_stack_may_allow_providers_explicitly():
    settings = from_config(stack("regulated", externalProviders=[OPENAI], allowExternalProviders=True))
    assert settings.gateway.external_model_names() == ["gpt-4o-mini"]


def test_fails_when_a_regulated_stack_with_providers_drops_a_required_pattern():
    (msg,) = config_problems(
        stack(
            "regulated",
            externalProviders=[OPENAI],
            allowExternalProviders=True,
            piiPatterns=[{"name": "email"}],
        )
    )
    assert "piiPatterns:" in msg and "uae_emirates_id" in msg


@pytest.mark.parametrize("classification", ["confidential", "regulated"])
def test_fails_when_a_sensitive_stack_turns_the_guardrail_off(classification):
    (msg,) = config_problems(stack(classification, piiGuardrail=False))
    assert "piiGuardrail: cannot be false" in msg


def test_fails_when_a_regulated_stack_turns_message_logging_on():
    (msg,) = config_problems(stack("regulated", messageLogging=True))
    assert "messageLogging" in msg


def test_fails_when_providers_are_disallowed_in_an_internal_stack():
    (msg,) = config_problems(stack("internal", externalProviders=[OPENAI], allowExternalProviders=False))
    assert "externalProviders" in msg


def test_bad_values_are_reported_with_their_paths():
    errors = config_problems(
        stack(
            externalProviders=[{"name": "openai", "kind": "openai", "models": [{"name": "gpt"}]}],
            piiPatterns=[{"name": "emirates"}, {"name": "mine", "regex": "(unclosed"}],
            fallbacks=[{"model": "a", "to": ["a"]}],
        )
    )
    text = "\n".join(errors)
    assert "llmops:gateway.externalProviders[0]: a openai provider needs apiKeySecret" in text
    assert "llmops:gateway.piiPatterns[0]: 'emirates' is not a LiteLLM prebuilt pattern" in text
    assert "llmops:gateway.piiPatterns[1]: regex does not compile" in text
    assert "llmops:gateway.fallbacks: a falls back to itself" in text


def test_fails_when_min_replicas_is_above_max():
    assert (
        "minReplicas (5) is above maxReplicas (2)" in config_problems(stack(minReplicas=5, maxReplicas=2))[0]
    )


def test_bedrock_needs_no_key_and_azure_needs_a_base():
    bedrock = {"name": "br", "kind": "bedrock", "models": [{"name": "claude", "model": "anthropic.claude"}]}
    provider = from_config(stack(externalProviders=[bedrock])).gateway.external_providers[0]
    assert provider.api_key_secret is None
    azure = {"name": "az", "kind": "azure", "apiKeySecret": "k", "models": [{"name": "gpt"}]}
    assert "needs apiBase" in config_problems(stack(externalProviders=[azure]))[0]


def test_injection_categories_match_the_installed_litellm():
    """Every category the setting accepts is a file of the installed content filter."""
    spec = importlib.util.find_spec("litellm")
    if spec is None:
        pytest.skip("litellm is not installed")
    categories = (
        Path(spec.origin).parent / "proxy/guardrails/guardrail_hooks/litellm_content_filter/categories"
    )
    installed = {p.stem for p in categories.glob("prompt_injection_*.yaml")}
    assert installed == PROMPT_INJECTION_CATEGORIES


@pytest.mark.parametrize("classification", ["confidential", "regulated"])
def test_fails_when_a_sensitive_stack_turns_injection_screening_off(classification):
    (msg,) = config_problems(stack(classification, promptInjectionScreen=False))
    assert msg.startswith("llmops:gateway: promptInjectionScreen: cannot be false"), msg


def test_injection_screen_follows_the_classification_and_names_unknown_categories():
    gw = GatewaySettings()
    assert gw.injection_screen_on(sensitive=True) and not gw.injection_screen_on(sensitive=False)
    (msg,) = config_problems(stack(promptInjectionCategories=["prompt_injection_typo"]))
    assert "promptInjectionCategories" in msg and "prompt_injection_typo" in msg, msg


def test_regulated_stack_caches_nothing_unless_allowed():
    (msg,) = config_problems(stack("regulated", responseCache={"routes": ["m"]}))
    assert "responseCache.routes" in msg and "allowInRegulatedStack" in msg, msg
    from_config(stack("regulated", responseCache={"routes": ["m"], "allowInRegulatedStack": True}))
    from_config(stack("confidential", responseCache={"routes": ["m"]}))


def test_budget_and_cache_values_are_checked_with_their_paths():
    found = config_problems(
        stack(inputBudget={"maxTokens": 0, "routes": {"m": -1}}, responseCache={"routes": ["a", "a"]})
    )
    text = "\n".join(found)
    assert "inputBudget.maxTokens" in text and "inputBudget.routes.m" in text, text
    assert "responseCache.routes" in text and "repeated: a" in text, text
