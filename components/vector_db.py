"""Qdrant: a StatefulSet on encrypted, retained gp3 volumes, an API key from Secrets Manager,
a NetworkPolicy admitting only labelled clients, and snapshots to a KMS-encrypted bucket."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components import hardening, iam, names
from components.context import AwsContext
from components.s3 import PrivateBucket, private_bucket
from components.secrets import generated_secret
from llmops import versions

APP = "qdrant"
CLIENT_LABEL = "llmops.io/qdrant-client"
HTTP, GRPC, P2P = 6333, 6334, 6335
QDRANT_UID = 10001
HEADLESS = f"{APP}-headless"
API_KEY_SECRET = "qdrant-api-key"
SNAPSHOT_SCRIPT = Path(__file__).with_name("qdrant_snapshot.py")
NS = names.VECTOR_DB_NAMESPACE
# Peers find each other through the headless Service; the first pod starts the cluster.
START = (
    'ordinal="${HOSTNAME##*-}"; self="http://${HOSTNAME}.' + f"{HEADLESS}:{P2P}" + '"; '
    'if [ "$ordinal" = "0" ]; then exec ./qdrant --uri "$self"; '
    f'else exec ./qdrant --bootstrap "http://{APP}-0.{HEADLESS}:{P2P}" --uri "$self"; fi'
)


def hs256_token(claims: dict, key: str) -> str:
    """A JSON Web Token signed with HMAC-SHA256 (RFC 7519), as Qdrant verifies them."""

    def encode(part: bytes) -> str:
        return base64.urlsafe_b64encode(part).rstrip(b"=").decode()

    header = encode(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = encode(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    signature = hmac.new(key.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{encode(signature)}"


@dataclass
class VectorDbArgs:
    context: AwsContext
    cluster_name: pulumi.Input[str]
    k8s_provider: k8s.Provider


SNAPSHOTS_PREFIX = "snapshots/"  # only snapshots expire; other keys (the exporter's code) are kept


class VectorDb(pulumi.ComponentResource):
    url: str
    api_key_secret_arn: pulumi.Output[str]
    backups_bucket: pulumi.Output[str]
    backups: PrivateBucket
    """The backups bucket and its key (the freshness exporter's packages live under code/)."""
    namespace: k8s.core.v1.Namespace

    def __init__(self, name: str, args: VectorDbArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:vectordb:VectorDb", name, None, opts)
        ctx, cfg = args.context, args.context.settings.vector_db
        self._name, self._ctx, self._args = name, ctx, args
        self._labels = {"app.kubernetes.io/name": APP, "app.kubernetes.io/part-of": "llmops"}

        key = ctx.kms_key(f"{name}-key", "Qdrant snapshots and API key", self)
        backups = private_bucket(
            f"{name}-backups",
            parent=self,
            key=key,
            protect=ctx.protect,
            access_logs=ctx.access_logs,
            expire_after_days=cfg.snapshot_retention_days,
            expire_prefix=SNAPSHOTS_PREFIX,
            noncurrent_days=7,
        )
        self.backups_bucket, self.backups = backups.name, backups

        self.namespace = namespace = hardening.namespace(
            f"{name}-namespace", NS, ctx.settings.data_classification, hardening.RESTRICTED_NAMESPACE_LABELS,
            pulumi.ResourceOptions(parent=self, provider=args.k8s_provider),
        )  # fmt: skip
        self._k8s = pulumi.ResourceOptions(parent=self, provider=args.k8s_provider, depends_on=[namespace])

        api_key, secret = generated_secret(
            f"{name}-api-key", f"{ctx.settings.name_prefix}/qdrant-api-key", key, ctx, self
        )
        self.api_key_secret_arn = secret.arn
        k8s.core.v1.Secret(
            f"{name}-api-key-k8s",
            metadata={"name": API_KEY_SECRET, "namespace": NS, "labels": self._labels},
            type="Opaque",
            # Files, not environment variables: Qdrant reads config/local.yaml on top of its
            # defaults; clients and the snapshot job read api-key. jwt_rbac: tokens signed with the
            # key and listing collections give teams access to their own collections only
            # (qdrant.tech/documentation/guides/security, "Granular access control with JWT", v1.9+).
            string_data={
                "api-key": api_key,
                "local.yaml": api_key.apply(lambda key: f"service:\n  api_key: {key}\n  jwt_rbac: true\n"),
            },
            opts=self._k8s,
        )

        self._services()
        self._statefulset(cfg)
        self._network_policies()
        self._snapshots(cfg, backups, key)
        self.url = f"http://{APP}.{NS}.svc.cluster.local:{HTTP}"
        self._api_key = api_key
        self.register_outputs({"url": self.url, "backups_bucket": self.backups_bucket})

    def collection_token(self, collections: list[str]) -> pulumi.Output[str]:
        """A Qdrant JWT (HS256, signed with the API key) granting read-write on these collections
        only, without expiry: rotating the API key revokes it."""
        access = [{"collection": c, "access": "rw"} for c in collections]
        return pulumi.Output.secret(self._api_key.apply(lambda key: hs256_token({"access": access}, key)))

    def _ports(self, p2p: bool = True) -> list[dict]:
        ports = [{"name": "http", "port": HTTP}, {"name": "grpc", "port": GRPC}]
        if p2p:
            ports.append({"name": "p2p", "port": P2P})
        return [{**p, "targetPort": p["name"], "protocol": "TCP"} for p in ports]

    def _services(self) -> None:
        selector = {"app.kubernetes.io/name": APP}
        k8s.core.v1.Service(
            f"{self._name}-headless",
            metadata={"name": HEADLESS, "namespace": NS, "labels": self._labels},
            spec={
                "clusterIP": "None",
                "publishNotReadyAddresses": True,  # peers must resolve each other while starting
                "selector": selector,
                "ports": self._ports(),
            },
            opts=self._k8s,
        )
        k8s.core.v1.Service(
            f"{self._name}-service",
            metadata={"name": APP, "namespace": NS, "labels": self._labels},
            spec={"type": "ClusterIP", "selector": selector, "ports": self._ports(p2p=False)},
            opts=self._k8s,
        )

    def _statefulset(self, cfg) -> None:
        memory = f"{round(cfg.memory_gib * 1024)}Mi"
        env = [
            {"name": "QDRANT__SERVICE__HTTP_PORT", "value": str(HTTP)},
            {"name": "QDRANT__SERVICE__GRPC_PORT", "value": str(GRPC)},
            {"name": "QDRANT__CLUSTER__ENABLED", "value": "true"},
            {"name": "QDRANT__CLUSTER__P2P__PORT", "value": str(P2P)},
            {"name": "QDRANT__STORAGE__COLLECTION__REPLICATION_FACTOR", "value": str(cfg.replication_factor)},
            {"name": "QDRANT__STORAGE__SNAPSHOTS_PATH", "value": "/qdrant/snapshots"},
            {"name": "QDRANT__TELEMETRY_DISABLED", "value": "true"},
            {"name": "QDRANT_INIT_FILE_PATH", "value": "/qdrant/init/.qdrant-initialized"},
        ]
        probe = {"httpGet": {"port": "http"}, "timeoutSeconds": 3}
        container = {
            "name": APP,
            "image": cfg.image,
            "imagePullPolicy": "Always",
            "command": ["/bin/bash", "-c", START],
            "env": env,
            "ports": [
                {"name": p["name"], "containerPort": p["port"], "protocol": "TCP"} for p in self._ports()
            ],
            "resources": hardening.resources(cfg.cpu, memory),
            "startupProbe": {
                **probe,
                "httpGet": {"path": "/readyz", "port": "http"},
                "periodSeconds": 5,
                "failureThreshold": 120,
            },
            "readinessProbe": {**probe, "httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5},
            "livenessProbe": {
                **probe,
                "httpGet": {"path": "/livez", "port": "http"},
                "periodSeconds": 10,
                "failureThreshold": 6,
            },
            "securityContext": hardening.container_security(QDRANT_UID),
            "volumeMounts": [
                {"name": "storage", "mountPath": "/qdrant/storage"},
                {"name": "snapshots", "mountPath": "/qdrant/snapshots"},
                {"name": "init", "mountPath": "/qdrant/init"},
                {
                    "name": "api-key",
                    "mountPath": "/qdrant/config/local.yaml",
                    "subPath": "local.yaml",
                    "readOnly": True,
                },
            ],
        }
        labels = {**self._labels, CLIENT_LABEL: "true"}  # peers talk to each other
        k8s.apps.v1.StatefulSet(
            f"{self._name}-statefulset",
            metadata={"name": APP, "namespace": NS, "labels": self._labels},
            spec={
                "serviceName": HEADLESS,
                "replicas": cfg.replicas,
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": {"app.kubernetes.io/name": APP}},
                # Volumes outlive the StatefulSet and scale-downs: deleting data is deliberate.
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                "updateStrategy": {"type": "RollingUpdate"},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "securityContext": hardening.pod_security(QDRANT_UID),
                        "terminationGracePeriodSeconds": 60,
                        "topologySpreadConstraints": [
                            {
                                "maxSkew": 1,
                                "topologyKey": "topology.kubernetes.io/zone",
                                "whenUnsatisfiable": "ScheduleAnyway",
                                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": APP}},
                            }
                        ],
                        "containers": [container],
                        "volumes": [
                            {"name": "snapshots", "emptyDir": {"sizeLimit": f"{cfg.volume_gib}Gi"}},
                            {"name": "init", "emptyDir": {"sizeLimit": "1Mi"}},
                            {
                                "name": "api-key",
                                "secret": {
                                    "secretName": API_KEY_SECRET,
                                    "items": [{"key": "local.yaml", "path": "local.yaml"}],
                                },
                            },
                        ],
                    },
                },
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "storage", "labels": self._labels},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "storageClassName": "gp3-encrypted",
                            "resources": {"requests": {"storage": f"{cfg.volume_gib}Gi"}},
                        },
                    }
                ],
            },
            opts=pulumi.ResourceOptions.merge(self._k8s, pulumi.ResourceOptions(protect=self._ctx.protect)),
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{self._name}-pdb",
            metadata={"name": APP, "namespace": NS, "labels": self._labels},
            spec={"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": APP}}},
            opts=self._k8s,
        )

    def _network_policies(self) -> None:
        k8s.networking.v1.NetworkPolicy(
            f"{self._name}-default-deny",
            metadata={"name": "default-deny-ingress", "namespace": NS},
            spec={"podSelector": {}, "policyTypes": ["Ingress"]},
            opts=self._k8s,
        )
        clients = {"namespaceSelector": {}, "podSelector": {"matchLabels": {CLIENT_LABEL: "true"}}}
        peers = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": APP}}}
        k8s.networking.v1.NetworkPolicy(
            f"{self._name}-allow-clients",
            metadata={"name": "allow-qdrant-clients", "namespace": NS},
            spec={
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": APP}},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [clients],
                        "ports": [{"protocol": "TCP", "port": HTTP}, {"protocol": "TCP", "port": GRPC}],
                    },
                    {"from": [peers], "ports": [{"protocol": "TCP", "port": P2P}]},
                ],
            },
            opts=self._k8s,
        )

    def _snapshots(self, cfg, backups, key) -> None:
        """A CronJob: a stdlib Python step snapshots every collection on every node, then the
        AWS CLI uploads them under snapshots/ with the bucket's KMS key."""
        ctx, child = self._ctx, pulumi.ResourceOptions(parent=self)
        account = "qdrant-snapshots"
        role, identity = iam.pod_identity_role(
            f"{self._name}-snapshots",
            account_id=ctx.account_id,
            cluster_name=self._args.cluster_name,
            namespace=NS,
            service_account=account,
            parent=self,
        )
        aws.iam.RolePolicy(
            f"{self._name}-snapshots-write",
            role=role.id,
            policy=backups.write_statements(SNAPSHOTS_PREFIX).apply(lambda s: iam.document(*s)),
            opts=child,
        )
        k8s.core.v1.ServiceAccount(
            f"{self._name}-snapshots-sa",
            metadata={"name": account, "namespace": NS, "labels": self._labels},
            automount_service_account_token=False,
            opts=self._k8s,
        )
        script = k8s.core.v1.ConfigMap(
            f"{self._name}-snapshot-script",
            metadata={"name": "qdrant-snapshot-script", "namespace": NS, "labels": self._labels},
            data={"snapshot.py": SNAPSHOT_SCRIPT.read_text()},
            opts=self._k8s,
        )
        peers = ",".join(
            f"http://{APP}-{i}.{HEADLESS}.{NS}.svc.cluster.local:{HTTP}" for i in range(cfg.replicas)
        )
        work = {"name": "work", "mountPath": "/work"}
        tmp = {"name": "tmp", "mountPath": "/tmp"}
        snapshot = {
            "name": "snapshot",
            "image": versions.SNAPSHOT_PYTHON_IMAGE,
            "imagePullPolicy": "Always",
            "command": ["python", "/scripts/snapshot.py"],
            "env": [
                {"name": "QDRANT_PEERS", "value": peers},
                {"name": "OUT_DIR", "value": "/work"},
                {"name": "QDRANT_API_KEY_FILE", "value": "/secrets/api-key"},
            ],
            # Streams each snapshot to disk: 22 MiB at its peak (bench/system_memory.py).
            "resources": hardening.resources("500m", "64Mi", cpu_request="100m"),
            "securityContext": hardening.container_security(),
            "volumeMounts": [
                work,
                tmp,
                {"name": "script", "mountPath": "/scripts", "readOnly": True},
                {"name": "api-key", "mountPath": "/secrets", "readOnly": True},
            ],
        }
        # Not the StatefulSet's app label: its selector and Services must never match job pods.
        job_labels = {
            "app.kubernetes.io/name": "qdrant-snapshots",
            "app.kubernetes.io/part-of": "llmops",
            CLIENT_LABEL: "true",
        }
        destination = backups.name.apply(lambda b: f"s3://{b}/{SNAPSHOTS_PREFIX}")
        upload = {
            "name": "upload",
            "image": versions.AWS_CLI_IMAGE,
            "imagePullPolicy": "Always",
            "args": [
                "s3",
                "cp",
                "/work",
                destination,
                "--recursive",
                "--sse",
                "aws:kms",
                "--sse-kms-key-id",
                key.arn,
            ],
            "env": [
                {"name": "HOME", "value": "/tmp"},
                {"name": "AWS_REGION", "value": ctx.region},
                {"name": "AWS_DEFAULT_REGION", "value": ctx.region},
            ],
            # aws-cli v2 (s3transfer, 10 threads of 8 MiB parts); its boto3 stand-in peaks at 79 MiB
            # (bench/system_memory.py).
            "resources": hardening.resources("500m", "192Mi", cpu_request="100m"),
            "securityContext": hardening.container_security(),
            "volumeMounts": [{**work, "readOnly": True}, tmp],
        }
        k8s.batch.v1.CronJob(
            f"{self._name}-snapshots",
            metadata={"name": "qdrant-snapshots", "namespace": NS, "labels": self._labels},
            spec={
                "schedule": cfg.snapshot_schedule,
                "timeZone": "Etc/UTC",
                "concurrencyPolicy": "Forbid",
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {
                    "spec": {
                        "backoffLimit": 2,
                        "activeDeadlineSeconds": 3600,
                        "ttlSecondsAfterFinished": 86400,
                        "template": {
                            "metadata": {"labels": job_labels},
                            "spec": {
                                "serviceAccountName": account,
                                "automountServiceAccountToken": False,
                                "restartPolicy": "Never",
                                "securityContext": hardening.pod_security(),
                                # Snapshots first (init container), then the upload.
                                "initContainers": [snapshot],
                                "containers": [upload],
                                "volumes": [
                                    {"name": "work", "emptyDir": {"sizeLimit": f"{cfg.volume_gib}Gi"}},
                                    {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                                    {"name": "script", "configMap": {"name": "qdrant-snapshot-script"}},
                                    {
                                        "name": "api-key",
                                        "secret": {
                                            "secretName": API_KEY_SECRET,
                                            "items": [{"key": "api-key", "path": "api-key"}],
                                        },
                                    },
                                ],
                            },
                        },
                    }
                },
            },
            opts=pulumi.ResourceOptions.merge(
                self._k8s, pulumi.ResourceOptions(depends_on=[identity, script])
            ),
        )
