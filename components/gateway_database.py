"""The gateway's in-cluster PostgreSQL (gateway.database.engine in-cluster): one pod of the official
image on an encrypted gp3 volume, in the gateway's namespace, admitting only the gateway's pods.

For public and internal stacks that want LiteLLM's keys, teams and budgets without an RDS instance
(dev): no backups and no standby, so a lost volume loses the keys and budgets (they are re-created by
the team reconciler from the team files; spend history stays in the spend-logs bucket).
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components import hardening
from llmops import versions

APP = "litellm-postgres"
PORT = 5432
POSTGRES_UID = 70  # the image's postgres user (docker-library/postgres 17/alpine3.22/Dockerfile)
PASSWORD_SECRET = "litellm-postgres"
DATA_DIR = "/var/lib/postgresql/data"
# A directory below the volume's root: initdb refuses a non-empty directory (ext4's lost+found).
PGDATA = f"{DATA_DIR}/pgdata"
SELECTOR = {"app.kubernetes.io/name": APP}
LABELS = {
    **SELECTOR,
    "app.kubernetes.io/component": "gateway-database",
    "app.kubernetes.io/part-of": "llmops",
}


def in_cluster_database(
    name: str,
    *,
    namespace: pulumi.Input[str],
    database: str,
    user: str,
    password: pulumi.Input[str],
    clients: dict[str, str],
    settings,
    protect: bool,
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.Service:
    """The StatefulSet, its password Secret, a ClusterIP Service and a NetworkPolicy admitting the
    pods labelled `clients` on 5432. Returns the Service (clients derive the host from it)."""
    meta = {"namespace": namespace, "labels": LABELS}
    secret = k8s.core.v1.Secret(
        f"{name}-secret",
        metadata={**meta, "name": PASSWORD_SECRET},
        type="Opaque",
        string_data={"password": pulumi.Output.secret(password)},
        opts=opts,
    )
    ready = {
        "exec": {"command": ["pg_isready", "-h", "127.0.0.1", "-p", str(PORT), "-U", user, "-d", database]}
    }
    container = {
        "name": "postgres",
        "image": versions.GATEWAY_POSTGRES_IMAGE,
        "imagePullPolicy": "Always",  # re-resolve the tag at each start: a moved tag is noticed
        # Small buffers: LiteLLM's keys, teams and budgets are a few MB.
        "args": ["-c", "shared_buffers=32MB", "-c", "max_connections=50"],
        "env": [
            {"name": "POSTGRES_USER", "value": user},
            {"name": "POSTGRES_DB", "value": database},
            # Read by the image's entrypoint at first start (initdb); a file, not an env value.
            {"name": "POSTGRES_PASSWORD_FILE", "value": "/etc/postgres/password"},
            {"name": "PGDATA", "value": PGDATA},
        ],
        "ports": [{"name": "postgres", "containerPort": PORT, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": settings.cpu, "memory": f"{settings.memory_mib}Mi"},
            "limits": {"cpu": "1", "memory": f"{settings.memory_limit_mib}Mi"},
        },
        "startupProbe": {**ready, "periodSeconds": 5, "failureThreshold": 60},
        "readinessProbe": {**ready, "periodSeconds": 10, "timeoutSeconds": 5},
        "livenessProbe": {**ready, "periodSeconds": 20, "timeoutSeconds": 5, "failureThreshold": 6},
        "securityContext": hardening.container_security(POSTGRES_UID),
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_DIR},
            {"name": "run", "mountPath": "/var/run/postgresql"},  # socket and lock file
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "password", "mountPath": "/etc/postgres", "readOnly": True},
        ],
    }
    statefulset = k8s.apps.v1.StatefulSet(
        f"{name}-statefulset",
        metadata={**meta, "name": APP},
        spec={
            "serviceName": APP,
            "replicas": 1,
            "selector": {"matchLabels": SELECTOR},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": hardening.pod_security(POSTGRES_UID),
                    # SIGINT (the image's STOPSIGNAL) is a fast shutdown: leave it time to flush.
                    "terminationGracePeriodSeconds": 60,
                    "containers": [container],
                    "volumes": [
                        {"name": "run", "emptyDir": {"sizeLimit": "16Mi"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                        {
                            "name": "password",
                            "secret": {
                                "secretName": PASSWORD_SECRET,
                                "items": [{"key": "password", "path": "password"}],
                                "defaultMode": 0o440,
                            },
                        },
                    ],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data", "labels": LABELS},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": "gp3-encrypted",
                        "resources": {"requests": {"storage": f"{settings.volume_gib}Gi"}},
                    },
                }
            ],
        },
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=protect, depends_on=[secret])),
    )
    service = k8s.core.v1.Service(
        f"{name}-service",
        metadata={**meta, "name": APP},
        spec={
            "type": "ClusterIP",
            "selector": SELECTOR,
            "ports": [{"name": "postgres", "port": PORT, "targetPort": "postgres", "protocol": "TCP"}],
        },
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[statefulset])),
    )
    k8s.networking.v1.NetworkPolicy(
        f"{name}-netpol",
        metadata={**meta, "name": APP},
        spec={
            "podSelector": {"matchLabels": SELECTOR},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": clients}}],
                    "ports": [{"protocol": "TCP", "port": PORT}],
                }
            ],
        },
        opts=opts,
    )
    return service
