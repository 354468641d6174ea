"""What upstream software does, as far as the contracts need it, read from the pinned releases.

The plan records a Helm chart or an EKS add-on as one resource with its values; the objects it
creates (service accounts, pods and their labels and ports, CRDs, aggregated APIs) and the metrics
it publishes come from here. Each fact names where it was read; re-read it when the pin in
llmops/versions.py moves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MetricFamily:
    """Prometheus metrics a container serves, and on which port of the pod."""

    name: str  # what produces them, for messages
    prefix: str  # every metric of the family starts with this
    port: int | str  # container port number or name
    labels: frozenset[str] = frozenset()  # labels the producer sets on its series
    scheme: str = "http"
    source: str = ""


@dataclass(frozen=True)
class CloudWatchMetrics:
    """Metrics a component publishes to CloudWatch: namespace, names and the dimension sets."""

    producer: str
    namespace: str
    metrics: frozenset[str]
    dimension_sets: tuple[frozenset[str], ...]
    source: str = ""


@dataclass
class RenderedWorkload:
    kind: str
    namespace: str
    name: str
    labels: dict[str, str]
    pod: dict[str, Any]
    produces: tuple[MetricFamily, ...] = ()


@dataclass
class RenderedService:
    namespace: str
    name: str
    selector: dict[str, str]
    ports: list[dict[str, Any]]  # {name, port, targetPort}


@dataclass
class Render:
    workloads: list[RenderedWorkload] = field(default_factory=list)
    services: list[RenderedService] = field(default_factory=list)
    service_accounts: set[tuple[str, str]] = field(default_factory=set)
    crds: set[tuple[str, str]] = field(default_factory=set)
    namespaces: set[str] = field(default_factory=set)
    apis: set[str] = field(default_factory=set)
    cloudwatch: list[CloudWatchMetrics] = field(default_factory=list)


# Custom resource kinds EKS serves without anything in the plan: the VPC resource controller runs in
# the control plane (docs.aws.amazon.com/eks/latest/userguide/security-groups-for-pods.html).
EKS_CRDS = {("vpcresources.k8s.aws/v1beta1", "SecurityGroupPolicy")}

# -- metric families ------------------------------------------------------------------------------

# vLLM serves its Prometheus metrics on the API port (vllm/entrypoints/openai/api_server.py mounts
# /metrics); every series carries model_name (the served model name).
VLLM_METRICS = MetricFamily(
    "vLLM",
    "vllm:",
    "http",
    frozenset({"model_name", "engine"}),
    source="vllm v0.11.0 vllm/v1/metrics/loggers.py",
)
# LiteLLM mounts /metrics on the proxy port only when "prometheus" is a success callback
# (litellm 1.100.5 proxy/proxy_server.py, PrometheusLogger._mount_metrics_endpoint), and answers it
# without a key only with litellm_settings.require_auth_for_metrics_endpoint false (litellm/__init__.py
# defaults it to True; proxy/middleware/prometheus_auth_middleware.py). Counter labels from
# litellm/types/integrations/prometheus.py (litellm_proxy_total_requests_metric).
LITELLM_METRIC_LABELS = frozenset(
    {
        "end_user",
        "hashed_api_key",
        "api_key_alias",
        "requested_model",
        "team",
        "team_alias",
        "user",
        "status_code",
        "user_email",
        "route",
        "client_ip",
        "user_agent",
        "model_id",
        "api_provider",
        "model",
        "litellm_model_name",
        "model_group",
        "api_base",
    }
)
DCGM_METRICS = MetricFamily(
    "DCGM exporter",
    "DCGM_FI_",
    "metrics",
    frozenset({"gpu", "UUID", "Hostname", "modelName"}),
    source="NVIDIA/dcgm-exporter 4.4.1-4.6.0 deployment/templates/daemonset.yaml (port 'metrics')",
)
KARPENTER_METRICS = MetricFamily(
    "Karpenter",
    "karpenter_",
    "http-metrics",
    frozenset({"nodepool"}),
    source="aws/karpenter-provider-aws v1.8.1 charts/karpenter/templates/deployment.yaml",
)


def litellm_family(config: dict[str, Any] | None, port: int, scheme: str) -> MetricFamily | None:
    """LiteLLM's metrics on its proxy port, if its config turns them on (and leaves /metrics
    readable by a scraper)."""
    settings = (config or {}).get("litellm_settings") or {}
    callbacks = [*(settings.get("success_callback") or []), *(settings.get("callbacks") or [])]
    if "prometheus" not in callbacks or settings.get("require_auth_for_metrics_endpoint", True) is not False:
        return None
    excluded = frozenset(settings.get("prometheus_exclude_labels") or [])
    return MetricFamily(
        "LiteLLM",
        "litellm_",
        port,
        LITELLM_METRIC_LABELS - excluded,
        scheme,
        source="litellm 1.100.5 integrations/prometheus.py",
    )


def families_of_pod(pod: dict[str, Any], gateway_config: dict[str, Any] | None) -> tuple[MetricFamily, ...]:
    """Metric families served by the containers of a pod declared in the plan, by image."""
    found = []
    for container in pod.get("containers") or []:
        image = str(container.get("image", ""))
        if image.startswith("vllm/vllm-openai:"):
            found.append(VLLM_METRICS)
        elif "berriai/litellm" in image:
            args = [str(a) for a in container.get("args") or []]
            port = int(args[args.index("--port") + 1]) if "--port" in args[:-1] else 4000  # proxy_cli default
            family = litellm_family(
                gateway_config, port, "https" if "--ssl_certfile_path" in args else "http"
            )
            if family:
                found.append(family)
    return tuple(found)


# -- Helm charts ----------------------------------------------------------------------------------


def _fullname(release: str, chart: str, values: dict[str, Any]) -> str:
    """Helm's common fullname helper (karpenter, dcgm-exporter and prometheus charts use it)."""
    if values.get("fullnameOverride"):
        return values["fullnameOverride"][:63]
    name = values.get("nameOverride") or chart
    return (release if name in release else f"{release}-{name}")[:63]


def _pod(values: dict[str, Any], service_account: str, ports: list[tuple[str, int]], **extra) -> dict:
    pod: dict[str, Any] = {
        "serviceAccountName": service_account,
        "containers": [{"name": "main", "ports": [{"name": n, "containerPort": p} for n, p in ports]}],
    }
    for key in ("nodeSelector", "tolerations", "affinity"):
        if values.get(key):
            pod[key] = values[key]
    pod.update(extra)
    return pod


def _karpenter(release: str, ns: str, values: dict[str, Any]) -> Render:
    # aws/karpenter-provider-aws v1.8.1 charts/karpenter: templates/_helpers.tpl (fullname,
    # selectorLabels, serviceAccountName), deployment.yaml, service.yaml, crds/.
    fullname = _fullname(release, "karpenter", values)
    account = (values.get("serviceAccount") or {}).get("name") or fullname
    labels = {
        "app.kubernetes.io/name": values.get("nameOverride") or "karpenter",
        "app.kubernetes.io/instance": release,
    }
    port = ((values.get("controller") or {}).get("metrics") or {}).get("port", 8080)
    pod = _pod(values, account, [("http-metrics", port), ("http", 8081)])
    return Render(
        workloads=[RenderedWorkload("Deployment", ns, fullname, labels, pod, (KARPENTER_METRICS,))],
        services=[
            RenderedService(
                ns, fullname, labels, [{"name": "http-metrics", "port": port, "targetPort": "http-metrics"}]
            )
        ],
        service_accounts={(ns, account)},
        crds={
            ("karpenter.sh/v1", "NodePool"),
            ("karpenter.sh/v1", "NodeClaim"),
            ("karpenter.sh/v1alpha1", "NodeOverlay"),
            ("karpenter.k8s.aws/v1", "EC2NodeClass"),
        },
    )


def _keda(release: str, ns: str, values: dict[str, Any]) -> Render:
    # kedacore/charts v2.18.1 keda/values.yaml (serviceAccount.*.name, operator.name), templates/crds/,
    # templates/metrics-server/apiservice.yaml (v1beta1.external.metrics.k8s.io).
    accounts = values.get("serviceAccount") or {}
    operator = (accounts.get("operator") or {}).get("name", "keda-operator")
    metric_server = (accounts.get("metricServer") or {}).get("name", "keda-metrics-server")
    webhooks = (accounts.get("webhooks") or {}).get("name", "keda-webhook")
    labels = {"app": "keda-operator", "name": "keda-operator", "app.kubernetes.io/name": "keda-operator"}
    return Render(
        workloads=[RenderedWorkload("Deployment", ns, "keda-operator", labels, _pod(values, operator, []))],
        service_accounts={(ns, operator), (ns, metric_server), (ns, webhooks)},
        crds={
            ("keda.sh/v1alpha1", k)
            for k in ("ScaledObject", "ScaledJob", "TriggerAuthentication", "ClusterTriggerAuthentication")
        },
        apis={"external.metrics.k8s.io"},
    )


def _dcgm_exporter(release: str, ns: str, values: dict[str, Any]) -> Render:
    # NVIDIA/dcgm-exporter 4.4.1-4.6.0 deployment/: templates/_helpers.tpl (selectorLabels),
    # daemonset.yaml (podLabels, port "metrics" = service.port, 9400 by default).
    fullname = _fullname(release, "dcgm-exporter", values)
    name = values.get("nameOverride") or "dcgm-exporter"
    labels = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": release,
        "app.kubernetes.io/component": name,
        **(values.get("podLabels") or {}),
    }
    port = (values.get("service") or {}).get("port", 9400)
    pod = _pod(values, fullname, [("metrics", port)])
    return Render(
        workloads=[RenderedWorkload("DaemonSet", ns, fullname, labels, pod, (DCGM_METRICS,))],
        service_accounts={(ns, fullname)},
    )


def _prometheus(release: str, ns: str, values: dict[str, Any]) -> Render:
    # prometheus-community/helm-charts prometheus-27.28.0 charts/prometheus: templates/_helpers.tpl
    # (prometheus.server.fullname, server matchLabels), values.yaml (server.name "server", service port 80).
    server = values.get("server") or {}
    role = server.get("name", "server")
    base = values.get("nameOverride") or "prometheus"
    fullname = f"{release}-{role}" if base in release else f"{release}-{base}-{role}"
    labels = {
        "app.kubernetes.io/name": base,
        "app.kubernetes.io/instance": release,
        "app.kubernetes.io/component": role,
    }
    pod = _pod(server, fullname, [("", 9090)])
    return Render(
        workloads=[RenderedWorkload("Deployment", ns, fullname, labels, pod)],
        services=[RenderedService(ns, fullname, labels, [{"name": "http", "port": 80, "targetPort": 9090}])],
        service_accounts={(ns, fullname)},
    )


def _device_plugin(release: str, ns: str, values: dict[str, Any]) -> Render:
    # NVIDIA/k8s-device-plugin v0.17.4 deployments/helm/nvidia-device-plugin (a DaemonSet, no Service).
    fullname = _fullname(release, "nvidia-device-plugin", values)
    labels = {"app.kubernetes.io/name": "nvidia-device-plugin", "app.kubernetes.io/instance": release}
    return Render(workloads=[RenderedWorkload("DaemonSet", ns, fullname, labels, _pod(values, fullname, []))])


def _metrics_server(release: str, ns: str, values: dict[str, Any]) -> Render:
    # kubernetes-sigs/metrics-server metrics-server-helm-chart-3.13.1 charts/metrics-server: an
    # APIService v1beta1.metrics.k8s.io served by the Deployment (templates/apiservice.yaml).
    fullname = _fullname(release, "metrics-server", values)
    labels = {"app.kubernetes.io/name": "metrics-server", "app.kubernetes.io/instance": release}
    account = (values.get("serviceAccount") or {}).get("name") or fullname
    pod = _pod(values, account, [("https", values.get("containerPort", 10250))])
    return Render(
        workloads=[RenderedWorkload("Deployment", ns, fullname, labels, pod)],
        service_accounts={(ns, account)},
        apis={"metrics.k8s.io"},
    )


CHARTS = {
    "karpenter": _karpenter,
    "keda": _keda,
    "dcgm-exporter": _dcgm_exporter,
    "prometheus": _prometheus,
    "nvidia-device-plugin": _device_plugin,
    "metrics-server": _metrics_server,
}


def chart_name(inputs: dict[str, Any]) -> str:
    """The chart a Chart resource installs: `keda`, or the last segment of an oci:// reference."""
    return str(inputs.get("chart", "")).rstrip("/").rsplit("/", 1)[-1]


def render_chart(chart: dict[str, Any]) -> Render | None:
    """What a pinned chart creates; None for a chart this module knows nothing about."""
    inputs = chart.get("inputs") or {}
    render = CHARTS.get(chart_name(inputs))
    if render is None:
        return None
    # helm.v4.Chart's release name defaults to the Pulumi resource name.
    release = inputs.get("name") or chart["name"]
    return render(release, inputs.get("namespace") or "default", inputs.get("values") or {})


# -- EKS add-ons ----------------------------------------------------------------------------------

# Container Insights GPU metrics: published by the CloudWatch agent when enhanced_container_insights
# and accelerated_compute_metrics (default true) are on (aws/amazon-cloudwatch-agent, main 2026-08,
# translator/translate/otel/exporter/awsemf/kubernetes.go getGPUMetricDeclarations;
# receiver/awscontainerinsight/utils.go AcceleratedComputeMetricsEnabled). The add-on runs the DCGM
# exporter that feeds them on every node, tolerating every taint (aws-observability/helm-charts
# amazon-cloudwatch-observability 4.6.0 values.yaml: dcgmExporter.enabled, tolerations Exists).
CONTAINER_INSIGHTS_GPU = CloudWatchMetrics(
    "CloudWatch observability add-on (accelerated compute metrics)",
    "ContainerInsights",
    frozenset(
        {
            "node_gpu_utilization",
            "node_gpu_memory_utilization",
            "node_gpu_memory_total",
            "node_gpu_memory_used",
            "node_gpu_power_draw",
            "node_gpu_temperature",
            "node_gpu_tensor_core_utilization",
        }
    ),
    (
        frozenset({"ClusterName"}),
        frozenset({"ClusterName", "NodeName", "InstanceId"}),
        frozenset({"ClusterName", "NodeName", "InstanceId", "InstanceType", "GpuDevice"}),
    ),
    source="aws/amazon-cloudwatch-agent translator/translate/otel/exporter/awsemf/kubernetes.go",
)


# What Container Insights publishes without accelerated compute metrics (a few of its node metrics,
# same file, getNodeMetricDeclarations): enough to tell "no GPU metrics" from "no add-on".
CONTAINER_INSIGHTS_NODES = CloudWatchMetrics(
    "CloudWatch observability add-on",
    "ContainerInsights",
    frozenset({"node_cpu_utilization", "node_memory_utilization", "node_number_of_running_pods"}),
    (frozenset({"ClusterName"}), frozenset({"ClusterName", "NodeName", "InstanceId"})),
    source="aws/amazon-cloudwatch-agent translator/translate/otel/exporter/awsemf/kubernetes.go",
)


def cloudwatch_agent_kubernetes(config: dict[str, Any]) -> dict[str, Any]:
    """The add-on's agent.config.logs.metrics_collected.kubernetes block (empty when unset)."""
    agent = ((config.get("agent") or {}).get("config") or {}) if isinstance(config, dict) else {}
    return ((agent.get("logs") or {}).get("metrics_collected") or {}).get("kubernetes") or {}


def render_addon(name: str, config: dict[str, Any]) -> Render | None:
    if name == "amazon-cloudwatch-observability":
        # Namespace and service account from the add-on's chart (amazon-cloudwatch-observability
        # values.yaml agent.serviceAccount name "cloudwatch-agent", namespace amazon-cloudwatch).
        render = Render(
            namespaces={"amazon-cloudwatch"}, service_accounts={("amazon-cloudwatch", "cloudwatch-agent")}
        )
        kubernetes = cloudwatch_agent_kubernetes(config)
        render.cloudwatch.append(CONTAINER_INSIGHTS_NODES)
        if kubernetes.get("enhanced_container_insights", True) and kubernetes.get(
            "accelerated_compute_metrics", True
        ):
            render.cloudwatch.append(CONTAINER_INSIGHTS_GPU)
        return render
    if name == "aws-ebs-csi-driver":  # kubernetes-sigs/aws-ebs-csi-driver charts: controller and node SAs
        return Render(
            service_accounts={("kube-system", "ebs-csi-controller-sa"), ("kube-system", "ebs-csi-node-sa")}
        )
    if name == "metrics-server":  # the EKS community add-on of the same chart
        return Render(apis={"metrics.k8s.io"})
    if name == "coredns":
        return _coredns(config)
    return None


# The cluster DNS the coredns add-on runs: Deployment kube-system/coredns (service account coredns)
# whose pods carry k8s-app=kube-dns and eks.amazonaws.com/component=coredns and serve DNS on 53/UDP
# ("dns") and 53/TCP ("dns-tcp") and metrics on 9153, behind Service kube-system/kube-dns. Read from
# EKS's default CoreDNS manifest as eksctl ships it (eksctl-io/eksctl pkg/addons/default/assets/
# coredns-1.34.json at 03c9a0a1, image v1.13.2-eksbuild.19: Deployment and pod template labels,
# container ports, service account, tolerations, Service kube-dns selecting k8s-app=kube-dns);
# docs.aws.amazon.com/eks/latest/userguide/managing-coredns.html names the Deployment
# kube-system/coredns. Not checked here, from memory: that the add-on's configuration schema
# (`aws eks describe-addon-configuration --addon-name coredns`) sets replicas, resources,
# tolerations, nodeSelector, affinity and the Corefile, never the labels or ports.
COREDNS_LABELS = {"k8s-app": "kube-dns", "eks.amazonaws.com/component": "coredns"}
COREDNS_PORTS = [
    {"name": "dns", "containerPort": 53, "protocol": "UDP"},
    {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
    {"name": "metrics", "containerPort": 9153, "protocol": "TCP"},
]


def _coredns(config: dict[str, Any]) -> Render:
    pod: dict[str, Any] = {
        "serviceAccountName": "coredns",
        "containers": [{"name": "coredns", "ports": [dict(p) for p in COREDNS_PORTS]}],
        "tolerations": config.get("tolerations")
        or [
            {"key": "CriticalAddonsOnly", "operator": "Exists"},
            {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
        ],
    }
    for key in ("nodeSelector", "affinity"):
        if config.get(key):
            pod[key] = config[key]
    return Render(
        workloads=[RenderedWorkload("Deployment", "kube-system", "coredns", dict(COREDNS_LABELS), pod)],
        services=[
            RenderedService(
                "kube-system",
                "kube-dns",
                {"k8s-app": "kube-dns"},
                [
                    {"name": "dns", "port": 53, "targetPort": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": 53, "protocol": "TCP"},
                    {"name": "metrics", "port": 9153, "targetPort": 9153},
                ],
            )
        ],
        service_accounts={("kube-system", "coredns")},
    )
