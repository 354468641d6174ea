"""Settings of the network, the EKS cluster and the GPU node pools."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from llmops import instances, nodes
from llmops.settings.base import Settings, dns_label
from llmops.versions import SUPPORTED_KUBERNETES_VERSIONS

DEFAULT_INTERFACE_ENDPOINTS = [
    "ecr.api",
    "ecr.dkr",
    "sts",
    "logs",
    "secretsmanager",
    "ec2",
    "eks-auth",
    "sqs",
]


class NetworkSettings(Settings):
    cidr: str = "10.0.0.0/16"
    """VPC CIDR, /16 to /20. Changing it replaces the VPC and everything in it."""
    az_count: int = Field(3, ge=2, le=3)
    """Availability zones to spread subnets over. 3 for production; 2 is cheaper for dev."""
    nat_gateways: Literal["none", "single", "perAz", "instance"] = "perAz"
    """Egress to the internet: one NAT gateway per AZ (resilient), one shared NAT gateway (cheap,
    one AZ's outage cuts egress), one NAT instance (cheapest: a small Graviton EC2 instance in one
    AZ that you patch and that fails alone; public and internal stacks only), or none: the VPC
    reaches AWS through VPC endpoints only and the cluster cannot pull from public registries
    (use ECR pull-through caches)."""
    nat_instance_type: str = "t4g.nano"
    """Instance type of the NAT instance (natGateways instance): an arm64 (Graviton) type, as its
    Amazon Linux 2023 image is arm64. t4g.nano bursts to 5 Gbit/s; a larger type forwards more."""
    interface_endpoints: list[str] = Field(default_factory=lambda: list(DEFAULT_INTERFACE_ENDPOINTS))
    """AWS services reached through PrivateLink interface endpoints (the S3 gateway endpoint is
    always created). Required for sts, ecr.api and ecr.dkr when natGateways is none; then the
    components add the endpoints their paths need. Empty with a NAT: every AWS call goes through
    the NAT (cheapest), and the components open HTTPS out of the VPC instead."""
    flow_log_retention_days: int = Field(365, ge=1)
    """How long VPC flow logs are kept (KMS-encrypted CloudWatch log group)."""

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        try:
            net = ipaddress.ip_network(value)
        except ValueError as err:
            raise ValueError(f"{value!r} is not a CIDR block like 10.0.0.0/16") from err
        if net.version != 4 or not 16 <= net.prefixlen <= 20:
            raise ValueError(f"{value} must be an IPv4 block from /16 to /20")
        return value

    @field_validator("nat_instance_type")
    @classmethod
    def _nat_instance_type(cls, value: str) -> str:
        # Graviton families carry a g after their generation: t4g, m7g, c7gn, m8g, x2gd.
        if not re.fullmatch(r"[a-z]+\d+g[a-z]*\.[a-z0-9]+", value):
            raise ValueError(f"{value!r} is not a Graviton (arm64) instance type like t4g.nano")
        return value

    @model_validator(mode="after")
    def _egress(self):
        if self.nat_gateways == "none":
            missing = [e for e in ("sts", "ecr.api", "ecr.dkr") if e not in self.interface_endpoints]
            if missing:
                raise ValueError(
                    f"interfaceEndpoints must include {', '.join(missing)} when natGateways is none: "
                    "nodes and Pod Identity reach them through no other path"
                )
        if "nat_instance_type" in self.model_fields_set and self.nat_gateways != "instance":
            raise ValueError(f"natInstanceType is set but natGateways is {self.nat_gateways}; remove one")
        return self


class ControllerRequests(Settings):
    """Requests and limits of a platform controller's pods on the system nodes."""

    cpu: str = Field(pattern=r"^\d+m?$")
    """CPU requested per pod: what the scheduler reserves on a system node."""
    memory_mib: int = Field(ge=64)
    """Memory requested per pod."""
    cpu_limit: str = Field("1", pattern=r"^\d+m?$")
    """CPU ceiling per pod (throttled above it)."""
    memory_limit_mib: int = Field(ge=64)
    """Memory ceiling per pod (the pod is killed above it): at least memoryMib."""

    @model_validator(mode="after")
    def _limit(self):
        if self.memory_limit_mib < self.memory_mib:
            raise ValueError(
                f"memoryLimitMib ({self.memory_limit_mib}) is below memoryMib ({self.memory_mib})"
            )
        return self

    def resources(self) -> dict:
        def quantity(mib: int) -> str:
            return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"

        return {
            "requests": {"cpu": self.cpu, "memory": quantity(self.memory_mib)},
            "limits": {"cpu": self.cpu_limit, "memory": quantity(self.memory_limit_mib)},
        }


class SystemNodeSettings(Settings):
    instance_type: str = "m7i.large"
    """On-demand instance type of the system node group (Karpenter, CoreDNS, the gateway, Qdrant).
    Graviton types (t4g, m7g, m8g) get the arm64 AMI; every system image is multi-arch. t-family
    types cannot give pods security groups, which the gateway needs to reach an RDS database."""
    min_size: int = Field(2, ge=1)
    """Two keeps Karpenter and CoreDNS available during a node replacement; one (dev) means any
    node replacement or failure stops the gateway until the new node is Ready (no HA)."""
    max_size: int = Field(4, ge=1)
    root_volume_gib: int = Field(50, ge=20)
    """gp3 root volume: the OS and every system image (about 10 GiB pulled); 20 is enough for dev."""
    karpenter: ControllerRequests = ControllerRequests(cpu="500m", memory_mib=1024, memory_limit_mib=1024)
    """Requests of each Karpenter controller pod (what Karpenter's docs suggest for production);
    a cluster of a few nodes needs far less."""
    keda: ControllerRequests = ControllerRequests(cpu="100m", memory_mib=256, memory_limit_mib=512)
    """Requests of each of KEDA's three pods (operator, metrics API server, webhooks)."""

    @field_validator("instance_type")
    @classmethod
    def _known_shape(cls, value: str) -> str:
        if value not in nodes.SYSTEM_NODE_SHAPES:
            raise ValueError(
                f"{value!r} is not a recorded system node type (its pods, CPU and memory are checked "
                f"against llmops/nodes.py); choose one of {', '.join(nodes.SYSTEM_NODE_SHAPES)}"
            )
        return value

    @model_validator(mode="after")
    def _sizes(self):
        if self.min_size > self.max_size:
            raise ValueError(f"minSize ({self.min_size}) must not be above maxSize ({self.max_size})")
        return self


class ClusterSettings(Settings):
    kubernetes_version: str = "1.34"
    """EKS Kubernetes version; add-on versions are pinned per version in llmops/versions.py.
    Upgrading is in place, one minor version at a time."""
    endpoint_public_access: bool = False
    """The API endpoint is private by default; reach it through the VPC (VPN, bastion, CI runner
    in the VPC). Public access needs publicAccessCidrs."""
    public_access_cidrs: list[str] = Field(default_factory=list)
    """CIDRs allowed to reach a public endpoint. 0.0.0.0/0 is refused."""
    admin_principal_arns: list[str] = Field(default_factory=list)
    """IAM roles granted cluster admin through access entries, besides the deploying role."""
    log_retention_days: int = Field(365, ge=1)
    """Retention of the control-plane log group (all five log types are on)."""
    system_nodes: SystemNodeSettings = SystemNodeSettings()
    prefix_delegation: bool = False
    """VPC CNI prefix delegation (ENABLE_PREFIX_DELEGATION): each ENI slot takes a /28 prefix of 16
    pod addresses instead of one, so a small node runs as many pods as its CPU and memory allow
    (the managed node group sets maxPods to the EKS recommended value, at most 110 below 30 vCPUs)
    instead of ENIs x (addresses per ENI - 1) + 2 (17 on a t4g.medium). The nodes' subnets need
    free contiguous /28 blocks. Changing it takes effect on nodes launched afterwards."""

    @field_validator("kubernetes_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if value not in SUPPORTED_KUBERNETES_VERSIONS:
            raise ValueError(
                f"{value!r} is not pinned; choose one of {', '.join(SUPPORTED_KUBERNETES_VERSIONS)}"
            )
        return value

    @field_validator("public_access_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                net = ipaddress.ip_network(cidr, strict=False)
            except ValueError as err:
                raise ValueError(f"{cidr!r} is not a CIDR block") from err
            if net.prefixlen == 0:
                raise ValueError(f"{cidr} opens the API to the whole internet; list your own ranges")
        return value

    @field_validator("admin_principal_arns")
    @classmethod
    def _arns(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if not a.startswith("arn:") or (":role/" not in a and ":user/" not in a)]
        if bad:
            raise ValueError(f"{', '.join(bad)}: must be IAM role or user ARNs")
        return value

    @model_validator(mode="after")
    def _public(self):
        if self.endpoint_public_access and not self.public_access_cidrs:
            raise ValueError("endpointPublicAccess needs publicAccessCidrs (an allowlist of your ranges)")
        if not self.endpoint_public_access and self.public_access_cidrs:
            raise ValueError("publicAccessCidrs is set but endpointPublicAccess is false; remove one")
        return self


class GpuNodeSettings(Settings):
    ami_family: Literal["AL2023", "Bottlerocket"] = "Bottlerocket"
    """OS of GPU nodes. Bottlerocket (default): minimal, read-only root, NVIDIA driver and device
    plugin built in, and a data volume that can start from a snapshot with the vLLM image
    pre-pulled. AL2023: the NVIDIA AMI, with the NVIDIA device plugin installed from its chart."""
    root_volume_gib: int = Field(20, ge=8)
    data_volume_gib: int = Field(200, ge=50)
    """Container images and the model cache. vLLM images are about 10 GiB; weights are larger."""
    data_volume_snapshot_id: str | None = None
    """EBS snapshot of a data volume with the vLLM image pre-pulled (Bottlerocket only): cuts
    a cold start by minutes. No snapshot: images are pulled at node start."""

    @field_validator("data_volume_snapshot_id")
    @classmethod
    def _snapshot(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("snap-"):
            raise ValueError(f"{value!r} must be an EBS snapshot id (snap-...)")
        return value

    @model_validator(mode="after")
    def _snapshot_needs_bottlerocket(self):
        if self.data_volume_snapshot_id and self.ami_family != "Bottlerocket":
            raise ValueError("dataVolumeSnapshotId needs amiFamily Bottlerocket (AL2023 has no data volume)")
        return self


CapacityType = Literal["spot", "on-demand", "reserved"]


class GpuPool(Settings):
    name: Annotated[str, AfterValidator(dns_label)]
    """Stable key of the pool: NodePool name, node label and taint selector. Renaming replaces it."""
    instance_families: list[str] = Field(default_factory=list)
    """EC2 families Karpenter may choose from (e.g. g6), any size. Use this or instanceTypes."""
    instance_types: list[str] = Field(default_factory=list)
    """Exact EC2 instance types (e.g. g6e.12xlarge). Use this or instanceFamilies."""
    capacity_types: list[CapacityType] = Field(default_factory=lambda: ["on-demand"], min_length=1)
    """spot is cheapest and may be interrupted (Karpenter drains on the 2-minute notice);
    reserved uses the capacity reservations in capacityReservationIds first."""
    capacity_reservation_ids: list[str] = Field(default_factory=list)
    max_gpus: int = Field(ge=1)
    """Hard limit on GPUs the pool may run at once (Karpenter NodePool limit): the cost ceiling."""
    consolidation: Literal["WhenEmpty", "WhenEmptyOrUnderutilized"] = "WhenEmptyOrUnderutilized"
    consolidate_after: str = Field("5m", pattern=r"^\d+[smh]$")
    """How long a node must be empty or underused before Karpenter removes it."""
    weight: int = Field(10, ge=1, le=100)
    """Preference among pools that fit a pod: higher is tried first (e.g. spot over on-demand)."""
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _shape(self):
        if bool(self.instance_families) == bool(self.instance_types):
            raise ValueError("set exactly one of instanceFamilies or instanceTypes")
        unknown = [f for f in self.instance_families if f not in instances.GPU_FAMILIES]
        unknown += [t for t in self.instance_types if t not in instances.GPU_INSTANCE_TYPES]
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)}: not a known GPU instance family/type "
                f"(families: {', '.join(instances.GPU_FAMILIES)}); see llmops/pricing/catalogue.yaml"
            )
        if "reserved" in self.capacity_types and not self.capacity_reservation_ids:
            raise ValueError("capacityTypes includes reserved: list capacityReservationIds (cr-...)")
        if self.capacity_reservation_ids and "reserved" not in self.capacity_types:
            raise ValueError("capacityReservationIds are set but capacityTypes lacks reserved")
        smallest = min(t.gpus for t in self.types())
        if smallest > self.max_gpus:
            raise ValueError(f"maxGpus ({self.max_gpus}) is below the smallest instance's {smallest} GPUs")
        return self

    def types(self) -> list[instances.InstanceType]:
        """The GPU instance types this pool may launch, smallest first."""
        return instances.types_in_pool(self.instance_types, self.instance_families)


def unavailable_types(pool: GpuPool, region: str) -> list[str]:
    """The types `pool` allows that `region` does not offer (a whole family as `g6e (all sizes)`);
    none when the region has no price table (its offerings are not known)."""
    allowed = pool.types()
    offered = set(instances.offered_in(allowed, region))
    out = []
    for family in sorted({t.family for t in allowed}, key=lambda f: [t.family for t in allowed].index(f)):
        members = [t for t in allowed if t.family == family]
        missing = [t.name for t in members if t not in offered]
        if missing and len(missing) == len(members) and len(members) > 1:
            out.append(f"{family} (all sizes)")
        else:
            out += missing
    return out


def check_pool_regions(pools: list[GpuPool], region: str) -> list[tuple[int, str, str]]:
    """(index, key, problem) for each pool that allows no type offered in `region`."""
    problems = []
    for i, pool in enumerate(pools):
        if instances.offered_in(pool.types(), region):
            continue
        key = "instanceTypes" if pool.instance_types else "instanceFamilies"
        offered = sorted(
            {t.family for t in instances.offered_in(list(instances.GPU_INSTANCE_TYPES.values()), region)}
        )
        elsewhere = [
            r for r in instances.PRICED_REGIONS if r != region and instances.offered_in(pool.types(), r)
        ]
        problems.append(
            (
                i,
                key,
                f"GPU pool {pool.name}: none of its instance types is offered in {region} "
                f"(GPU families offered there: {', '.join(offered) or 'none'}; "
                f"llmops/pricing/{region}.yaml, {instances.availability_date(region)})"
                + (f"; of the recorded regions, {', '.join(elsewhere)} offer some" if elsewhere else ""),
            )
        )
    return problems
