"""Idle-GPU detector against moto CloudWatch (Container Insights metrics) and SNS."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from lambdas.gpu_idle import handler
from llmops import instances
from llmops.cost import gpu_price_environment
from llmops.verify.metrics import cloudwatch_producers
from llmops.verify.model import PlanView
from llmops.verify.upstream import CONTAINER_INSIGHTS_GPU

REGION = "us-east-1"
CLUSTER = "llmops-prod"
NOW = datetime.now(UTC).replace(second=0, microsecond=0)


def put_gpu(
    cw, node: str, instance_id: str, instance_type: str, device: str, values: list[float], cluster=CLUSTER
):
    """One value per minute ending now, under every dimension set the CloudWatch agent publishes
    node_gpu_utilization with (recorded from its source in llmops/verify/upstream.py)."""
    values_of = {"ClusterName": cluster, "NodeName": node, "InstanceId": instance_id,
                 "InstanceType": instance_type, "GpuDevice": device}  # fmt: skip
    for dimension_set in CONTAINER_INSIGHTS_GPU.dimension_sets:
        dims = [{"Name": k, "Value": values_of[k]} for k in sorted(dimension_set)]
        data = [
            {
                "MetricName": "node_gpu_utilization",
                "Dimensions": dims,
                "Timestamp": NOW - timedelta(minutes=len(values) - i),
                "Value": v,
                "Unit": "Percent",
            }
            for i, v in enumerate(values)
        ]
        for chunk in range(0, len(data), 20):
            cw.put_metric_data(Namespace="ContainerInsights", MetricData=data[chunk : chunk + 20])


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_the_shipped_plans_publish_what_the_detector_reads(plans, stack):
    """The detector's input is produced: the plan's CloudWatch add-on publishes node_gpu_utilization
    (accelerated compute metrics on) for the cluster the function is told to watch."""
    doc = plans[stack].plan.to_dict()
    (function,) = [r for r in doc["resources"] if r["name"] == f"llmops-{stack}-cost-gpu-idle"]
    cluster = function["inputs"]["environment"]["variables"]["CLUSTER_NAME"]
    produced = [
        fixed for _, metrics, fixed in cloudwatch_producers(PlanView(doc))
        if metrics.namespace == handler.NAMESPACE and handler.METRIC in metrics.metrics
    ]  # fmt: skip
    assert {"ClusterName": cluster} in produced
    assert handler.PER_GPU_DIMENSIONS in CONTAINER_INSIGHTS_GPU.dimension_sets


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("CLUSTER_NAME", CLUSTER)
    monkeypatch.setenv("ENVIRONMENT", "prod")
    monkeypatch.setenv("IDLE_WINDOW_MINUTES", "60")
    monkeypatch.setenv("IDLE_THRESHOLD_PERCENT", "5")
    for key, value in gpu_price_environment("us-east-1").items():  # a region offering g6e and p5
        monkeypatch.setenv(key, value)
    with mock_aws():
        handler.reset_clients()
        sns = boto3.client("sns", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        topic = sns.create_topic(Name="llmops-prod-cost-alerts")["TopicArn"]
        queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
        monkeypatch.setenv("TOPIC_ARN", topic)
        yield {"cw": boto3.client("cloudwatch", region_name=REGION), "sqs": sqs, "queue": queue}
        handler.reset_clients()


def alerts(aws) -> list[dict]:
    got = aws["sqs"].receive_message(QueueUrl=aws["queue"], MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in got]


def test_idle_node_is_reported_with_type_and_money(aws):
    cw = aws["cw"]
    put_gpu(cw, "ip-10-0-1-5", "i-idle", "g6e.xlarge", "nvidia0", [1.0, 2.0, 0.0] * 20)
    for device in ("nvidia0", "nvidia1", "nvidia2"):  # a 4-GPU node with one busy GPU is not idle
        put_gpu(cw, "ip-10-0-1-6", "i-busy", "g5.12xlarge", device, [0.5] * 60)
    put_gpu(cw, "ip-10-0-1-6", "i-busy", "g5.12xlarge", "nvidia3", [0.5] * 50 + [63.0] + [0.5] * 9)
    put_gpu(cw, "ip-10-0-1-7", "i-new", "p5.48xlarge", "nvidia0", [0.0] * 15)  # launched 15 minutes ago
    put_gpu(cw, "ip-10-9-9-9", "i-other", "g6e.xlarge", "nvidia0", [0.0] * 60, cluster="llmops-dev")

    result = handler.handler({}, None, now=NOW)

    assert result["checked"] == 3
    [idle] = result["idle"]
    price = instances.GPU_INSTANCE_TYPES["g6e.xlarge"].usd_per_hour("us-east-1")
    assert idle["node"] == "ip-10-0-1-5" and idle["instanceType"] == "g6e.xlarge" and idle["gpus"] == 1
    assert idle["usdPerHour"] == price and idle["usdSpentIdle"] == round(price, 2)
    [note] = alerts(aws)
    assert note["Subject"].startswith("[prod] 1 idle GPU node(s)")
    for fact in (
        "ip-10-0-1-5",
        "i-idle",
        "g6e.xlarge",
        f"${price:,.2f}/hour",
        "On-Demand list prices, us-east-1",
    ):
        assert fact in note["Message"], fact
    assert "i-busy" not in note["Message"] and "i-new" not in note["Message"]


def test_no_alert_when_everything_works(aws):
    put_gpu(aws["cw"], "ip-10-0-1-6", "i-busy", "g6.xlarge", "nvidia0", [40.0] * 60)
    assert handler.handler({}, None, now=NOW)["idle"] == []
    assert alerts(aws) == []


def test_unknown_instance_type_still_alerts_without_a_price(aws):
    put_gpu(aws["cw"], "ip-10-0-2-1", "i-x", "g3.4xlarge", "nvidia0", [0.0] * 60)  # not catalogued
    [idle] = handler.handler({}, None, now=NOW)["idle"]
    assert idle["usdPerHour"] is None
    assert "price unknown" in alerts(aws)[0]["Message"]
