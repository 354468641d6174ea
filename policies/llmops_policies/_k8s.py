"""Kubernetes helpers: pod templates inside every workload kind, containers, the GPU daemon allowance."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from ._rule import Ctx, Res, as_list, get

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
STATEFULSET = "kubernetes:apps/v1:StatefulSet"
DAEMONSET = "kubernetes:apps/v1:DaemonSet"
REPLICASET = "kubernetes:apps/v1:ReplicaSet"
JOB = "kubernetes:batch/v1:Job"
CRONJOB = "kubernetes:batch/v1:CronJob"
POD = "kubernetes:core/v1:Pod"
SERVICE = "kubernetes:core/v1:Service"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
NAMESPACE = "kubernetes:core/v1:Namespace"
NODEPOOL = "kubernetes:karpenter.sh/v1:NodePool"
EC2_NODECLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
HELM_CHART = "kubernetes:helm.sh/v4:Chart"

WORKLOADS = (DEPLOYMENT, STATEFULSET, DAEMONSET, REPLICASET, JOB, CRONJOB, POD)


def pod_spec(res: Res) -> Mapping[str, Any] | None:
    """The pod spec of any workload kind; CronJobs nest it under jobTemplate."""
    if res.type == POD:
        return res.get("spec")
    if res.type == CRONJOB:
        return res.get("spec.jobTemplate.spec.template.spec")
    return res.get("spec.template.spec")


def namespace(res: Res) -> str:
    return str(res.get("metadata.namespace") or "default")


def k8s_name(res: Res) -> str:
    return str(res.get("metadata.name") or res.name)


@dataclass
class Container:
    name: str
    spec: Mapping[str, Any]
    kind: str  # containers, initContainers, ephemeralContainers

    def get(self, path: str, default: Any = None) -> Any:
        return get(self.spec, path, default)


def containers(spec: Mapping[str, Any] | None) -> Iterator[Container]:
    if not spec:
        return
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        for c in as_list(spec.get(kind)):
            if isinstance(c, Mapping):
                yield Container(str(c.get("name", "?")), c, kind)


def where(res: Res, c: Container | None = None) -> str:
    """How a message names the object: `Deployment vllm-llama (namespace models)`, plus the container."""
    kind = res.type.rsplit(":", 1)[-1]
    text = f"{kind} {k8s_name(res)} (namespace {namespace(res)})"
    return f"{text} container {c.name}" if c is not None else text


# ---------------------------------------------------------------- GPU system daemons

DEFAULT_DAEMON_ALLOWANCES = [
    {
        # NVIDIA device plugin: registers GPUs with the kubelet through its device-plugin socket.
        "namespace": "gpu-system",
        "names": ["nvidia-device-plugin"],
        "hostPaths": ["/var/lib/kubelet/device-plugins"],
        "capabilities": [],
        "runAsRoot": True,
    },
    {
        # DCGM exporter: reads per-pod GPU usage from the kubelet pod-resources socket and
        # needs SYS_ADMIN for DCGM profiling metrics (NVIDIA dcgm-exporter chart defaults).
        "namespace": "gpu-system",
        "names": ["dcgm-exporter"],
        "hostPaths": ["/var/lib/kubelet/pod-resources"],
        "capabilities": ["SYS_ADMIN"],
        "runAsRoot": True,
    },
]

ALLOWANCE_SCHEMA = {
    "gpuDaemonAllowances": {
        "type": "array",
        "description": "The only exception to the workload rules: DaemonSets with these names in this "
        "namespace may mount these host paths, add these capabilities, and run as root. Never privileged, "
        "never host namespaces.",
        "items": {"type": "object"},
        "default": DEFAULT_DAEMON_ALLOWANCES,
    }
}


def allowance(res: Res, ctx: Ctx) -> Mapping[str, Any]:
    """The allowance that applies to this workload, or {} (only DaemonSets can have one)."""
    if res.type != DAEMONSET:
        return {}
    for entry in as_list(ctx.cfg("gpuDaemonAllowances")):
        if (
            isinstance(entry, Mapping)
            and entry.get("namespace") == namespace(res)
            and k8s_name(res) in as_list(entry.get("names"))
        ):
            return entry
    return {}


# ---------------------------------------------------------------- images and the gateway config


def normalise_image(image: str) -> str:
    """`vllm/vllm-openai:v1` -> `docker.io/vllm/vllm-openai:v1` (Docker Hub is implicit)."""
    first = image.split("/", 1)[0]
    if "/" not in image:
        return f"docker.io/library/{image}"
    if "." in first or ":" in first or first == "localhost":
        return image
    return f"docker.io/{image}"


def label(res: Res, key: str) -> Any:
    """A label value (label keys contain dots, so `get` paths cannot address them)."""
    labels = res.get("metadata.labels") or {}
    return labels.get(key) if isinstance(labels, Mapping) else None


def litellm_config(res: Res) -> Mapping[str, Any] | None:
    """The parsed LiteLLM config.yaml of the gateway ConfigMap; None if absent or not YAML."""
    if res.type != CONFIG_MAP or label(res, "app.kubernetes.io/name") != "litellm":
        return None
    data = res.get("data") or {}
    text = data.get("config.yaml") if isinstance(data, Mapping) else None
    if not isinstance(text, str):
        return None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return doc if isinstance(doc, Mapping) else None
