"""Kubernetes objects of the LiteLLM gateway, as plain specs (values may be Pulumi Inputs).

Kept apart from components/gateway.py so the pod spec, probes and hardening can be read (and
tested) without the AWS resources around them.
"""

from __future__ import annotations

import hashlib
from typing import Any

from llmops import versions

APP = "litellm"
PORT = 4000  # LiteLLM's default proxy port
CONFIG_DIR = "/etc/litellm"
LABELS = {
    "app.kubernetes.io/name": APP,
    "app.kubernetes.io/component": "gateway",
    "app.kubernetes.io/part-of": "llmops",
}
SELECTOR = {"app.kubernetes.io/name": APP}
CONFIG_KEY = "config.yaml"
NOBODY = 65534


def config_checksum(config_yaml: str) -> str:
    """Pod-template annotation: a config change changes the template and rolls the pods."""
    return hashlib.sha256(config_yaml.encode()).hexdigest()


def pod_template(
    *,
    service_account: str,
    config_map: str,
    env_secret: str,
    plain_env: dict[str, Any],
    checksum: str,
    cpu_request: str,
    cpu_limit: str,
    memory_mib: int,
) -> dict:
    env = [{"name": k, "value": v} for k, v in plain_env.items()]
    probe = {"httpGet": {"path": "/health/liveliness", "port": "http"}, "timeoutSeconds": 5}
    return {
        "metadata": {"labels": LABELS, "annotations": {"checksum/config": checksum}},
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
                    ],
                    "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
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
                        "httpGet": {"path": "/health/readiness", "port": "http"},
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
                        {"name": "tmp", "mountPath": "/tmp"},  # uvicorn and prisma scratch space
                    ],
                }
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": config_map}},
                {"name": "tmp", "emptyDir": {"sizeLimit": "512Mi"}},
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
    """Ingress only on the proxy port, from addresses in the VPC (the internal NLB with IP
    targets, and pods, which get VPC addresses from the VPC CNI). Egress stays open: models,
    AWS endpoints and external providers live at many addresses."""
    return {
        "podSelector": {"matchLabels": SELECTOR},
        "policyTypes": ["Ingress"],
        "ingress": [
            {"from": [{"ipBlock": {"cidr": vpc_cidr}}], "ports": [{"protocol": "TCP", "port": PORT}]}
        ],
    }
