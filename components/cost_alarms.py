"""Cost alarms: the four cost Lambdas, their queue, topics and roles, and the alarms, budget and
anomaly monitor that drive them (docs/cost.md).

    gateway-logs bucket --ObjectCreated--> SQS (+DLQ) --> spend_aggregator --EMF--> LLMOps metrics
    LLMOps metrics --> team / model / anomaly-band alarms --> alerts topic --> notifier --> Slack
                                                        \\-> guard topic --> budget_guard --> LiteLLM
    schedule --> gpu_idle --> alerts topic;   AWS Budgets, Cost Anomaly Detection --> alerts topic

Every Lambda: Python on arm64, packaged from its folder under lambdas/, its own role with only
what it calls, a KMS-encrypted log group with retention, and a dead-letter queue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components import iam
from components.context import AwsContext
from components.cost_dashboard import usage_dashboard
from components.lambda_function import VpcPlacement, on_schedule, python_function
from llmops.cost import gpu_price_environment
from llmops.prompts.layout import ROOT
from llmops.settings.cost import CostAlarmSettings

NAMESPACE = "LLMOps"
AGGREGATOR_TIMEOUT_SECONDS = 120
AGGREGATOR_CONCURRENCY = 10  # parallel S3 reads; the SQS poller is capped to match
# Services that use the key on the account's behalf: CloudWatch Logs (log groups), the three
# publishers of the encrypted topics, and S3 sending object events to the encrypted queue.
KEY_SERVICES = [
    "logs.{region}.amazonaws.com",
    "cloudwatch.amazonaws.com",
    "budgets.amazonaws.com",
    "costalerts.amazonaws.com",
    "s3.amazonaws.com",
]


@dataclass(frozen=True)
class TeamAlarm:
    """A team from stacks/teams/ (docs/teams.md): alarms at its budget, routed to its contact."""

    team: str
    monthly_budget_usd: float
    contact: str
    """A Slack channel or an e-mail address: the notifier names it (and uses the channel's webhook
    when the Slack secret lists one)."""
    email: str | None = None
    """The contact when it is an e-mail address: subscribed to the team's own topic."""


@dataclass
class CostAlarmsArgs:
    context: AwsContext
    settings: CostAlarmSettings
    logs_bucket: pulumi.Input[str]
    """Name of the gateway's spend-log bucket (its object-created events feed the aggregator)."""
    logs_key_arn: pulumi.Input[str]
    """KMS key of that bucket: the aggregator decrypts the objects with it."""
    logs_prefix: str = "spend-logs/"
    """Key prefix of the spend-log objects (LiteLLM's s3_path)."""
    cluster_name: pulumi.Input[str] | None = None
    """EKS cluster whose GPU nodes the idle-GPU detector watches. None: no detector."""
    gpu_pool_names: list[str] = field(default_factory=list)
    """Karpenter NodePools whose nodes the GPU budget counts (karpenter.sh/nodepool tag)."""
    gateway_url: pulumi.Input[str] | None = None
    """URL of the gateway as the VPC sees it: https://<its private DNS name> (a Route 53 private
    zone of the VPC; cluster DNS names do not resolve from Lambda). None: no budget guard."""
    gateway_ca_certificate: pulumi.Input[str] | None = None
    """PEM of the CA that issued the gateway's certificate: the budget guard verifies the gateway
    with it."""
    gateway_master_key_secret_arn: pulumi.Input[str] | None = None
    """Secret holding the gateway's master key (bare `sk-...` or JSON with master_key)."""
    gateway_secret_key_arn: pulumi.Input[str] | None = None
    """KMS key that encrypts that secret (the guard decrypts it). None: the AWS-managed key."""
    vpc_id: pulumi.Input[str] | None = None
    vpc_cidr: str | None = None
    """The budget guard's security group may reach only HTTPS in this CIDR (the gateway's internal
    load balancer and the VPC endpoints of Secrets Manager and CloudWatch)."""
    vpc_subnet_ids: list[pulumi.Input[str]] = field(default_factory=list)
    """Private subnets of the budget guard (the gateway is only reachable inside the VPC)."""
    guard_https_out: bool = False
    """The budget guard's security group also allows HTTPS out of the VPC: CloudWatch or Secrets
    Manager has no interface endpoint, so the NAT carries those calls."""
    teams: list[TeamAlarm] = field(default_factory=list)
    """Teams from stacks/teams/: each gets alarms at 80% and 100% of its budget's daily share."""
    prompt_bucket: pulumi.Input[str] | None = None
    """The prompt registry's bucket: the aggregator reads the eval records there and emits the eval
    coverage metrics. None: no coverage metrics."""
    prompt_bucket_arn: pulumi.Input[str] | None = None
    prompt_key_arn: pulumi.Input[str] | None = None
    """KMS key of the prompt bucket (the aggregator decrypts eval records with it)."""


class CostAlarms(pulumi.ComponentResource):
    alerts_topic_arn: pulumi.Output[str]
    guard_topic_arn: pulumi.Output[str] | None
    spend_queue_url: pulumi.Output[str]
    slack_secret_arn: pulumi.Output[str] | None
    function_names: dict[str, pulumi.Output[str]]
    dashboard_name: pulumi.Output[str]

    def __init__(self, name: str, args: CostAlarmsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:cost:CostAlarms", name, None, opts)
        self._name, self._args, self._ctx = name, args, args.context
        self._child = pulumi.ResourceOptions(parent=self)
        ctx, settings = args.context, args.settings
        self._prefix = ctx.settings.name_prefix
        self._key = ctx.kms_key(
            f"{name}-key", f"{self._prefix} cost alarms", parent=self, services=KEY_SERVICES
        )
        self.function_names = {}
        self.topic_policies: dict[str, aws.sns.TopicPolicy] = {}

        self.alerts_topic_arn = self._topic("alerts", ["cloudwatch", "budgets", "costalerts"]).arn
        guarded = args.gateway_url is not None and args.gateway_master_key_secret_arn is not None
        guard = self._topic("guard", ["cloudwatch"]) if guarded else None
        self.guard_topic_arn = guard.arn if guard else None
        for i, address in enumerate(settings.alert_emails):
            aws.sns.TopicSubscription(
                f"{name}-email-{i}",
                topic=self.alerts_topic_arn,
                protocol="email",
                endpoint=address,
                opts=self._child,
            )
        # A team whose contact is an e-mail address gets its own topic, subscribed to it.
        self.team_topic_arns: dict[str, pulumi.Output[str]] = {}
        for team in args.teams:
            if team.email:
                topic = self._topic(f"team-{team.team}", ["cloudwatch"])
                self.team_topic_arns[team.team] = topic.arn
                aws.sns.TopicSubscription(
                    f"{name}-team-{team.team}-email",
                    topic=topic.arn,
                    protocol="email",
                    endpoint=team.email,
                    opts=self._child,
                )

        self.spend_queue_url = self._aggregator()
        self.slack_secret_arn = self._notifier() if settings.slack_notifications else None
        if guard is not None:
            self._budget_guard(guard)
        if args.cluster_name is not None:
            self._gpu_idle()
        from components.cost_alarm_rules import add_alarms  # the alarms, budget, anomaly monitor

        add_alarms(self, name, args, self.alerts_topic_arn, self.guard_topic_arn)
        self.register_outputs(
            {
                "alerts_topic_arn": self.alerts_topic_arn,
                "spend_queue_url": self.spend_queue_url,
                "dashboard_name": self.dashboard_name,
            }
        )

    # -- building blocks ---------------------------------------------------------------------

    def _topic(self, role: str, publishers: list[str]) -> aws.sns.Topic:
        """An encrypted topic the publishers (AWS services) may publish to; `topic.policy` is the
        topic policy, which what AWS validates at creation (Budgets, Cost Anomaly Detection) waits for."""
        topic = aws.sns.Topic(f"{self._name}-{role}", kms_master_key_id=self._key.arn, opts=self._child)
        statements = [
            iam.allow(
                ["sns:Publish"], topic.arn, {"StringEquals": {"aws:SourceAccount": self._ctx.account_id}}
            )
            | {"Sid": f"{p}Publish", "Principal": {"Service": f"{p}.amazonaws.com"}}
            for p in publishers
        ]
        self.topic_policies[role] = aws.sns.TopicPolicy(
            f"{self._name}-{role}-policy",
            arn=topic.arn,
            policy=iam.document_output(*statements),
            opts=self._child,
        )
        return topic

    def _queue(self, role: str, **kwargs) -> aws.sqs.Queue:
        return aws.sqs.Queue(
            f"{self._name}-{role}",
            kms_master_key_id=self._key.arn,
            message_retention_seconds=kwargs.pop("message_retention_seconds", 14 * 86400),
            opts=self._child,
            **kwargs,
        )

    def _function(
        self,
        role: str,
        folder: str,
        statements: list,
        environment: dict,
        *,
        reserved: int,
        timeout: int = 30,
        memory_size: int = 256,
        vpc: bool = False,
    ) -> aws.lambda_.Function:
        """A Lambda from lambdas/<folder> (components/lambda_function.py), in the VPC when `vpc`."""
        args = self._args
        placement = (
            VpcPlacement(args.vpc_id, args.vpc_cidr, args.vpc_subnet_ids, https_out=args.guard_https_out)
            if vpc
            else None
        )
        function = python_function(
            self,
            f"{self._name}-{role}",
            f"{self._prefix}-{role}",
            folder,
            statements,
            environment,
            ctx=self._ctx,
            key=self._key,
            log_retention_days=args.settings.log_retention_days,
            reserved=reserved,
            timeout=timeout,
            memory_size=memory_size,
            vpc=placement,
        )
        self.function_names[role] = function.name
        return function

    def _subscribe(self, role: str, function: aws.lambda_.Function, topic_arn: pulumi.Input[str]) -> None:
        aws.lambda_.Permission(
            f"{self._name}-{role}-from-sns",
            action="lambda:InvokeFunction",
            function=function.name,
            principal="sns.amazonaws.com",
            source_arn=topic_arn,
            opts=self._child,
        )
        aws.sns.TopicSubscription(
            f"{self._name}-{role}-subscription",
            topic=topic_arn,
            protocol="lambda",
            endpoint=function.arn,
            opts=self._child,
        )

    # -- the four Lambdas --------------------------------------------------------------------

    def _aggregator(self) -> pulumi.Output[str]:
        args, ctx = self._args, self._ctx
        dlq = self._queue("spend-events-dlq")
        queue = self._queue(
            "spend-events",
            # AWS: at least six times the function timeout, so a batch is not redelivered mid-run.
            visibility_timeout_seconds=6 * AGGREGATOR_TIMEOUT_SECONDS,
            redrive_policy=dlq.arn.apply(
                lambda a: json.dumps({"deadLetterTargetArn": a, "maxReceiveCount": 5})
            ),
        )
        bucket_arn = pulumi.Output.from_input(args.logs_bucket).apply(
            lambda b: f"arn:{ctx.partition}:s3:::{b}"
        )
        queue_policy = aws.sqs.QueuePolicy(
            f"{self._name}-spend-events-policy",
            queue_url=queue.id,
            policy=iam.document_output(
                iam.allow(
                    ["sqs:SendMessage"],
                    queue.arn,
                    {
                        "ArnEquals": {"aws:SourceArn": bucket_arn},
                        "StringEquals": {"aws:SourceAccount": ctx.account_id},
                    },
                )
                | {"Principal": {"Service": "s3.amazonaws.com"}}
            ),
            opts=self._child,
        )
        table = aws.dynamodb.Table(
            f"{self._name}-idempotency",
            name=f"{self._prefix}-spend-log-idempotency",
            billing_mode="PAY_PER_REQUEST",
            hash_key="pk",
            attributes=[{"name": "pk", "type": "S"}],
            ttl={"attribute_name": "expiresAt", "enabled": True},
            server_side_encryption={"enabled": True, "kms_key_arn": self._key.arn},
            opts=self._child,
        )
        objects = bucket_arn.apply(lambda a: f"{a}/{args.logs_prefix}*")
        statements = [
            iam.allow(
                [
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                    "sqs:ChangeMessageVisibility",
                ],
                queue.arn,
            ),
            iam.allow(["s3:GetObject", "s3:GetObjectVersion"], objects),
            iam.allow(["kms:Decrypt"], [args.logs_key_arn, self._key.arn]),
            iam.allow(["dynamodb:GetItem", "dynamodb:PutItem"], table.arn),
        ]
        environment = {"IDEMPOTENCY_TABLE": table.name, "IDEMPOTENCY_TTL_DAYS": "35"}
        coverage = args.prompt_bucket is not None
        if coverage:
            # Eval coverage reads only the eval records: it lists a version's evals/ prefix and
            # gets the latest record (llmops/prompts/layout.py).
            evals = f"{ROOT}*/evals/*"
            statements += [
                iam.allow(["s3:ListBucket"], args.prompt_bucket_arn, {"StringLike": {"s3:prefix": [evals]}}),
                iam.allow(
                    ["s3:GetObject"],
                    pulumi.Output.from_input(args.prompt_bucket_arn).apply(lambda a: f"{a}/{evals}"),
                ),
                iam.allow(["kms:Decrypt"], args.prompt_key_arn),
            ]
            environment["PROMPT_BUCKET"] = args.prompt_bucket
        function = self._function(
            "spend-aggregator",
            "spend_aggregator",
            statements,
            environment,
            timeout=AGGREGATOR_TIMEOUT_SECONDS,
            memory_size=512,
            reserved=AGGREGATOR_CONCURRENCY,
        )
        aws.lambda_.EventSourceMapping(
            f"{self._name}-spend-events-mapping",
            event_source_arn=queue.arn,
            function_name=function.arn,
            batch_size=10,
            maximum_batching_window_in_seconds=30,
            function_response_types=["ReportBatchItemFailures"],  # the handler's batchItemFailures
            # No more pollers than reserved concurrency, or SQS messages bounce off throttles.
            scaling_config={"maximum_concurrency": AGGREGATOR_CONCURRENCY},
            opts=self._child,
        )
        aws.s3.BucketNotification(
            f"{self._name}-spend-log-events",
            bucket=args.logs_bucket,
            queues=[
                {"queue_arn": queue.arn, "events": ["s3:ObjectCreated:*"], "filter_prefix": args.logs_prefix}
            ],
            # S3 checks at creation that it may send to the queue: the queue policy comes first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[queue_policy]),
        )
        teams = {t.team for t in args.teams} | {b.team for b in args.settings.team_budgets}
        settings = ctx.settings
        self.dashboard_name = usage_dashboard(
            self,
            self._name,
            self._prefix,
            settings.environment,
            settings.region,
            sorted(teams),
            function.logging_config.apply(lambda c: c.log_group),
            coverage,
        ).dashboard_name
        return queue.url

    def _notifier(self) -> pulumi.Output[str]:
        secret = aws.secretsmanager.Secret(
            f"{self._name}-slack-webhook",
            name=f"{self._prefix}/cost-alerts/slack-webhook",
            description="Slack incoming-webhook URL for cost alerts (set the value by hand)",
            kms_key_id=self._key.arn,
            opts=self._child,
        )
        function = self._function(
            "cost-notifier",
            "notifier",
            [
                iam.allow(["secretsmanager:GetSecretValue"], secret.arn),
                iam.allow(["kms:Decrypt"], self._key.arn),
            ],
            {
                "SLACK_WEBHOOK_SECRET_ID": secret.arn,
                "TEAM_CONTACTS": json.dumps({t.team: t.contact for t in self._args.teams}, sort_keys=True),
            },
            reserved=2,
        )
        self._subscribe("cost-notifier", function, self.alerts_topic_arn)
        return secret.arn

    def _budget_guard(self, guard: aws.sns.Topic) -> None:
        args = self._args
        function = self._function(
            "budget-guard",
            "budget_guard",
            [
                iam.allow(["secretsmanager:GetSecretValue"], args.gateway_master_key_secret_arn),
                iam.allow(["kms:Decrypt"], [k for k in (self._key.arn, args.gateway_secret_key_arn) if k]),
                iam.allow(["cloudwatch:DescribeAlarms"], "*"),  # no resource-level permissions
            ],
            {
                "GATEWAY_URL": args.gateway_url,
                "GATEWAY_CA_CERT": args.gateway_ca_certificate,
                "GATEWAY_SECRET_ID": args.gateway_master_key_secret_arn,
                "GUARD_TOPIC_ARN": guard.arn,
                "DRY_RUN": "true" if args.settings.budget_guard_dry_run else "false",
            },
            reserved=1,  # one decision at a time: a block and an unblock never race
            vpc=True,
        )
        self._subscribe("budget-guard", function, guard.arn)

    def _gpu_idle(self) -> None:
        settings = self._args.settings
        function = self._function(
            "gpu-idle",
            "gpu_idle",
            [
                # ListMetrics and GetMetricData have no resource-level permissions.
                iam.allow(["cloudwatch:ListMetrics", "cloudwatch:GetMetricData"], "*"),
                iam.allow(["sns:Publish"], self.alerts_topic_arn),
                iam.allow(["kms:GenerateDataKey*", "kms:Decrypt"], self._key.arn),
            ],
            {
                "CLUSTER_NAME": self._args.cluster_name,
                "TOPIC_ARN": self.alerts_topic_arn,
                "IDLE_THRESHOLD_PERCENT": str(settings.idle_gpu_threshold_percent),
                "IDLE_WINDOW_MINUTES": str(settings.idle_gpu_window_minutes),
                # The region's GPU prices (llmops/pricing/), with their source.
                **gpu_price_environment(self._ctx.region),
            },
            reserved=1,
            timeout=60,
        )
        on_schedule(
            self, f"{self._name}-gpu-idle", function, f"rate({settings.idle_gpu_check_minutes} minutes)"
        )
