"""Settings of the LiteLLM gateway: external providers, fallbacks, PII guardrails, logging, sizing.

The rules that depend on the stack's data classification (regulated stacks and external
providers, message logging) are checked by `check_gateway` from `StackSettings`, which knows
the classification; each problem names its path under `llmops:gateway`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from llmops.settings.base import Settings, dns_label

# Names of LiteLLM's prebuilt content-filter patterns, copied from
# litellm/proxy/guardrails/guardrail_hooks/litellm_content_filter/patterns.json in
# litellm 1.100.5 (tests/test_gateway_settings.py compares this list with the installed file,
# so an upgrade that renames a pattern fails the tests instead of the proxy at start-up).
PREBUILT_PII_PATTERNS = frozenset(
    [
        "us_ssn",
        "us_ssn_no_dash",
        "email",
        "us_phone",
        "visa",
        "mastercard",
        "amex",
        "discover",
        "credit_card",
        "aws_access_key",
        "aws_secret_key",
        "github_token",
        "slack_token",
        "generic_api_key",
        "ipv4",
        "ipv6",
        "url",
        "passport_us",
        "passport_uk",
        "passport_germany",
        "passport_france",
        "passport_netherlands",
        "passport_canada",
        "passport_india",
        "passport_australia",
        "passport_china",
        "passport_japan",
        "gender_sexual_orientation",
        "race_ethnicity_national_origin",
        "religion",
        "age_discrimination",
        "disability",
        "marital_family_status",
        "military_status",
        "public_assistance",
        "weapons_firearms",
        "weapons_other",
        "explosives",
        "violence_threats",
        "terrorism",
        "self_harm_suicide",
        "illegal_activities",
        "harassment_hate",
        "nl_bsn_contextual",
        "br_cpf",
        "br_cpf_unformatted",
        "br_phone_landline",
        "br_phone_mobile",
        "br_cep",
        "br_cnpj",
        "br_rg",
        "au_tfn",
        "au_abn",
        "au_medicare",
        "iban",
        "fr_nir",
        "eu_iban_enhanced",
        "fr_phone",
        "eu_vat",
        "eu_passport_generic",
        "fr_postal_code",
        "street_address",
        "airline_pnr",
        "skywards_number",
        "uae_emirates_id",
        "uae_phone",
        "flight_number",
        "sg_nric",
        "sg_phone",
        "sg_postal_code",
        "passport_singapore",
        "sg_uen",
        "sg_bank_account",
        "ca_sin",
        "ca_ohip",
        "ca_on_drivers_licence",
        "ca_immigration_doc",
        "ca_bank_account",
        "ca_postal_code",
        "uoft_student_id",
        "uoft_utorid",
        "uoft_tcard",
    ]
)

# The prebuilt `iban` pattern (\b[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b) matches only the electronic
# form without spaces. People paste the printed form in groups of four (ISO 13616), e.g.
# "AE07 0331 2345 6789 0123 456", which it misses entirely; this regex covers that form.
IBAN_GROUPED_REGEX = r"\b[A-Z]{2}\d{2}(?:[ \-]?[A-Z0-9]{4}){2,7}(?:[ \-]?[A-Z0-9]{1,3})?\b"

ProviderKind = Literal["openai", "anthropic", "bedrock", "azure"]
# Providers that authenticate with an API key; bedrock uses the gateway's AWS role instead.
KEYED_PROVIDERS = ("openai", "anthropic", "azure")
PUBLIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$")


def _public_name(value: str) -> str:
    if not PUBLIC_NAME.match(value):
        raise ValueError(f"{value!r} must be a model name of letters, digits and . _ : / - (at most 100)")
    return value


class ProviderModel(Settings):
    name: Annotated[str, AfterValidator(_public_name)]
    """Public model name clients ask the gateway for (model_name in LiteLLM)."""
    model: str | None = None
    """The provider's model id (e.g. gpt-4o-mini, anthropic.claude-3-5-sonnet-20240620-v1:0).
    Defaults to the public name."""

    @property
    def upstream(self) -> str:
        return self.model or self.name


class ExternalProvider(Settings):
    name: Annotated[str, AfterValidator(dns_label)]
    """Stable key of the provider; its API key reaches the pods as <NAME>_API_KEY."""
    kind: ProviderKind
    """LiteLLM provider prefix used for its models (openai/..., anthropic/..., bedrock/...)."""
    models: list[ProviderModel] = Field(min_length=1)
    """Models this provider offers through the gateway, keyed by public name."""
    api_key_secret: str | None = None
    """Name of the Secrets Manager secret holding the API key (required for openai, anthropic
    and azure). Bedrock needs none: it is called with the gateway's Pod Identity role."""
    api_base: str | None = Field(None, pattern=r"^https://")
    """Endpoint override (required for azure; an https URL)."""
    aws_region: str | None = None
    """Bedrock only: region of the models. Defaults to the stack's region (data residency)."""

    @property
    def api_key_env(self) -> str:
        return f"{self.name.upper().replace('-', '_')}_API_KEY"

    @model_validator(mode="after")
    def _credentials(self):
        if self.kind in KEYED_PROVIDERS and not self.api_key_secret:
            raise ValueError(f"a {self.kind} provider needs apiKeySecret (a Secrets Manager secret name)")
        if self.kind == "bedrock" and self.api_key_secret:
            raise ValueError("bedrock uses the gateway's AWS role; remove apiKeySecret")
        if self.kind == "azure" and not self.api_base:
            raise ValueError("an azure provider needs apiBase (https://<resource>.openai.azure.com)")
        if self.aws_region and self.kind != "bedrock":
            raise ValueError("awsRegion applies to bedrock providers only")
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique; repeated: {', '.join(dupes)}")
        return self


class FallbackChain(Settings):
    model: str
    """Public name of the model whose failures fall back."""
    to: list[str] = Field(min_length=1)
    """Public names tried in order when the model fails after its retries."""


class PiiPattern(Settings):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,40}$")
    """A LiteLLM prebuilt pattern name (email, iban, ...) or, with regex, the name of a custom one.
    Masked text reads [<NAME>_REDACTED]."""
    regex: str | None = None
    """A custom regular expression (matched case-insensitively). Absent: name is prebuilt."""
    action: Literal["MASK", "BLOCK"] = "MASK"
    """MASK replaces the match before the request leaves the gateway; BLOCK refuses the request."""

    @model_validator(mode="after")
    def _known(self):
        if self.regex is None and self.name not in PREBUILT_PII_PATTERNS:
            raise ValueError(
                f"{self.name!r} is not a LiteLLM prebuilt pattern (e.g. email, credit_card, iban, "
                "uae_emirates_id, uae_phone); give a regex to define a custom one"
            )
        if self.regex is not None:
            if self.name in PREBUILT_PII_PATTERNS:
                raise ValueError(f"{self.name!r} is a prebuilt pattern; give the custom regex another name")
            try:
                re.compile(self.regex)
            except re.error as err:
                raise ValueError(f"regex does not compile: {err}") from None
        return self


def _default_patterns() -> list[PiiPattern]:
    names = ["email", "credit_card", "iban", "uae_emirates_id", "uae_phone"]
    return [PiiPattern(name=n) for n in names] + [PiiPattern(name="iban_grouped", regex=IBAN_GROUPED_REGEX)]


REQUIRED_PII_PATTERNS = ("email", "credit_card", "iban", "uae_emirates_id", "uae_phone")


# Keyword categories of LiteLLM's content filter that screen for prompt injection, from
# litellm/proxy/guardrails/guardrail_hooks/litellm_content_filter/categories/ in litellm 1.100.5
# (tests/test_gateway_settings.py checks they exist). The SQL and code categories are left out of
# the default: they refuse ordinary questions about SQL or shell commands.
PROMPT_INJECTION_CATEGORIES = frozenset(
    [
        "prompt_injection_system_prompt",
        "prompt_injection_jailbreak",
        "prompt_injection_data_exfiltration",
        "prompt_injection_sql",
        "prompt_injection_malicious_code",
    ]
)
DEFAULT_INJECTION_CATEGORIES = ("prompt_injection_system_prompt", "prompt_injection_jailbreak")


class InputBudget(Settings):
    max_tokens: int = Field(32768, ge=1)
    """Input tokens a request may send on any route not listed in `routes` (counted as LiteLLM
    does for models without their own tokenizer: tiktoken cl100k_base). The default, 32768, is a
    ceiling for runaway prompts; set each route's own budget below it."""
    routes: dict[str, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)
    """Input-token limit per route (public model name), replacing maxTokens for that route."""


class ResponseCache(Settings):
    routes: list[str] = Field(default_factory=list)
    """Routes (public model names) whose answers are cached: opt-in, none by default. A cached
    answer is keyed by the caller's team (or key, without a team) and never served to another."""
    backend: Literal["valkey", "local"] = "valkey"
    """valkey: ElastiCache Serverless for Valkey in the VPC (TLS, own KMS key, password auth),
    shared by every gateway pod. local: each pod's memory (no AWS resource; hits only on the pod
    that answered first)."""
    ttl_seconds: int = Field(3600, ge=1, le=7 * 24 * 3600)
    """How long a cached answer is served."""
    allow_in_regulated_stack: bool = False
    """A regulated stack caches nothing unless this is true: cached answers are model output kept
    outside the model (masked on the way out, as every answer is)."""
    max_data_gb: int = Field(1, ge=1, le=5000)
    """valkey: the serverless cache's data storage limit (GB)."""
    max_ecpu_per_second: int = Field(5000, ge=1000, le=15000000)
    """valkey: the serverless cache's ElastiCache Processing Units per second limit."""

    @field_validator("routes")
    @classmethod
    def _unique_routes(cls, value: list[str]) -> list[str]:
        dupes = sorted({r for r in value if value.count(r) > 1})
        if dupes:
            raise ValueError(f"routes must be unique; repeated: {', '.join(dupes)}")
        return value


class SelfHostedPricing(Settings):
    assumed_utilization: float = Field(0.5, gt=0, le=1)
    """Share of a replica's hours spent generating. Prices are set so that the GPU-hours of a
    replica busy this share of the time are fully charged to the tokens it produces."""
    input_to_output_cost_ratio: float = Field(0.25, gt=0, le=1)
    """Price of a prompt token relative to a generated one (prefill is far cheaper than decode;
    0.25 matches common API price sheets, e.g. 2.50 vs 10.00 USD per million)."""


class GatewayDatabase(Settings):
    """Where LiteLLM keeps its keys, teams and budgets (a few MB of metadata)."""

    engine: Literal["rds", "in-cluster"] = "rds"
    """rds: RDS PostgreSQL (encrypted, backups, Multi-AZ in prod; sized by the database* keys).
    in-cluster: one PostgreSQL pod (StatefulSet) on an encrypted gp3 volume in the gateway's
    namespace, reachable only from the gateway pods: no backups, no standby, and the gateway's pods
    need no security group of their own (so t-family system nodes work). Public and internal
    stacks only."""
    volume_gib: int = Field(5, ge=1, le=100)
    """in-cluster: size of its gp3 volume (kept when the StatefulSet is deleted)."""
    cpu: str = Field("50m", pattern=r"^\d+m?$")
    """in-cluster: CPU requested by the PostgreSQL pod."""
    memory_mib: int = Field(192, ge=64)
    """in-cluster: memory requested by the PostgreSQL pod."""
    memory_limit_mib: int = Field(512, ge=64)
    """in-cluster: memory ceiling of the PostgreSQL pod (killed above it): at least memoryMib."""

    @model_validator(mode="after")
    def _limit(self):
        if self.memory_limit_mib < self.memory_mib:
            raise ValueError(
                f"memoryLimitMib ({self.memory_limit_mib}) is below memoryMib ({self.memory_mib})"
            )
        in_cluster_keys = {"volume_gib", "cpu", "memory_mib", "memory_limit_mib"} & self.model_fields_set
        if self.engine == "rds" and in_cluster_keys:
            keys = ", ".join(sorted(type(self).model_fields[k].alias or k for k in in_cluster_keys))
            raise ValueError(f"{keys} apply to engine in-cluster only (engine is rds)")
        return self


RDS_DATABASE_KEYS = ("database_instance_class", "database_storage_gib", "database_backup_retention_days",
                     "database_multi_az")  # fmt: skip


class GatewaySettings(Settings):
    external_providers: list[ExternalProvider] = Field(default_factory=list)
    """External LLM APIs reachable through the gateway. None by default: only self-hosted models."""
    allow_external_providers: bool | None = None
    """Whether externalProviders may be used. Unset: allowed, except in regulated stacks, where
    it must be set to true explicitly (and PII masking stays on with every required pattern)."""
    fallbacks: list[FallbackChain] = Field(default_factory=list)
    """Fallback chains by public model name (self-hosted to external or the other way)."""
    num_retries: int = Field(2, ge=0, le=10)
    """Retries of a failed call on the same model before its fallbacks are tried."""
    request_timeout_seconds: int = Field(120, ge=1, le=3600)
    """Upper bound of one upstream call; long generations on a busy vLLM need minutes."""
    allowed_fails: int = Field(3, ge=1)
    """Failures per minute after which a deployment is cooled down (taken out of rotation)."""
    cooldown_seconds: int = Field(30, ge=1)
    """How long a failing deployment stays out of rotation."""
    pii_guardrail: bool | None = None
    """LiteLLM's content filter on every request, masking prompts (pre_call) and answers
    (post_call). Unset: on in confidential and regulated stacks (where it cannot be turned off),
    off elsewhere."""
    pii_patterns: list[PiiPattern] = Field(default_factory=_default_patterns)
    """Patterns the guardrail masks or blocks, in prompts (pre_call) and in model answers
    (post_call, streamed or not). Default: the prebuilt email, credit_card, iban, uae_emirates_id
    and uae_phone, plus iban_grouped (IBANs written in groups of four), all MASK."""
    prompt_injection_screen: bool | None = None
    """Refuse prompts matching LiteLLM's prompt-injection keyword categories (content filter,
    in-process: no external service). Unset: on in confidential and regulated stacks (where it
    cannot be turned off), off elsewhere."""
    prompt_injection_categories: list[str] = Field(default_factory=lambda: list(DEFAULT_INJECTION_CATEGORIES))
    """The content filter's categories the screen blocks (prompt_injection_system_prompt,
    prompt_injection_jailbreak, prompt_injection_data_exfiltration, prompt_injection_sql,
    prompt_injection_malicious_code)."""
    input_budget: InputBudget = InputBudget()
    """Input-token limits per route; a team file may set a tighter one for the team's keys."""
    response_cache: ResponseCache = ResponseCache()
    """Response caching for repeat-heavy routes, per team."""
    message_logging: bool | None = None
    """Whether prompts and responses are kept in logs and callbacks. Unset: off in regulated
    stacks (turn_off_message_logging), on elsewhere. Regulated stacks cannot turn it on."""
    spend_log_batch_size: int = Field(100, ge=1, le=10000)
    """Spend-log records kept in memory before they are uploaded to S3 (one object each)."""
    spend_log_flush_interval_seconds: int = Field(10, ge=1, le=600)
    """Upper bound on how long a spend-log record waits in memory before upload."""
    spend_log_retention_days: int = Field(400, ge=30)
    """Lifecycle expiry of spend logs in the logs bucket (13 months covers a yearly audit)."""
    self_hosted_pricing: SelfHostedPricing = SelfHostedPricing()
    """How per-token prices of self-hosted models are derived from GPU-hour prices (docs/gateway.md)."""
    min_replicas: int = Field(2, ge=1)
    """Gateway pods kept running (two survive a node drain; the PDB keeps one)."""
    max_replicas: int = Field(6, ge=1)
    """Ceiling of the CPU-based HorizontalPodAutoscaler."""
    cpu_request: str = Field("500m", pattern=r"^\d+m?$")
    """CPU request of a gateway pod; the HPA scales out at 70% of it."""
    cpu_limit: str = Field("2", pattern=r"^\d+m?$")
    """CPU ceiling of a gateway pod: generous (4x the request) so a latency-bound proxy is rarely
    throttled, yet one runaway pod cannot starve the system nodes it shares."""
    memory_request_mib: int = Field(1024, ge=256)
    """LiteLLM holds the cost map and the router in memory; 1 GiB is a comfortable floor."""
    database: GatewayDatabase = GatewayDatabase()
    """The keys/teams/budgets database: RDS (default) or an in-cluster PostgreSQL."""
    database_instance_class: str = Field("db.t4g.medium", pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$")
    """RDS instance class of the keys/teams/budgets database (small: it holds metadata, not logs)."""
    database_storage_gib: int = Field(20, ge=20)
    """Initial gp3 storage; storage autoscaling may grow it to five times this."""
    database_backup_retention_days: int = Field(14, ge=1, le=35)
    """Automated RDS backups kept this many days (point-in-time recovery window)."""
    database_multi_az: bool | None = None
    """A standby in a second AZ. Unset: on when the environment is prod."""
    hostname: str | None = None
    """DNS name clients reach the gateway at over HTTPS (port 443): a record in a Route 53 private
    hosted zone for its parent domain, associated with the VPC, and the name in the gateway's TLS
    certificate. Unset: gateway.<environment>.llmops.internal. Clients outside the VPC need their
    resolver to forward the parent domain to the VPC."""
    certificate_validity_days: int = Field(365, ge=30, le=397)
    """Validity of the gateway's serving certificate (issued by the stack's own CA, which clients
    trust through the gatewayCaCertificate output). A `pulumi up` in its last 30 days issues a new
    one and rolls the gateway pods; 397 days is the most browsers and TLS libraries accept."""

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str | None) -> str | None:
        if value is None:
            return value
        labels = value.split(".")
        if len(labels) < 3 or not all(
            re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", label) for label in labels
        ):
            raise ValueError(
                f"{value!r} must be a lower-case DNS name of at least three labels (its parent domain "
                "becomes a private hosted zone), e.g. gateway.prod.llmops.internal"
            )
        return value

    @field_validator("external_providers")
    @classmethod
    def _unique_providers(cls, value: list[ExternalProvider]) -> list[ExternalProvider]:
        names = [p.name for p in value]
        models = [m.name for p in value for m in p.models]
        problems = [f"provider {n} is listed twice" for n in sorted(set(names)) if names.count(n) > 1]
        problems += [f"model {m} is offered twice" for m in sorted(set(models)) if models.count(m) > 1]
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("pii_patterns")
    @classmethod
    def _unique_patterns(cls, value: list[PiiPattern]) -> list[PiiPattern]:
        names = [p.name for p in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"pattern names must be unique; repeated: {', '.join(dupes)}")
        return value

    @field_validator("prompt_injection_categories")
    @classmethod
    def _known_categories(cls, value: list[str]) -> list[str]:
        unknown = [c for c in value if c not in PROMPT_INJECTION_CATEGORIES]
        if unknown:
            known = ", ".join(sorted(PROMPT_INJECTION_CATEGORIES))
            raise ValueError(f"unknown categor(ies) {', '.join(unknown)}; known: {known}")
        if not value:
            raise ValueError("at least one category (or set promptInjectionScreen: false)")
        return list(dict.fromkeys(value))

    @field_validator("fallbacks")
    @classmethod
    def _unique_fallbacks(cls, value: list[FallbackChain]) -> list[FallbackChain]:
        problems = [f"{c.model} falls back to itself" for c in value if c.model in c.to]
        names = [c.model for c in value]
        problems += [f"two chains for {n}" for n in sorted(set(names)) if names.count(n) > 1]
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @model_validator(mode="after")
    def _replicas(self):
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas ({self.min_replicas}) is above maxReplicas ({self.max_replicas})")
        return self

    @model_validator(mode="after")
    def _rds_keys(self):
        rds_keys = [k for k in RDS_DATABASE_KEYS if k in self.model_fields_set]
        if self.database.engine == "in-cluster" and rds_keys:
            keys = ", ".join(type(self).model_fields[k].alias or k for k in rds_keys)
            raise ValueError(f"{keys}: RDS settings, but database.engine is in-cluster; remove them")
        return self

    def external_model_names(self) -> list[str]:
        return [m.name for p in self.external_providers for m in p.models]

    def guardrail_on(self, sensitive: bool) -> bool:
        return sensitive if self.pii_guardrail is None else self.pii_guardrail

    def injection_screen_on(self, sensitive: bool) -> bool:
        return sensitive if self.prompt_injection_screen is None else self.prompt_injection_screen

    def message_logging_on(self, regulated: bool) -> bool:
        return (not regulated) if self.message_logging is None else self.message_logging

    def multi_az(self, environment: str) -> bool:
        return environment == "prod" if self.database_multi_az is None else self.database_multi_az

    def dns_name(self, environment: str) -> str:
        return self.hostname or f"gateway.{environment}.llmops.internal"


def check_gateway(gateway: GatewaySettings, classification: str) -> list[str]:
    """Rules that depend on the stack's data classification; one message per problem, each
    starting with the setting's path relative to llmops:gateway."""
    sensitive = classification in ("confidential", "regulated")
    regulated = classification == "regulated"
    problems = []
    if sensitive and gateway.pii_guardrail is False:
        problems.append(f"piiGuardrail: cannot be false in a {classification} stack (masking is mandatory)")
    if sensitive and gateway.prompt_injection_screen is False:
        problems.append(
            f"promptInjectionScreen: cannot be false in a {classification} stack "
            "(injection screening is mandatory)"
        )
    if regulated and gateway.response_cache.routes and not gateway.response_cache.allow_in_regulated_stack:
        problems.append(
            "responseCache.routes: a regulated stack caches no answers unless "
            "responseCache.allowInRegulatedStack is true (cached answers are model output kept "
            "outside the model)"
        )
    if gateway.database.engine == "in-cluster" and sensitive:
        problems.append(
            f"database.engine: in-cluster is for public and internal stacks only ({classification} here): "
            "one pod on one volume keeps no backups and has no standby; use rds"
        )
    if regulated and gateway.message_logging:
        problems.append("messageLogging: cannot be true in a regulated stack (prompts must not reach logs)")
    if gateway.external_providers:
        allowed = gateway.allow_external_providers
        if allowed is False or (allowed is None and regulated):
            why = "set allowExternalProviders: true" if regulated else "remove them or allow them"
            problems.append(
                f"externalProviders: {len(gateway.external_providers)} provider(s) listed but external "
                f"providers are not allowed in this {classification} stack; {why}"
            )
        elif regulated:
            names = {p.name for p in gateway.pii_patterns}
            missing = [n for n in REQUIRED_PII_PATTERNS if n not in names]
            if missing:
                problems.append(
                    f"piiPatterns: a regulated stack with external providers must mask {', '.join(missing)}"
                )
    return problems
