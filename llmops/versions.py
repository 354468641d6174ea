"""Every pinned version in one place: Kubernetes, EKS add-ons, Helm charts, images, AMIs.

Bump deliberately, one row at a time, after reading the upstream release notes. Add-on
versions are per Kubernetes minor version (`aws eks describe-addon-versions
--kubernetes-version X.Y --addon-name NAME`). The 1.34 row was checked against the EKS
CoreDNS/kube-proxy add-on pages and awslabs/cdk-eks-blueprints' per-version tables (2025-11);
re-check with the command above before a first real deploy.
"""

from __future__ import annotations

from dataclasses import dataclass

# EKS add-on versions, by Kubernetes minor version.
EKS_ADDONS: dict[str, dict[str, str]] = {
    "1.34": {
        "vpc-cni": "v1.20.4-eksbuild.2",
        "coredns": "v1.12.4-eksbuild.1",
        "kube-proxy": "v1.34.0-eksbuild.2",
        "eks-pod-identity-agent": "v1.3.10-eksbuild.2",
        "aws-ebs-csi-driver": "v1.56.0-eksbuild.1",
    },
}
SUPPORTED_KUBERNETES_VERSIONS = sorted(EKS_ADDONS)


@dataclass(frozen=True)
class Chart:
    name: str
    version: str
    repo: str  # an https Helm repository, or an oci:// registry path (then name is empty)

    @property
    def ref(self) -> str:
        return self.repo if self.repo.startswith("oci://") else self.name


# Karpenter 1.8 supports Kubernetes 1.34 (karpenter.sh/docs/upgrading/compatibility).
KARPENTER = Chart("karpenter", "1.8.1", "oci://public.ecr.aws/karpenter/karpenter")
NVIDIA_DEVICE_PLUGIN = Chart("nvidia-device-plugin", "0.17.4", "https://nvidia.github.io/k8s-device-plugin")

# Karpenter AMI aliases for GPU nodes: Karpenter resolves the NVIDIA variant of the release
# for GPU instance types. Pinned, never @latest, so nodes change only when this line does.
GPU_NODE_AMI_ALIASES = {
    "Bottlerocket": "bottlerocket@v1.49.0",
    "AL2023": "al2023@v20251112",
}

# The NAT instance's image (network.natGateways instance): Amazon Linux 2023, arm64, kernel 6.1,
# looked up by its exact name among Amazon's own images, so it changes only when this line does.
# Amazon publishes each release in every region under this name; an opt-in region may lag.
NAT_INSTANCE_AMI_OWNER = "amazon"
NAT_INSTANCE_AMI_NAME = "al2023-ami-2023.12.20260930.0-kernel-6.1-arm64"

# --- Model serving, observability and the vector database ------------------------------------
# vLLM's OpenAI-compatible server image; it ships the Run:ai model streamer (runai_streamer load
# format, S3 support) and runs as root (the image defines no user: see docs/serving.md).
VLLM_IMAGE = "vllm/vllm-openai:v0.11.0"
# KEDA 2.19 is tested on Kubernetes 1.32-1.34 (keda.sh/docs/2.19/operate/cluster; 2.18 stopped at 1.33).
KEDA = Chart("keda", "2.19.0", "https://kedacore.github.io/charts")
# The chart deploys nvcr.io/nvidia/k8s/dcgm-exporter:4.4.1-4.6.0-ubuntu22.04.
DCGM_EXPORTER = Chart("dcgm-exporter", "4.6.0", "https://nvidia.github.io/dcgm-exporter/helm-charts")
# In-cluster Prometheus, only where the stack says metricsSource: prometheus.
PROMETHEUS = Chart("prometheus", "27.28.0", "https://prometheus-community.github.io/helm-charts")
# metrics-server (app v0.8.1) for the resource metrics API behind CPU-based HPAs
# (kubernetes-sigs/metrics-server tag metrics-server-helm-chart-3.13.1, charts/metrics-server).
METRICS_SERVER = Chart("metrics-server", "3.13.1", "https://kubernetes-sigs.github.io/metrics-server/")
# The CloudWatch observability add-on (Container Insights); Pod Identity needs >= v3.1.0.
CLOUDWATCH_OBSERVABILITY_ADDON = "v4.6.0-eksbuild.1"
# The -unprivileged variant runs without root (the default image runs as root). 1.16 stores collection
# metadata, where the freshness exporter keeps each collection's objective and embedding model;
# keep the minor in step with qdrant-client in requirements.txt and requirements-exporter.txt.
QDRANT_IMAGE = "qdrant/qdrant:v1.16.2-unprivileged"
# The snapshot CronJob: a stdlib-only Python step asks Qdrant for snapshots, the AWS CLI uploads.
SNAPSHOT_PYTHON_IMAGE = "python:3.13.9-slim"
AWS_CLI_IMAGE = "amazon/aws-cli:2.31.30"

# --- Gateway ------------------------------------------------------------------------------------
# LiteLLM proxy image; keep in step with litellm[proxy]==1.100.5 in requirements-test.txt, which
# the real-proxy tests run. Since 1.84.0 LiteLLM tags releases plainly (v1.84.0, no -stable
# suffix; docs.litellm.ai/blog/cleaner-release-versions), the same tag on litellm,
# litellm-database and litellm-non_root. The non_root variant runs as a non-root user, which the
# gateway's securityContext (runAsNonRoot) requires.
LITELLM_IMAGE = "ghcr.io/berriai/litellm-non_root:v1.100.5"
LITELLM_VERSION = "1.100.5"

# RDS PostgreSQL of the gateway (keys, teams, budgets): the major version only. Minor versions
# come from RDS's automatic minor upgrades (security fixes); pinning a minor would make every
# such upgrade show as drift and a downgrade attempt. 17.7 was current in 2026
# (docs.aws.amazon.com/AmazonRDS/latest/PostgreSQLReleaseNotes/postgresql-versions.html).
GATEWAY_POSTGRES_VERSION = "17"
# The in-cluster PostgreSQL (gateway.database.engine in-cluster): the official image's Alpine
# variant, multi-arch (amd64, arm64), whose postgres user is uid 70, socket directory
# /var/run/postgresql, PGDATA /var/lib/postgresql/data (docker-library/postgres
# 17/alpine3.22/Dockerfile, PG_VERSION 17.6). 17 like the RDS engine; 18 moved PGDATA.
GATEWAY_POSTGRES_IMAGE = "postgres:17.6-alpine3.22"
# ElastiCache Serverless for Valkey (the gateway's response cache): the major version; AWS applies
# minor versions and patches itself. Serverless caches offer Valkey 7 and 8
# (docs.aws.amazon.com/AmazonElastiCache/latest/dg/engine-versions.html).
GATEWAY_VALKEY_MAJOR_VERSION = "8"
