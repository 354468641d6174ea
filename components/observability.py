"""Platform metrics: Amazon Managed Service for Prometheus (workspace + AWS-managed scraper) or
an in-cluster Prometheus, the DCGM exporter on GPU nodes, and Container Insights.

Autoscaling (KEDA) reads queue depth from whichever source the stack chose; `metrics` tells
the model-serving component where and how to query, and `grant_query` lets a role read AMP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import yaml

from components import hardening, iam, names
from components.context import AwsContext
from components.gpu_pools import GPU_NODES_ONLY
from llmops import versions

PROMETHEUS_RELEASE = "prometheus"
PROMETHEUS_URL = f"http://{PROMETHEUS_RELEASE}-server.{names.MONITORING_NAMESPACE}.svc.cluster.local"
PROMETHEUS_POD_LABELS = {"app.kubernetes.io/name": "prometheus", "app.kubernetes.io/component": "server"}
SCRAPER_USER = "aps-collector-user"  # the Kubernetes user AWS docs bind the managed scraper to
QUERY_ACTIONS = ["aps:QueryMetrics", "aps:GetSeries", "aps:GetLabels", "aps:GetMetricMetadata"]


@dataclass
class MetricsSource:
    """Where Prometheus queries go: AMP (SigV4-signed, aws_region set) or in-cluster."""

    query_url: pulumi.Output[str]
    aws_region: str | None  # set for AMP: KEDA signs queries with SigV4 in this region
    scraper_cidr: str | None  # AMP scraper ENIs live in the VPC: pods admit it from this range
    in_cluster_pod_labels: dict[str, str] | None  # the in-cluster Prometheus server's labels


@dataclass
class ObservabilityArgs:
    context: AwsContext
    cluster_name: pulumi.Input[str]
    cluster_security_group_id: pulumi.Input[str]
    subnet_ids: list[pulumi.Input[str]]
    k8s_provider: k8s.Provider
    system_nodes: pulumi.Resource


def scrape_configs(interval_seconds: int, dcgm_exporter: bool) -> dict:
    """vLLM pods, DCGM exporter pods (when this component runs the exporter), Karpenter's metrics
    endpoint and opted-in platform apps, by Kubernetes discovery."""

    def pods(job: str, namespace: str, app: str, port: int) -> dict:
        return {
            "job_name": job,
            "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [namespace]}}],
            "relabel_configs": [
                {
                    "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
                    "regex": app,
                    "action": "keep",
                },
                {
                    "source_labels": ["__meta_kubernetes_pod_container_port_number"],
                    "regex": str(port),
                    "action": "keep",
                },
                {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"},
                {
                    "source_labels": ["__meta_kubernetes_pod_label_llmops_io_model"],
                    "target_label": "model",
                },
            ],
        }

    karpenter = {
        "job_name": "karpenter",
        "kubernetes_sd_configs": [
            {"role": "endpoints", "namespaces": {"names": [names.KARPENTER_NAMESPACE]}}
        ],
        "relabel_configs": [
            {
                "source_labels": ["__meta_kubernetes_service_name", "__meta_kubernetes_endpoint_port_name"],
                "regex": f"{names.KARPENTER_RELEASE};{names.KARPENTER_METRICS_PORT_NAME}",
                "action": "keep",
            }
        ],
    }
    # Platform apps (the gateway) opt in with the label llmops.io/scrape=true, name their metrics
    # port in the annotation llmops.io/metrics-port and, when they serve TLS, the scheme in
    # llmops.io/metrics-scheme. The gateway's certificate names its DNS name, not the pod IP the
    # scraper dials, so these targets are scraped encrypted without verifying the name.
    apps = {
        "job_name": "platform-apps",
        "kubernetes_sd_configs": [{"role": "pod"}],
        "tls_config": {"insecure_skip_verify": True},
        "relabel_configs": [
            {
                "source_labels": ["__meta_kubernetes_pod_label_llmops_io_scrape"],
                "regex": "true",
                "action": "keep",
            },
            {
                "source_labels": [
                    "__meta_kubernetes_pod_ip",
                    "__meta_kubernetes_pod_annotation_llmops_io_metrics_port",
                ],
                "regex": "(.+);(\\d+)",
                "replacement": "$1:$2",
                "target_label": "__address__",
            },
            {
                "source_labels": ["__meta_kubernetes_pod_annotation_llmops_io_metrics_scheme"],
                "regex": "(https?)",
                "target_label": "__scheme__",
            },
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        ],
    }
    return {
        "global": {"scrape_interval": f"{interval_seconds}s", "scrape_timeout": "10s"},
        "scrape_configs": [
            pods("vllm", names.MODELS_NAMESPACE, names.VLLM_APP, names.VLLM_PORT),
            *(
                [pods("dcgm-exporter", names.MONITORING_NAMESPACE, names.DCGM_APP, names.DCGM_PORT)]
                if dcgm_exporter
                else []
            ),
            karpenter,
            apps,
        ],
    }


def metrics_server_requests(nodes: int) -> dict:
    """metrics-server's requests for a cluster of at most `nodes` nodes: its README (chart 3.13.1)
    gives "1 mili core of CPU and 2 MB of memory for each node", sizes the chart's 100m/200Mi
    default for up to 100 nodes and adds 1m and 2 MiB per node beyond; here the per-node figures
    above a floor for the process itself (50m, 64 MiB), so a small cluster does not hold 200 MiB."""
    cpu, memory = 50 + nodes, 64 + 2 * nodes
    return {
        "requests": {"cpu": f"{cpu}m", "memory": f"{memory}Mi"},
        "limits": {"cpu": "500m", "memory": f"{max(400, 2 * memory)}Mi"},
    }


class Observability(pulumi.ComponentResource):
    metrics: MetricsSource
    workspace_arn: pulumi.Output[str] | None
    namespace: k8s.core.v1.Namespace

    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:observability:Observability", name, None, opts)
        ctx, cfg = args.context, args.context.settings.observability
        self._name, self._ctx, self._args = name, ctx, args
        self._k8s = pulumi.ResourceOptions(parent=self, provider=args.k8s_provider)
        # DCGM exporter reads GPU counters through the host: privileged workloads live here.
        self.namespace = hardening.namespace(
            f"{name}-namespace", names.MONITORING_NAMESPACE, ctx.settings.data_classification,
            hardening.PRIVILEGED_NAMESPACE_LABELS, self._k8s,
        )  # fmt: skip
        self._workspace: aws.amp.Workspace | None = None
        # GPU telemetry: with Container Insights, the add-on's own DCGM exporter feeds CloudWatch
        # (node_gpu_utilization, read by the idle-GPU detector); a second exporter on the same GPUs
        # would double the load. Without it, this component's exporter feeds Prometheus.
        self.gpu_metrics_in_cloudwatch = cfg.container_insights
        scrape = scrape_configs(cfg.scrape_interval_seconds, dcgm_exporter=not cfg.container_insights)
        if cfg.metrics_source == "amp":
            self._workspace = self._amp(scrape)
            self.workspace_arn = self._workspace.arn
            self.metrics = MetricsSource(
                query_url=self._workspace.prometheus_endpoint.apply(lambda u: u.rstrip("/")),
                aws_region=ctx.region,
                scraper_cidr=ctx.settings.network.cidr,
                in_cluster_pod_labels=None,
            )
        else:
            self._in_cluster_prometheus(scrape)
            self.workspace_arn = None
            self.metrics = MetricsSource(
                query_url=pulumi.Output.from_input(PROMETHEUS_URL),
                aws_region=None,
                scraper_cidr=None,
                in_cluster_pod_labels=PROMETHEUS_POD_LABELS,
            )
        self._metrics_server()
        if cfg.container_insights:
            self._container_insights()
        else:
            self._dcgm_exporter()
        self.register_outputs({"workspace_arn": self.workspace_arn, "query_url": self.metrics.query_url})

    def grant_query(self, name: str, role: aws.iam.Role) -> None:
        """Let `role` run PromQL queries against the AMP workspace (nothing to grant in-cluster)."""
        if self._workspace is None:
            return
        aws.iam.RolePolicy(
            name,
            role=role.id,
            policy=iam.document_output(iam.allow(QUERY_ACTIONS, self._workspace.arn)),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _amp(self, config: dict) -> aws.amp.Workspace:
        ctx, args, child = self._ctx, self._args, pulumi.ResourceOptions(parent=self)
        # AMP encrypts every workspace at rest with an AWS-owned key. No customer key: that
        # managed collectors write to customer-key workspaces is unconfirmed (docs/serving.md).
        workspace = aws.amp.Workspace(f"{self._name}-amp", alias=ctx.settings.name_prefix, opts=child)
        cluster_arn = pulumi.Output.from_input(args.cluster_name).apply(
            lambda n: ctx.arn("eks", f"cluster/{n}")
        )
        scraper = aws.amp.Scraper(
            f"{self._name}-scraper",
            alias=ctx.settings.name_prefix,
            source={
                "eks": {
                    "cluster_arn": cluster_arn,
                    "subnet_ids": args.subnet_ids,
                    # The cluster security group, as the AMP docs prescribe: it admits itself, so the
                    # scraper reaches the API server (service discovery) and every pod on the nodes.
                    "security_group_ids": [args.cluster_security_group_id],
                }
            },
            destination={"amp": {"workspace_arn": workspace.arn}},
            scrape_configuration=yaml.safe_dump(config, sort_keys=False),
            opts=child,
        )
        self._scraper_rbac(scraper)
        return workspace

    def _scraper_rbac(self, scraper: aws.amp.Scraper) -> None:
        """The scraper discovers targets through the Kubernetes API as a read-only user
        (docs.aws.amazon.com/prometheus/latest/userguide/AMP-collector-how-to.html)."""
        role = k8s.rbac.v1.ClusterRole(
            f"{self._name}-scraper-role",
            metadata={"name": "aps-collector-role"},
            rules=[
                {
                    "apiGroups": [""],
                    "resources": ["nodes", "nodes/proxy", "nodes/metrics", "services", "endpoints", "pods"],
                    "verbs": ["get", "list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["get", "list", "watch"],
                },
                {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
            ],
            opts=self._k8s,
        )
        k8s.rbac.v1.ClusterRoleBinding(
            f"{self._name}-scraper-binding",
            metadata={"name": "aps-collector-user-role-binding"},
            role_ref={
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role.metadata["name"],
            },
            subjects=[{"kind": "User", "name": SCRAPER_USER, "apiGroup": "rbac.authorization.k8s.io"}],
            opts=self._k8s,
        )
        aws.eks.AccessEntry(
            f"{self._name}-scraper-access",
            cluster_name=self._args.cluster_name,
            principal_arn=scraper.role_arn,
            user_name=SCRAPER_USER,
            type="STANDARD",
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _in_cluster_prometheus(self, config: dict) -> None:
        cfg = self._ctx.settings.observability
        k8s.helm.v4.Chart(
            f"{self._name}-prometheus",
            name=PROMETHEUS_RELEASE,
            chart=versions.PROMETHEUS.name,
            version=versions.PROMETHEUS.version,
            repository_opts={"repo": versions.PROMETHEUS.repo},
            namespace=names.MONITORING_NAMESPACE,
            values={
                "alertmanager": {"enabled": False},
                "prometheus-pushgateway": {"enabled": False},
                "prometheus-node-exporter": {"enabled": False},
                "kube-state-metrics": {"enabled": True},
                "server": {
                    "retention": f"{cfg.prometheus_retention_days}d",
                    "persistentVolume": {
                        "enabled": True,
                        "size": f"{cfg.prometheus_volume_gib}Gi",
                        "storageClass": "gp3-encrypted",
                    },
                    "nodeSelector": {"llmops.io/node-role": "system"},
                    "resources": cfg.prometheus_server.resources(),
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "fsGroup": 65534},
                    "global": config["global"],
                },
                # Only the platform's jobs: vLLM, DCGM exporter and Karpenter.
                "serverFiles": {"prometheus.yml": {"scrape_configs": config["scrape_configs"]}},
            },
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=self._args.k8s_provider,
                depends_on=[self.namespace, self._args.system_nodes],
            ),
        )

    def _dcgm_exporter(self) -> None:
        k8s.helm.v4.Chart(
            f"{self._name}-dcgm-exporter",
            name=names.DCGM_APP,
            chart=versions.DCGM_EXPORTER.name,
            version=versions.DCGM_EXPORTER.version,
            repository_opts={"repo": versions.DCGM_EXPORTER.repo},
            namespace=names.MONITORING_NAMESPACE,
            values={
                **GPU_NODES_ONLY,
                "serviceMonitor": {"enabled": False},  # scraped by pod discovery, no operator CRDs
                "podLabels": {"app.kubernetes.io/name": names.DCGM_APP},
                "resources": {
                    "requests": {"cpu": "100m", "memory": "512Mi"},
                    "limits": {"cpu": "500m", "memory": "1Gi"},
                },
            },
            opts=pulumi.ResourceOptions(
                parent=self, provider=self._args.k8s_provider, depends_on=[self.namespace]
            ),
        )

    def _metrics_server(self) -> None:
        """metrics-server serves the resource metrics API (metrics.k8s.io) that CPU-based
        HorizontalPodAutoscalers (the gateway's) read; EKS installs none. Its requests follow the
        most nodes the stack can have (metrics_server_requests)."""
        chart = versions.METRICS_SERVER
        settings = self._ctx.settings
        nodes = settings.cluster.system_nodes.max_size + sum(p.max_gpus for p in settings.gpu_pools)
        k8s.helm.v4.Chart(
            f"{self._name}-metrics-server",
            name="metrics-server",
            chart=chart.name,
            version=chart.version,
            repository_opts={"repo": chart.repo},
            namespace=names.SYSTEM_NAMESPACE,
            values={
                "nodeSelector": {"llmops.io/node-role": "system"},
                "resources": metrics_server_requests(nodes),
            },
            opts=pulumi.ResourceOptions(
                parent=self, provider=self._args.k8s_provider, depends_on=[self._args.system_nodes]
            ),
        )

    def _container_insights(self) -> None:
        ctx = self._ctx
        role, _ = iam.role(
            f"{self._name}-cloudwatch-role",
            iam.pod_identity_trust(ctx.account_id),
            ["CloudWatchAgentServerPolicy"],
            ctx.partition,
            self,
        )
        aws.eks.Addon(
            f"{self._name}-cloudwatch-observability",
            cluster_name=self._args.cluster_name,
            addon_name="amazon-cloudwatch-observability",
            addon_version=versions.CLOUDWATCH_OBSERVABILITY_ADDON,
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            pod_identity_associations=[{"service_account": "cloudwatch-agent", "role_arn": role.arn}],
            # GPU utilisation per node and device in CloudWatch (ContainerInsights node_gpu_*), which
            # the idle-GPU detector reads; the add-on runs its DCGM exporter on the GPU nodes.
            configuration_values=json.dumps(
                {
                    "agent": {
                        "config": {
                            "logs": {
                                "metrics_collected": {
                                    "kubernetes": {
                                        "enhanced_container_insights": True,
                                        "accelerated_compute_metrics": True,
                                    }
                                }
                            }
                        }
                    }
                }
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self._args.system_nodes]),
        )
