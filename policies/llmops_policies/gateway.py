"""LLM gateway guardrails, read from the generated LiteLLM config (the ConfigMap labelled
app.kubernetes.io/name: litellm, key config.yaml), and the vLLM server flags.

Messages name config paths, never values: the config may hold a secret by mistake.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlparse

from ._k8s import CONFIG_MAP, WORKLOADS, Container, containers, litellm_config, pod_spec, where
from ._rule import A, Ctx, D, M, Res, anchors, as_list, get, levels, resource_rule, truthy, walk

PII_PATTERNS = ["email", "credit_card", "iban", "uae_emirates_id"]
PII_ANCHORS = anchors(
    "GDPR:Art. 25",
    "GDPR:Art. 32(1)(a) pseudonymisation",
    "ISO 27001:2022:A.8.11",
    "ISO 27001:2022:A.5.34",
    "HIPAA:164.514(b) de-identification",
    "PCI DSS 4.0:3.4.1",
    "UAE:PDPL personal data minimisation",
)


def _modes(guardrail: Mapping[str, Any]) -> list[str]:
    return [str(m) for m in as_list(get(guardrail, "litellm_params.mode"))]


@resource_rule(
    id="LLMOPS-GW-001",
    name="gateway-pii-guardrail",
    setting=("llmops:gateway.piiGuardrail", "llmops:gateway.piiPatterns"),
    description="Checks whether the gateway runs LiteLLM's content filter in pre_call mode, on by default, "
    "masking or blocking the required PII patterns before prompts leave the platform.",
    severity="critical",
    remediation="Add a guardrail with litellm_params guardrail: litellm_content_filter, mode: pre_call, "
    "default_on: true, and prebuilt patterns (email, credit_card, iban, uae_emirates_id, ...) with action "
    "MASK.",
    anchors=PII_ANCHORS,
    levels=levels(D, A, M, M),
    types=(CONFIG_MAP,),
    config={"requiredPiiPatterns": {"type": "array", "items": {"type": "string"}, "default": PII_PATTERNS}},
)
def pii_guardrail(res: Res, ctx: Ctx) -> Iterator[str]:
    cfg = litellm_config(res)
    if cfg is None:
        return
    filters = [
        g
        for g in as_list(cfg.get("guardrails"))
        if get(g, "litellm_params.guardrail") == "litellm_content_filter" and "pre_call" in _modes(g)
    ]
    if not filters:
        yield f"Gateway config {res.name} must define a litellm_content_filter guardrail in pre_call mode."
        return
    if not any(truthy(get(g, "litellm_params.default_on", False)) for g in filters):
        yield f"Gateway config {res.name} must turn its PII guardrail on by default (default_on: true)."
    covered = {
        str(get(p, "pattern_name"))
        for g in filters
        for p in as_list(get(g, "litellm_params.patterns"))
        if str(get(p, "action", "")).upper() in ("MASK", "BLOCK")
    }
    missing = [p for p in as_list(ctx.cfg("requiredPiiPatterns")) if p not in covered]
    if missing:
        yield f"Gateway config {res.name} must mask or block PII patterns: {', '.join(missing)}."


@resource_rule(
    id="LLMOPS-GW-002",
    name="gateway-no-prompts-in-spend-logs",
    description="Checks whether the gateway keeps prompts and responses out of its spend logs "
    "(general_settings.store_prompts_in_spend_logs never true).",
    severity="critical",
    remediation="Remove store_prompts_in_spend_logs (or set it false); spend logs carry tokens and cost "
    "only.",
    anchors=anchors(
        "GDPR:Art. 5(1)(c)",
        "ISO 27001:2022:A.8.12",
        "HIPAA:164.502(b) minimum necessary",
        "PCI DSS 4.0:3.2.1",
    ),
    levels=levels(A, M, M, M),
    types=(CONFIG_MAP,),
)
def no_prompt_storage(res: Res, ctx: Ctx) -> Iterator[str]:
    cfg = litellm_config(res)
    if cfg is not None and truthy(get(cfg, "general_settings.store_prompts_in_spend_logs", False)):
        yield f"Gateway config {res.name} must not set general_settings.store_prompts_in_spend_logs."


@resource_rule(
    id="LLMOPS-GW-003",
    name="gateway-message-logging-off",
    setting="llmops:gateway.messageLogging",
    description="Checks whether the gateway keeps message content out of every logging callback "
    "(litellm_settings.turn_off_message_logging true).",
    severity="high",
    remediation="Set litellm_settings.turn_off_message_logging: true; metadata, tokens and cost are still "
    "logged.",
    anchors=anchors(
        "GDPR:Art. 5(1)(c)",
        "ISO 27001:2022:A.8.12",
        "HIPAA:164.502(b) minimum necessary",
        "UAE:PDPL data minimisation",
    ),
    levels=levels(D, D, A, M),
    types=(CONFIG_MAP,),
)
def message_logging_off(res: Res, ctx: Ctx) -> Iterator[str]:
    cfg = litellm_config(res)
    if cfg is not None and not truthy(get(cfg, "litellm_settings.turn_off_message_logging", False)):
        yield f"Gateway config {res.name} must set litellm_settings.turn_off_message_logging true."


SECRET_KEY = re.compile(
    r"(api_key|master_key|database_url|password|secret|token|access_key|webhook)", re.IGNORECASE
)
ENV_REF = re.compile(r"^os\.environ/[A-Za-z_][A-Za-z0-9_]*$")


@resource_rule(
    id="LLMOPS-GW-004",
    name="gateway-secrets-from-environment",
    description="Checks whether every secret in the gateway config (API keys, master key, database URL, "
    "passwords, tokens) is an os.environ/NAME reference, never an inline value.",
    severity="critical",
    remediation="Write os.environ/NAME in the config and inject NAME from the Kubernetes Secret synced from "
    "Secrets Manager.",
    anchors=anchors(
        "PCI DSS 4.0:8.3.2", "ISO 27001:2022:A.5.17", "HIPAA:164.312(a)(1)", "Checkov:CKV_SECRET_2"
    ),
    levels=levels(M, M, M, M),
    types=(CONFIG_MAP,),
)
def secrets_from_env(res: Res, ctx: Ctx) -> Iterator[str]:
    cfg = litellm_config(res)
    if cfg is None:
        return
    for path, value in walk(cfg):
        key = path.rsplit(".", 1)[-1]
        secret_key = SECRET_KEY.search(key) and not key.endswith("_per_token")
        if isinstance(value, str) and value and secret_key and not ENV_REF.match(value):
            yield f"Gateway config {res.name} must read {path} from the environment (os.environ/NAME)."
        elif isinstance(value, str) and value.startswith(("sk-", "sk_live")):
            yield f"Gateway config {res.name} must not inline a key at {path}."


DEFAULT_PROVIDERS = ["hosted_vllm", "openai", "anthropic", "bedrock"]
DEFAULT_API_BASES = [".svc.cluster.local", ".svc", "api.openai.com", "api.anthropic.com"]


@resource_rule(
    id="LLMOPS-GW-005",
    name="gateway-providers-allowlisted",
    setting=("llmops:gateway.externalProviders", "llmops:gateway.allowExternalProviders"),
    description="Checks whether every model in the gateway config uses an allowed provider and API base, and "
    "Bedrock models an allowed region.",
    severity="high",
    remediation="Use providers in allowedProviders and API bases ending in allowedApiBases (in-cluster vLLM "
    "Services by default); regulated stacks usually allow hosted_vllm and in-region bedrock only.",
    anchors=anchors(
        "GDPR:Art. 28",
        "GDPR:Art. 44",
        "ISO 27001:2022:A.5.19",
        "ISO 27001:2022:A.5.23",
        "UAE:PDPL Art. 22 cross-border transfer",
    ),
    levels=levels(D, A, M, M),
    types=(CONFIG_MAP,),
    config={
        "allowedProviders": {"type": "array", "items": {"type": "string"}, "default": DEFAULT_PROVIDERS},
        "allowedApiBases": {"type": "array", "items": {"type": "string"}, "default": DEFAULT_API_BASES},
    },
)
def providers_allowlisted(res: Res, ctx: Ctx) -> Iterator[str]:
    cfg = litellm_config(res)
    if cfg is None:
        return
    providers = [str(p) for p in as_list(ctx.cfg("allowedProviders"))]
    bases = [str(b) for b in as_list(ctx.cfg("allowedApiBases"))]
    for i, entry in enumerate(as_list(cfg.get("model_list"))):
        name = get(entry, "model_name", f"model_list[{i}]")
        params = get(entry, "litellm_params") or {}
        model = str(get(params, "model", ""))
        provider = model.split("/", 1)[0] if "/" in model else "openai"
        if provider not in providers:
            yield f"Gateway model {name} must use an allowed provider (not {provider})."
        base = get(params, "api_base")
        host = urlparse(str(base)).hostname or "" if base else ""
        if (
            base
            and not str(base).startswith("os.environ/")
            and not any(host == b or host.endswith(b) for b in bases)
        ):
            yield f"Gateway model {name} must use an allowed API base (not {host})."
        region = get(params, "aws_region_name")
        if provider == "bedrock" and region and not ctx.region_allowed(str(region)):
            yield (
                f"Gateway model {name} must call Bedrock in {', '.join(ctx.allowed_regions)} (not {region})."
            )


def _is_vllm(c: Container) -> bool:
    words = [str(c.get("image", ""))] + [str(x) for x in as_list(c.get("command"))]
    return any("vllm" in w for w in words)


def _argv(c: Container) -> list[str]:
    out: list[str] = []
    for arg in [str(x) for x in as_list(c.get("command"))] + [str(x) for x in as_list(c.get("args"))]:
        out += arg.split("=", 1) if arg.startswith("--") and "=" in arg else [arg]
    return out


def _flag(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv and argv.index(flag) + 1 < len(argv) else None


@resource_rule(
    id="LLMOPS-GW-006",
    name="vllm-api-key-from-secret",
    description="Checks whether every vLLM server requires an API key that comes from a Kubernetes Secret "
    "(--api-key $(VAR) or VLLM_API_KEY, with the variable from secretKeyRef).",
    severity="critical",
    remediation="Set env VLLM_API_KEY from valueFrom.secretKeyRef and pass --api-key $(VLLM_API_KEY) (or "
    "rely "
    "on VLLM_API_KEY alone); the gateway holds the same key.",
    anchors=anchors("PCI DSS 4.0:8.3.1", "ISO 27001:2022:A.8.5", "HIPAA:164.312(d)", "CIS EKS:4.4.1"),
    levels=levels(A, M, M, M),
    types=WORKLOADS,
)
def vllm_api_key(res: Res, ctx: Ctx) -> Iterator[str]:
    for c in containers(pod_spec(res)):
        if not _is_vllm(c) or c.kind != "containers":
            continue
        env = {str(get(e, "name")): e for e in as_list(c.get("env"))}
        key = _flag(_argv(c), "--api-key")
        var = (
            key[2:-1]
            if key and key.startswith("$(") and key.endswith(")")
            else None
            if key
            else "VLLM_API_KEY"
        )
        if var is None:
            yield f"{where(res, c)} must pass --api-key as $(VAR) from a Secret, not a literal."
        elif not get(env.get(var) or {}, "valueFrom.secretKeyRef"):
            yield f"{where(res, c)} must take its API key ({var}) from a Secret (valueFrom.secretKeyRef)."


@resource_rule(
    id="LLMOPS-GW-007",
    name="vllm-no-trust-remote-code",
    setting="llmops:models[].extraArgs",
    description="Checks whether vLLM servers run without --trust-remote-code, unless the model is on the "
    "reviewed allowlist (remote code runs arbitrary Python from the model repository).",
    severity="high",
    remediation="Remove --trust-remote-code, or review the model's code and add the model to "
    "trustRemoteCodeModels in the policy config.",
    anchors=anchors(
        "PCI DSS 4.0:6.3.2",
        "ISO 27001:2022:A.8.19",
        "ISO 27001:2022:A.8.28",
        "OWASP LLM Top 10:LLM03 supply chain",
    ),
    levels=levels(A, M, M, M),
    types=WORKLOADS,
    config={"trustRemoteCodeModels": {"type": "array", "items": {"type": "string"}, "default": []}},
)
def no_trust_remote_code(res: Res, ctx: Ctx) -> Iterator[str]:
    allowed = [str(m) for m in as_list(ctx.cfg("trustRemoteCodeModels"))]
    for c in containers(pod_spec(res)):
        argv = _argv(c)
        if not _is_vllm(c) or "--trust-remote-code" not in argv:
            continue
        model = _flag(argv, "--model") or _flag(argv, "serve") or "?"
        if model not in allowed:
            yield (
                f"{where(res, c)} must not use --trust-remote-code for {model} (not in "
                "trustRemoteCodeModels)."
            )


@resource_rule(
    id="LLMOPS-GW-008",
    name="gateway-spend-logs-to-s3-in-region",
    description="Checks whether the gateway writes spend logs with the s3_v2 callback to a bucket in an "
    "allowed region.",
    severity="medium",
    remediation="Add s3_v2 to litellm_settings.callbacks (or success_callback) and set "
    "s3_callback_params.s3_region_name to the stack's region.",
    anchors=anchors(
        "PCI DSS 4.0:10.2.1",
        "ISO 27001:2022:A.8.15",
        "HIPAA:164.312(b)",
        "GDPR:Art. 30",
        "UAE:audit trail kept in the UAE",
    ),
    levels=levels(D, A, M, M),
    types=(CONFIG_MAP,),
)
def spend_logs(res: Res, ctx: Ctx) -> Iterator[str]:
    cfg = litellm_config(res)
    if cfg is None:
        return
    settings = get(cfg, "litellm_settings") or {}
    callbacks = [str(x) for key in ("callbacks", "success_callback") for x in as_list(get(settings, key))]
    if not any(cb in ("s3_v2", "s3") for cb in callbacks):
        yield f"Gateway config {res.name} must log spend to S3 (s3_v2 callback)."
        return
    region = get(settings, "s3_callback_params.s3_region_name")
    if not region or (not str(region).startswith("os.environ/") and not ctx.region_allowed(str(region))):
        yield f"Gateway config {res.name} must set s3_callback_params.s3_region_name to an allowed region."
