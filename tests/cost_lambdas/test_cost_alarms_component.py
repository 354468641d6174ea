"""The cost_alarms component under Pulumi's mocks: what it declares and that it fits the Lambdas."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws
import pytest
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await
from pydantic import ValidationError

from components.context import AwsContext
from components.cost_alarms import CostAlarms, CostAlarmsArgs
from components.lambda_function import LAMBDAS, lambda_code
from lambdas.spend_aggregator.aggregate import DIMENSION_SETS, METRICS, NAMESPACE
from llmops import instances
from llmops.settings import StackSettings
from llmops.settings.cost import CostAlarmSettings

ACCOUNT = "111122223333"
REGION = "me-central-1"
GATEWAY_SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:llmops-prod/gateway/master-key-x"
GATEWAY_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/gateway-data"
LOGS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/logs"


class Recorder(pulumi.runtime.Mocks):
    """Records every resource; gives each an id, name and ARN like AWS would."""

    def __init__(self):
        self.resources: dict[str, dict] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        module = args.typ.split(":")[1].split("/")[0]
        physical = args.inputs.get("name") or f"{args.name}-phys"
        outputs = {"name": physical, **args.inputs, "arn": f"arn:aws:{module}:{REGION}:{ACCOUNT}:{physical}"}
        if args.typ == "aws:sqs/queue:Queue":
            outputs["url"] = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{physical}"
        self.resources[args.name] = {"type": args.typ, "inputs": args.inputs}
        return f"{physical}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        raise AssertionError(f"the component must not invoke {args.token}")


def declare(cost: dict | None = None, guard: bool = True, cluster: bool = True):
    settings = StackSettings.model_validate(
        {"environment": "prod", "dataClassification": "regulated", "region": REGION}
    )
    cost_settings = CostAlarmSettings.model_validate(
        cost
        if cost is not None
        else {
            "teamBudgets": [
                {"team": "payments", "dailyUsd": 100},
                {"team": "search", "dailyUsd": 50, "block": False},
            ],
            "modelBudgets": [{"model": "chat-primary", "dailyUsd": 500}],
            "gpuMonthlyBudgetUsd": 20000,
            "alertEmails": ["finops@example.com"],
            "budgetGuardDryRun": False,
        }
    )
    recorder, parents = Recorder(), {}

    def record_parent(args: pulumi.ResourceTransformationArgs):
        parent = args.opts.parent if args.opts else None
        parents[args.name] = parent.pulumi_resource_name if parent else None

    def program():
        pulumi.runtime.register_stack_transformation(record_parent)
        provider = aws.Provider("aws", region=REGION)
        identity = aws.GetCallerIdentityResult(
            account_id=ACCOUNT, arn=f"arn:aws:iam::{ACCOUNT}:role/deploy", id=ACCOUNT, user_id="AROAEXAMPLE"
        )
        ctx = AwsContext(settings, provider, identity, "aws", "amazonaws.com")
        CostAlarms(
            "cost",
            CostAlarmsArgs(
                context=ctx,
                settings=cost_settings,
                logs_bucket="llmops-prod-gateway-logs",
                logs_key_arn=LOGS_KEY,
                cluster_name="llmops-prod" if cluster else None,
                gpu_pool_names=["l4", "h100"],
                gateway_url="http://litellm.gateway.svc.cluster.local:4000" if guard else None,
                gateway_master_key_secret_arn=GATEWAY_SECRET if guard else None,
                gateway_secret_key_arn=GATEWAY_KEY,
                vpc_id="vpc-1",
                vpc_cidr="10.0.0.0/16",
                vpc_subnet_ids=["subnet-a", "subnet-b"],
            ),
        )

    pulumi_mocks.set_mocks(recorder, project="llmops", stack="test", preview=False)
    _sync_await(run_pulumi_func(program))
    return recorder.resources, parents


@pytest.fixture(scope="module")
def full():
    return declare()


def of_type(resources, type_):
    return {name: r["inputs"] for name, r in resources.items() if r["type"] == type_}


def only(resources, type_, name):
    return of_type(resources, type_)[name]


def policy_of(resources, role):
    return json.loads(only(resources, "aws:iam/rolePolicy:RolePolicy", f"cost-{role}-policy")["policy"])


def test_every_child_is_parented_to_the_component(full):
    resources, parents = full
    orphans = [n for n in resources if n != "cost" and parents.get(n) != "cost" and n != "aws"]
    assert orphans == []


def test_lambdas_are_arm64_python_packaged_from_their_folder_with_logs_and_dlq(full):
    resources, _ = full
    functions = of_type(resources, "aws:lambda/function:Function")
    assert set(functions) == {
        "cost-spend-aggregator",
        "cost-cost-notifier",
        "cost-budget-guard",
        "cost-gpu-idle",
    }
    groups = of_type(resources, "aws:cloudwatch/logGroup:LogGroup")
    for name, fn in functions.items():
        folder = fn["handler"].split(".")[0]
        assert fn["architectures"] == ["arm64"] and fn["runtime"].startswith("python3."), name
        assert fn["handler"] == f"{folder}.handler.handler", name
        assert (LAMBDAS / folder / "handler.py").is_file(), name
        assert fn["loggingConfig"]["logGroup"] == f"/aws/lambda/{fn['name']}", name
        group = groups[f"{name}-logs"]
        assert group["retentionInDays"] == 365 and group["kmsKeyId"], name
        assert f"{name}-dlq" in fn["deadLetterConfig"]["targetArn"], name
        assert 1 <= fn["reservedConcurrentExecutions"] <= 10 and fn["timeout"] <= 300, name


def test_aggregator_reads_the_bucket_through_a_queue_with_dlq_and_partial_failures(full):
    resources, _ = full
    queue = only(resources, "aws:sqs/queue:Queue", "cost-spend-events")
    redrive = json.loads(queue["redrivePolicy"])
    assert redrive["maxReceiveCount"] == 5 and "spend-events-dlq" in redrive["deadLetterTargetArn"]
    assert queue["kmsMasterKeyId"] and queue["visibilityTimeoutSeconds"] >= 6 * 120
    mapping = only(resources, "aws:lambda/eventSourceMapping:EventSourceMapping", "cost-spend-events-mapping")
    assert mapping["functionResponseTypes"] == ["ReportBatchItemFailures"]
    aggregator = only(resources, "aws:lambda/function:Function", "cost-spend-aggregator")
    assert mapping["scalingConfig"]["maximumConcurrency"] == aggregator["reservedConcurrentExecutions"]
    [notification] = of_type(resources, "aws:s3/bucketNotification:BucketNotification").values()
    assert notification["bucket"] == "llmops-prod-gateway-logs"
    assert notification["queues"][0]["events"] == ["s3:ObjectCreated:*"]
    assert notification["queues"][0]["filterPrefix"] == "spend-logs/"
    [statement] = json.loads(
        only(resources, "aws:sqs/queuePolicy:QueuePolicy", "cost-spend-events-policy")["policy"]
    )["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == "arn:aws:s3:::llmops-prod-gateway-logs"
    table = only(resources, "aws:dynamodb/table:Table", "cost-idempotency")
    assert table["hashKey"] == "pk" and table["ttl"] == {"attributeName": "expiresAt", "enabled": True}
    env = only(resources, "aws:lambda/function:Function", "cost-spend-aggregator")["environment"]["variables"]
    assert env["ENVIRONMENT"] == "prod" and env["IDEMPOTENCY_TABLE"] == table["name"]


def test_roles_grant_only_what_each_handler_calls(full):
    resources, _ = full

    def actions(role):
        return {a for s in policy_of(resources, role)["Statement"] for a in s["Action"]}

    logs = {"logs:CreateLogStream", "logs:PutLogEvents"}
    dlq = {"sqs:SendMessage", "kms:GenerateDataKey*", "kms:Decrypt"}
    assert actions("spend-aggregator") == logs | dlq | {
        "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility",
        "s3:GetObject", "s3:GetObjectVersion", "kms:Decrypt", "dynamodb:GetItem", "dynamodb:PutItem",
    }  # fmt: skip
    assert actions("cost-notifier") == logs | dlq | {"secretsmanager:GetSecretValue"}
    assert actions("budget-guard") == logs | dlq | {
        "secretsmanager:GetSecretValue",
        "cloudwatch:DescribeAlarms",
    }
    assert actions("gpu-idle") == logs | dlq | {
        "cloudwatch:ListMetrics",
        "cloudwatch:GetMetricData",
        "sns:Publish",
    }
    s3 = next(
        s for s in policy_of(resources, "spend-aggregator")["Statement"] if "s3:GetObject" in s["Action"]
    )
    assert s3["Resource"] == "arn:aws:s3:::llmops-prod-gateway-logs/spend-logs/*"
    secret = next(
        s
        for s in policy_of(resources, "budget-guard")["Statement"]
        if "secretsmanager:GetSecretValue" in s["Action"]
    )
    assert secret["Resource"] == GATEWAY_SECRET
    for name, role in of_type(resources, "aws:iam/role:Role").items():
        trust = json.loads(role["assumeRolePolicy"])["Statement"][0]
        assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}, name
        assert trust["Condition"]["StringEquals"]["aws:SourceAccount"] == ACCOUNT, name


def test_budget_guard_runs_in_the_vpc_and_follows_the_dry_run_setting(full):
    resources, _ = full
    fn = only(resources, "aws:lambda/function:Function", "cost-budget-guard")
    assert fn["vpcConfig"]["subnetIds"] == ["subnet-a", "subnet-b"]
    (sg_id,) = fn["vpcConfig"]["securityGroupIds"]
    sg = only(resources, "aws:ec2/securityGroup:SecurityGroup", "cost-budget-guard-sg")
    assert sg_id.startswith("cost-budget-guard-sg")  # the mock's id of that group
    # Out only to HTTPS in the VPC (the gateway's load balancer, the endpoints); nothing comes in.
    assert sg["ingress"] == [] and {(r["fromPort"], tuple(r["cidrBlocks"])) for r in sg["egress"]} == {
        (443, ("10.0.0.0/16",)),
    }
    env = fn["environment"]["variables"]
    assert env["DRY_RUN"] == "false" and env["GATEWAY_SECRET_ID"] == GATEWAY_SECRET
    assert env["GATEWAY_URL"] == "http://litellm.gateway.svc.cluster.local:4000"
    kms = next(s for s in policy_of(resources, "budget-guard")["Statement"] if s["Action"] == ["kms:Decrypt"])
    assert GATEWAY_KEY in kms["Resource"]
    assert env["GUARD_TOPIC_ARN"].endswith("cost-guard-phys")
    dry, _ = declare({"teamBudgets": [{"team": "payments", "dailyUsd": 10}]})
    assert (
        only(dry, "aws:lambda/function:Function", "cost-budget-guard")["environment"]["variables"]["DRY_RUN"]
        == "true"
    )


def test_gpu_idle_gets_the_price_table_and_a_schedule(full):
    resources, _ = full
    env = only(resources, "aws:lambda/function:Function", "cost-gpu-idle")["environment"]["variables"]
    prices = json.loads(env["HOURLY_PRICES_USD"])
    # The stack region's prices only (a type me-central-1 does not offer has none).
    regional = {n: t.usd_per_hour("me-central-1") for n, t in instances.GPU_INSTANCE_TYPES.items()}
    assert prices == {n: p for n, p in regional.items() if p is not None} and prices["g5.xlarge"] == 1.234
    assert "me-central-1" in env["PRICE_SOURCE"] and env["CLUSTER_NAME"] == "llmops-prod"
    rule = only(resources, "aws:cloudwatch/eventRule:EventRule", "cost-gpu-idle-schedule")
    assert rule["scheduleExpression"] == "rate(15 minutes)"


def test_team_and_model_alarms_use_metrics_the_aggregator_emits(full):
    resources, _ = full
    alarms = of_type(resources, "aws:cloudwatch/metricAlarm:MetricAlarm")
    assert set(alarms) == {
        "cost-team-payments-daily-cost", "cost-team-payments-cost-anomaly",
        "cost-team-search-daily-cost", "cost-team-search-cost-anomaly", "cost-model-chat-primary-daily-cost",
    }  # fmt: skip
    metric_names = {n for n, _ in METRICS}
    for name, alarm in alarms.items():
        metrics = (
            [alarm]
            if "metricName" in alarm
            else [q["metric"] for q in alarm["metricQueries"] if "metric" in q]
        )
        for m in metrics:
            assert m["namespace"] == NAMESPACE and m["metricName"] in metric_names, name
            assert sorted(m["dimensions"]) in [sorted(s) for s in DIMENSION_SETS], (
                f"{name}: {m['dimensions']}"
            )
            assert m["dimensions"]["Environment"] == "prod", name
    payments, search = alarms["cost-team-payments-daily-cost"], alarms["cost-team-search-daily-cost"]
    assert payments["threshold"] == 100 and payments["dimensions"]["Team"] == "payments"
    assert any("cost-guard" in a for a in payments["alarmActions"]) and any(
        "cost-guard" in a for a in payments["okActions"]
    )
    assert not any("cost-guard" in a for a in search["alarmActions"])  # block: false notifies only
    band = alarms["cost-team-payments-cost-anomaly"]
    assert band["thresholdMetricId"] == "band" and band["comparisonOperator"] == "GreaterThanUpperThreshold"
    assert any(q.get("expression") == "ANOMALY_DETECTION_BAND(cost, 3)" for q in band["metricQueries"])
    model = alarms["cost-model-chat-primary-daily-cost"]
    routes = sorted(q["metric"]["dimensions"]["Route"] for q in model["metricQueries"] if "metric" in q)
    assert routes == ["external", "self-hosted"]


def test_gpu_budget_and_anomaly_monitor_notify_the_alerts_topic(full):
    resources, _ = full
    budget = only(resources, "aws:budgets/budget:Budget", "cost-gpu-budget")
    assert budget["limitAmount"] == "20000.00" and budget["timeUnit"] == "MONTHLY"
    assert budget["costFilters"] == [
        {
            "name": "TagKeyValue",
            "values": ["user:karpenter.sh/nodepool$l4", "user:karpenter.sh/nodepool$h100"],
        }
    ]
    kinds = {(n["notificationType"], n["threshold"]) for n in budget["notifications"]}
    assert kinds == {("ACTUAL", 80), ("FORECASTED", 100)}
    assert all(n["subscriberSnsTopicArns"][0].endswith("cost-alerts-phys") for n in budget["notifications"])
    monitor = only(resources, "aws:costexplorer/anomalyMonitor:AnomalyMonitor", "cost-anomaly-monitor")
    assert json.loads(monitor["monitorSpecification"])["Tags"]["Values"] == ["prod"]
    sub = only(
        resources, "aws:costexplorer/anomalySubscription:AnomalySubscription", "cost-anomaly-subscription"
    )
    assert sub["frequency"] == "IMMEDIATE" and sub["subscribers"][0]["type"] == "SNS"


def test_topics_are_encrypted_and_admit_only_the_publishing_services(full):
    resources, _ = full
    topics = of_type(resources, "aws:sns/topic:Topic")
    assert set(topics) == {"cost-alerts", "cost-guard"} and all(t["kmsMasterKeyId"] for t in topics.values())
    policies = of_type(resources, "aws:sns/topicPolicy:TopicPolicy")
    alerts = {
        s["Principal"]["Service"] for s in json.loads(policies["cost-alerts-policy"]["policy"])["Statement"]
    }
    assert alerts == {"cloudwatch.amazonaws.com", "budgets.amazonaws.com", "costalerts.amazonaws.com"}
    guard = {
        s["Principal"]["Service"] for s in json.loads(policies["cost-guard-policy"]["policy"])["Statement"]
    }
    assert guard == {"cloudwatch.amazonaws.com"}
    [email] = [
        s
        for s in of_type(resources, "aws:sns/topicSubscription:TopicSubscription").values()
        if s["protocol"] == "email"
    ]
    assert email["endpoint"] == "finops@example.com"


def test_optional_parts_are_left_out():
    resources, _ = declare({"slackNotifications": False}, guard=False, cluster=False)
    functions = of_type(resources, "aws:lambda/function:Function")
    assert set(functions) == {"cost-spend-aggregator"}
    assert of_type(resources, "aws:budgets/budget:Budget") == {}
    assert set(of_type(resources, "aws:sns/topic:Topic")) == {"cost-alerts"}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"teamBudgets": [{"team": "a", "dailyUsd": 1}, {"team": "a", "dailyUsd": 2}]}, "repeated: a"),
        ({"teamBudgets": [{"team": "a", "dailyUsd": 0}]}, "greater than 0"),
        ({"logRetentionDays": 10}, "not a CloudWatch Logs retention"),
        ({"alertEmails": ["finops"]}, "not email addresses: finops"),
        ({"budgetGuardDryrun": False}, "Extra inputs are not permitted"),
    ],
)
def test_fails_when_settings_are_wrong(settings, message):
    with pytest.raises(ValidationError) as err:
        CostAlarmSettings.model_validate(settings)
    assert message in str(err.value)


def test_key_admits_only_the_services_that_use_it(full):
    resources, _ = full
    policy = json.loads(only(resources, "aws:kms/key:Key", "cost-key")["policy"])
    [use] = [s for s in policy["Statement"] if s.get("Sid") == "ServiceUse"]
    assert set(use["Principal"]["Service"]) == {
        f"logs.{REGION}.amazonaws.com", "cloudwatch.amazonaws.com", "budgets.amazonaws.com",
        "costalerts.amazonaws.com", "s3.amazonaws.com",
    }  # fmt: skip
    assert use["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


def test_offline_plan_records_where_lambda_code_comes_from():
    from llmops.offline import clean

    assert clean({"code": lambda_code("notifier")}) == {
        "code": {
            "archive": {
                "notifier/__init__.py": {"asset": {"path": "lambdas/notifier/__init__.py"}},
                "notifier/handler.py": {"asset": {"path": "lambdas/notifier/handler.py"}},
            }
        }
    }
