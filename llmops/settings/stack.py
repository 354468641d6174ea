"""The root of a stack's settings: everything `stacks/Pulumi.<env>.yaml` can say."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationError, ValidationInfo, field_validator, model_validator

from llmops.settings.base import Settings, dns_label
from llmops.settings.cost import CostAlarmSettings
from llmops.settings.gateway import GatewaySettings, check_gateway
from llmops.settings.infra import ClusterSettings, GpuNodeSettings, GpuPool, NetworkSettings
from llmops.settings.prompts import PromptStoreSettings
from llmops.settings.serving import (
    ModelSettings,
    ObservabilitySettings,
    ServingSettings,
    VectorDbSettings,
    check_models,
)

REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
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

    @field_validator("allowed_regions")
    @classmethod
    def _regions(cls, value: list[str]) -> list[str]:
        bad = [r for r in value if not REGION.match(r)]
        if bad:
            raise ValueError(f"{', '.join(bad)}: not AWS region names like me-central-1")
        return value

    @field_validator("region")
    @classmethod
    def _region_allowed(cls, value: str, info: ValidationInfo) -> str:
        if not REGION.match(value):
            raise ValueError(f"{value!r} is not an AWS region name like me-central-1")
        allowed = info.data.get("allowed_regions")
        if allowed and value not in allowed:
            raise ValueError(f"{value} is outside allowedRegions ({', '.join(allowed)}): data residency")
        return value

    @field_validator("gpu_pools")
    @classmethod
    def _unique_pools(cls, value: list[GpuPool]) -> list[GpuPool]:
        names = [p.name for p in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"pool names must be unique; repeated: {', '.join(dupes)}")
        return value

    @model_validator(mode="after")
    def _models_fit_pools(self):
        problems = check_models(
            self.models, self.gpu_pools, self.serving, egress=self.network.nat_gateways != "none"
        )
        if problems:
            raise ValidationError.from_exception_data(type(self).__name__, problems)
        return self

    @field_validator("gateway")
    @classmethod
    def _gateway_rules(cls, value: GatewaySettings, info: ValidationInfo) -> GatewaySettings:
        classification = info.data.get("data_classification")
        problems = check_gateway(value, classification) if classification else []
        if problems:
            raise ValueError("; ".join(problems))
        return value

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
