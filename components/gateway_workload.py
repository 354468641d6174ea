"""Kubernetes objects of the LiteLLM gateway, as plain specs (values may be Pulumi Inputs).

Kept apart from components/gateway.py so the pod spec, probes and hardening can be read (and
tested) without the AWS resources around them.
"""

from __future__ import annotations

import hashlib
from typing import Any

from llmops import versions

APP = "litellm"
PORT = 4000  # LiteLLM's default proxy port; it serves HTTPS there (gateway_tls.py)
SERVICE_PORT = 443
CONFIG_DIR = "/etc/litellm"
TLS_DIR = "/etc/litellm/tls"
# Start-up copies the database migrations here (a writable volume: the root is read-only).
MIGRATION_DIR = "/var/lib/litellm/migrations"
LABELS = {
    "app.kubernetes.io/name": APP,
    "app.kubernetes.io/component": "gateway",
    "app.kubernetes.io/part-of": "llmops",
    "llmops.io/scrape": "true",  # the platform-apps scrape job keeps these pods (observability.py)
}
# LiteLLM's /metrics (the prometheus callback) on the proxy port, over TLS.
METRICS_ANNOTATIONS = {"llmops.io/metrics-port": str(PORT), "llmops.io/metrics-scheme": "https"}
SELECTOR = {"app.kubernetes.io/name": APP}
CONFIG_KEY = "config.yaml"
NOBODY = 65534


def config_map_key(path: str) -> str:
    """The ConfigMap key of a file the config directory holds at `path` (keys take no '/')."""
    return path.replace("/", ".")


def config_volume(config_map: Any, files: list[str]) -> dict:
    """config.yaml at the top of the config directory, each side file at its own path below it
    (a ConfigMap volume projects keys to paths with `items`)."""
    items = [{"key": CONFIG_KEY, "path": CONFIG_KEY}]
    items += [{"key": config_map_key(f), "path": f} for f in sorted(files)]
    return {"name": "config", "configMap": {"name": config_map, "items": items}}


def checksum(text: str) -> str:
    """Pod-template annotation: a changed config or certificate changes the template and rolls the
    pods (LiteLLM reads both only at start)."""
    return hashlib.sha256(text.encode()).hexdigest()


def pod_template(
    *,
    service_account: str,
    config_map: str,
    env_secret: str,
    tls_secret: str,
    plain_env: dict[str, Any],
    config_checksum: str,
    certificate_checksum: Any,
    cpu_request: str,
    cpu_limit: str,
    memory_mib: int,
    config_files: tuple[str, ...] = (),
) -> dict:
    env = [{"name": k, "value": v} for k, v in {**plain_env, "LITELLM_MIGRATION_DIR": MIGRATION_DIR}.items()]
    # The kubelet does not verify the certificate of an HTTPS probe.
    probe = {
        "httpGet": {"path": "/health/liveliness", "port": "https", "scheme": "HTTPS"},
        "timeoutSeconds": 5,
    }
    annotations = {
        **METRICS_ANNOTATIONS,
        "checksum/config": config_checksum,
        "checksum/certificate": certificate_checksum,
    }
    return {
        "metadata": {"labels": LABELS, "annotations": annotations},
        "spec": {
            "serviceAccountName": service_account,
            # EKS Pod Identity injects its own projected token; the API token is not needed.
            "automountServiceAccountToken": False,
            # The litellm-non_root image runs as `nobody` (65534 on its Wolfi base, which owns
            # /app; docker/Dockerfile.non_root), and since 1.90.6 its prisma engines sit in
            # /opt/prisma, readable by any uid. Pinning the uid keeps it off root for good.
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": NOBODY,
                "runAsGroup": NOBODY,
                "fsGroup": NOBODY,  # the TLS key is readable by the group only
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": SELECTOR},
                }
            ],
            "containers": [
                {
                    "name": APP,
                    "image": versions.LITELLM_IMAGE,
                    "imagePullPolicy": "Always",  # re-resolve the tag at each start: a moved tag is noticed
                    "args": [
                        "--config",
                        f"{CONFIG_DIR}/{CONFIG_KEY}",
                        "--port",
                        str(PORT),
                        "--host",
                        "0.0.0.0",
                        "--ssl_certfile_path",
                        f"{TLS_DIR}/tls.crt",
                        "--ssl_keyfile_path",
                        f"{TLS_DIR}/tls.key",
                    ],
                    "ports": [{"name": "https", "containerPort": PORT, "protocol": "TCP"}],
                    "env": env,
                    "envFrom": [{"secretRef": {"name": env_secret}}],
                    "resources": {
                        "requests": {"cpu": cpu_request, "memory": f"{memory_mib}Mi"},
                        # Memory limit = request: a leak gets the pod restarted, not the node starved.
                        "limits": {"cpu": cpu_limit, "memory": f"{memory_mib}Mi"},
                    },
                    # Start-up loads the cost map, the router and the database schema: allow 5 min.
                    "startupProbe": {**probe, "periodSeconds": 5, "failureThreshold": 60},
                    "livenessProbe": {**probe, "periodSeconds": 15, "failureThreshold": 3},
                    "readinessProbe": {
                        "httpGet": {"path": "/health/readiness", "port": "https", "scheme": "HTTPS"},
                        "periodSeconds": 10,
                        "timeoutSeconds": 5,
                        "failureThreshold": 3,
                    },
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "privileged": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [
                        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                        {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
                        {"name": "tmp", "mountPath": "/tmp"},  # uvicorn and prisma scratch space
                        {"name": "migrations", "mountPath": MIGRATION_DIR},
                    ],
                }
            ],
            "volumes": [
                config_volume(config_map, list(config_files)),
                {"name": "tls", "secret": {"secretName": tls_secret, "defaultMode": 0o440}},
                {"name": "tmp", "emptyDir": {"sizeLimit": "512Mi"}},
                {"name": "migrations", "emptyDir": {"sizeLimit": "64Mi"}},
            ],
        },
    }


def internal_service_annotations() -> dict[str, str]:
    """An internal NLB only. The platform installs no AWS Load Balancer Controller, so EKS's own
    cloud controller provisions it (type nlb, `internal`); the controller's `scheme` annotation
    says the same, so installing the controller later cannot make it public either."""
    return {
        "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
        "service.beta.kubernetes.io/aws-load-balancer-internal": "true",
        "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
    }


def hpa_spec(deployment: str, min_replicas: int, max_replicas: int) -> dict:
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        "metrics": [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
            }
        ],
    }


def network_policy_spec(vpc_cidr: str) -> dict:
    """Ingress only on the proxy port, from addresses in the VPC: the nodes forwarding the internal
    NLB's traffic (kube-proxy), pods (VPC addresses from the VPC CNI) and the metrics scraper.
    Egress stays open: models, AWS endpoints and external providers live at many addresses."""
    return {
        "podSelector": {"matchLabels": SELECTOR},
        "policyTypes": ["Ingress"],
        "ingress": [
            {"from": [{"ipBlock": {"cidr": vpc_cidr}}], "ports": [{"protocol": "TCP", "port": PORT}]}
        ],
    }
