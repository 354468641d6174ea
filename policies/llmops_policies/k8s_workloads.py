"""Kubernetes workload security, for the pod templates of Deployments, StatefulSets, DaemonSets,
Jobs, CronJobs (jobTemplate) and Pods.

The only exception is narrow and documented: GPU system DaemonSets named in `gpuDaemonAllowances`
(by default the NVIDIA device plugin and the DCGM exporter in namespace gpu-system) may mount the
listed kubelet host paths, add the listed capabilities and run as root. They are never allowed to
run privileged or share host namespaces.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ._k8s import ALLOWANCE_SCHEMA, WORKLOADS, allowance, containers, normalise_image, pod_spec, where
from ._rule import A, Ctx, D, M, Res, anchors, as_list, get, levels, resource_rule, truthy

WL = levels(A, M, M, M)
WL_SOFT = levels(D, A, M, M)  # gets in the way of a dev stack's quick experiments


@resource_rule(
    id="LLMOPS-K8S-001",
    name="no-privileged-containers",
    description="Checks whether any container runs privileged (no exception, not even for GPU daemons).",
    severity="critical",
    remediation="Remove securityContext.privileged; GPUs are exposed through the device plugin's "
    "nvidia.com/gpu resource, not privileged mode.",
    anchors=anchors("Checkov:CKV_K8S_16", "CIS EKS:4.2.1", "PCI DSS 4.0:2.2.5", "ISO 27001:2022:A.8.2"),
    levels=levels(M, M, M, M),
    types=WORKLOADS,
)
def no_privileged(res: Res, ctx: Ctx) -> Iterator[str]:
    for c in containers(pod_spec(res)):
        if truthy(c.get("securityContext.privileged", False)):
            yield f"{where(res, c)} must not run privileged."


@resource_rule(
    id="LLMOPS-K8S-002",
    name="no-host-namespaces",
    description="Checks whether pods stay out of the node's network, PID and IPC namespaces.",
    severity="high",
    remediation="Remove hostNetwork, hostPID and hostIPC from the pod spec.",
    anchors=anchors(
        "Checkov:CKV_K8S_17",
        "Checkov:CKV_K8S_18",
        "Checkov:CKV_K8S_19",
        "CIS EKS:4.2.2",
        "CIS EKS:4.2.3",
        "CIS EKS:4.2.4",
    ),
    levels=WL,
    types=WORKLOADS,
)
def no_host_namespaces(res: Res, ctx: Ctx) -> Iterator[str]:
    spec = pod_spec(res) or {}
    shared = [k for k in ("hostNetwork", "hostPID", "hostIPC") if truthy(get(spec, k, False))]
    if shared:
        yield f"{where(res)} must not share host namespaces ({', '.join(shared)})."


@resource_rule(
    id="LLMOPS-K8S-003",
    name="no-host-path-volumes",
    description="Checks whether pods mount no hostPath volumes, except the exact kubelet paths allowed to "
    "the "
    "named GPU system DaemonSets.",
    severity="high",
    remediation="Use emptyDir, a PVC or a projected volume; a GPU daemon that needs a kubelet socket goes in "
    "gpuDaemonAllowances with the exact path.",
    anchors=anchors(
        "Kyverno:disallow-host-path", "Checkov:CKV_K8S_27", "PCI DSS 4.0:2.2.5", "ISO 27001:2022:A.8.9"
    ),
    levels=WL,
    types=WORKLOADS,
    config=ALLOWANCE_SCHEMA,
)
def no_host_path(res: Res, ctx: Ctx) -> Iterator[str]:
    allowed = set(as_list(allowance(res, ctx).get("hostPaths")))
    for vol in as_list(get(pod_spec(res) or {}, "volumes")):
        path = get(vol, "hostPath.path")
        if path is not None and path not in allowed:
            yield f"{where(res)} must not mount host path {path} (volume {get(vol, 'name')})."


@resource_rule(
    id="LLMOPS-K8S-004",
    name="no-privilege-escalation",
    description="Checks whether every container sets allowPrivilegeEscalation false.",
    severity="high",
    remediation="Set securityContext.allowPrivilegeEscalation: false on every container.",
    anchors=anchors("Checkov:CKV_K8S_20", "CIS EKS:4.2.5", "PCI DSS 4.0:2.2.5", "ISO 27001:2022:A.8.2"),
    levels=WL,
    types=WORKLOADS,
)
def no_escalation(res: Res, ctx: Ctx) -> Iterator[str]:
    for c in containers(pod_spec(res)):
        if c.get("securityContext.allowPrivilegeEscalation", True) not in (False, "false"):
            yield f"{where(res, c)} must set allowPrivilegeEscalation false."


@resource_rule(
    id="LLMOPS-K8S-005",
    name="capabilities-dropped",
    description="Checks whether every container drops ALL capabilities and adds back at most "
    "NET_BIND_SERVICE "
    "(or, for an allowed GPU daemon, its listed capabilities).",
    severity="high",
    remediation="Set securityContext.capabilities.drop: [ALL]; add only what the process needs.",
    anchors=anchors(
        "Checkov:CKV_K8S_28", "Checkov:CKV_K8S_37", "CIS EKS:4.2.7", "CIS EKS:4.2.8", "CIS EKS:4.2.9"
    ),
    levels=WL,
    types=WORKLOADS,
    config={
        **ALLOWANCE_SCHEMA,
        "allowedCapabilities": {
            "type": "array",
            "items": {"type": "string"},
            "default": ["NET_BIND_SERVICE"],
        },
    },
)
def capabilities(res: Res, ctx: Ctx) -> Iterator[str]:
    allowed = set(as_list(ctx.cfg("allowedCapabilities"))) | set(
        as_list(allowance(res, ctx).get("capabilities"))
    )
    for c in containers(pod_spec(res)):
        if "ALL" not in as_list(c.get("securityContext.capabilities.drop")):
            yield f"{where(res, c)} must drop ALL capabilities."
        extra = [cap for cap in as_list(c.get("securityContext.capabilities.add")) if cap not in allowed]
        if extra:
            yield f"{where(res, c)} must not add capabilities {', '.join(map(str, extra))}."


@resource_rule(
    id="LLMOPS-K8S-006",
    name="seccomp-runtime-default",
    description="Checks whether pods (or each of their containers) use the RuntimeDefault or a Localhost "
    "seccomp profile.",
    severity="medium",
    remediation="Set spec.securityContext.seccompProfile.type: RuntimeDefault in the pod template.",
    anchors=anchors("Checkov:CKV_K8S_31", "CIS Kubernetes:5.7.2", "PCI DSS 4.0:2.2.5"),
    levels=WL,
    types=WORKLOADS,
)
def seccomp(res: Res, ctx: Ctx) -> Iterator[str]:
    spec = pod_spec(res) or {}
    pod_profile = get(spec, "securityContext.seccompProfile.type")
    for c in containers(spec):
        profile = c.get("securityContext.seccompProfile.type") or pod_profile
        if profile not in ("RuntimeDefault", "Localhost"):
            yield f"{where(res, c)} must use seccomp profile RuntimeDefault."


@resource_rule(
    id="LLMOPS-K8S-007",
    name="run-as-non-root",
    description="Checks whether containers run as a non-root user (runAsNonRoot true, runAsUser not 0), "
    "except "
    "allowed GPU daemons.",
    severity="high",
    remediation="Set runAsNonRoot: true and a numeric runAsUser (e.g. 1000) in the pod securityContext; give "
    "writable paths (caches, /tmp) emptyDir volumes.",
    anchors=anchors("Checkov:CKV_K8S_23", "Checkov:CKV_K8S_40", "CIS EKS:4.2.6", "PCI DSS 4.0:2.2.5"),
    levels=WL_SOFT,
    types=WORKLOADS,
    config=ALLOWANCE_SCHEMA,
)
def non_root(res: Res, ctx: Ctx) -> Iterator[str]:
    if truthy(allowance(res, ctx).get("runAsRoot", False)):
        return
    spec = pod_spec(res) or {}
    pod_non_root = get(spec, "securityContext.runAsNonRoot")
    pod_user = get(spec, "securityContext.runAsUser")
    for c in containers(spec):
        non_root_flag = c.get("securityContext.runAsNonRoot", pod_non_root)
        user = c.get("securityContext.runAsUser", pod_user)
        if user in (0, "0") or not truthy(non_root_flag if non_root_flag is not None else False):
            yield f"{where(res, c)} must run as non-root (runAsNonRoot true, runAsUser not 0)."


@resource_rule(
    id="LLMOPS-K8S-008",
    name="resource-requests-and-limits",
    description="Checks whether every container requests CPU and memory and has a memory limit.",
    severity="medium",
    remediation="Set resources.requests.cpu, resources.requests.memory and resources.limits.memory (GPU "
    "containers also limit nvidia.com/gpu).",
    anchors=anchors("Checkov:CKV_K8S_10", "Checkov:CKV_K8S_12", "Checkov:CKV_K8S_13", "ISO 27001:2022:A.8.6"),
    levels=WL,
    types=WORKLOADS,
)
def resources(res: Res, ctx: Ctx) -> Iterator[str]:
    for c in containers(pod_spec(res)):
        if c.kind == "ephemeralContainers":
            continue
        missing = [
            p for p in ("requests.cpu", "requests.memory", "limits.memory") if c.get(f"resources.{p}") is None
        ]
        if missing:
            yield f"{where(res, c)} must set resources {', '.join(missing)}."


TAG = re.compile(r":[\w][\w.-]{0,127}$")


@resource_rule(
    id="LLMOPS-K8S-009",
    name="images-pinned",
    setting=("llmops:models[].image", "llmops:vectorDb.image"),
    description="Checks whether every image is pinned by a version tag other than latest, or by digest "
    "(required "
    "when requireDigest is set).",
    severity="high",
    remediation="Pin images in llmops/versions.py (e.g. vllm/vllm-openai:v0.11.0 or @sha256:...).",
    anchors=anchors("Checkov:CKV_K8S_14", "Checkov:CKV_K8S_43", "PCI DSS 4.0:6.3.2", "ISO 27001:2022:A.8.19"),
    levels=WL,
    types=WORKLOADS,
    config={"requireDigest": {"type": "boolean", "default": False}},
)
def pinned(res: Res, ctx: Ctx) -> Iterator[str]:
    for c in containers(pod_spec(res)):
        image = str(c.get("image", ""))
        if "@sha256:" in image:
            continue
        tag = TAG.search(image.rsplit("/", 1)[-1])
        if not tag or tag.group(0) == ":latest":
            yield f"{where(res, c)} must pin its image {image} to a version tag or digest."
        elif truthy(ctx.cfg("requireDigest")):
            yield f"{where(res, c)} must pin its image {image} by digest."


DEFAULT_REGISTRIES = [
    # Docker Official Images (docker.io/library/...) are curated by Docker; narrow this list in the
    # policy config when nodes must pull only from ECR mirrors.
    "docker.io/library/",
    "docker.io/vllm/",
    "docker.io/qdrant/",
    "docker.io/amazon/",
    "ghcr.io/berriai/",
    "nvcr.io/nvidia/",
    "public.ecr.aws/",
    "registry.k8s.io/",
    "*.dkr.ecr.*.amazonaws.com/",
]


def _registry_match(image: str, pattern: str) -> bool:
    regex = "^" + re.escape(pattern).replace(r"\*", "[^/]*")
    return re.match(regex, image) is not None


@resource_rule(
    id="LLMOPS-K8S-010",
    name="images-from-allowed-registries",
    setting=("llmops:models[].image", "llmops:vectorDb.image"),
    description="Checks whether every image comes from an allowed registry prefix (Docker Hub images are "
    "read as docker.io/...).",
    severity="high",
    remediation="Pull from the allowed registries, or mirror the image into ECR (pull-through cache); extend "
    "allowedRegistries in the policy config after review.",
    anchors=anchors(
        "Kyverno:restrict-image-registries",
        "PCI DSS 4.0:6.3.2",
        "ISO 27001:2022:A.8.19",
        "ISO 27001:2022:A.5.21",
    ),
    levels=WL_SOFT,
    types=WORKLOADS,
    config={
        "allowedRegistries": {"type": "array", "items": {"type": "string"}, "default": DEFAULT_REGISTRIES}
    },
)
def registries(res: Res, ctx: Ctx) -> Iterator[str]:
    patterns = [str(p) for p in as_list(ctx.cfg("allowedRegistries"))]
    for c in containers(pod_spec(res)):
        image = normalise_image(str(c.get("image", "")))
        if not any(_registry_match(image, p) for p in patterns):
            registry = image.split("/", 1)[0]
            yield f"{where(res, c)} must use an image from an allowed registry (not {registry})."


SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|DATABASE_URL)", re.IGNORECASE)
# Names that point at a secret rather than hold one
# (QDRANT_API_KEY_FILE, SPEND_LOGS_KMS_KEY_ARN, AWS_ACCESS_KEY_ID).
REFERENCE_SUFFIX = ("_FILE", "_PATH", "_ARN", "_ID", "_NAME", "_REF", "_DIR")


def _holds_secret(name: str, value: object) -> bool:
    if not SECRET_NAME.search(name) or name.upper().endswith(REFERENCE_SUFFIX):
        return False
    return isinstance(value, str) and bool(value) and not value.startswith(("arn:", "/"))


@resource_rule(
    id="LLMOPS-K8S-011",
    name="no-secrets-in-env-literals",
    description="Checks whether secret-looking environment variables (…KEY, …TOKEN, …SECRET, …PASSWORD, "
    "DATABASE_URL) come from a Secret rather than a literal value (the value is never printed).",
    severity="critical",
    remediation="Use env[].valueFrom.secretKeyRef (the Secret synced from Secrets Manager) instead of value.",
    anchors=anchors(
        "CIS EKS:4.4.1",
        "Checkov:CKV_K8S_35",
        "PCI DSS 4.0:8.3.2",
        "ISO 27001:2022:A.5.17",
        "HIPAA:164.312(a)(1)",
    ),
    levels=levels(M, M, M, M),
    types=WORKLOADS,
)
def no_env_secrets(res: Res, ctx: Ctx) -> Iterator[str]:
    for c in containers(pod_spec(res)):
        for env in as_list(c.get("env")):
            name = str(get(env, "name", ""))
            if _holds_secret(name, get(env, "value")):
                yield (
                    f"{where(res, c)} must read {name} from a Secret (valueFrom.secretKeyRef), not a literal."
                )


@resource_rule(
    id="LLMOPS-K8S-012",
    name="service-account-token-not-mounted",
    description="Checks whether pods that do not call the Kubernetes API leave the service account token "
    "unmounted (automountServiceAccountToken false).",
    severity="medium",
    remediation="Set spec.automountServiceAccountToken: false in the pod template (Pod Identity still "
    "injects "
    "its own AWS token); list pods that call the API in tokenAllowedServiceAccounts.",
    anchors=anchors("Checkov:CKV_K8S_38", "CIS EKS:4.1.6", "PCI DSS 4.0:7.2.2", "ISO 27001:2022:A.8.2"),
    levels=levels(D, A, A, M),
    types=WORKLOADS,
    config={"tokenAllowedServiceAccounts": {"type": "array", "items": {"type": "string"}, "default": []}},
)
def sa_token(res: Res, ctx: Ctx) -> Iterator[str]:
    spec = pod_spec(res) or {}
    account = get(spec, "serviceAccountName", "default")
    if account in as_list(ctx.cfg("tokenAllowedServiceAccounts")):
        return
    if get(spec, "automountServiceAccountToken", True) not in (False, "false"):
        yield f"{where(res)} must set automountServiceAccountToken false."


@resource_rule(
    id="LLMOPS-K8S-013",
    name="read-only-root-filesystem",
    description="Checks whether containers run with a read-only root filesystem.",
    severity="low",
    remediation="Set securityContext.readOnlyRootFilesystem: true and mount emptyDir at the paths the "
    "process "
    "writes (/tmp, model caches).",
    anchors=anchors("Checkov:CKV_K8S_22", "PCI DSS 4.0:2.2.5", "ISO 27001:2022:A.8.9"),
    levels=levels(D, A, A, A),
    types=WORKLOADS,
)
def read_only_root(res: Res, ctx: Ctx) -> Iterator[str]:
    for c in containers(pod_spec(res)):
        if c.kind != "ephemeralContainers" and not truthy(
            c.get("securityContext.readOnlyRootFilesystem", False)
        ):
            yield f"{where(res, c)} must set readOnlyRootFilesystem true."


DEFAULT_CHART_REPOS = [
    "oci://public.ecr.aws/",
    "https://nvidia.github.io/",
    "https://kedacore.github.io/charts",
    "https://qdrant.github.io/qdrant-helm",
    "https://prometheus-community.github.io/helm-charts",
    "https://aws.github.io/eks-charts",
    "https://kubernetes-sigs.github.io/metrics-server/",
]
EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")


@resource_rule(
    id="LLMOPS-K8S-014",
    name="helm-charts-pinned",
    description="Checks whether Helm charts are pinned to an exact version and come from an allowed "
    "repository.",
    severity="high",
    remediation="Pin the chart in llmops/versions.py (an exact version, never a range) and install it from "
    "a repository in allowedChartRepositories.",
    anchors=anchors(
        "PCI DSS 4.0:6.3.2", "ISO 27001:2022:A.8.19", "ISO 27001:2022:A.8.32", "OWASP LLM Top 10:LLM03"
    ),
    levels=WL,
    types=("kubernetes:helm.sh/v4:Chart", "kubernetes:helm.sh/v3:Release"),
    config={
        "allowedChartRepositories": {
            "type": "array",
            "items": {"type": "string"},
            "default": DEFAULT_CHART_REPOS,
        }
    },
)
def charts_pinned(res: Res, ctx: Ctx) -> Iterator[str]:
    chart = str(res.get("chart", ""))
    version = res.get("version")
    if not version or not EXACT_VERSION.match(str(version)):
        yield f"Helm chart {res.name} ({chart}) must pin an exact version (has {version or 'none'})."
    repo = str(res.get("repositoryOpts.repo") or (chart if chart.startswith("oci://") else ""))
    allowed = [str(p) for p in as_list(ctx.cfg("allowedChartRepositories"))]
    if repo and not any(repo.startswith(p) for p in allowed):
        yield f"Helm chart {res.name} must come from an allowed repository (not {repo})."
