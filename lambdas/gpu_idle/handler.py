"""Idle-GPU detector: on a schedule, alert on GPU nodes whose GPUs stayed near zero utilisation
for a whole window, with the node, its instance type and the money it burns.

Source metric: Container Insights with enhanced observability publishes `node_gpu_utilization`
(percent) in the `ContainerInsights` namespace with the dimension sets [ClusterName],
[ClusterName, NodeName, InstanceId] and [ClusterName, NodeName, InstanceId, InstanceType,
GpuDevice] (amazon-cloudwatch-agent, translator/translate/otel/exporter/awsemf/kubernetes.go,
getGPUMetricDeclarations). We read the per-GPU set: it carries the instance type, and a node is
idle only when every one of its GPUs is.

A node is reported when, over the last IDLE_WINDOW_MINUTES, each GPU's per-period Maximum
stayed below IDLE_THRESHOLD_PERCENT and the GPU has datapoints for at least 80% of the
periods (a node that launched mid-window, or stopped reporting, is not called idle).

Prices come from HOURLY_PRICES_USD, a JSON object {instance type: USD per hour} that the
cost_alarms component fills from the stack region's table in `llmops/pricing/` (AWS EC2
On-Demand list prices, Linux); PRICE_SOURCE names it in the alert. Spot or reserved nodes
cost less than the list price shown.

Environment: CLUSTER_NAME, TOPIC_ARN, IDLE_THRESHOLD_PERCENT (5), IDLE_WINDOW_MINUTES (60),
PERIOD_SECONDS (300), HOURLY_PRICES_USD, PRICE_SOURCE, ENVIRONMENT.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from functools import cache

import boto3

NAMESPACE = "ContainerInsights"
METRIC = "node_gpu_utilization"
PER_GPU_DIMENSIONS = frozenset({"ClusterName", "NodeName", "InstanceId", "InstanceType", "GpuDevice"})
MIN_COVERAGE = 0.8


@cache
def _cloudwatch():
    return boto3.client("cloudwatch")


@cache
def _sns():
    return boto3.client("sns")


def reset_clients() -> None:
    _cloudwatch.cache_clear()
    _sns.cache_clear()


def handler(event: dict, context: object = None, now: datetime | None = None) -> dict:
    cluster = os.environ["CLUSTER_NAME"]
    threshold = float(os.environ.get("IDLE_THRESHOLD_PERCENT", "5"))
    window = int(os.environ.get("IDLE_WINDOW_MINUTES", "60"))
    period = int(os.environ.get("PERIOD_SECONDS", "300"))
    prices = json.loads(os.environ.get("HOURLY_PRICES_USD", "{}"))
    now = now or datetime.now(UTC)

    nodes = gpu_metrics_by_node(cluster)
    series = utilisation(nodes, now - timedelta(minutes=window), now, period)
    expected = window * 60 // period
    idle = []
    for node, gpus in nodes.items():
        values = [series.get(_id(node, gpu), []) for gpu in gpus]
        if not values or any(len(v) < MIN_COVERAGE * expected for v in values):
            continue
        peak = max(max(v) for v in values)
        if peak < threshold:
            name, instance_id, instance_type = node
            price = prices.get(instance_type)
            idle.append(
                {
                    "node": name,
                    "instanceId": instance_id,
                    "instanceType": instance_type,
                    "gpus": len(gpus),
                    "peakUtilisationPercent": round(peak, 2),
                    "usdPerHour": price,
                    "usdSpentIdle": round(price * window / 60, 2) if price is not None else None,
                }
            )
    print(json.dumps({"level": "INFO", "message": "idle GPU check", "nodes": len(nodes), "idle": idle}))
    if idle:
        alert(cluster, idle, window, threshold)
    return {"checked": len(nodes), "idle": idle}


def gpu_metrics_by_node(cluster: str) -> dict[tuple[str, str, str], list[list[dict]]]:
    """(NodeName, InstanceId, InstanceType) -> per-GPU metric dimension lists."""
    nodes: dict[tuple[str, str, str], list[list[dict]]] = {}
    paginator = _cloudwatch().get_paginator("list_metrics")
    pages = paginator.paginate(
        Namespace=NAMESPACE,
        MetricName=METRIC,
        Dimensions=[{"Name": "ClusterName", "Value": cluster}],
        RecentlyActive="PT3H",  # only nodes that reported in the last 3 hours
    )
    for page in pages:
        for metric in page.get("Metrics", []):
            dims = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
            if set(dims) != PER_GPU_DIMENSIONS:
                continue
            key = (dims["NodeName"], dims["InstanceId"], dims["InstanceType"])
            gpus = nodes.setdefault(key, [])
            if all(_id(key, g) != _id(key, metric["Dimensions"]) for g in gpus):  # ListMetrics may repeat
                gpus.append(metric["Dimensions"])
    return nodes


def _id(node: tuple[str, str, str], gpu: list[dict]) -> str:
    device = next(d["Value"] for d in gpu if d["Name"] == "GpuDevice")
    return f"{node[1]}|{device}"


def utilisation(nodes: dict, start: datetime, end: datetime, period: int) -> dict[str, list[float]]:
    """Per-period Maximum of every GPU, keyed like `_id`; GetMetricData takes 500 queries a call."""
    queries, ids = [], {}
    for node, gpus in nodes.items():
        for gpu in gpus:
            qid = f"q{len(queries)}"
            ids[qid] = _id(node, gpu)
            queries.append(
                {
                    "Id": qid,
                    "MetricStat": {
                        "Metric": {"Namespace": NAMESPACE, "MetricName": METRIC, "Dimensions": gpu},
                        "Period": period,
                        "Stat": "Maximum",
                    },
                    "ReturnData": True,
                }
            )
    out: dict[str, list[float]] = {}
    for i in range(0, len(queries), 500):
        kwargs = {"MetricDataQueries": queries[i : i + 500], "StartTime": start, "EndTime": end}
        while True:
            page = _cloudwatch().get_metric_data(**kwargs)
            for result in page["MetricDataResults"]:
                out.setdefault(ids[result["Id"]], []).extend(result["Values"])
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
    return out


def alert(cluster: str, idle: list[dict], window: int, threshold: float) -> None:
    env = os.environ.get("ENVIRONMENT", "")
    hourly = sum(n["usdPerHour"] or 0 for n in idle)
    lines = [
        f"{len(idle)} GPU node(s) in cluster {cluster} stayed below {threshold:g}% GPU utilisation "
        f"for the last {window} minutes, costing ${hourly:,.2f}/hour together (${hourly * 24:,.2f}/day).",
        "",
    ]
    for n in idle:
        price = (
            f"${n['usdPerHour']:,.2f}/hour, ${n['usdSpentIdle']:,.2f} spent idle in the window"
            if n["usdPerHour"] is not None
            else "price unknown (instance type not in the price table)"
        )
        lines.append(
            f"- {n['node']} ({n['instanceId']}, {n['instanceType']}, {n['gpus']} GPU): "
            f"peak {n['peakUtilisationPercent']:g}%; {price}"
        )
    lines += [
        "",
        f"Prices: {os.environ.get('PRICE_SOURCE', 'list prices')}. Spot and reserved nodes cost less.",
    ]
    subject = f"{'[' + env + '] ' if env else ''}{len(idle)} idle GPU node(s): ${hourly:,.2f}/hour"
    _sns().publish(TopicArn=os.environ["TOPIC_ARN"], Subject=subject[:100], Message="\n".join(lines))
