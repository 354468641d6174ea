"""Whether the system node group, at its minimum size, can run every pod that lands on it.

Pods land on the system nodes when their nodeSelector matches the node group's labels or when
they select nothing and do not require a GPU pool (GPU nodes carry the nvidia.com/gpu taint). Their
requests come from the plan's objects and from chart values; what charts and EKS add-ons request
by default is recorded below with its source. Node capacity comes from llmops/nodes.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from llmops import nodes
from llmops.verify.contracts import Finding, contract
from llmops.verify.model import PlanView, namespace_of, selects

GPU_POOL_LABEL = "llmops.io/gpu-pool"


@dataclass(frozen=True)
class Pods:
    """One controller's pods on the system nodes."""

    what: str
    resource: str
    count: int  # per node for DaemonSets, in total otherwise
    millicpu: int  # per pod
    memory_mib: int  # per pod
    daemon: bool = False
    one_per_node: bool = False  # required pod anti-affinity on kubernetes.io/hostname
    branch_eni: bool = False  # security groups for pods: a branch ENI each
    host_network: bool = False  # uses the node's address: no pod IP


# What EKS add-ons run on every node or as Deployments, with their default requests (mCPU, MiB).
# Read: amazon-cloudwatch-observability from aws-observability/helm-charts
# charts/amazon-cloudwatch-observability/values.yaml (chart 6.4.0, commit 71a298f): agent 250m/128Mi,
# fluent-bit 50m/25Mi, operator 100m/64Mi. Remembered from the add-ons' manifests, not re-read for
# the pinned versions (re-check with `kubectl describe` on a cluster): coredns 2 replicas of
# 100m/70Mi; aws-ebs-csi-driver 2 controller replicas of six containers and a node DaemonSet of
# three, each container 10m/40Mi; kube-proxy 100m; aws-node 25m; eks-pod-identity-agent none.
# kube-proxy, aws-node and the Pod Identity agent run on the host network (no pod IP).
ADDON_PODS: dict[str, list[tuple[str, int, int, int, bool]]] = {
    # add-on: [(workload, replicas (0: DaemonSet), mCPU, MiB, host network)]
    "coredns": [("coredns", 2, 100, 70, False)],
    "kube-proxy": [("kube-proxy", 0, 100, 0, True)],
    "vpc-cni": [("aws-node", 0, 25, 0, True)],
    "eks-pod-identity-agent": [("eks-pod-identity-agent", 0, 0, 0, True)],
    "aws-ebs-csi-driver": [("ebs-csi-controller", 2, 60, 240, False), ("ebs-csi-node", 0, 30, 120, False)],
    "amazon-cloudwatch-observability": [
        ("cloudwatch-agent", 0, 250, 128, False),
        ("fluent-bit", 0, 50, 25, False),
        ("amazon-cloudwatch-observability-controller-manager", 1, 100, 64, False),
    ],
}

# Charts: replicas the chart runs when the values leave them out. karpenter: 2, with a required
# pod anti-affinity on kubernetes.io/hostname (aws/karpenter-provider-aws charts/karpenter/
# values.yaml, read at 0.35 and 1.14). Remembered: KEDA runs one operator, one metrics API server
# and one webhooks pod; metrics-server one replica; prometheus one server and one
# kube-state-metrics without requests.
CHART_DEFAULT_REPLICAS = {"karpenter": 2, "metrics-server": 1}


def cpu_millis(value: Any) -> int:
    text = str(value).strip()
    if text.endswith("m"):
        return int(float(text[:-1]))
    return round(float(text) * 1000)


_MEMORY_UNITS = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 * 1024, "K": 1000 / 1024**2,
                 "M": 1000**2 / 1024**2, "G": 1000**3 / 1024**2}  # fmt: skip


def memory_mib(value: Any) -> int:
    text = str(value).strip()
    for unit in sorted(_MEMORY_UNITS, key=len, reverse=True):
        if text.endswith(unit):
            return round(float(text[: -len(unit)]) * _MEMORY_UNITS[unit])
    return round(float(text) / 1024**2)


def _requests(resources: dict[str, Any] | None) -> tuple[int, int]:
    """A container's requests; a limit without a request is also its request (Kubernetes)."""
    resources = resources or {}
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    cpu = cpu_millis(merged["cpu"]) if "cpu" in merged else 0
    mem = memory_mib(merged["memory"]) if "memory" in merged else 0
    return cpu, mem


def pod_requests(pod: dict[str, Any]) -> tuple[int, int]:
    """Effective requests of a pod: its containers' sum, or its largest init container if larger."""
    main = [_requests(c.get("resources")) for c in pod.get("containers") or []]
    init = [_requests(c.get("resources")) for c in pod.get("initContainers") or []]
    cpu = max([sum(c for c, _ in main), *(c for c, _ in init)])
    mem = max([sum(m for _, m in main), *(m for _, m in init)])
    return cpu, mem


def _needs_gpu_pool(pod: dict[str, Any]) -> bool:
    selector = pod.get("nodeSelector") or {}
    if GPU_POOL_LABEL in selector:
        return True
    affinity = (pod.get("affinity") or {}).get("nodeAffinity") or {}
    required = (affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms")
    return GPU_POOL_LABEL in str(required or "")


def _on_system(pod: dict[str, Any], labels: dict[str, str]) -> bool:
    if _needs_gpu_pool(pod):
        return False
    selector = pod.get("nodeSelector") or {}
    return selects({"matchLabels": selector}, labels) if selector else True


def _sgp_selected(plan: PlanView, namespace: str, labels: dict[str, str]) -> bool:
    return any(
        selects((p["inputs"].get("spec") or {}).get("podSelector"), labels)
        for p in plan.objects("SecurityGroupPolicy", namespace)
    )


def _declared(plan: PlanView, labels: dict[str, str]) -> Iterator[Pods]:
    """The plan's workloads; CronJobs and Jobs as one pod as large as the largest of them (each
    run lasts minutes and the schedules are spread, so runs are taken not to overlap)."""
    runs: list[Pods] = []
    for pods in _objects(plan, labels):
        if pods.what.startswith(("CronJob ", "Job ")):
            runs.append(pods)
        else:
            yield pods
    if runs:
        yield Pods(
            "the largest CronJob run (" + ", ".join(p.what for p in runs) + ")",
            max(runs, key=lambda p: (p.millicpu, p.memory_mib)).resource,
            1,
            max(p.millicpu for p in runs),
            max(p.memory_mib for p in runs),
        )


def _objects(plan: PlanView, labels: dict[str, str]) -> Iterator[Pods]:
    for obj in plan.k8s_objects:
        inputs = obj["inputs"]
        kind = inputs.get("kind")
        spec = inputs.get("spec") or {}
        if kind == "CronJob":
            spec = (spec.get("jobTemplate") or {}).get("spec") or {}
        elif kind not in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            continue
        template = spec.get("template") or {}
        pod = template.get("spec") or {}
        if not _on_system(pod, labels):
            continue
        cpu, mem = pod_requests(pod)
        name = (inputs.get("metadata") or {}).get("name", obj["name"])
        replicas = 1 if kind in ("CronJob", "Job", "DaemonSet") else int(spec.get("replicas", 1))
        pod_labels = (template.get("metadata") or {}).get("labels") or {}
        yield Pods(
            f"{kind} {namespace_of(obj)}/{name}",
            obj["name"],
            replicas,
            cpu,
            mem,
            daemon=kind == "DaemonSet",
            branch_eni=_sgp_selected(plan, namespace_of(obj), pod_labels),
            host_network=bool(pod.get("hostNetwork")),
        )


def _chart_name(inputs: dict[str, Any]) -> str:
    chart = str(inputs.get("chart", ""))
    return chart.rstrip("/").rsplit("/", 1)[-1]


def _charts(plan: PlanView, labels: dict[str, str]) -> Iterator[Pods]:
    for chart in plan.of_type("kubernetes:helm.sh/v4:Chart"):
        inputs = chart["inputs"]
        values = inputs.get("values") or {}
        name, res = _chart_name(inputs), chart["name"]
        placement = {k: values[k] for k in ("nodeSelector", "affinity") if k in values}
        if not _on_system(placement, labels):
            continue
        if name == "karpenter":
            cpu, mem = _requests((values.get("controller") or {}).get("resources"))
            replicas = int(values.get("replicas", CHART_DEFAULT_REPLICAS["karpenter"]))
            yield Pods("Karpenter controller", res, replicas, cpu, mem, one_per_node=True)
        elif name == "keda":
            resources = values.get("resources") or {}
            for part in ("operator", "metricServer", "webhooks"):
                cpu, mem = _requests(resources.get(part))
                yield Pods(f"KEDA {part}", res, 1, cpu, mem)
        elif name == "metrics-server":
            cpu, mem = _requests(values.get("resources"))
            replicas = int(values.get("replicas", CHART_DEFAULT_REPLICAS["metrics-server"]))
            yield Pods("metrics-server", res, replicas, cpu, mem)
        elif name == "prometheus":
            server = values.get("server") or {}
            cpu, mem = _requests(server.get("resources"))
            yield Pods("Prometheus server", res, 1, cpu, mem)
            if (values.get("kube-state-metrics") or {}).get("enabled", True):
                cpu, mem = _requests((values.get("kube-state-metrics") or {}).get("resources"))
                yield Pods("kube-state-metrics", res, 1, cpu, mem)
        else:
            yield Pods(f"chart {name}", res, -1, 0, 0)  # unrecorded: reported below


def _addons(plan: PlanView) -> Iterator[Pods]:
    for addon in plan.of_type("aws:eks/addon:Addon"):
        name = addon["inputs"].get("addonName", "")
        config = plan.addon_config(name)
        for workload, replicas, cpu, mem, host in ADDON_PODS.get(name, []):
            if name == "coredns":
                replicas = int(config.get("replicaCount", replicas))
                cpu, mem = _requests(config.get("resources")) if config.get("resources") else (cpu, mem)
            elif workload == "ebs-csi-controller":
                replicas = int((config.get("controller") or {}).get("replicaCount", replicas))
            yield Pods(
                f"add-on {name} {workload}", addon["name"], max(replicas, 1), cpu, mem,
                daemon=replicas == 0, host_network=host,
            )  # fmt: skip


def prefix_delegation(plan: PlanView) -> bool:
    """Whether the vpc-cni add-on assigns /28 prefixes (ENABLE_PREFIX_DELEGATION)."""
    env = plan.addon_config("vpc-cni").get("env") or {}
    return str(env.get("ENABLE_PREFIX_DELEGATION", "false")).lower() == "true"


def system_pods(plan: PlanView, labels: dict[str, str]) -> list[Pods]:
    return [*_declared(plan, labels), *_charts(plan, labels), *_addons(plan)]


@contract(
    "capacity-system-nodes",
    "scheduling",
    "Checks whether the system node group at its minimum size has the CPU, memory, pod slots and VPC "
    "addresses the pods landing on it request, and trunk ENIs where pods have their own security groups.",
)
def system_node_capacity(plan: PlanView) -> Iterator[Finding]:
    for group in plan.of_type("aws:eks/nodeGroup:NodeGroup"):
        inputs = group["inputs"]
        labels = inputs.get("labels") or {}
        types = inputs.get("instanceTypes") or []
        count = int((inputs.get("scalingConfig") or {}).get("minSize") or 1)
        shape = nodes.SYSTEM_NODE_SHAPES.get(types[0]) if types else None
        fix_nodes = "Raise llmops:cluster.systemNodes.minSize or choose a larger instanceType"
        if shape is None:
            yield Finding(
                "capacity-system-nodes",
                group["name"],
                str(types),
                f"{group['name']} runs {types}, whose capacity llmops/nodes.py does not record, so what "
                "its pods request cannot be checked.",
                "Record the instance type in llmops/nodes.py with its source.",
            )
            continue
        pods = system_pods(plan, labels)
        unknown = [p for p in pods if p.count < 0]
        for p in unknown:
            yield Finding(
                "capacity-system-nodes",
                p.resource,
                group["name"],
                f"{p.what} lands on the system nodes, but what it runs and requests is not recorded.",
                "Record its workloads and default requests in llmops/verify/capacity.py.",
            )
        pods = [p for p in pods if p.count >= 0]
        where = f"{count} x {shape.name}"

        def total(p: Pods, nodes_: int = count) -> int:
            return p.count * (nodes_ if p.daemon else 1)

        for p in pods:
            if p.one_per_node and p.count > count:
                yield Finding(
                    "capacity-system-nodes",
                    p.resource,
                    group["name"],
                    f"{p.what} runs {p.count} replicas, at most one per node, on {where}: "
                    f"{p.count - count} stay Pending.",
                    f"{fix_nodes}, or run fewer replicas.",
                )
            if p.millicpu > shape.allocatable_millicpu or p.memory_mib > shape.allocatable_memory_mib:
                yield Finding(
                    "capacity-system-nodes",
                    p.resource,
                    group["name"],
                    f"a pod of {p.what} requests {p.millicpu}m CPU and {p.memory_mib} MiB, more than one "
                    f"{shape.name} offers "
                    f"({shape.allocatable_millicpu}m, {shape.allocatable_memory_mib} MiB).",
                    "Lower its requests (its settings) or choose a larger instanceType.",
                )
        cpu = sum(total(p) * p.millicpu for p in pods)
        mem = sum(total(p) * p.memory_mib for p in pods)
        slots = sum(total(p) for p in pods)
        prefixes = prefix_delegation(plan)
        have = (
            shape.allocatable_millicpu * count,
            shape.allocatable_memory_mib * count,
            shape.pod_slots(prefixes) * count,
        )
        heaviest = sorted(pods, key=lambda p: total(p) * (p.memory_mib + p.millicpu), reverse=True)[:3]
        named = ", ".join(f"{p.what} {total(p)} x {p.millicpu}m/{p.memory_mib}Mi" for p in heaviest)
        for what, need, offered, unit in (
            ("CPU", cpu, have[0], "m"),
            ("memory", mem, have[1], " MiB"),
            ("pod slots", slots, have[2], ""),
        ):
            if need > offered:
                yield Finding(
                    "capacity-system-nodes",
                    group["name"],
                    "system workloads",
                    f"the pods landing on {where} request {need}{unit} of {what}; the nodes offer "
                    f"{offered}{unit} (largest: {named}).",
                    f"{fix_nodes}, or lower the workloads' requests (their settings)"
                    + (
                        ", or set llmops:cluster.prefixDelegation (a /28 of addresses per ENI slot)."
                        if what == "pod slots" and not prefixes
                        else "."
                    ),
                )
        branch = sum(total(p) for p in pods if p.branch_eni)
        # Security groups for pods attach a trunk ENI to each node, which takes one ENI's addresses.
        ips = sum(total(p) for p in pods if not (p.host_network or p.branch_eni))
        offered_ips = count * shape.pod_addresses(shape.enis - (1 if branch else 0), prefixes)
        if ips > offered_ips:
            trunk = " (one ENI per node is the trunk for pod security groups)" if branch else ""
            yield Finding(
                "capacity-system-nodes",
                group["name"],
                "pod addresses",
                f"{ips} pods on {where} need a VPC address each; the nodes' ENIs give {offered_ips}"
                f"{trunk}, so the rest fail to start.",
                f"{fix_nodes}.",
            )
        if branch and not shape.trunking:
            yield Finding(
                "capacity-system-nodes",
                group["name"],
                "security groups for pods",
                f"{branch} pods get their own security groups (SecurityGroupPolicy), which {shape.name} "
                "cannot give (no trunk ENI: no t-family type supports security groups for pods), so they "
                "stay Pending.",
                "Choose a trunking type (m7g, m8g, m7i) for llmops:cluster.systemNodes.instanceType.",
            )
