"""llmops/gateway/hooks.py in-process: what the real-proxy tests cannot pin down one by one.

(tests/test_gateway_proxy.py and tests/test_gateway_teams.py load the module in the real proxy.)
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys

import pytest

if importlib.util.find_spec("litellm") is None:
    pytest.skip("litellm[proxy] is not installed", allow_module_level=True)

import litellm
from litellm.proxy._types import UserAPIKeyAuth

from llmops.gateway import hooks

SAMPLES = [
    "Summarise the customer's message in three bullet points.",
    "ما هو رصيد حسابي في البنك؟ أريد تحويل الأموال إلى حساب آخر.",  # Arabic: 2 bytes a letter
    "请帮我查询信用卡的账单和还款日期。",  # CJK: 3 bytes a character
    "Transfer done 👍🏽 — thanks! 🎉🎉",  # emoji: 4 bytes, several tokens each
]


def run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


@pytest.mark.parametrize("text", SAMPLES)
def test_byte_size_bounds_the_token_count_it_skips(text):
    """The shortcut's premise, checked against LiteLLM's own counter: no more tokens than bytes."""
    tokens = litellm.token_counter(text=text)
    assert tokens <= len(text.encode())
    assert hooks.count_tokens(text, limit=len(text.encode())) <= len(text.encode())
    assert hooks.count_tokens(text, limit=1) == tokens  # over the byte size: the tokenizer decides


def test_prompt_text_reads_messages_parts_and_completion_inputs():
    data = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "hello"}, {"type": "image_url", "image_url": {}}],
            },
        ],
        "input": ["one", "two"],
    }
    assert hooks.prompt_text(data).split("\n") == ["be brief", "hello", "one", "two"]


def test_the_tighter_of_route_and_team_limit_applies():
    budget = hooks.PromptBudget(
        route_max_input_tokens={"big": 1000}, default_max_input_tokens=100, team_limit_key="limit"
    )
    team = UserAPIKeyAuth(team_id="claims", team_metadata={"limit": 500})
    assert budget.limit_for("big", team) == (500, "team claims (gateway.maxInputTokens in its team file)")
    assert budget.limit_for("other", team)[0] == 100
    assert budget.limit_for("big", UserAPIKeyAuth(team_metadata={"limit": None}))[0] == 1000
    data = {"model": "other", "messages": [{"role": "user", "content": "x " * 300}]}
    with pytest.raises(Exception) as refused:
        run(budget.async_pre_call_hook(team, None, data, "acompletion"))
    assert refused.value.status_code == 413 and refused.value.detail["limit"] == 100


def test_cache_scope_pins_the_namespace_to_the_team_and_drops_caller_keys():
    scope = hooks.CacheScope(routes=["faq"])
    caller = UserAPIKeyAuth(team_id="payments", token="hash")
    data = {
        "model": "faq",
        "cache_key": "llmops:team:claims:abc",
        "cache": {"namespace": "llmops:team:claims", "no-store": True, "ttl": 9999},
        "metadata": {"redis_namespace": "llmops:team:claims", "retrieval": {"source_ids": ["a"]}},
    }
    out = run(scope.async_pre_call_hook(caller, None, data, "acompletion"))
    assert out["cache"] == {"no-store": True, "use-cache": True, "namespace": "llmops:team:payments"}
    assert "cache_key" not in out and "redis_namespace" not in out["metadata"]
    assert out["metadata"]["retrieval"] == {"source_ids": ["a"]}, "request metadata must survive"
    other = run(scope.async_pre_call_hook(caller, None, {"model": "chat", "cache": {"use-cache": True}}, ""))
    assert other["cache"] == {}
    assert hooks.CacheScope.namespace(UserAPIKeyAuth(token="k1")) == "llmops:key:k1"


def test_a_failed_otel_import_is_remembered_and_still_fails_for_anything_else():
    """In this virtualenv LiteLLM's otel logger cannot import (opentelemetry-api without `_events`);
    after the hooks module loads, the guardrail path finds the stand-in, nothing else changes."""
    from litellm.integrations.otel import runtime

    module = sys.modules[hooks.OTEL_LOGGER_MODULE]
    if getattr(module, "OpenTelemetryV2", None) is not None:
        pytest.skip("the otel logger imports here: nothing to remember")
    assert runtime._otel_runtime() is None
    assert module.emit_guardrail_span(object()) is None
    with pytest.raises(ImportError):
        from litellm.integrations.otel.logger import OpenTelemetryV2  # noqa: F401
    assert hooks.remember_failed_otel_import() is True  # idempotent
