"""Pod and container security settings shared by every workload the platform declares.

Restricted Pod Security Standard (kubernetes.io/docs/concepts/security/pod-security-standards):
no privilege escalation, every capability dropped, RuntimeDefault seccomp, non-root where the
image allows it, a read-only root filesystem where the program writes nowhere else.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

PRIVILEGED_NAMESPACE_LABELS = {"pod-security.kubernetes.io/enforce": "privileged"}
RESTRICTED_NAMESPACE_LABELS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
# vLLM's image runs as root and writes caches under the root user's home (see docs/serving.md).
BASELINE_NAMESPACE_LABELS = {
    "pod-security.kubernetes.io/enforce": "baseline",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def container_security(user: int | None = 65532, read_only_root: bool = True) -> dict[str, Any]:
    """A container's securityContext; user None keeps the image's own user (vLLM: root)."""
    ctx: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": read_only_root,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if user is not None:
        ctx.update(runAsNonRoot=True, runAsUser=user, runAsGroup=user)
    return ctx


def pod_security(user: int | None = 65532) -> dict[str, Any]:
    ctx: dict[str, Any] = {"seccompProfile": {"type": "RuntimeDefault"}}
    if user is not None:
        ctx.update(runAsNonRoot=True, runAsUser=user, runAsGroup=user, fsGroup=user)
    return ctx


def resources(cpu: float | str, memory: str, gpus: int = 0, cpu_request: float | str | None = None) -> dict:
    """Requests and limits; memory requested = limit (no overcommit), GPUs only as limits."""
    limits: dict[str, Any] = {"cpu": str(cpu), "memory": memory}
    if gpus:
        limits["nvidia.com/gpu"] = str(gpus)
    requests = {"cpu": str(cpu_request if cpu_request is not None else cpu), "memory": memory}
    return {"requests": requests, "limits": limits}


def namespace(
    resource_name: str, name: str, classification: str, pod_security: dict[str, str], opts
) -> k8s.core.v1.Namespace:
    """A namespace labelled with the stack's data classification (policies and admission
    controllers key on it) and its Pod Security Standard level."""
    labels = {**pod_security, "data-classification": classification, "app.kubernetes.io/part-of": "llmops"}
    return k8s.core.v1.Namespace(resource_name, metadata={"name": name, "labels": labels}, opts=opts)


def default_deny_ingress(
    resource_name: str, namespace: pulumi.Input[str], opts
) -> k8s.networking.v1.NetworkPolicy:
    """Nothing reaches a pod of the namespace unless another NetworkPolicy admits it."""
    return k8s.networking.v1.NetworkPolicy(
        resource_name,
        metadata={"name": "default-deny-ingress", "namespace": namespace},
        spec={"podSelector": {}, "policyTypes": ["Ingress"]},
        opts=opts,
    )
