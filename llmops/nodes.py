"""What a system node offers the pods scheduled on it: CPU, memory, pod slots, VPC addresses, trunking.

The system node group's settings are checked against this table, and `llmops verify` sums the
requests of every system workload against it (llmops/verify/capacity.py).

Sources:
- vCPUs, memory and architecture: the instance catalogue (llmops/instances.py).
- ENIs, IPv4 addresses per ENI, trunking (security groups for pods) and branch ENIs:
  github.com/aws/amazon-vpc-resource-controller-k8s pkg/aws/vpc/limits.go (commit b8d4251,
  2026-04-23). No t-family type supports security groups for pods (EKS user guide,
  security-groups-for-pods: "No instance types in the t family are supported").
- Pods per node without prefix delegation: ENIs x (IPv4 per ENI - 1) + 2 (the EKS AMI's
  eni-max-pods formula). With prefix delegation each address slot holds a /28 prefix of 16:
  ENIs x ((IPv4 per ENI - 1) x 16) + 2, capped at 110 up to 30 vCPUs and 250 above
  (awslabs/amazon-eks-ami templates/al2/runtime/max-pods-calculator.sh, the EKS recommended value
  a managed node group applies; EKS user guide cni-increase-ip-addresses-procedure).
- Reserved for the system: kube-reserved memory 11 MiB per pod + 255 MiB, CPU 6% of the first
  core, 1% of the second, 0.5% of the next two, 0.25% above (amazon-eks-ami nodeadm); the pods
  counted are the ENI formula's, even when a managed node group raises maxPods for prefix
  delegation (nodeadm internal/kubelet/config.go withDefaultReservedResources takes
  GetClassicMaxPods; the node group's maxPods arrives as a kubelet drop-in); 100 MiB
  hard eviction threshold; and the memory the instance does not report to the kubelet, taken as
  Karpenter's default vmMemoryOverheadPercent, 7.5% (charts/karpenter/values.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmops import instances

EVICTION_MIB = 100
VM_MEMORY_OVERHEAD = 0.075
IPS_PER_PREFIX = 16


@dataclass(frozen=True)
class NodeShape:
    name: str
    enis: int
    ipv4_per_eni: int
    trunking: bool  # supports security groups for pods (branch ENIs on a trunk ENI)

    @property
    def vcpus(self) -> int:
        return instances.INSTANCE_TYPES[self.name].vcpus

    @property
    def memory_mib(self) -> int:
        return round(instances.INSTANCE_TYPES[self.name].memory_gib * 1024)

    @property
    def arch(self) -> str:
        return instances.INSTANCE_TYPES[self.name].arch

    @property
    def max_pods(self) -> int:
        return self.enis * (self.ipv4_per_eni - 1) + 2

    def pod_slots(self, prefix_delegation: bool) -> int:
        """The kubelet's maxPods: the ENI formula, or with prefix delegation the EKS recommended
        value the managed node group sets."""
        if not prefix_delegation:
            return self.max_pods
        ceiling = 250 if self.vcpus > 30 else 110
        return min(self.enis * ((self.ipv4_per_eni - 1) * IPS_PER_PREFIX) + 2, ceiling)

    def pod_addresses(self, enis: int, prefix_delegation: bool) -> int:
        """VPC addresses `enis` of the node's ENIs give pods (the primary address of each is the ENI's)."""
        return enis * (self.ipv4_per_eni - 1) * (IPS_PER_PREFIX if prefix_delegation else 1)

    @property
    def allocatable_millicpu(self) -> int:
        steps = [(1, 0.06), (1, 0.01), (2, 0.005)]
        reserved, left = 0.0, self.vcpus
        for cores, share in steps:
            used = min(cores, left)
            reserved += used * share * 1000
            left -= used
        reserved += left * 0.0025 * 1000
        return self.vcpus * 1000 - round(reserved)

    @property
    def allocatable_memory_mib(self) -> int:
        capacity = self.memory_mib * (1 - VM_MEMORY_OVERHEAD)
        return int(capacity - (11 * self.max_pods + 255) - EVICTION_MIB)


_SHAPES = [
    # name, ENIs, IPv4 per ENI, trunking
    ("t4g.small", 3, 4, False),
    ("t4g.medium", 3, 6, False),
    ("t4g.large", 3, 12, False),
    ("t4g.xlarge", 4, 15, False),
    ("m7g.medium", 2, 4, True),
    ("m7g.large", 3, 10, True),
    ("m7g.xlarge", 4, 15, True),
    ("m7g.2xlarge", 4, 15, True),
    ("m8g.medium", 2, 4, True),
    ("m8g.large", 3, 10, True),
    ("m8g.xlarge", 4, 15, True),
    ("m7i.large", 3, 10, True),
    ("m7i.xlarge", 4, 15, True),
    ("m7i.2xlarge", 4, 15, True),
]
SYSTEM_NODE_SHAPES: dict[str, NodeShape] = {row[0]: NodeShape(*row) for row in _SHAPES}


def ami_type(instance_type: str) -> str:
    """The managed node group's AL2023 AMI type for the instance type's architecture (EKS API
    AMITypes: AL2023_x86_64_STANDARD, AL2023_ARM_64_STANDARD)."""
    arch = instances.INSTANCE_TYPES[instance_type].arch
    return "AL2023_ARM_64_STANDARD" if arch == "arm64" else "AL2023_x86_64_STANDARD"
