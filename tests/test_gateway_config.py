"""render_config, the pure function behind the gateway's config.yaml."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from litellm.proxy.guardrails.guardrail_hooks.litellm_content_filter import content_filter

from llmops.errors import LlmopsError
from llmops.gateway.config import (
    ANSWER_FILTER_NAME,
    BUDGET_GUARDRAIL_NAME,
    CACHE_GUARDRAIL_NAME,
    HOOKS_MODULE,
    PROMPT_FILTER_NAME,
    SelfHostedModel,
    config_files,
    render_config,
    render_environment,
    secret_environment_names,
    token_prices,
)
from llmops.settings import SettingsError, from_config, load_stack_file
from llmops.settings.gateway import SelfHostedPricing

STACKS = Path(__file__).parent.parent / "stacks"
LLAMA = SelfHostedModel(
    public_name="llama-3.1-8b",
    served_name="meta-llama/Llama-3.1-8B-Instruct",
    url="http://llama.models.svc.cluster.local:8000/v1",
    gpu_model="L4",
    gpus_per_replica=1,
    instance_usd_per_hour=0.8048,  # g6.xlarge, llmops/instances.py
    tokens_per_second_assumption=400,
)
OPENAI = {
    "name": "openai",
    "kind": "openai",
    "apiKeySecret": "llmops/gateway/openai",
    "models": [{"name": "gpt-4o-mini"}],
}
BEDROCK = {"name": "bedrock", "kind": "bedrock", "models": [{"name": "claude", "model": "anthropic.claude"}]}


def settings(classification="internal", **gateway):
    return from_config(
        {
            "aws:region": "me-central-1",
            "llmops:environment": "test",
            "llmops:dataClassification": classification,
            "llmops:gateway": json.dumps(gateway),
        }
    )


def entry(config: dict, name: str) -> dict:
    return next(e for e in config["model_list"] if e["model_name"] == name)


def test_self_hosted_model_routes_to_vllm_with_explicit_nonzero_prices():
    config = render_config(settings(), [LLAMA])
    params = entry(config, "llama-3.1-8b")["litellm_params"]
    assert params["model"] == "hosted_vllm/meta-llama/Llama-3.1-8B-Instruct"
    assert params["api_base"] == LLAMA.url
    assert params["api_key"] == "os.environ/VLLM_API_KEY"
    # 0.8048 USD/h over 400 tok/s at 50% utilisation: 1.1178e-6 USD per output token.
    assert params["output_cost_per_token"] == pytest.approx(0.8048 / (3600 * 400 * 0.5), rel=1e-6)
    assert params["input_cost_per_token"] == pytest.approx(params["output_cost_per_token"] * 0.25, rel=1e-6)


def test_replica_pays_only_its_share_of_a_multi_gpu_instance():
    shared = SelfHostedModel("m", "m", "http://m:8000/v1", "L4", 1, 4.6016, 400, gpus_per_instance=4)
    _, output = token_prices(shared, SelfHostedPricing())
    assert output == pytest.approx(4.6016 / 4 / (3600 * 400 * 0.5))


@pytest.mark.parametrize(
    "field,value",
    [("instance_usd_per_hour", 0.0), ("tokens_per_second_assumption", 0), ("gpus_per_replica", 0)],
)
def test_fails_when_a_model_would_be_priced_at_zero_or_nonsense(field, value):
    args = {**LLAMA.__dict__, field: value}
    with pytest.raises(LlmopsError, match=f"self-hosted model llama-3.1-8b: .*{field}"):
        render_config(settings(), [SelfHostedModel(**args)])


def test_external_providers_read_keys_from_the_environment_only():
    config = render_config(settings(externalProviders=[OPENAI, BEDROCK]), [LLAMA])
    openai = entry(config, "gpt-4o-mini")["litellm_params"]
    assert openai == {"model": "openai/gpt-4o-mini", "api_key": "os.environ/OPENAI_API_KEY", "timeout": 120}
    bedrock = entry(config, "claude")["litellm_params"]
    assert bedrock["model"] == "bedrock/anthropic.claude" and "api_key" not in bedrock
    assert bedrock["aws_region_name"] == "me-central-1", "bedrock must stay in the stack's region"
    assert "OPENAI_API_KEY" in secret_environment_names(settings(externalProviders=[OPENAI]))


def test_router_settings_carry_fallbacks_retries_and_timeouts():
    gw = {"externalProviders": [OPENAI], "fallbacks": [{"model": "llama-3.1-8b", "to": ["gpt-4o-mini"]}]}
    router = render_config(settings(numRetries=3, requestTimeoutSeconds=60, **gw), [LLAMA])["router_settings"]
    assert router["fallbacks"] == [{"llama-3.1-8b": ["gpt-4o-mini"]}]
    assert router["num_retries"] == 3 and router["timeout"] == 60


def test_fails_when_a_fallback_names_an_unknown_model():
    with pytest.raises(LlmopsError, match=r"llmops:gateway.fallbacks\[0\]: unknown model\(s\) nope"):
        render_config(settings(fallbacks=[{"model": "llama-3.1-8b", "to": ["nope"]}]), [LLAMA])


def guardrail(config: dict, name: str) -> dict:
    (found,) = [g["litellm_params"] for g in config.get("guardrails", []) if g["guardrail_name"] == name]
    return found


@pytest.mark.parametrize("classification", ["confidential", "regulated"])
def test_sensitive_stacks_mask_pii_in_prompts_and_in_answers(classification):
    config = render_config(settings(classification), [LLAMA])
    prompts = guardrail(config, PROMPT_FILTER_NAME)
    answers = guardrail(config, ANSWER_FILTER_NAME)
    for params, mode in ((prompts, "pre_call"), (answers, "post_call")):
        assert params["guardrail"] == "litellm_content_filter"
        assert params["mode"] == mode and params["default_on"] is True
    assert answers["patterns"] == prompts["patterns"], "answers must be masked with the prompts' patterns"
    prebuilt = {
        p["pattern_name"]: p["action"] for p in prompts["patterns"] if p["pattern_type"] == "prebuilt"
    }
    for name in ("email", "credit_card", "iban", "uae_emirates_id", "uae_phone"):
        assert prebuilt[name] == "MASK", name


@pytest.mark.parametrize("classification", ["confidential", "regulated"])
def test_sensitive_stacks_screen_prompts_for_injection_with_litellms_own_categories(classification):
    config = render_config(settings(classification), [LLAMA])
    params = guardrail(config, PROMPT_FILTER_NAME)
    categories = Path(content_filter.__file__).parent / "categories"
    assert params["categories"]
    for category in params["categories"]:
        assert category["action"] == "BLOCK" and category["enabled"] is True
        assert (categories / f"{category['category']}.yaml").is_file(), category
    assert "categories" not in guardrail(config, ANSWER_FILTER_NAME), (
        "answers quoting such phrases are no attack"
    )


def test_internal_stack_has_no_pii_or_injection_guardrail_unless_asked():
    names = {g["guardrail_name"] for g in render_config(settings("internal"), [LLAMA])["guardrails"]}
    assert names == {BUDGET_GUARDRAIL_NAME}
    screen_only = render_config(settings("internal", promptInjectionScreen=True), [LLAMA])
    assert "patterns" not in guardrail(screen_only, PROMPT_FILTER_NAME)
    assert ANSWER_FILTER_NAME not in {g["guardrail_name"] for g in screen_only["guardrails"]}
    pii_only = render_config(settings("internal", piiGuardrail=True), [LLAMA])
    assert "categories" not in guardrail(pii_only, PROMPT_FILTER_NAME)
    assert guardrail(pii_only, ANSWER_FILTER_NAME)["patterns"]


def test_the_size_budget_runs_first_and_carries_route_and_default_limits():
    gw = settings("regulated", inputBudget={"maxTokens": 4000, "routes": {"llama-3.1-8b": 1000}})
    config = render_config(gw, [LLAMA])
    assert config["guardrails"][0]["guardrail_name"] == BUDGET_GUARDRAIL_NAME
    params = guardrail(config, BUDGET_GUARDRAIL_NAME)
    assert params["guardrail"] == f"{HOOKS_MODULE}.PromptBudget" and params["mode"] == "pre_call"
    assert params["route_max_input_tokens"] == {"llama-3.1-8b": 1000}
    assert params["default_max_input_tokens"] == 4000
    # The module the guardrail names ships beside config.yaml.
    assert config_files(config) == {
        "llmops/gateway/hooks.py": (STACKS.parent / "llmops/gateway/hooks.py").read_text()
    }


def test_budget_and_cache_routes_must_be_models_of_the_stack():
    with pytest.raises(LlmopsError, match=r"inputBudget.routes.nope: unknown model nope"):
        render_config(settings(inputBudget={"routes": {"nope": 10}}), [LLAMA])
    with pytest.raises(LlmopsError, match=r"responseCache.routes\[0\]: unknown model nope"):
        render_config(settings(responseCache={"routes": ["nope"]}), [LLAMA])


def test_no_cache_unless_a_route_opts_in():
    config = render_config(settings("confidential"), [LLAMA])
    assert "cache" not in config["litellm_settings"]
    assert CACHE_GUARDRAIL_NAME not in {g["guardrail_name"] for g in config["guardrails"]}


def test_valkey_cache_is_opt_in_per_route_tls_and_credentials_from_the_environment():
    config = render_config(settings("confidential", responseCache={"routes": ["llama-3.1-8b"]}), [LLAMA])
    cache = config["litellm_settings"]["cache_params"]
    assert config["litellm_settings"]["cache"] is True
    # default_off: LiteLLM reads or writes the cache only for requests marked use-cache
    # (litellm/caching/caching.py Cache.should_use_cache), which only the scope guardrail does.
    assert cache["mode"] == "default_off" and cache["type"] == "redis" and cache["ssl"] is True
    for field in ("host", "port", "username", "password"):
        assert str(cache[field]).startswith("os.environ/"), field
    assert guardrail(config, CACHE_GUARDRAIL_NAME)["routes"] == ["llama-3.1-8b"]
    pre_call = [
        g["guardrail_name"] for g in config["guardrails"] if g["litellm_params"]["mode"] == "pre_call"
    ]
    assert pre_call[-1] == CACHE_GUARDRAIL_NAME, "the cache scope sees the masked request"
    cached = settings("confidential", responseCache={"routes": ["llama-3.1-8b"]})
    assert "GATEWAY_CACHE_PASSWORD" in secret_environment_names(cached)
    local = settings("confidential", responseCache={"routes": ["llama-3.1-8b"], "backend": "local"})
    assert render_config(local, [LLAMA])["litellm_settings"]["cache_params"]["type"] == "local"
    assert "GATEWAY_CACHE_PASSWORD" not in secret_environment_names(local)


def test_regulated_stack_caches_only_when_allowed():
    with pytest.raises(SettingsError, match="allowInRegulatedStack"):
        settings("regulated", responseCache={"routes": ["llama-3.1-8b"]})
    allowed = settings("regulated", responseCache={"routes": ["llama-3.1-8b"], "allowInRegulatedStack": True})
    assert render_config(allowed, [LLAMA])["litellm_settings"]["cache"] is True


def test_block_action_is_passed_through():
    gw = settings("confidential", piiPatterns=[{"name": "credit_card", "action": "BLOCK"}])
    (pattern,) = guardrail(render_config(gw, [LLAMA]), PROMPT_FILTER_NAME)["patterns"]
    assert pattern == {"pattern_type": "prebuilt", "pattern_name": "credit_card", "action": "BLOCK"}


def test_spend_logs_go_to_the_kms_encrypted_bucket():
    litellm = render_config(settings(), [LLAMA])["litellm_settings"]
    assert litellm["success_callback"] == ["s3_v2"] and "s3_v2" in litellm["failure_callback"]
    params = litellm["s3_callback_params"]
    assert params["s3_server_side_encryption"] == "aws:kms"
    assert params["s3_sse_kms_key_id"] == "os.environ/SPEND_LOGS_KMS_KEY_ARN"
    assert params["s3_bucket_name"] == "os.environ/SPEND_LOGS_BUCKET"
    assert params["s3_region_name"] == "me-central-1"
    env = render_environment(settings(spendLogBatchSize=50, spendLogFlushIntervalSeconds=5))
    assert env["DEFAULT_S3_BATCH_SIZE"] == "50" and env["DEFAULT_S3_FLUSH_INTERVAL_SECONDS"] == "5"
    assert env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"


def test_prometheus_metrics_are_on_readable_by_the_scraper_and_free_of_people():
    """LiteLLM mounts /metrics only for a prometheus success callback, answers it without a key only
    when require_auth_for_metrics_endpoint is false, and refuses to start on an unknown excluded label
    (its own label list, read from the installed release)."""
    from litellm.types.integrations.prometheus import UserAPIKeyLabelNames

    litellm = render_config(settings(), [LLAMA])["litellm_settings"]
    assert "prometheus" in litellm["callbacks"]
    assert litellm["require_auth_for_metrics_endpoint"] is False
    known = {label.value for label in UserAPIKeyLabelNames}
    assert {"user_email", "end_user", "client_ip"} <= set(litellm["prometheus_exclude_labels"]) <= known


def test_prometheus_serves_a_known_subset_that_includes_what_the_platform_reads():
    """LiteLLM refuses to start on an unknown metric name; KEDA's wake-up trigger reads the request
    counter (components/model_workload.py)."""
    from typing import get_args

    from litellm.types.integrations.prometheus import DEFINED_PROMETHEUS_METRICS

    from components.model_workload import GATEWAY_DEMAND_QUERY
    from llmops.verify.metrics import selectors

    (group,) = render_config(settings(), [LLAMA])["litellm_settings"]["prometheus_metrics_config"]
    assert set(group["metrics"]) <= set(get_args(DEFINED_PROMETHEUS_METRICS))
    (selector,) = selectors(GATEWAY_DEMAND_QUERY.format(name="x"))
    assert selector.metric.removesuffix("_total") in group["metrics"]
    assert "litellm_proxy_failed_requests_metric" in group["metrics"], "refusals are counted"


def test_message_logging_is_off_in_regulated_stacks_and_prompts_never_stored():
    regulated = render_config(settings("regulated"), [LLAMA])
    internal = render_config(settings("internal"), [LLAMA])
    assert regulated["litellm_settings"]["turn_off_message_logging"] is True
    assert internal["litellm_settings"]["turn_off_message_logging"] is False
    for config in (regulated, internal):
        assert config["general_settings"]["store_prompts_in_spend_logs"] is False
        assert config["general_settings"]["master_key"] == "os.environ/LITELLM_MASTER_KEY"
        assert config["general_settings"]["database_url"] == "os.environ/DATABASE_URL"


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_shipped_stacks_render_without_secret_values(stack):
    stack_settings = load_stack_file(STACKS / f"Pulumi.{stack}.yaml")
    served = [SelfHostedModel(m.name, m.name, LLAMA.url, "L4", 1, 0.8048, 400) for m in stack_settings.models]
    config = render_config(stack_settings, served)
    text = yaml.safe_dump(config)
    assert yaml.safe_load(text) == config, "config must survive a YAML round trip unchanged"
    credentials = {"api_key", "master_key", "database_url", "s3_sse_kms_key_id", "s3_bucket_name", "password"}
    for path, value in walk(config):
        if path[-1] in credentials:
            assert str(value).startswith("os.environ/"), f"{'.'.join(map(str, path))} is inlined"
    # The cache's `password` key is LiteLLM's name for it; its value is checked above.
    scanned = re.sub(r"\bpassword: os\.environ/\S+", "", text)
    for word in ("password", "secret_access_key", "sk-"):
        assert word not in scanned.lower(), word


def walk(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, (*path, i))
    else:
        yield path, node
