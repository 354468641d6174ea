"""The LiteLLM proxy config, generated from the stack settings and the self-hosted models.

`render_config` is a pure function: no I/O, no secrets. Every credential is an
`os.environ/NAME` reference that LiteLLM resolves in the pod, from the Kubernetes Secret the
gateway component fills from Secrets Manager. Values that only exist at deploy time (the logs
bucket, its KMS key) are environment references too, so the same config renders offline.

Config keys follow LiteLLM 1.100.5 (docs.litellm.ai/docs/proxy/configs); the s3_v2 logger
parameters were read from litellm/integrations/s3_v2.py of that release.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llmops.errors import EXIT_USAGE, LlmopsError
from llmops.settings.gateway import GatewaySettings, SelfHostedPricing
from llmops.settings.stack import StackSettings

# Environment variables the gateway pods receive from its Kubernetes Secret.
MASTER_KEY_ENV = "LITELLM_MASTER_KEY"
DATABASE_URL_ENV = "DATABASE_URL"
VLLM_API_KEY_ENV = "VLLM_API_KEY"
# ...and as plain values from the component (deploy-time outputs, not secrets).
LOGS_BUCKET_ENV = "SPEND_LOGS_BUCKET"
LOGS_KMS_KEY_ENV = "SPEND_LOGS_KMS_KEY_ARN"
SPEND_LOG_PREFIX = "spend-logs"
# Prompts: injection screening and PII masking in one content-filter pass; answers: PII masking.
PROMPT_FILTER_NAME = "prompt-content-filter"
ANSWER_FILTER_NAME = "answer-pii-filter"
BUDGET_GUARDRAIL_NAME = "prompt-size-budget"
CACHE_GUARDRAIL_NAME = "response-cache-scope"
# llmops/gateway/hooks.py, loaded by LiteLLM as `guardrail: llmops.gateway.hooks.<Class>`: from
# <config dir>/llmops/gateway/hooks.py when that file exists (the pod: the ConfigMap projects it
# there; litellm/proxy/types_utils/utils.py get_instance_fn), else by import (a virtualenv with
# this package installed, as the tests run the proxy).
HOOKS_MODULE = "llmops.gateway.hooks"
HOOKS_PATH = "llmops/gateway/hooks.py"
HOOKS_SOURCE = Path(__file__).with_name("hooks.py")
# The response cache (ElastiCache Serverless for Valkey): endpoint and credentials reach the pods
# as environment variables, the password from the gateway's Kubernetes Secret.
CACHE_HOST_ENV = "GATEWAY_CACHE_HOST"
CACHE_PORT_ENV = "GATEWAY_CACHE_PORT"
CACHE_USER_ENV = "GATEWAY_CACHE_USERNAME"
CACHE_PASSWORD_ENV = "GATEWAY_CACHE_PASSWORD"
CACHE_USER = "llmops-gateway"
# Team metadata key carrying a team's prompt-size budget (team file gateway.maxInputTokens): set
# by the team reconciler (components/team.py), read by the PromptBudget guardrail.
TEAM_INPUT_LIMIT_KEY = "llmops_max_input_tokens"
# Labels LiteLLM's Prometheus metrics would carry that identify people: kept out of the metrics store.
PROMETHEUS_PII_LABELS = ["end_user", "user_email", "client_ip", "user_agent"]
# The metrics the gateway serves (litellm_settings.prometheus_metrics_config): requests (KEDA's
# wake-up signal), refusals and failures, latency (the gateway's own overhead included), tokens,
# fallbacks, guardrail and cache counters. Left out: spend and budget gauges per key, team and user
# (spend is accounted from the spend logs), whose bookkeeping after every request costs more CPU
# than the rest together (bench/gateway.py) and whose labels name every key and team.
PROMETHEUS_METRICS = [
    "litellm_proxy_total_requests_metric",
    "litellm_proxy_failed_requests_metric",
    "litellm_request_total_latency_metric",
    "litellm_llm_api_latency_metric",
    "litellm_llm_api_time_to_first_token_metric",
    "litellm_overhead_latency_metric",
    "litellm_input_tokens_metric",
    "litellm_output_tokens_metric",
    "litellm_deployment_state",
    "litellm_deployment_successful_fallbacks",
    "litellm_deployment_failed_fallbacks",
    "litellm_guardrail_requests_total",
    "litellm_guardrail_errors_total",
    "litellm_cache_hits_metric",
    "litellm_cache_misses_metric",
    "litellm_in_flight_requests",
]
SECONDS_PER_HOUR = 3600


@dataclass(frozen=True)
class SelfHostedModel:
    """One model served by vLLM in the cluster, as the model-serving component reports it."""

    public_name: str  # what clients ask the gateway for
    served_name: str  # vLLM's --served-model-name
    url: str  # in-cluster OpenAI-compatible base URL, e.g. http://llama.models.svc.cluster.local:8000/v1
    gpu_model: str  # e.g. L4, for the record
    gpus_per_replica: int  # tensor-parallel size
    instance_usd_per_hour: float  # list price of the instance a replica runs on
    tokens_per_second_assumption: float  # generated tokens per second one replica sustains
    gpus_per_instance: int | None = None  # defaults to gpus_per_replica: the replica fills the node

    @property
    def replica_usd_per_hour(self) -> float:
        """The replica's share of its instance: the instance price times its share of the GPUs."""
        per_instance = self.gpus_per_instance or self.gpus_per_replica
        return self.instance_usd_per_hour * self.gpus_per_replica / per_instance


def token_prices(model: SelfHostedModel, pricing: SelfHostedPricing) -> tuple[float, float]:
    """(input, output) USD per token for a self-hosted model.

    output = replica_usd_per_hour / (3600 * tokens_per_second_assumption * assumed_utilization)
    input  = output * input_to_output_cost_ratio

    A replica busy `assumed_utilization` of its hours at the assumed throughput then charges its
    whole GPU-hour cost to the tokens it serves; lower real utilisation shows up as unrecovered
    GPU spend in the cost alarms rather than as cheaper tokens.
    """
    problems = []
    if model.instance_usd_per_hour <= 0:
        problems.append("instance_usd_per_hour must be above 0 (self-hosted spend is never free)")
    if model.tokens_per_second_assumption <= 0:
        problems.append("tokens_per_second_assumption must be above 0")
    if model.gpus_per_replica < 1 or (model.gpus_per_instance or 1) < model.gpus_per_replica:
        problems.append("gpus_per_replica must be >= 1 and fit in gpus_per_instance")
    if problems:
        raise LlmopsError(f"self-hosted model {model.public_name}: " + "; ".join(problems), EXIT_USAGE)
    tokens_per_hour = SECONDS_PER_HOUR * model.tokens_per_second_assumption * pricing.assumed_utilization
    output = model.replica_usd_per_hour / tokens_per_hour
    return output * pricing.input_to_output_cost_ratio, output


def render_config(settings: StackSettings, models: list[SelfHostedModel]) -> dict:
    """The LiteLLM proxy config (to be written as config.yaml) for this stack."""
    gw = settings.gateway
    model_list = [_self_hosted_entry(m, gw) for m in models]
    model_list += _external_entries(settings)
    _check_names(gw, models)
    config: dict = {
        "model_list": model_list,
        "router_settings": _router_settings(gw),
        "litellm_settings": _litellm_settings(settings),
        "general_settings": {
            "master_key": f"os.environ/{MASTER_KEY_ENV}",
            "database_url": f"os.environ/{DATABASE_URL_ENV}",
            # Spend rows in the database keep token counts and cost, never the prompt text.
            "store_prompts_in_spend_logs": False,
        },
    }
    guardrails = _guardrails(settings)
    if guardrails:
        config["guardrails"] = guardrails
    return config


def config_files(config: dict) -> dict[str, str]:
    """Files the config directory needs beside config.yaml (path relative to it -> text): the
    hooks module when a guardrail of the config loads it."""
    hooked = any(
        str(g["litellm_params"]["guardrail"]).startswith(f"{HOOKS_MODULE}.")
        for g in config.get("guardrails", [])
    )
    return {HOOKS_PATH: HOOKS_SOURCE.read_text()} if hooked else {}


def uses_valkey_cache(settings: StackSettings) -> bool:
    gw = settings.gateway
    return bool(gw.response_cache.routes) and gw.response_cache.backend == "valkey"


def render_environment(settings: StackSettings) -> dict[str, str]:
    """Plain (non-secret) environment of the gateway container that the config depends on.

    The s3_v2 logger takes its batch size and flush interval only from these variables, read
    when litellm is imported (litellm/constants.py), so they cannot live in config.yaml.
    """
    gw = settings.gateway
    return {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download of the cost map at start-up
        "DEFAULT_S3_BATCH_SIZE": str(gw.spend_log_batch_size),
        "DEFAULT_S3_FLUSH_INTERVAL_SECONDS": str(gw.spend_log_flush_interval_seconds),
    }


def secret_environment_names(settings: StackSettings) -> list[str]:
    """Names of the environment variables the gateway's Kubernetes Secret must provide."""
    names = [MASTER_KEY_ENV, DATABASE_URL_ENV, VLLM_API_KEY_ENV]
    if uses_valkey_cache(settings):
        names.append(CACHE_PASSWORD_ENV)
    return names + [p.api_key_env for p in settings.gateway.external_providers if p.api_key_secret]


def _self_hosted_entry(model: SelfHostedModel, gw: GatewaySettings) -> dict:
    input_cost, output_cost = token_prices(model, gw.self_hosted_pricing)
    return {
        "model_name": model.public_name,
        "litellm_params": {
            "model": f"hosted_vllm/{model.served_name}",
            "api_base": model.url,
            "api_key": f"os.environ/{VLLM_API_KEY_ENV}",
            "input_cost_per_token": float(f"{input_cost:.6e}"),
            "output_cost_per_token": float(f"{output_cost:.6e}"),
            "timeout": gw.request_timeout_seconds,
        },
        "model_info": {
            "self_hosted": True,
            "gpu_model": model.gpu_model,
            "gpus_per_replica": model.gpus_per_replica,
            "replica_usd_per_hour": round(model.replica_usd_per_hour, 6),
            "tokens_per_second_assumption": model.tokens_per_second_assumption,
            "assumed_utilization": gw.self_hosted_pricing.assumed_utilization,
        },
    }


def _external_entries(settings: StackSettings) -> list[dict]:
    entries = []
    for provider in settings.gateway.external_providers:
        for model in provider.models:
            params: dict = {"model": f"{provider.kind}/{model.upstream}"}
            if provider.api_key_secret:
                params["api_key"] = f"os.environ/{provider.api_key_env}"
            if provider.api_base:
                params["api_base"] = provider.api_base
            if provider.kind == "bedrock":
                params["aws_region_name"] = provider.aws_region or settings.region
            params["timeout"] = settings.gateway.request_timeout_seconds
            entries.append(
                {
                    "model_name": model.name,
                    "litellm_params": params,
                    "model_info": {"self_hosted": False, "provider": provider.name},
                }
            )
    return entries


def _check_names(gw: GatewaySettings, models: list[SelfHostedModel]) -> None:
    self_hosted = [m.public_name for m in models]
    external = set(gw.external_model_names())
    known = set(self_hosted) | external
    problems = [f"model {n} is served twice" for n in sorted(set(self_hosted)) if self_hosted.count(n) > 1]
    problems += [f"{n} is both self-hosted and external" for n in sorted(set(self_hosted) & external)]
    for i, chain in enumerate(gw.fallbacks):
        unknown = [n for n in [chain.model, *chain.to] if n not in known]
        if unknown:
            problems.append(f"llmops:gateway.fallbacks[{i}]: unknown model(s) {', '.join(unknown)}")
    for route in sorted(set(gw.input_budget.routes) - known):
        problems.append(f"llmops:gateway.inputBudget.routes.{route}: unknown model {route}")
    for i, route in enumerate(gw.response_cache.routes):
        if route not in known:
            problems.append(f"llmops:gateway.responseCache.routes[{i}]: unknown model {route}")
    if problems:
        listed = "\n".join(f"  {p}" for p in problems)
        raise LlmopsError(f"gateway config: {len(problems)} problem(s):\n{listed}", EXIT_USAGE)


def _router_settings(gw: GatewaySettings) -> dict:
    return {
        "routing_strategy": "simple-shuffle",
        "num_retries": gw.num_retries,
        "timeout": gw.request_timeout_seconds,
        "allowed_fails": gw.allowed_fails,
        "cooldown_time": gw.cooldown_seconds,
        "fallbacks": [{chain.model: list(chain.to)} for chain in gw.fallbacks],
    }


def _litellm_settings(settings: StackSettings) -> dict:
    gw = settings.gateway
    out = {
        "request_timeout": gw.request_timeout_seconds,
        "drop_params": True,  # vLLM rejects OpenAI-only parameters instead of ignoring them
        # Successes and failures both carry cost and team metadata the cost alarms aggregate.
        "success_callback": ["s3_v2"],
        "failure_callback": ["s3_v2"],
        # /metrics on the proxy port (litellm 1.100.5 proxy/common_utils/callback_utils.py mounts it):
        # the request counter per model wakes scaled-to-zero models (KEDA). Under `callbacks`, not
        # next to s3_v2: the success_callback loop of that release skips a second string logger.
        "callbacks": ["prometheus"],
        # The scraper holds no LiteLLM key; the endpoint carries counts, not prompts, and the labels
        # naming people are dropped.
        "require_auth_for_metrics_endpoint": False,
        "prometheus_exclude_labels": list(PROMETHEUS_PII_LABELS),
        "prometheus_metrics_config": [{"group": "llmops", "metrics": list(PROMETHEUS_METRICS)}],
        "s3_callback_params": {
            "s3_bucket_name": f"os.environ/{LOGS_BUCKET_ENV}",
            "s3_region_name": settings.region,
            "s3_path": SPEND_LOG_PREFIX,
            "s3_server_side_encryption": "aws:kms",
            "s3_sse_kms_key_id": f"os.environ/{LOGS_KMS_KEY_ENV}",
            # Keys stay <prefix>/<date>/<id>.json: the aggregator reads the team from the record,
            # and one layout keeps the S3 event filter and lifecycle rules simple.
            "s3_use_team_prefix": False,
            "s3_strip_base64_files": True,
        },
        "turn_off_message_logging": not gw.message_logging_on(settings.regulated),
    }
    if gw.response_cache.routes:
        out["cache"] = True
        out["cache_params"] = _cache_params(gw)
    return out


def _cache_params(gw: GatewaySettings) -> dict:
    """LiteLLM's response cache in default_off mode: only requests the cache-scope guardrail marks
    (`use-cache`, with the team's namespace) read or write it (litellm/caching/caching.py)."""
    common = {
        "mode": "default_off",
        "ttl": gw.response_cache.ttl_seconds,
        "supported_call_types": ["acompletion", "completion"],
    }
    if gw.response_cache.backend == "local":
        return {"type": "local", **common}
    return {
        "type": "redis",  # Valkey speaks the Redis protocol; LiteLLM's redis client (redis-py)
        "host": f"os.environ/{CACHE_HOST_ENV}",
        "port": f"os.environ/{CACHE_PORT_ENV}",
        "username": f"os.environ/{CACHE_USER_ENV}",
        "password": f"os.environ/{CACHE_PASSWORD_ENV}",
        "ssl": True,  # ElastiCache Serverless accepts TLS connections only
        **common,
    }


def _guardrails(settings: StackSettings) -> list[dict]:
    """In the order LiteLLM runs them before the call: the cheap size check first (an oversized
    prompt is refused before any scan), then one content-filter pass over the prompt (injection
    screening, then PII masking), then the cache scope on the masked request; after the call, PII
    masking of the answer."""
    gw, out = settings.gateway, []
    budget = gw.input_budget
    out.append(
        _hook(
            BUDGET_GUARDRAIL_NAME,
            "PromptBudget",
            route_max_input_tokens=dict(budget.routes),
            default_max_input_tokens=budget.max_tokens,
            team_limit_key=TEAM_INPUT_LIMIT_KEY,
        )
    )
    pii, screen = gw.guardrail_on(settings.sensitive), gw.injection_screen_on(settings.sensitive)
    if pii or screen:
        out.append(_prompt_filter(gw, pii, screen))
    cached = list(gw.response_cache.routes)
    if cached:
        out.append(_hook(CACHE_GUARDRAIL_NAME, "CacheScope", routes=cached))
    if pii:
        out.append(_content_filter(ANSWER_FILTER_NAME, "post_call", patterns=_pii_patterns(gw)))
    return out


def _hook(name: str, cls: str, **params) -> dict:
    return {
        "guardrail_name": name,
        "litellm_params": {
            "guardrail": f"{HOOKS_MODULE}.{cls}",
            "mode": "pre_call",
            "default_on": True,
            **params,
        },
    }


def _prompt_filter(gw: GatewaySettings, pii: bool, screen: bool) -> dict:
    """One content-filter pass over the prompt for both controls: LiteLLM runs a guardrail's
    keyword categories before its patterns (content_filter.py `_filter_single_text`), so an
    injection is refused on the text as sent and PII is masked after. Each guardrail run costs
    far more in LiteLLM's per-guardrail bookkeeping than its scan (bench/gateway.py), so one pass
    instead of two. pre_call: during_call MASK is racy upstream."""
    params: dict = {}
    if screen:
        params["categories"] = [
            {"category": c, "enabled": True, "action": "BLOCK"} for c in gw.prompt_injection_categories
        ]
    if pii:
        params["patterns"] = _pii_patterns(gw)
    return _content_filter(PROMPT_FILTER_NAME, "pre_call", **params)


def _content_filter(name: str, mode: str, **params) -> dict:
    return {
        "guardrail_name": name,
        "litellm_params": {
            "guardrail": "litellm_content_filter",
            "mode": mode,
            "default_on": True,  # every request, whatever the key or team asks for
            **params,
        },
    }


def _pii_patterns(gw: GatewaySettings) -> list[dict]:
    """The same list for prompts and answers."""
    patterns = []
    for p in gw.pii_patterns:
        if p.regex is None:
            patterns.append({"pattern_type": "prebuilt", "pattern_name": p.name, "action": p.action})
        else:
            patterns.append({"pattern_type": "regex", "name": p.name, "pattern": p.regex, "action": p.action})
    return patterns
