"""Metrics: every scrape job scrapes pods that serve metrics, and every metric something consumes
(KEDA triggers, HPA metrics, CloudWatch alarms, metrics a Lambda reads) is produced by something
the plan configures, with the labels or dimensions the consumer filters on."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from llmops.verify import scrape
from llmops.verify.contracts import Finding, contract
from llmops.verify.lambda_source import scan, source_folder
from llmops.verify.model import PlanView, name_of, namespace_of
from llmops.verify.upstream import VLLM_METRICS, CloudWatchMetrics

# -- scrape jobs ----------------------------------------------------------------------------------


@contract(
    "selector-scrape-job",
    "metrics",
    "Checks whether every scrape job selects pods of the plan and every target it keeps serves metrics on "
    "the port and scheme it is scraped with.",
)
def scrape_jobs(plan: PlanView) -> Iterator[Finding]:
    for store in scrape.stores(plan):
        for job in store.jobs:
            name = job.get("job_name", "")
            targets = [t for t in store.targets if t.job == name]
            if not targets:
                yield Finding(
                    "selector-scrape-job",
                    store.resource,
                    f"job {name}",
                    f"Scrape job {name} of {store.resource} must select pods: its service discovery and keep "
                    "rules match no pod or Service of the plan, so its metrics never exist.",
                    "Align the job's relabel rules with the pods' labels, ports and Services (or remove "
                    "the job).",
                )
            for t in targets:
                if not scrape.served(t):
                    yield Finding(
                        "selector-scrape-job",
                        store.resource,
                        t.workload.resource,
                        f"Scrape job {name} keeps {t.workload.label} on port {t.port} ({t.scheme}), which "
                        "serves no "
                        "metrics there.",
                        "Scrape the port the pod serves /metrics on, with its scheme.",
                    )


# -- PromQL ---------------------------------------------------------------------------------------

KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
}
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, operator, value)


def selectors(query: str) -> list[Selector]:
    """The vector selectors of a PromQL expression (metric name and label matchers)."""
    found, i, previous = [], 0, ""
    while i < len(query):
        ch = query[i]
        if ch.isalpha() or ch in "_:":
            j = i
            while j < len(query) and (query[j].isalnum() or query[j] in "_:"):
                j += 1
            word, rest = query[i:j], query[j:].lstrip()
            i = j
            if rest.startswith("("):
                if word in ("by", "without"):  # a label list, not an expression
                    i = query.index(")", i) + 1
                continue
            if word.lower() in KEYWORDS or previous == "[":
                continue
            matchers: tuple = ()
            if rest.startswith("{"):
                start = query.index("{", i)
                end = query.index("}", start)
                matchers = tuple(m.groups() for m in _MATCHER.finditer(query[start + 1 : end]))
                i = end + 1
            found.append(Selector(word, matchers))
        elif ch == "[":
            i = query.index("]", i) + 1
        elif ch == '"':
            i = query.index('"', i + 1) + 1
        else:
            previous = ch if not ch.isspace() else previous
            i += 1
    return found


def _label_values(plan: PlanView, label: str) -> set[str] | None:
    """Values a producer-set label can take, where the plan says (None: any value)."""
    config = plan.gateway_config or {}
    if label == "requested_model":
        return {m.get("model_name") for m in config.get("model_list") or []}
    if label == "model_name":
        return {
            str(a[i + 1])
            for w in plan.workloads
            if VLLM_METRICS in w.produces
            for c in w.containers
            for a in [c.get("args") or []]
            for i, x in enumerate(a[:-1])
            if x == "--served-model-name"
        }
    return None


def _unproduced(plan: PlanView, store: scrape.Store, sel: Selector) -> str | None:
    """Why no series of the store matches the selector (None when one can)."""
    producing = [(t, f) for t in store.targets for f in scrape.served(t) if sel.metric.startswith(f.prefix)]
    if not producing:
        return f"no scraped target of {store.resource} serves {sel.metric}"
    for label, op, value in sel.matchers:
        if op != "=":
            continue
        candidates = []
        for target, family in producing:
            if label in target.labels:
                candidates.append(target.labels[label] == value)
            elif label in family.labels:
                known = _label_values(plan, label)
                candidates.append(known is None or value in known)
        if not any(candidates):
            where = "set by no target or producer" if not candidates else f"never {value!r}"
            return f"label {label} of {sel.metric} is {where}"
    return None


@contract(
    "metrics-keda-trigger",
    "metrics",
    "Checks whether every KEDA Prometheus trigger queries a metrics store of the plan for series something "
    "scrapes, with the labels its query filters on.",
)
def keda_triggers(plan: PlanView) -> Iterator[Finding]:
    stores = scrape.stores(plan)
    for scaler in plan.objects("ScaledObject"):
        ns, name = namespace_of(scaler), name_of(scaler)
        for trigger in (scaler["inputs"].get("spec") or {}).get("triggers") or []:
            if trigger.get("type") != "prometheus":
                continue
            meta = trigger.get("metadata") or {}
            address = str(meta.get("serverAddress", ""))
            store = next(
                (s for s in stores if address in s.query_urls or address.rstrip("/") in s.query_urls), None
            )
            where = f"ScaledObject {ns}/{name} trigger {trigger.get('name')}"
            if store is None:
                yield Finding(
                    "metrics-keda-trigger",
                    scaler["name"],
                    address or "(no serverAddress)",
                    f"{where} must query a metrics store of the plan; {address!r} is neither the AMP "
                    "workspace a scraper writes to nor the in-cluster Prometheus.",
                    "Set serverAddress to the observability component's query URL.",
                )
                continue
            for sel in selectors(str(meta.get("query", ""))):
                why = _unproduced(plan, store, sel)
                if why:
                    yield Finding(
                        "metrics-keda-trigger",
                        scaler["name"],
                        sel.metric,
                        f"{where} reads {sel.metric}, but {why}: the trigger never fires.",
                        "Enable the metric at its producer and scrape it (or fix the query).",
                    )


HPA_APIS = {"Resource": "metrics.k8s.io", "ContainerResource": "metrics.k8s.io",
            "External": "external.metrics.k8s.io", "Pods": "custom.metrics.k8s.io", "Object": "custom.metrics.k8s.io"}  # fmt: skip  # noqa: E501


@contract(
    "metrics-hpa",
    "metrics",
    "Checks whether every HorizontalPodAutoscaler metric (and the external metrics KEDA feeds) has an API "
    "server in the plan, and resource targets have requests to compare with.",
)
def hpa_metrics(plan: PlanView) -> Iterator[Finding]:
    needs: list[tuple[dict[str, Any], str, str]] = []
    for hpa in plan.objects("HorizontalPodAutoscaler"):
        spec = hpa["inputs"].get("spec") or {}
        for metric in spec.get("metrics") or []:
            needs.append((hpa, metric.get("type", ""), HPA_APIS.get(metric.get("type", ""), "")))
            if metric.get("type") == "Resource":
                resource = (metric.get("resource") or {}).get("name")
                ref = spec.get("scaleTargetRef") or {}
                target = plan.workload_named(
                    ref.get("kind", "Deployment"), namespace_of(hpa), ref.get("name", "")
                )
                for c in target.pod.get("containers") if target else []:
                    if resource not in ((c.get("resources") or {}).get("requests") or {}):
                        yield Finding(
                            "metrics-hpa",
                            hpa["name"],
                            target.resource,
                            f"HorizontalPodAutoscaler {namespace_of(hpa)}/{name_of(hpa)} scales on "
                            f"{resource} "
                            f"utilisation, but container {c.get('name')} of {target.label} requests no "
                            f"{resource}.",
                            f"Set resources.requests.{resource} on every container.",
                        )
    for scaler in plan.objects("ScaledObject"):
        needs.append((scaler, "External (KEDA)", "external.metrics.k8s.io"))
    for obj, kind, api in needs:
        if api and api not in plan.apis:
            yield Finding(
                "metrics-hpa",
                obj["name"],
                api,
                f"{obj['inputs']['kind']} {namespace_of(obj)}/{name_of(obj)} uses {kind} metrics, served "
                "by the "
                f"{api} API, which nothing in the plan installs: the autoscaler never acts.",
                "Install its server (metrics-server for resource metrics, KEDA for external ones).",
            )


# -- CloudWatch -----------------------------------------------------------------------------------


@cache
def _aggregator_metrics(environment: str) -> list[CloudWatchMetrics]:
    """What the spend aggregator emits, from the aggregator itself run on one record that carries
    retrieval metadata: the cost records and the retrieved-document ages (one directive each)."""
    from lambdas.spend_aggregator.aggregate import Aggregator

    aggregator = Aggregator()
    retrieval = {
        "newest_source_updated_at": "2025-12-01T00:00:00Z",
        "oldest_source_updated_at": "2025-11-01T00:00:00Z",
    }
    record = {
        "model_group": "m",
        "response_cost": 1.0,
        "status": "success",
        "startTime": 1764590400.0,  # 2025-12-01T12:00:00Z
        "metadata": {"requester_metadata": {"retrieval": retrieval}},
    }
    aggregator.add_document(json.dumps(record).encode())
    return [
        CloudWatchMetrics(
            "spend aggregator",
            emf["Namespace"],
            frozenset(m["Name"] for m in emf["Metrics"]),
            tuple(frozenset(d) for d in emf["Dimensions"]),
            source="lambdas/spend_aggregator/aggregate.py",
        )
        for out in aggregator.emf_records(environment)
        for emf in out["_aws"]["CloudWatchMetrics"]
    ]


def cloudwatch_producers(plan: PlanView) -> list[tuple[dict[str, Any], CloudWatchMetrics, dict[str, str]]]:
    """(producer resource, metrics, dimension values it fixes) of everything publishing metrics."""
    found = []
    for function in plan.of_type("aws:lambda/function:Function"):
        folder = source_folder(function)
        if folder is not None and folder.name == "spend_aggregator":
            env = ((function.get("inputs") or {}).get("environment") or {}).get("variables") or {}
            environment = env.get("ENVIRONMENT", "")
            found += [(function, m, {"Environment": environment}) for m in _aggregator_metrics(environment)]
    from llmops.verify.freshness import producers  # the retrieval freshness exporter's pods

    found += producers(plan)
    cluster = (plan.cluster or {}).get("inputs", {}).get("name")
    for source, render in plan.renders:
        for metrics in render.cloudwatch:
            found.append((source, metrics, {"ClusterName": source["inputs"].get("clusterName") or cluster}))
    return found


def _alarm_metrics(alarm: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    inputs = alarm.get("inputs") or {}
    if inputs.get("metricName"):
        return [(inputs.get("namespace", ""), inputs["metricName"], dict(inputs.get("dimensions") or {}))]
    return [
        (
            q["metric"].get("namespace", ""),
            q["metric"].get("metricName", ""),
            dict(q["metric"].get("dimensions") or {}),
        )
        for q in inputs.get("metricQueries") or []
        if q.get("metric")
    ]


def unproduced_metric(
    plan: PlanView, namespace: str, metric: str, dimensions: dict[str, str] | None
) -> str | None:
    """Why no producer of the plan publishes the metric with exactly these dimensions and values
    (None when one does): an alarm names one dimension set; a reader filters on some of them."""
    candidates = [(r, m, fixed) for r, m, fixed in cloudwatch_producers(plan) if m.namespace == namespace]
    if not candidates:
        return f"nothing in the plan publishes to the {namespace} namespace"
    named = [(r, m, fixed) for r, m, fixed in candidates if metric in m.metrics]
    if not named:
        return f"no producer of {namespace} publishes {metric}"
    dimensions = dimensions or {}
    for _, m, fixed in named:
        if frozenset(dimensions) in m.dimension_sets and all(
            dimensions[k] == v for k, v in fixed.items() if k in dimensions and v
        ):
            return None
    producer, m, fixed = named[0]
    if frozenset(dimensions) not in m.dimension_sets:
        sets = " or ".join("[" + ", ".join(sorted(s)) + "]" for s in m.dimension_sets)
        return (
            f"{producer['name']} publishes it with dimensions {sets}, not [{', '.join(sorted(dimensions))}]"
        )
    wrong = {k: v for k, v in fixed.items() if k in dimensions and dimensions[k] != v}
    return f"{producer['name']} publishes it with {wrong}, not { ({k: dimensions[k] for k in wrong}) }"


@contract(
    "metrics-cloudwatch-alarm",
    "metrics",
    "Checks whether every CloudWatch alarm watches a metric something in the plan publishes, with exactly "
    "one of its dimension sets.",
)
def cloudwatch_alarms(plan: PlanView) -> Iterator[Finding]:
    for alarm in plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        for namespace, metric, dims in _alarm_metrics(alarm):
            why = unproduced_metric(plan, namespace, metric, dims)
            if why:
                yield Finding(
                    "metrics-cloudwatch-alarm",
                    alarm["name"],
                    f"{namespace}/{metric}",
                    f"Alarm {alarm['name']} watches {namespace}/{metric} {dims}, but {why}: it can never "
                    "fire.",
                    "Alarm on a dimension set the producer emits, or enable the producer.",
                )


@contract(
    "metrics-lambda-reads",
    "metrics",
    "Checks whether every CloudWatch metric a Lambda's code reads is published by something in the plan, for "
    "the cluster the function is told to watch.",
)
def lambda_reads(plan: PlanView) -> Iterator[Finding]:
    for function in plan.of_type("aws:lambda/function:Function"):
        folder = source_folder(function)
        if folder is None:
            continue
        env = ((function.get("inputs") or {}).get("environment") or {}).get("variables") or {}
        for call in scan(folder).calls:
            namespace, metric = call.literal("Namespace"), call.literal("MetricName")
            if call.service != "cloudwatch" or not namespace or not metric:
                continue
            # Per-cluster metrics are read for the cluster the function is told about.
            filters = {"ClusterName": env["CLUSTER_NAME"]} if "CLUSTER_NAME" in env else {}
            why = unproduced_metric(plan, namespace, metric, filters)
            if why:
                yield Finding(
                    "metrics-lambda-reads",
                    function["name"],
                    f"{namespace}/{metric}",
                    f"Lambda {function['name']} reads {namespace}/{metric} ({call.file}:{call.line}), but "
                    f"{why}: "
                    "it never finds data.",
                    "Turn on the producer (e.g. the CloudWatch add-on's accelerated_compute_metrics), or "
                    "drop the "
                    "function.",
                )
