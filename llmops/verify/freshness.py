"""Retrieval freshness: the exporter's wires (components/retrieval_freshness.py, docs/retrieval.md).

The exporter is any pod that runs `python -m llmops.rag.exporter`. What it emits is read from the
exporter's source: its METRICS and DIMENSIONS, and which metric its `metric_data` gives the index
age. Its configuration is read from the pod: COLLECTIONS_JSON (what it ensures and measures),
ENVIRONMENT, METRIC_NAMESPACE, QDRANT_URL, and the AWS CLI step that fetches its packages
(`${DEPS_PREFIX}...$(uname -m)...`).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from llmops import PROJECT_DIR
from llmops.verify import iam
from llmops.verify.contracts import Finding, contract
from llmops.verify.model import PlanView, Workload, as_list
from llmops.verify.network import (
    ANYWHERE,
    HTTPS,
    POD_IDENTITY_AGENT,
    Endpoint,
    Network,
    service_target,
)
from llmops.verify.permissions import (
    _association_role,
    _container_env,
    _key_findings,
    _kms_key_of,
    _role_findings,
)
from llmops.verify.upstream import CloudWatchMetrics

MODULE = "llmops.rag.exporter"
EXPORTER_SOURCE = PROJECT_DIR / "llmops" / "rag" / "exporter.py"
# `uname -m` of the nodes, by EKS AMI type (AL2023_ARM_64_STANDARD, BOTTLEROCKET_ARM_64, ...).
ARCH_OF_AMI = (("ARM_64", "aarch64"), ("x86_64", "x86_64"))
ARCHES = ("x86_64", "aarch64")
_FETCH = re.compile(r"\$\{?DEPS_PREFIX\}?([\w./-]*)\$\(uname -m\)([\w./-]*)")
_CRON_EVERY = re.compile(r"^(?:\*/(\d+)|0) \* \* \* \*$")


def _constants(tree: ast.Module) -> dict[str, object]:
    """The module's top-level NAME = literal assignments."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return found


def _age_metric(function: ast.FunctionDef | None) -> str:
    """The metric name `metric_data` pairs with a collection's index_age_seconds."""
    for node in ast.walk(function) if function else ():
        pairs = []
        if isinstance(node, ast.Dict):
            pairs = list(zip(node.keys, node.values, strict=True))
        elif isinstance(node, ast.Tuple) and len(node.elts) >= 2:
            pairs = [(node.elts[0], node.elts[1])]
        for key, value in pairs:
            if (
                isinstance(key, ast.Constant)
                and isinstance(value, ast.Attribute)
                and value.attr == "index_age_seconds"
            ):
                return str(key.value)
    return ""


@cache
def emitted() -> tuple[CloudWatchMetrics, str]:
    """(what the exporter emits, the name of its index-age metric), read from its source without
    importing it (qdrant-client takes a second to import): its METRICS, DIMENSIONS and
    DEFAULT_NAMESPACE, and the metric its `metric_data` gives the index age.
    tests/test_retrieval_freshness.py runs the exporter and checks this reading against what it puts."""
    tree = ast.parse(EXPORTER_SOURCE.read_text())
    constants = _constants(tree)
    function = next(
        (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "metric_data"), None
    )
    metrics = CloudWatchMetrics(
        "retrieval freshness exporter",
        str(constants.get("DEFAULT_NAMESPACE", "")),
        frozenset(map(str, constants.get("METRICS") or ())),
        (frozenset(map(str, constants.get("DIMENSIONS") or ())),),
        source="llmops/rag/exporter.py METRICS, DIMENSIONS",
    )
    return metrics, _age_metric(function)


def exporter_container(w: Workload) -> dict[str, Any] | None:
    for c in w.containers:
        words = [str(x) for x in [*(c.get("command") or []), *(c.get("args") or [])]]
        if any(words[i : i + 2] == ["-m", MODULE] for i in range(len(words))):
            return c
    return None


def exporters(plan: PlanView) -> list[tuple[Workload, dict[str, Any]]]:
    found = []
    for w in plan.workloads:
        c = exporter_container(w)
        if c is not None:
            found.append((w, c))
    return found


def _config(container: dict[str, Any]) -> tuple[str, str, list[dict[str, Any]] | None]:
    """(environment, namespace, declared collections or None when COLLECTIONS_JSON is unreadable)."""
    env = _container_env(container)
    metrics, _ = emitted()
    try:
        declared = json.loads(env.get("COLLECTIONS_JSON") or "[]")
    except (TypeError, ValueError):
        declared = None
    if not isinstance(declared, list) or not all(isinstance(d, dict) and "name" in d for d in declared):
        declared = None
    return str(env.get("ENVIRONMENT", "")), str(env.get("METRIC_NAMESPACE") or metrics.namespace), declared


def producers(plan: PlanView) -> list[tuple[dict[str, Any], CloudWatchMetrics, dict[str, str]]]:
    """The exporters as CloudWatch producers (llmops/verify/metrics.py cloudwatch_producers)."""
    found = []
    for w, c in exporters(plan):
        environment, namespace, _ = _config(c)
        metrics, _ = emitted()
        if namespace != metrics.namespace:
            metrics = CloudWatchMetrics(metrics.producer, namespace, metrics.metrics, metrics.dimension_sets)
        found.append(
            (plan.by_name.get(w.resource, {"name": w.resource}), metrics, {"Environment": environment})
        )
    return found


def _period_minutes(plan: PlanView, w: Workload) -> int | None:
    """The CronJob's interval when its schedule runs evenly in the hour (*/N, or hourly)."""
    obj = plan.by_name.get(w.resource) or {}
    match = _CRON_EVERY.match(str(((obj.get("inputs") or {}).get("spec") or {}).get("schedule", "")).strip())
    return None if match is None else int(match[1] or 60)


def _notified(plan: PlanView, actions: list[Any]) -> bool:
    """Whether an alarm action is a topic of the plan that something subscribes to."""
    subscribed = {
        s["inputs"].get("topic") for s in plan.of_type("aws:sns/topicSubscription:TopicSubscription")
    }
    return any(a in subscribed for a in actions)


@contract(
    "freshness-alarms",
    "metrics",
    "Checks whether every collection the freshness exporter is told to ensure has an alarm on the index-age "
    "metric the exporter emits (its namespace, name and exactly its dimensions), at the collection's "
    "maxAgeHours, treating missing data as breaching, over the exporter's interval, notifying a subscribed "
    "topic.",
)
def freshness_alarms(plan: PlanView) -> Iterator[Finding]:
    alarms = plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    for w, c in exporters(plan):
        environment, namespace, declared = _config(c)
        metrics, age = emitted()
        if declared is None:
            yield Finding(
                "freshness-alarms",
                w.resource,
                "COLLECTIONS_JSON",
                f"{w.label} must be told its collections as a JSON list of objects with a name "
                "(COLLECTIONS_JSON); it is unreadable.",
                "Set COLLECTIONS_JSON from the stack's and the teams' collections.",
            )
            continue
        interval = _period_minutes(plan, w)
        for item in declared:
            name = str(item["name"])
            dims = {"Environment": environment, "Collection": name}
            if frozenset(dims) not in metrics.dimension_sets:
                sets = " or ".join("[" + ", ".join(sorted(s)) + "]" for s in metrics.dimension_sets)
                why = f"the exporter emits dimensions {sets}, not [Collection, Environment]"
                yield Finding("freshness-alarms", w.resource, age, f"{w.label}: {why}.", "Align the two.")
                continue
            watching = [
                a
                for a in alarms
                if (a["inputs"].get("namespace"), a["inputs"].get("metricName")) == (namespace, age)
                and dict(a["inputs"].get("dimensions") or {}) == dims
            ]
            if not watching:
                yield Finding(
                    "freshness-alarms",
                    w.resource,
                    f"{namespace}/{age} {name}",
                    f"Collection {name}, which {w.label} ensures and measures, must have an alarm on "
                    f"{namespace}/{age} with dimensions {dims}; no alarm of the plan watches it, so a stale "
                    "index stays silent.",
                    "Declare one alarm per collection (components/retrieval_freshness.py).",
                )
                continue
            yield from _alarm_findings(plan, watching[0], name, item.get("maxAgeHours"), interval)


def _alarm_findings(
    plan: PlanView, alarm: dict[str, Any], collection: str, hours: Any, interval: int | None
) -> Iterator[Finding]:
    i = alarm["inputs"]
    problems = []
    if isinstance(hours, int | float) and not (
        i.get("threshold") == hours * 3600 and i.get("comparisonOperator") == "GreaterThanThreshold"
    ):
        problems.append(
            f"fire above maxAgeHours {hours:g} h ({hours * 3600:g} s, GreaterThanThreshold), not at "
            f"{i.get('comparisonOperator')} {i.get('threshold')}"
        )
    if i.get("treatMissingData") != "breaching":
        problems.append(
            f"treat missing data as breaching (a stopped exporter or an empty collection), not "
            f"{i.get('treatMissingData') or 'missing'}"
        )
    if interval is not None and i.get("period") != interval * 60:
        problems.append(f"evaluate the exporter's interval ({interval * 60} s), not {i.get('period')} s")
    if not _notified(plan, as_list(i.get("alarmActions"))):
        problems.append(
            "notify a topic something subscribes to (the alerts topic), but its actions reach nobody"
        )
    for problem in problems:
        yield Finding(
            "freshness-alarms",
            alarm["name"],
            collection,
            f"Alarm {alarm['name']} of collection {collection} must {problem}.",
            "Declare it as components/retrieval_freshness.py does.",
        )


# -- paths and permissions -------------------------------------------------------------------------


def node_arches(plan: PlanView, w: Workload) -> list[str]:
    """`uname -m` of the node groups the pods may land on (every architecture when none says)."""
    selector = w.pod.get("nodeSelector") or {}
    from llmops.verify.model import selects

    found = []
    for group in plan.of_type("aws:eks/nodeGroup:NodeGroup"):
        if not selector or selects(selector, group["inputs"].get("labels") or {}):
            ami = str(group["inputs"].get("amiType") or "")
            found += [arch for marker, arch in ARCH_OF_AMI if marker in ami]
    return sorted(set(found)) or list(ARCHES)


def fetched_objects(w: Workload) -> list[tuple[str, str, str]] | None:
    """(arch, bucket, key) the pod's AWS CLI step fetches, per architecture; None: it fetches none."""
    for c in w.containers:
        script = " ".join(str(x) for x in [*(c.get("command") or []), *(c.get("args") or [])])
        match = _FETCH.search(script)
        prefix = _container_env(c).get("DEPS_PREFIX")
        if match and isinstance(prefix, str) and prefix.startswith("s3://"):
            found = []
            for arch in ARCHES:
                bucket, _, key = f"{prefix}{match[1]}{arch}{match[2]}"[5:].partition("/")
                found.append((arch, bucket, key))
            return found
    return None


def uploaded(plan: PlanView, bucket: str, key: str) -> dict[str, Any] | None:
    for obj in plan.of_type("aws:s3/bucketObjectv2:BucketObjectv2", "aws:s3/bucketObject:BucketObject"):
        target = plan.resolve(obj["inputs"].get("bucket"), "aws:s3/bucket:Bucket")
        names = {obj["inputs"].get("bucket"), *((target or {}).get("inputs", {}).get("bucket"),)}
        if target is not None:
            names |= {target.get("id"), (target.get("outputs") or {}).get("bucket")}
        if bucket in names and obj["inputs"].get("key") == key:
            return obj
    return None


@contract(
    "freshness-exporter-deps",
    "selectors",
    "Checks whether the object the freshness exporter's pods fetch for their nodes' architecture "
    "(bucket and key, from their AWS CLI step) is one the plan uploads.",
)
def exporter_deps(plan: PlanView) -> Iterator[Finding]:
    for w, _ in exporters(plan):
        fetched = fetched_objects(w)
        if fetched is None:
            continue  # its packages come from the image
        arches = node_arches(plan, w)
        for arch, bucket, key in fetched:
            if arch in arches and uploaded(plan, bucket, key) is None:
                yield Finding(
                    "freshness-exporter-deps",
                    w.resource,
                    f"s3://{bucket}/{key}",
                    f"{w.label} fetches s3://{bucket}/{key} on its {arch} nodes, which the plan does not "
                    "upload: the job fails before the exporter starts.",
                    "Upload the packages' zip for every node architecture under the key the pod fetches.",
                )


def _needs(plan: PlanView, w: Workload, namespace: str) -> list[tuple[str, str | None, str]]:
    needs: list[tuple[str, str | None, str]] = [
        ("cloudwatch:PutMetricData", None, f"its metrics ({namespace})")
    ]
    for arch, bucket, key in fetched_objects(w) or []:
        obj = uploaded(plan, bucket, key)
        if arch not in node_arches(plan, w) or obj is None:
            continue
        needs.append(("s3:GetObject", f"arn:aws:s3:::{bucket}/{key}", f"its packages for {arch}"))
        target = plan.resolve(obj["inputs"].get("bucket"), "aws:s3/bucket:Bucket")
        key_arn = obj["inputs"].get("kmsKeyId") or _kms_key_of(plan, target)
        if key_arn:
            needs.append(("kms:Decrypt", key_arn, f"its packages for {arch} are encrypted with it"))
    return needs


def _namespace_allowed(statements: list[dict[str, Any]], namespace: str) -> bool:
    """Whether an Allow of PutMetricData holds for the namespace (its cloudwatch:namespace condition)."""
    for s in statements:
        if s.get("Effect") != "Allow" or not iam.allows([s], "cloudwatch:PutMetricData"):
            continue
        condition = s.get("Condition") or {}
        values = [
            v
            for op in ("StringEquals", "StringLike")
            for k, v in (condition.get(op) or {}).items()
            if k.lower() == "cloudwatch:namespace"
        ]
        if not values or any(iam._resource_matches(p, namespace) for v in values for p in as_list(v)):
            return True
    return False


@contract(
    "freshness-exporter-permissions",
    "permissions",
    "Checks whether the freshness exporter's pods get a Pod Identity role allowing PutMetricData in the "
    "namespace they publish to, s3:GetObject on the packages' objects they fetch and kms:Decrypt of their "
    "key.",
)
def exporter_permissions(plan: PlanView) -> Iterator[Finding]:
    for w, c in exporters(plan):
        _, namespace, _ = _config(c)
        owner = plan.by_name.get(w.resource, {"name": w.resource})
        role = _association_role(plan, w.namespace, w.service_account)
        if role is None:
            yield Finding(
                "freshness-exporter-permissions",
                w.resource,
                f"ServiceAccount {w.namespace}/{w.service_account}",
                f"{w.label} publishes metrics and fetches its packages, but its service account "
                f"{w.service_account} has no Pod Identity association: it gets no credentials.",
                "Associate a role with the service account.",
            )
            continue
        needs = _needs(plan, w, namespace)
        yield from _role_findings(plan, "freshness-exporter-permissions", owner, role, needs)
        statements = plan.role_statements(role)
        if iam.allows(statements, "cloudwatch:PutMetricData") and not _namespace_allowed(
            statements, namespace
        ):
            yield Finding(
                "freshness-exporter-permissions",
                w.resource,
                role["name"],
                f"{w.label} publishes to {namespace}, but the cloudwatch:namespace condition of its role "
                f"{role['name']} allows PutMetricData elsewhere only.",
                f"Condition PutMetricData on cloudwatch:namespace {namespace}.",
            )
        for action, key, why in needs:
            if action.startswith("kms:") and key:
                yield from _key_findings(plan, "freshness-exporter-permissions", owner, key, [action], why)


def _blocked(w: Workload, server: str, what: str, why: str, fix: str) -> Finding:
    return Finding(
        "freshness-exporter-paths", w.resource, server, f"{w.label} must reach {what}, but {why}.", fix
    )


@contract(
    "freshness-exporter-paths",
    "network",
    "Checks whether the freshness exporter's pods reach Qdrant (its Service, through both ends' "
    "NetworkPolicies and security groups), CloudWatch and S3 (endpoint or NAT) and the Pod Identity agent.",
)
def exporter_paths(plan: PlanView) -> Iterator[Finding]:
    net = Network(plan)
    for w, c in exporters(plan):
        client = net.pod(w)
        url = urlsplit(str(_container_env(c).get("QDRANT_URL") or ""))
        pods, port, label = service_target(plan, url.hostname or "", url.port or 6333)
        if not pods or port is None:
            yield _blocked(
                w,
                label or "qdrant",
                "Qdrant",
                f"QDRANT_URL {url.geturl()!r} resolves to no pods",
                "Use Qdrant's Service.",
            )
        for pod in pods if port is not None else []:
            block = net.pod_path_block(w, pod, port)
            if block:
                yield _blocked(
                    w,
                    pod.resource,
                    f"Qdrant ({label}, pod port {port})",
                    block,
                    "Label the exporter's pods llmops.io/qdrant-client=true (Qdrant's NetworkPolicy "
                    "admits them).",
                )
        endpoint = next(
            (
                v
                for v in plan.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
                if str(v["inputs"].get("serviceName", "")).endswith(".monitoring")
                and v["inputs"].get("vpcEndpointType") == "Interface"
                and v["inputs"].get("privateDnsEnabled")
            ),
            None,
        )
        cloudwatch = (
            Endpoint(
                "the monitoring endpoint",
                endpoint["name"],
                set(endpoint["inputs"].get("securityGroupIds") or []),
                net._ranges(endpoint["inputs"].get("subnetIds") or []),
            )
            if endpoint
            else Endpoint("CloudWatch (through the NAT)", "monitoring", set(), [ANYWHERE])
        )
        for server, service, what in ((cloudwatch, "cloudwatch", "CloudWatch for PutMetricData"),):
            block = net.egress_block(client, server, HTTPS) or net.api_block(client, service)
            if block:
                yield _blocked(w, server.resource, what, block, "Add a monitoring endpoint or a NAT route.")
        if fetched_objects(w):
            block = net.api_block(client, "s3")
            if block:
                yield _blocked(
                    w, "s3", "S3 for its packages", block, "Route its subnets to the S3 gateway endpoint."
                )
        agent = Endpoint(
            "the EKS Pod Identity agent", "eks-pod-identity-agent", set(), [f"{POD_IDENTITY_AGENT}/32"]
        )
        if plan.addon("eks-pod-identity-agent") is None:
            yield _blocked(
                w, agent.resource, agent.label, "the add-on is not installed", "Install the add-on."
            )
        block = net.egress_block(client, agent, 80)
        if block:
            yield _blocked(w, agent.resource, f"{agent.label} for its credentials", block, "Allow it egress.")
