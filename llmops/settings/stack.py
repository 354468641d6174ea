"""The root of a stack's settings: everything `stacks/Pulumi.<env>.yaml` can say."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    ModelWrapValidatorHandler,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from llmops.instances import offered_in
from llmops.settings.base import Settings, dns_label
from llmops.settings.cost import CostAlarmSettings
from llmops.settings.cost_assumptions import CostAssumptions
from llmops.settings.gateway import GatewaySettings, check_gateway
from llmops.settings.infra import (
    ClusterSettings,
    GpuNodeSettings,
    GpuPool,
    NetworkSettings,
    check_pool_regions,
)
from llmops.settings.prompts import PromptStoreSettings
from llmops.settings.serving import (
    ModelSettings,
    ObservabilitySettings,
    ServingSettings,
    VectorDbSettings,
    check_models,
)

REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")


def region_names(value: list[str]) -> list[str]:
    bad = [r for r in value if not REGION.match(r)]
    if bad:
        raise ValueError(f"{', '.join(bad)}: not AWS region names like me-central-1")
    return value


def region_allowed(value: str, allowed: list[str] | None) -> str:
    """The stack's region: a region name, inside allowedRegions when those are set."""
    if not REGION.match(value):
        raise ValueError(f"{value!r} is not an AWS region name like me-central-1")
    if allowed and value not in allowed:
        raise ValueError(f"{value} is outside allowedRegions ({', '.join(allowed)}): data residency")
    return value


DataClassification = Literal["public", "internal", "confidential", "regulated"]


class StackSettings(Settings):
    """Field order matters: a field's validator sees only the fields declared before it."""

    environment: Annotated[str, AfterValidator(dns_label)]
    """Name of the environment (dev, staging, prod, ...): in resource names and tags."""
    data_classification: DataClassification
    """Highest classification of data the platform handles. confidential and regulated turn on
    PII masking and stricter logging; regulated also makes the policy pack mandatory and adds
    Object Lock to the prompt store. Tagged on every resource as data-classification."""
    owner: str = "platform-team"
    """Owning team, tagged on every resource."""
    cost_center: str = "llmops"
    """Cost-allocation tag (cost-center) on every resource."""
    allowed_regions: list[str] = Field(default_factory=list)
    """Data residency: regions this stack may deploy to. Empty allows any region."""
    region: str
    """The stack's AWS region, from the `aws:region` config key."""
    deletion_protection: bool = True
    """Protects stateful resources (KMS keys, buckets, databases) from deletion and
    replacement. Turn off only for throw-away stacks."""
    access_log_retention_days: int = Field(400, ge=90)
    """How long S3 server access logs of every bucket are kept (13 months covers a yearly audit)."""
    tags: dict[str, str] = Field(default_factory=dict)
    """Extra tags added to every resource through the provider's default tags."""
    network: NetworkSettings = NetworkSettings()
    """The VPC: CIDR, AZs, NAT, endpoints, flow logs."""
    cluster: ClusterSettings = ClusterSettings()
    """The EKS cluster: version, endpoint access, admins, system nodes."""
    gpu_nodes: GpuNodeSettings = GpuNodeSettings()
    """OS and volumes of the GPU nodes Karpenter launches (shared by every pool)."""
    gpu_pools: list[GpuPool] = Field(default_factory=list)
    """GPU node pools, keyed by name. Each becomes a Karpenter NodePool that scales to zero."""
    serving: ServingSettings = ServingSettings()
    models: list[ModelSettings] = Field(default_factory=list)
    """Self-hosted models served by vLLM on the GPU pools, keyed by name."""
    observability: ObservabilitySettings = ObservabilitySettings()
    vector_db: VectorDbSettings = VectorDbSettings()
    gateway: GatewaySettings = GatewaySettings()
    cost_alarms: CostAlarmSettings = CostAlarmSettings()
    """Spend metrics from the gateway's logs, budgets, anomaly alarms and the Lambdas acting on them."""
    """The LiteLLM gateway: external providers, fallbacks, PII guardrails, spend logs, sizing."""
    prompt_store: PromptStoreSettings = PromptStoreSettings()
    """The prompt registry's bucket: protected aliases, retention, who may write (docs/prompts.md)."""
    cost_assumptions: CostAssumptions = CostAssumptions()
    """Usage the cost estimate assumes for lines that bill by traffic or volume (docs/cost.md)."""

    @field_validator("allowed_regions")
    @classmethod
    def _regions(cls, value: list[str]) -> list[str]:
        return region_names(value)

    @field_validator("region")
    @classmethod
    def _region_allowed(cls, value: str, info: ValidationInfo) -> str:
        return region_allowed(value, info.data.get("allowed_regions"))

    @field_validator("network")
    @classmethod
    def _nat_instance_allowed(cls, value: NetworkSettings, info: ValidationInfo) -> NetworkSettings:
        classification = info.data.get("data_classification")
        if value.nat_gateways == "instance" and classification in ("confidential", "regulated"):
            raise ValueError(
                f"natGateways instance is for public and internal stacks only ({classification} here): a "
                "NAT instance is a server with a public IP that you patch; use single or perAz NAT gateways"
            )
        return value

    @field_validator("gpu_pools")
    @classmethod
    def _unique_pools(cls, value: list[GpuPool]) -> list[GpuPool]:
        names = [p.name for p in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"pool names must be unique; repeated: {', '.join(dupes)}")
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _cross_field_rules(
        cls, data: Any, handler: ModelWrapValidatorHandler[StackSettings]
    ) -> StackSettings:
        """The rules across settings (models on pools, gateway rules by classification) run
        also when some settings are invalid, on the parts that are valid, so one run reports
        field problems and cross-field problems together, each at its path."""
        try:
            settings = handler(data)
        except ValidationError as err:
            cross = cross_field_problems(_valid_parts(data)) if isinstance(data, dict) else []
            if not cross:
                raise
            raise ValidationError.from_exception_data(cls.__name__, [*_details(err), *cross]) from None
        cross = cross_field_problems(_Parts.of(settings))
        if cross:
            raise ValidationError.from_exception_data(cls.__name__, cross)
        return settings

    @field_validator("prompt_store")
    @classmethod
    def _prompt_history_kept(cls, value: PromptStoreSettings, info: ValidationInfo) -> PromptStoreSettings:
        if info.data.get("data_classification") == "regulated" and value.noncurrent_version_expiration_days:
            raise ValueError(
                "noncurrentVersionExpirationDays must be unset in regulated stacks: it deletes audit history"
            )
        return value

    @property
    def regulated(self) -> bool:
        return self.data_classification == "regulated"

    @property
    def sensitive(self) -> bool:
        """Confidential or regulated data: PII masking and tighter logging apply."""
        return self.data_classification in ("confidential", "regulated")

    @property
    def name_prefix(self) -> str:
        return f"llmops-{self.environment}"

    def default_tags(self) -> dict[str, str]:
        """The tags every AWS resource carries (through the provider's default_tags)."""
        return {
            **self.tags,
            "environment": self.environment,
            "data-classification": self.data_classification,
            "owner": self.owner,
            "cost-center": self.cost_center,
            "managed-by": "pulumi",
        }


@dataclass(frozen=True)
class _Parts:
    """What the cross-field rules read, as far as it is valid; None: invalid, its rules wait."""

    models: list[ModelSettings | None] | None  # one entry per model, None where it is invalid
    pools: list[GpuPool] | None
    invalid_pools: list[str]  # names of pools that are listed but invalid
    serving: ServingSettings | None
    egress: bool | None
    gateway: GatewaySettings | None
    invalid_gateway_keys: frozenset[str]  # left out of `gateway` (their defaults apply)
    classification: str | None
    region: str | None = None

    @classmethod
    def of(cls, settings: StackSettings) -> _Parts:
        """Every part of valid settings."""
        return cls(
            models=list(settings.models),
            pools=list(settings.gpu_pools),
            invalid_pools=[],
            serving=settings.serving,
            egress=settings.network.nat_gateways != "none",
            gateway=settings.gateway,
            invalid_gateway_keys=frozenset(),
            classification=settings.data_classification,
            region=settings.region,
        )


def cross_field_problems(parts: _Parts) -> list[InitErrorDetails]:
    """Every cross-field rule that can be checked on `parts`, each problem at its path. A gateway
    rule naming a gateway setting that is itself invalid is left out (that setting's problem is
    reported)."""
    problems: list[InitErrorDetails] = []
    if parts.models is not None and parts.pools is not None:
        problems += check_models(parts.models, parts.pools, parts.serving, parts.egress, parts.invalid_pools)
    if parts.pools is not None and parts.region:
        problems += _offered_problems(parts.pools, parts.models or [], parts.region)
    if parts.gateway is not None and parts.classification is not None:
        for problem in check_gateway(parts.gateway, parts.classification):
            if not any(re.search(rf"\b{re.escape(key)}\b", problem) for key in parts.invalid_gateway_keys):
                problems.append(_error(("gateway",), problem))
    return problems


_MISSING = object()
_CLASSIFICATION = TypeAdapter(DataClassification)


def _valid_parts(data: dict[str, Any]) -> _Parts:
    """The parts of raw settings that validate on their own (a setting left out: its default)."""

    def raw(field: str) -> Any:
        for key in (StackSettings.model_fields[field].alias, field):
            if key is not None and key in data:
                return data[key]
        return _MISSING

    pool_items = raw("gpu_pools")
    pools = _valid_items(GpuPool, pool_items)
    invalid_pools = []
    if pools is not None and pool_items is not _MISSING:
        for item, pool in zip(pool_items, pools, strict=True):
            if pool is None and isinstance(item, dict) and isinstance(item.get("name"), str):
                invalid_pools.append(item["name"])
    network = _valid(NetworkSettings, raw("network"))
    gateway, invalid_gateway_keys = _salvaged(GatewaySettings, raw("gateway"))
    try:
        classification = _CLASSIFICATION.validate_python(raw("data_classification"))
    except ValidationError:
        classification = None
    return _Parts(
        models=_valid_items(ModelSettings, raw("models")),
        pools=None if pools is None else [p for p in pools if p is not None],
        invalid_pools=invalid_pools,
        serving=_valid(ServingSettings, raw("serving")),
        egress=None if network is None else network.nat_gateways != "none",
        gateway=gateway,
        invalid_gateway_keys=invalid_gateway_keys,
        classification=classification,
        region=raw("region") if isinstance(raw("region"), str) else None,
    )


def _valid(model: type[Settings], value: Any) -> Any:
    """`model` validated from `value` (its defaults when the setting is absent), or None."""
    try:
        return model() if value is _MISSING else model.model_validate(value)
    except ValidationError:
        return None


def _valid_items(model: type[Settings], value: Any) -> list | None:
    """Each item of a list setting validated on its own (None where invalid); None: not a list."""
    if value is _MISSING:
        return []
    return [_valid(model, item) for item in value] if isinstance(value, list) else None


def _salvaged(model: type[Settings], value: Any) -> tuple[Any, frozenset[str]]:
    """`model` validated from `value` with its invalid keys left out, and those keys; (None, keys)
    when the rest is invalid too (a rule over several keys failed, a required key is invalid)."""
    if value is _MISSING or not isinstance(value, dict):
        return _valid(model, value), frozenset()
    try:
        return model.model_validate(value), frozenset()
    except ValidationError as err:
        bad = frozenset(str(e["loc"][0]) for e in err.errors() if e["loc"])
    rest = {k: v for k, v in value.items() if k not in bad}
    return _valid(model, rest) if bad else None, bad


def _offered_problems(pools: list[GpuPool], models: list, region: str) -> list[InitErrorDetails]:
    """GPU pools that allow no type offered in the stack's region, and models whose GPUs fit
    only types the region does not offer (llmops/pricing/<region>.yaml; docs/cost.md)."""
    problems = [
        _error(("gpuPools", i, key), message) for i, key, message in check_pool_regions(pools, region)
    ]
    by_name = {p.name: p for p in pools}
    for i, model in enumerate(models):
        pool = by_name.get(model.pool) if model is not None else None
        offered = offered_in(pool.types(), region) if pool is not None else []
        fits_pool = pool is not None and model.gpus <= max(t.gpus for t in pool.types())
        if offered and fits_pool and model.gpus > max(t.gpus for t in offered):
            fits = ", ".join(f"{t.name} ({t.gpus})" for t in offered)
            problems.append(
                _error(
                    ("models", i, "gpus"),
                    f"{model.gpus} GPUs per replica fit no type of pool {pool.name} offered in "
                    f"{region} ({fits})",
                )
            )
    return problems


def _error(loc: tuple, message: str) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError("value_error", message), loc=loc, input=None)


def _details(err: ValidationError) -> list[InitErrorDetails]:
    """err's problems, to raise again with more: type, location, message and input kept."""
    return [
        InitErrorDetails(type=PydanticCustomError(e["type"], e["msg"]), loc=e["loc"], input=e["input"])
        for e in err.errors()
    ]
