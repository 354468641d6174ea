"""Retrieval freshness (docs/retrieval.md): the exporter that creates and measures the declared
Qdrant collections, and one CloudWatch alarm per collection at its freshness objective.

    CronJob retrieval-freshness (namespace vector-db, system nodes, labelled as a Qdrant client)
      fetch  (aws-cli): s3://<backups bucket>/code/retrieval-exporter/<digest>/deps-$(uname -m).zip
      unpack (python):  the zip -> /work/site
      exporter (python -m llmops.rag.exporter, its code from a ConfigMap)
          --> Qdrant (ensure the collections, measure them) --PutMetricData--> LLMOps/Retrieval
    IndexAgeSeconds [Environment, Collection] --> one alarm per collection --> alerts topic (+ team topic)

The packages (requirements-exporter.txt: qdrant-client, boto3) are built by `make exporter-deps`
for x86_64 and aarch64; the code ships as a ConfigMap, so a change to it needs no rebuild. Run as
`python -m components.retrieval_freshness SITE ZIP`, this module writes the zip of a built site.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components import hardening, iam, names
from components.context import AwsContext
from components.vector_db import API_KEY_SECRET, CLIENT_LABEL, VectorDb
from llmops import PROJECT_DIR, versions
from llmops.settings import StackSettings, TeamSettings

NAMESPACE = "LLMOps/Retrieval"  # the exporter's METRIC_NAMESPACE
INDEX_AGE = "IndexAgeSeconds"  # what the alarms watch (llmops/rag/exporter.py emits it)
NAME = "retrieval-freshness"  # CronJob, service account, ConfigMap
MODULE = "llmops.rag.exporter"
CODE = ("llmops/rag/freshness.py", "llmops/rag/exporter.py")  # all the exporter imports of llmops
REQUIREMENTS = PROJECT_DIR / "requirements-exporter.txt"
DEPS = PROJECT_DIR / "build" / "exporter-deps"  # `make exporter-deps` builds <arch>/deps.zip here
ARCHES = ("x86_64", "aarch64")  # `uname -m` on the system nodes (AL2023 x86_64 or ARM_64 AMIs)
CODE_PREFIX = "code/retrieval-exporter/"  # in the Qdrant backups bucket, beside snapshots/
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest zip timestamp: the same zip on every machine
# The AWS CLI image's shell picks the zip of the node's architecture; the contract in
# llmops/verify/freshness.py reads this script to find the key it fetches.
FETCH = 'exec aws s3 cp --only-show-errors "${DEPS_PREFIX}deps-$(uname -m).zip" /work/deps.zip'


def declared_collections(settings: StackSettings, teams: list[TeamSettings]) -> list[dict]:
    """COLLECTIONS_JSON: the stack's collections, then each team's (owned by the team)."""
    found = [
        {**c.model_dump(by_alias=True, exclude={"owner_team"}), "ownerTeam": c.owner_team}
        for c in settings.vector_db.collections
    ]
    for team in teams:
        found += [{**c.model_dump(by_alias=True), "ownerTeam": team.name} for c in team.collections]
    return found


def _pins(path: Path) -> str:
    """A requirements file without its comments: what the install depends on."""
    lines = (line.split("#", 1)[0].rstrip() for line in path.read_text().splitlines())
    return "\n".join(line for line in lines if line.strip())


def deps_digest() -> str:
    """The packages' identity: the hash-pinned requirements they were installed from."""
    return hashlib.sha256(_pins(REQUIREMENTS).encode()).hexdigest()[:16]


def deps_archive(arch: str) -> Path:
    """The built zip of one architecture; stops the program when it is missing or stale."""
    built = DEPS / arch
    stamp = built / REQUIREMENTS.name
    if not stamp.exists() or _pins(stamp) != _pins(REQUIREMENTS) or not (built / "deps.zip").exists():
        raise pulumi.RunError(
            f"{REQUIREMENTS.name}: the freshness exporter's packages for {arch} are not built, or were "
            "built from another version of the file; run `make exporter-deps`"
        )
    return built / "deps.zip"


def write_zip(site: Path, out: Path) -> None:
    """A reproducible zip of an installed site: sorted entries, fixed times, no scripts (their
    shebangs name the building machine's Python) and no bytecode."""
    files = sorted(
        p
        for p in site.rglob("*")
        if p.is_file() and p.relative_to(site).parts[0] != "bin" and "__pycache__" not in p.parts
    )
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(site).as_posix(), ZIP_TIME)
            info.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())


def cron(minutes: int) -> str:
    return "0 * * * *" if minutes == 60 else f"*/{minutes} * * * *"


def _slug(value: str) -> str:
    return value.replace("_", "-")


@dataclass
class RetrievalFreshnessArgs:
    context: AwsContext
    cluster_name: pulumi.Input[str]
    k8s_provider: k8s.Provider
    vector_db: VectorDb
    collections: list[dict]
    """What the exporter ensures and measures (declared_collections)."""
    alerts_topic_arn: pulumi.Input[str]
    """Every alarm notifies here (the notifier's topic)."""
    team_topic_arns: dict[str, pulumi.Input[str]]
    """Topics of teams with an e-mail contact: a team's collections alarm there too."""
    system_nodes: pulumi.Resource


class RetrievalFreshness(pulumi.ComponentResource):
    dashboard_name: pulumi.Output[str]

    def __init__(self, name: str, args: RetrievalFreshnessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:retrieval:RetrievalFreshness", name, None, opts)
        self._name, self._args, self._ctx = name, args, args.context
        self._k8s = pulumi.ResourceOptions(
            parent=self, provider=args.k8s_provider, depends_on=[args.vector_db.namespace]
        )
        identity = self._identity()
        objects = self._deps()
        code = k8s.core.v1.ConfigMap(
            f"{name}-code",
            metadata={
                "name": f"{NAME}-code",
                "namespace": names.VECTOR_DB_NAMESPACE,
                "labels": self._labels(),
            },
            data={Path(f).name: (PROJECT_DIR / f).read_text() for f in CODE},
            opts=self._k8s,
        )
        self._cronjob(objects, [identity, code, *objects.values(), args.system_nodes])
        for collection in args.collections:
            self._alarm(collection)
        self.dashboard_name = self._dashboard().dashboard_name
        self.register_outputs({"dashboard_name": self.dashboard_name})

    def _labels(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "llmops"}

    def _identity(self) -> aws.eks.PodIdentityAssociation:
        """Metrics in its own namespace only, and the packages' zips (read, decrypted through S3)."""
        ctx, backups = self._ctx, self._args.vector_db.backups
        role, identity = iam.pod_identity_role(
            self._name,
            account_id=ctx.account_id,
            cluster_name=self._args.cluster_name,
            namespace=names.VECTOR_DB_NAMESPACE,
            service_account=NAME,
            parent=self,
        )
        aws.iam.RolePolicy(
            f"{self._name}-policy",
            role=role.id,
            policy=iam.document_output(
                # PutMetricData has no resource-level permissions; the namespace condition scopes it
                # (AmazonCloudWatch/latest/monitoring/iam-cw-condition-keys-namespace.html).
                iam.allow(
                    ["cloudwatch:PutMetricData"], "*", {"StringEquals": {"cloudwatch:namespace": NAMESPACE}}
                ),
                iam.allow(["s3:GetObject"], backups.arn.apply(lambda a: f"{a}/{CODE_PREFIX}*")),
                iam.allow(
                    ["kms:Decrypt"],
                    backups.key.arn,
                    {"StringEquals": {"kms:ViaService": f"s3.{ctx.region}.amazonaws.com"}},
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        k8s.core.v1.ServiceAccount(
            f"{self._name}-sa",
            metadata={"name": NAME, "namespace": names.VECTOR_DB_NAMESPACE, "labels": self._labels()},
            automount_service_account_token=False,
            opts=self._k8s,
        )
        return identity

    def _deps(self) -> dict[str, aws.s3.BucketObjectv2]:
        """One zip per architecture, under a key named by the requirements it was built from."""
        backups, digest = self._args.vector_db.backups, deps_digest()
        return {
            arch: aws.s3.BucketObjectv2(
                f"{self._name}-deps-{arch}",
                bucket=backups.bucket.id,
                key=f"{CODE_PREFIX}{digest}/deps-{arch}.zip",
                source=pulumi.FileAsset(str(deps_archive(arch))),
                content_type="application/zip",
                server_side_encryption="aws:kms",
                kms_key_id=backups.key.arn,
                bucket_key_enabled=True,  # as the bucket's own default: fewer KMS calls
                opts=pulumi.ResourceOptions(parent=self),
            )
            for arch in ARCHES
        }

    def _cronjob(self, objects: dict[str, aws.s3.BucketObjectv2], depends: list[pulumi.Resource]) -> None:
        ctx, args = self._ctx, self._args
        minutes = ctx.settings.vector_db.freshness_interval_minutes
        work, tmp = {"name": "work", "mountPath": "/work"}, {"name": "tmp", "mountPath": "/tmp"}
        region = [
            {"name": "AWS_REGION", "value": ctx.region},
            {"name": "AWS_DEFAULT_REGION", "value": ctx.region},
            {"name": "HOME", "value": "/tmp"},
        ]
        prefix = pulumi.Output.all(objects[ARCHES[0]].bucket, objects[ARCHES[0]].key).apply(
            lambda v: f"s3://{v[0]}/{v[1].rsplit('/', 1)[0]}/"
        )
        # Memory from bench/system_memory.py (peaks measured there: exporter 157 MiB with 1,000
        # points in qdrant-client's local mode, which holds the store; unpack 15 MiB). aws-cli v2
        # cannot run there: its fetch is sized as the snapshot upload (boto3 stand-in 79 MiB).
        fetch = {
            "name": "fetch",
            "image": versions.AWS_CLI_IMAGE,
            "imagePullPolicy": "Always",
            "command": ["/bin/sh", "-c", FETCH],
            "env": [{"name": "DEPS_PREFIX", "value": prefix}, *region],
            "resources": hardening.resources("500m", "192Mi", cpu_request="50m"),
            "securityContext": hardening.container_security(),
            "volumeMounts": [work, tmp],
        }
        unpack = {
            "name": "unpack",
            "image": versions.SNAPSHOT_PYTHON_IMAGE,
            "imagePullPolicy": "Always",
            "command": ["python", "-m", "zipfile", "-e", "/work/deps.zip", "/work/site"],
            "resources": hardening.resources("500m", "64Mi", cpu_request="50m"),
            "securityContext": hardening.container_security(),
            "volumeMounts": [work, tmp],
        }
        exporter = {
            "name": "exporter",
            "image": versions.SNAPSHOT_PYTHON_IMAGE,
            "imagePullPolicy": "Always",
            "command": ["python", "-m", MODULE],
            "env": [
                {"name": "PYTHONPATH", "value": "/app:/work/site"},
                {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
                {"name": "QDRANT_URL", "value": args.vector_db.url},
                {"name": "QDRANT_API_KEY_FILE", "value": "/secrets/api-key"},
                {"name": "ENVIRONMENT", "value": ctx.settings.environment},
                {"name": "METRIC_NAMESPACE", "value": NAMESPACE},
                {"name": "COLLECTIONS_JSON", "value": json.dumps(args.collections, sort_keys=True)},
                *region,
            ],
            "resources": hardening.resources("500m", "256Mi", cpu_request="100m"),
            "securityContext": hardening.container_security(),
            "volumeMounts": [
                {**work, "readOnly": True},
                tmp,
                {"name": "code", "mountPath": "/app/llmops/rag", "readOnly": True},
                {"name": "api-key", "mountPath": "/secrets", "readOnly": True},
            ],
        }
        labels = {**self._labels(), CLIENT_LABEL: "true"}  # admitted by Qdrant's NetworkPolicy
        k8s.batch.v1.CronJob(
            f"{self._name}-cronjob",
            metadata={"name": NAME, "namespace": names.VECTOR_DB_NAMESPACE, "labels": self._labels()},
            spec={
                "schedule": cron(minutes),
                "timeZone": "Etc/UTC",
                "concurrencyPolicy": "Forbid",
                "startingDeadlineSeconds": 300,
                "successfulJobsHistoryLimit": 1,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {
                    "spec": {
                        "backoffLimit": 1,
                        # Done before the next run is due, so a hung run never skips the next.
                        "activeDeadlineSeconds": minutes * 60 - 60,
                        "ttlSecondsAfterFinished": 3600,
                        "template": {
                            "metadata": {"labels": labels},
                            "spec": {
                                "serviceAccountName": NAME,
                                "automountServiceAccountToken": False,
                                "enableServiceLinks": False,
                                "restartPolicy": "Never",
                                "nodeSelector": {"llmops.io/node-role": "system"},
                                "securityContext": hardening.pod_security(),
                                "initContainers": [fetch, unpack],
                                "containers": [exporter],
                                "volumes": [
                                    {"name": "work", "emptyDir": {"sizeLimit": "1Gi"}},
                                    {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
                                    {"name": "code", "configMap": {"name": f"{NAME}-code"}},
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
            opts=pulumi.ResourceOptions.merge(self._k8s, pulumi.ResourceOptions(depends_on=depends)),
        )

    def _alarm(self, collection: dict) -> None:
        """Fires after two exporter periods above the objective, or without a measurement (missing
        data breaches: an exporter that stopped, or a collection with nothing indexed)."""
        ctx, args = self._ctx, self._args
        name, hours, team = collection["name"], collection["maxAgeHours"], collection.get("ownerTeam")
        period = ctx.settings.vector_db.freshness_interval_minutes * 60
        owner = f"; owner team {team}" if team else ""
        actions = [
            args.alerts_topic_arn,
            *([args.team_topic_arns[team]] if team in args.team_topic_arns else []),
        ]
        aws.cloudwatch.MetricAlarm(
            f"{self._name}-{_slug(name)}-index-age",
            name=f"{ctx.settings.name_prefix}-retrieval-{_slug(name)}-index-age",
            alarm_description=(
                f"Collection {name}: newest indexed_at older than its objective ({hours:g} h), or no "
                f"freshness measurement for {2 * period // 60} minutes{owner} (docs/retrieval.md)"
            ),
            namespace=NAMESPACE,
            metric_name=INDEX_AGE,
            dimensions={"Environment": ctx.settings.environment, "Collection": name},
            statistic="Maximum",
            period=period,
            evaluation_periods=2,
            datapoints_to_alarm=2,
            threshold=hours * 3600,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="breaching",
            alarm_actions=actions,
            ok_actions=actions,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _dashboard(self) -> aws.cloudwatch.Dashboard:
        """Index age, stale share and model drift of every collection the exporter measures."""
        ctx = self._ctx
        env, period = ctx.settings.environment, ctx.settings.vector_db.freshness_interval_minutes * 60

        def graph(metric: str, title: str, expression: str = "{}") -> dict:
            search = (
                f'SEARCH(\'{{{NAMESPACE},Environment,Collection}} MetricName="{metric}" '
                f"Environment=\"{env}\"', 'Maximum', {period})"
            )
            return {
                "type": "metric",
                "width": 8,
                "height": 6,
                "properties": {
                    "region": ctx.region,
                    "title": title,
                    "view": "timeSeries",
                    "metrics": [[{"expression": expression.format(search), "id": "e1", "label": ""}]],
                },
            }

        body = {
            "widgets": [
                graph(INDEX_AGE, "Index age by collection, hours", "{}/3600"),
                graph("StalePointsShare", "Points older than the objective, share"),
                graph("EmbeddingModelDriftPoints", "Points from another embedding model"),
            ]
        }
        return aws.cloudwatch.Dashboard(
            f"{self._name}-dashboard",
            dashboard_name=f"{ctx.settings.name_prefix}-retrieval-freshness",
            dashboard_body=json.dumps(body, separators=(",", ":")),
            opts=pulumi.ResourceOptions(parent=self),
        )


if __name__ == "__main__":  # make exporter-deps: python -m components.retrieval_freshness SITE ZIP
    write_zip(Path(sys.argv[1]), Path(sys.argv[2]))
