"""Typed settings of the bootstrap project (`bootstrap/`, run once per AWS account).

Keys live in the project's own namespace, `llmops-bootstrap:<key>`, beside `aws:region`; unknown
keys are errors and every problem is reported at once with its path, as for the platform's stacks
(`llmops-bootstrap:environments[2].vpc.subnetIds: ...`). A key of the platform's namespace
(`llmops:...`) in a bootstrap stack file is reported too: it belongs in `stacks/`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationError, ValidationInfo, field_validator, model_validator

from llmops.settings import NAMESPACE as PLATFORM_NAMESPACE
from llmops.settings import REGION_KEY, SettingsError, _decode, _message, _path
from llmops.settings.base import Settings, dns_label
from llmops.settings.stack import REGION, DataClassification, region_allowed, region_names

PROJECT = "llmops-bootstrap"
NAMESPACE = PROJECT  # Pulumi's default config namespace is the project's name
NAME_PREFIX = "llmops-bootstrap"  # every resource bootstrap names; no environment may shadow it
REPOSITORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9_.-]{1,100}$")
VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
SECURITY_GROUP_ID = re.compile(r"^sg-[0-9a-f]{8,17}$")
WORKFLOW_NAME = re.compile(r"^[A-Za-z0-9 _.-]{1,100}$")

__all__ = [
    "NAMESPACE",
    "PROJECT",
    "BootstrapSettings",
    "EnvironmentSettings",
    "from_config",
    "reference_table",
]


def _matches(pattern: re.Pattern, what: str):
    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return AfterValidator(check)


class GithubSettings(Settings):
    repository: str
    """The repository whose workflows may assume the CI roles, as OWNER/NAME (the shipped
    `acme/llmops-platform` is a placeholder)."""
    deploy_workflow: Annotated[str, _matches(WORKFLOW_NAME, "a workflow name")] = "deploy"
    """The `name:` of the workflow that deploys (.github/workflows/deploy.yml): the in-VPC runners
    start only for its jobs (CodeBuild webhook filter WORKFLOW_NAME)."""

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        if not REPOSITORY.match(value):
            raise ValueError(
                f"{value!r} must be OWNER/NAME of one GitHub repository, like acme/llmops-platform"
            )
        return value


class RunnerVpc(Settings):
    """Where an environment's runner lives: the platform stack's network, read after that stack's
    first `pulumi up` (`aws eks describe-cluster --name llmops-<env> --query cluster.resourcesVpcConfig`)."""

    vpc_id: Annotated[str, _matches(VPC_ID, "a VPC id (vpc-...)")]
    """The environment's VPC (output `vpcId` of the platform stack)."""
    subnet_ids: list[Annotated[str, _matches(SUBNET_ID, "a subnet id (subnet-...)")]] = Field(min_length=1)
    """Private subnets with a route to a NAT gateway (the cluster's subnets): the runner reaches
    GitHub, and the API server's private endpoint."""
    cluster_security_group_id: Annotated[str, _matches(SECURITY_GROUP_ID, "a security group id (sg-...)")]
    """The EKS cluster security group: bootstrap admits the runner's security group to it on 443."""


class EnvironmentSettings(Settings):
    name: Annotated[str, AfterValidator(dns_label)]
    """The environment (and GitHub environment) name: the deploy role trusts only
    `repo:OWNER/NAME:environment:<name>` and may manage only `llmops-<name>-*` resources."""
    region: str
    """The platform stack's region (its `aws:region`): where its deploy role may act and its runner runs."""
    in_vpc_runner: bool = False
    """Deploy jobs run on a CodeBuild-hosted GitHub Actions runner inside the environment's VPC
    (needed when the EKS API endpoint is private)."""
    vpc: RunnerVpc | None = None
    """The environment's network, once its platform stack exists; until then the runner is pending
    (docs/ci.md, first deploy)."""

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not REGION.match(value):
            raise ValueError(f"{value!r} is not an AWS region name like me-central-1")
        return value

    @model_validator(mode="after")
    def _vpc_needs_runner(self) -> EnvironmentSettings:
        if self.vpc is not None and not self.in_vpc_runner:
            raise ValueError("vpc is set but inVpcRunner is false: set inVpcRunner or remove vpc")
        return self

    @property
    def name_prefix(self) -> str:
        """The prefix of every resource the platform stack of this environment names."""
        return f"llmops-{self.name}"


class RunnerSettings(Settings):
    compute_type: Literal[
        "BUILD_GENERAL1_SMALL", "BUILD_GENERAL1_MEDIUM", "BUILD_GENERAL1_LARGE", "BUILD_GENERAL1_XLARGE"
    ] = "BUILD_GENERAL1_MEDIUM"
    """CodeBuild compute type of the runners."""
    image: str = "aws/codebuild/standard:7.0"
    """CodeBuild curated image of the runners. An Ubuntu image: actions/setup-python ships Python
    builds for Ubuntu, not for Amazon Linux."""
    timeout_minutes: int = Field(120, ge=5, le=480)
    """Longest a runner lives; above the deploy job's own timeout-minutes (90)."""
    log_retention_days: int = Field(400, ge=1)
    """How long the runners' CloudWatch logs are kept (regulated stacks require 365 or more)."""


class StateSettings(Settings):
    noncurrent_version_days: int | None = Field(90, ge=1)
    """Older versions of state objects (every checkpoint of every update) expire after this many
    days; null keeps them all."""


class CostAlertSettings(Settings):
    monthly_budget_usd: float = Field(300, gt=0)
    """AWS Budget on everything tagged environment=bootstrap (runners, state, keys), per month."""
    anomaly_min_impact_usd: float = Field(20, gt=0)
    """Cost anomalies of CI resources above this impact are emailed."""
    emails: list[str] = Field(min_length=1)
    """Who gets the budget and anomaly emails (example.com addresses are placeholders)."""

    @field_validator("emails")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        bad = [e for e in value if not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", e)]
        if bad:
            raise ValueError(f"{', '.join(bad)}: not email addresses")
        return value


class BootstrapSettings(Settings):
    """Field order matters: a field's validator sees only the fields declared before it."""

    data_classification: DataClassification
    """Highest classification of any environment whose state this account's bucket holds (regulated
    when prod is among them): the policy pack's levels and the data-classification tag."""
    owner: str = "platform-team"
    """Owning team, tagged on every resource."""
    cost_center: str = "llmops"
    """Cost-allocation tag (cost-center) on every resource."""
    allowed_regions: list[str] = Field(default_factory=list)
    """Regions bootstrap may deploy to (its own region and every runner's). Empty allows any."""
    region: str
    """Where the state bucket and its key live, from `aws:region` (prod's residency region when
    prod's state is kept here)."""
    deletion_protection: bool = True
    """Protects the state bucket, its key and the access logs from deletion and replacement."""
    access_log_retention_days: int = Field(400, ge=90)
    """How long the state bucket's S3 server access logs are kept."""
    tags: dict[str, str] = Field(default_factory=dict)
    """Extra tags added to every resource through the provider's default tags."""
    github: GithubSettings
    """The repository whose workflows preview and deploy."""
    environments: list[EnvironmentSettings] = Field(min_length=1)
    """Each environment deployed from this account, keyed by name: its deploy role and, if it needs
    one, its in-VPC runner."""
    runner: RunnerSettings = RunnerSettings()
    """The CodeBuild-hosted runners of every in-VPC environment."""
    state: StateSettings = StateSettings()
    """The Pulumi state bucket."""
    cost_alerts: CostAlertSettings
    """Budget and anomaly alerts on the CI resources' spend."""

    @field_validator("allowed_regions")
    @classmethod
    def _regions(cls, value: list[str]) -> list[str]:
        return region_names(value)

    @field_validator("region")
    @classmethod
    def _region_allowed(cls, value: str, info: ValidationInfo) -> str:
        return region_allowed(value, info.data.get("allowed_regions"))

    @field_validator("environments")
    @classmethod
    def _environments(
        cls, value: list[EnvironmentSettings], info: ValidationInfo
    ) -> list[EnvironmentSettings]:
        names = [e.name for e in value]
        problems = []
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            problems.append(f"names must be unique; repeated: {', '.join(repeated)}")
        # A deploy role may manage llmops-<name>-*: no environment's prefix may cover another's
        # resources, nor bootstrap's own (llmops-bootstrap-*).
        for name in sorted(set(names)):
            if name == "bootstrap" or name.startswith("bootstrap-"):
                problems.append(f"{name!r} is reserved: its resources would be named like bootstrap's own")
            covered = sorted(o for o in set(names) if o.startswith(f"{name}-"))
            if covered:
                problems.append(
                    f"{name!r} would let its deploy role manage {', '.join(covered)}'s resources "
                    f"(llmops-{name}-* covers llmops-{covered[0]}-*): rename one"
                )
        allowed = info.data.get("allowed_regions")
        outside = sorted({e.region for e in value if allowed and e.region not in allowed})
        if outside:
            problems.append(f"regions {', '.join(outside)} are outside allowedRegions ({', '.join(allowed)})")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @property
    def environment(self) -> str:
        """The value of the environment tag of bootstrap's resources (no platform stack has it)."""
        return "bootstrap"

    @property
    def name_prefix(self) -> str:
        return NAME_PREFIX

    @property
    def regulated(self) -> bool:
        return self.data_classification == "regulated"

    def default_tags(self) -> dict[str, str]:
        return {
            **self.tags,
            "environment": self.environment,
            "data-classification": self.data_classification,
            "owner": self.owner,
            "cost-center": self.cost_center,
            "managed-by": "pulumi",
        }


def from_config(config: dict[str, Any], source: str = "bootstrap config") -> BootstrapSettings:
    """Validate a flat Pulumi config map (`llmops-bootstrap:<key>` and `aws:region`) into settings."""
    data: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in config.items():
        namespace, _, name = key.partition(":")
        if namespace == NAMESPACE:
            data[name] = _decode(value)
        elif key == REGION_KEY:
            data["region"] = value
        elif namespace == PLATFORM_NAMESPACE:
            problems.append(f"{key}: a platform setting (stacks/); bootstrap's keys are {NAMESPACE}:<key>")
    try:
        settings = BootstrapSettings.model_validate(data)
    except ValidationError as err:
        problems += [f"{_path(e['loc'], NAMESPACE)}: {_message(e)}" for e in err.errors()]
    if problems:
        raise SettingsError(source, problems, "the bootstrap settings")
    return settings


def reference_table() -> str:
    """Every key of a bootstrap stack file (docs/ci.md embeds it; a test keeps it in step)."""
    from llmops.settings.reference import HEADER, rows

    lines = rows(BootstrapSettings, f"{NAMESPACE}:")
    lines = [line.replace(f"`{NAMESPACE}:region`", f"`{REGION_KEY}`", 1) for line in lines]
    return "\n".join([BEGIN, *HEADER, *lines, END])


BEGIN, END = "<!-- bootstrap-reference:begin -->", "<!-- bootstrap-reference:end -->"
