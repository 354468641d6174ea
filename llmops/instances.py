"""EC2 instance facts and list prices the settings check and the cost estimate rely on.

Prices are US East (N. Virginia) On-Demand Linux list prices in USD per hour, from
https://aws.amazon.com/ec2/pricing/on-demand/ (recorded 2025-11; P4d and P5 after AWS's
June 2025 price reduction). Other regions cost more, typically 10-30%; spot is cheaper but
varies by the hour, so estimates never assume a spot discount.
GPU counts and GPU models: https://aws.amazon.com/ec2/instance-types/accelerated-computing/
"""

from __future__ import annotations

from dataclasses import dataclass

PRICE_SOURCE = "AWS EC2 On-Demand list prices, us-east-1, Linux (aws.amazon.com/ec2/pricing/on-demand)"
PRICE_DATE = "2025-11"
HOURS_PER_MONTH = 730


@dataclass(frozen=True)
class InstanceType:
    name: str
    gpus: int
    gpu_model: str  # empty for CPU-only types
    gpu_memory_gib: int  # per GPU
    vcpus: int
    usd_per_hour: float

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]


_TYPES = [
    # name, GPUs, GPU model, GiB per GPU, vCPUs, USD/hour
    ("g5.xlarge", 1, "A10G", 24, 4, 1.006),
    ("g5.2xlarge", 1, "A10G", 24, 8, 1.212),
    ("g5.12xlarge", 4, "A10G", 24, 48, 5.672),
    ("g5.48xlarge", 8, "A10G", 24, 192, 16.288),
    ("g6.xlarge", 1, "L4", 24, 4, 0.8048),
    ("g6.2xlarge", 1, "L4", 24, 8, 0.9776),
    ("g6.4xlarge", 1, "L4", 24, 16, 1.3232),
    ("g6.12xlarge", 4, "L4", 24, 48, 4.6016),
    ("g6.48xlarge", 8, "L4", 24, 192, 13.3504),
    ("g6e.xlarge", 1, "L40S", 48, 4, 1.861),
    ("g6e.2xlarge", 1, "L40S", 48, 8, 2.24208),
    ("g6e.12xlarge", 4, "L40S", 48, 48, 10.49264),
    ("g6e.48xlarge", 8, "L40S", 48, 192, 30.13118),
    ("p4d.24xlarge", 8, "A100", 40, 96, 21.96),
    ("p5.48xlarge", 8, "H100", 80, 192, 55.04),
    ("m7i.large", 0, "", 0, 2, 0.1008),
    ("m7i.xlarge", 0, "", 0, 4, 0.2016),
    ("m7i.2xlarge", 0, "", 0, 8, 0.4032),
]
INSTANCE_TYPES: dict[str, InstanceType] = {row[0]: InstanceType(*row) for row in _TYPES}
GPU_INSTANCE_TYPES = {n: t for n, t in INSTANCE_TYPES.items() if t.gpus}
GPU_FAMILIES = sorted({t.family for t in GPU_INSTANCE_TYPES.values()})

# Fixed infrastructure, USD per hour (same source page family, us-east-1, recorded 2025-11).
EKS_CONTROL_PLANE_PER_HOUR = 0.10  # aws.amazon.com/eks/pricing, standard support
NAT_GATEWAY_PER_HOUR = 0.045  # aws.amazon.com/vpc/pricing, before data processing
INTERFACE_ENDPOINT_PER_AZ_HOUR = 0.01  # aws.amazon.com/privatelink/pricing
KMS_KEY_PER_MONTH = 1.0  # aws.amazon.com/kms/pricing
SECRET_PER_MONTH = 0.40  # aws.amazon.com/secrets-manager/pricing, per secret, before API calls
# aws.amazon.com/cloudwatch/pricing: a standard-resolution alarm is billed per metric it reads;
# an anomaly-detection alarm reads three (the metric and the band's upper and lower bounds).
ALARM_METRIC_PER_MONTH = 0.10
ANOMALY_ALARM_METRICS = 3
# RDS for PostgreSQL, Single-AZ, us-east-1 (aws.amazon.com/rds/postgresql/pricing, as quoted by
# third-party breakdowns in 2026); Multi-AZ bills the standby too: twice instance and storage.
RDS_POSTGRES_PER_HOUR = {"db.t4g.micro": 0.016, "db.t4g.small": 0.032, "db.t4g.medium": 0.065}
RDS_GP3_PER_GIB_MONTH = 0.115


def types_in_pool(instance_types: list[str], instance_families: list[str]) -> list[InstanceType]:
    """The known GPU instance types a pool may launch, from explicit types or whole families."""
    chosen = [GPU_INSTANCE_TYPES[n] for n in instance_types if n in GPU_INSTANCE_TYPES]
    chosen += [t for t in GPU_INSTANCE_TYPES.values() if t.family in instance_families]
    return sorted(set(chosen), key=lambda t: (t.gpus, t.usd_per_hour))
