"""Cost: GPU instance choices and NodePool GPU ceilings, budgets and anomaly monitors, alarms that act,
and Lambdas that cannot run away (DLQ, reserved concurrency, bounded timeout)."""

from __future__ import annotations

from collections.abc import Iterator

from ._k8s import NODEPOOL, k8s_name
from ._rule import A, Ctx, D, M, Res, Stack, anchors, as_list, get, levels, resource_rule, stack_rule

COST = levels(D, A, M, M)
FINOPS = anchors("AWS Well-Architected:COST02-BP05 implement cost controls", "ISO 27001:2022:A.8.6")
# GPU families the platform prices (llmops/pricing/catalogue.yaml); extend both together.
GPU_FAMILIES = [
    *("g4dn", "g5", "g6", "g6e", "g7e", "gr6"),
    *("p4d", "p4de", "p5", "p5e", "p5en", "p6-b200", "p6-b300"),
]
INSTANCE_KEYS = ("node.kubernetes.io/instance-type", "karpenter.k8s.aws/instance-family")


@resource_rule(
    id="LLMOPS-COST-001",
    name="gpu-instance-types-allowed",
    setting=(
        "llmops:gpuPools[].instanceFamilies",
        "llmops:gpuPools[].instanceTypes",
        "llmops:cluster.systemNodes.instanceType",
    ),
    description="Checks whether Karpenter NodePools and EKS node groups ask only for allowed instance "
    "families.",
    severity="high",
    remediation="Choose instance families from allowedInstanceFamilies (priced in llmops/pricing/); add "
    "a "
    "family to both after a cost review.",
    anchors=FINOPS,
    levels=COST,
    types=(NODEPOOL, "aws:eks/nodeGroup:NodeGroup"),
    config={
        "allowedInstanceFamilies": {
            "type": "array",
            "items": {"type": "string"},
            "default": [*GPU_FAMILIES, "m7i", "m7g", "m8g", "t4g", "c7i", "t3"],
        }
    },
)
def gpu_types(res: Res, ctx: Ctx) -> Iterator[str]:
    allowed = set(as_list(ctx.cfg("allowedInstanceFamilies")))
    if res.type == NODEPOOL:
        values = []
        for req in as_list(res.get("spec.template.spec.requirements")):
            if get(req, "key") in INSTANCE_KEYS and get(req, "operator") == "In":
                values += [str(v) for v in as_list(get(req, "values"))]
        where = f"NodePool {k8s_name(res)}"
    else:
        values = [str(v) for v in as_list(res.get("instanceTypes"))]
        where = f"Node group {res.name}"
    bad = sorted({v for v in values if v.split(".", 1)[0] not in allowed})
    if bad:
        yield f"{where} must use allowed instance families (not {', '.join(bad)})."


@resource_rule(
    id="LLMOPS-COST-002",
    name="nodepool-gpu-limit",
    setting="llmops:gpuPools[].maxGpus",
    description="Checks whether every GPU NodePool has a nvidia.com/gpu limit no higher than maxGpusPerPool, "
    "the hard ceiling on what the pool can cost.",
    severity="high",
    remediation="Set spec.limits['nvidia.com/gpu'] on the NodePool (gpuPools[].maxGpus in the stack file).",
    anchors=FINOPS,
    levels=levels(A, M, M, M),
    types=(NODEPOOL,),
    config={"maxGpusPerPool": {"type": "integer", "minimum": 1, "default": 32}},
)
def gpu_limit(res: Res, ctx: Ctx) -> Iterator[str]:
    gpu_pool = any(
        get(t, "key") == "nvidia.com/gpu" for t in as_list(res.get("spec.template.spec.taints"))
    ) or any(
        get(r, "key") in INSTANCE_KEYS
        and any(str(v).split(".")[0] in GPU_FAMILIES for v in as_list(get(r, "values")))
        for r in as_list(res.get("spec.template.spec.requirements"))
    )
    if not gpu_pool:
        return
    limits = res.get("spec.limits") or {}
    limit = limits.get("nvidia.com/gpu") if hasattr(limits, "get") else None
    if limit is None:
        yield f"NodePool {k8s_name(res)} must set a nvidia.com/gpu limit."
    elif int(str(limit)) > int(ctx.cfg("maxGpusPerPool")):
        yield f"NodePool {k8s_name(res)} must limit GPUs to {ctx.cfg('maxGpusPerPool')} (has {limit})."


@stack_rule(
    id="LLMOPS-COST-003",
    name="budget-with-notifications",
    setting="llmops:costAlarms.gpuMonthlyBudgetUsd",
    description="Checks whether the stack declares an AWS Budget with at least one notification.",
    severity="medium",
    remediation="Declare an aws.budgets.Budget on GPU spend (cost-allocation tag filter) with ACTUAL and "
    "FORECASTED notifications to the cost SNS topic.",
    anchors=FINOPS,
    levels=COST,
)
def budget(stack: Stack, ctx: Ctx) -> Iterator[tuple[Res | None, str]]:
    budgets = stack.of("aws:budgets/budget:Budget")
    if not budgets:
        yield None, "The stack must declare an AWS Budget (aws.budgets.Budget) with notifications."
    for b in budgets:
        if not as_list(b.get("notifications")):
            yield b, f"Budget {b.name} must have at least one notification."


@stack_rule(
    id="LLMOPS-COST-004",
    name="cost-anomaly-monitor",
    description="Checks whether the stack declares a Cost Anomaly Detection monitor and a subscription that "
    "alerts on it.",
    severity="medium",
    remediation="Declare an aws.costexplorer.AnomalyMonitor and an AnomalySubscription to the cost SNS "
    "topic.",
    anchors=FINOPS,
    levels=COST,
)
def anomaly_monitor(stack: Stack, ctx: Ctx) -> Iterator[tuple[Res | None, str]]:
    if not stack.of("aws:costexplorer/anomalyMonitor:AnomalyMonitor"):
        yield (
            None,
            "The stack must declare a Cost Anomaly Detection monitor (aws.costexplorer.AnomalyMonitor).",
        )
    elif not stack.of("aws:costexplorer/anomalySubscription:AnomalySubscription"):
        yield None, "The stack must subscribe to its anomaly monitor (aws.costexplorer.AnomalySubscription)."


@resource_rule(
    id="LLMOPS-COST-005",
    name="alarms-have-actions",
    description="Checks whether every CloudWatch alarm has actions enabled and at least one alarm action.",
    severity="medium",
    remediation="Set alarm_actions to the notifier SNS topic (and ok_actions where recovery matters).",
    anchors=(*anchors("AWS FSBP:CloudWatch.15", "PCI DSS 4.0:10.7.2"), *FINOPS),
    levels=COST,
    types=("aws:cloudwatch/metricAlarm:MetricAlarm",),
)
def alarm_actions(res: Res, ctx: Ctx) -> Iterator[str]:
    if res.get("actionsEnabled", True) in (False, "false") or not as_list(res.get("alarmActions")):
        yield f"Alarm {res.name} must have alarmActions (and actionsEnabled true)."


LAMBDA = ("aws:lambda/function:Function",)


@resource_rule(
    id="LLMOPS-COST-006",
    name="lambda-dead-letter-queue",
    description="Checks whether every Lambda function has a dead-letter queue for failed asynchronous "
    "events.",
    severity="medium",
    remediation="Set dead_letter_config.target_arn to an encrypted SQS queue.",
    anchors=anchors("Checkov:CKV_AWS_116", "ISO 27001:2022:A.8.16"),
    levels=COST,
    types=LAMBDA,
)
def lambda_dlq(res: Res, ctx: Ctx) -> Iterator[str]:
    if not res.get("deadLetterConfig.targetArn"):
        yield f"Lambda function {res.name} must have a dead-letter queue (deadLetterConfig.targetArn)."


@resource_rule(
    id="LLMOPS-COST-007",
    name="lambda-reserved-concurrency",
    description="Checks whether every Lambda function reserves a bounded, positive concurrency.",
    severity="medium",
    remediation="Set reserved_concurrent_executions (e.g. 5) so a flood of events cannot scale it without "
    "limit.",
    anchors=(*anchors("Checkov:CKV_AWS_115"), *FINOPS),
    levels=COST,
    types=LAMBDA,
)
def lambda_concurrency(res: Res, ctx: Ctx) -> Iterator[str]:
    value = res.get("reservedConcurrentExecutions")
    if value is None or int(value) <= 0:
        yield f"Lambda function {res.name} must set reservedConcurrentExecutions above 0."


@resource_rule(
    id="LLMOPS-COST-008",
    name="lambda-timeout-bounded",
    description="Checks whether every Lambda function sets a timeout no longer than maxTimeoutSeconds.",
    severity="low",
    remediation="Set timeout explicitly (seconds), no more than maxTimeoutSeconds.",
    anchors=FINOPS,
    levels=COST,
    types=LAMBDA,
    config={"maxTimeoutSeconds": {"type": "integer", "minimum": 1, "maximum": 900, "default": 300}},
)
def lambda_timeout(res: Res, ctx: Ctx) -> Iterator[str]:
    timeout = res.get("timeout")
    if timeout is None or int(timeout) > int(ctx.cfg("maxTimeoutSeconds")):
        yield f"Lambda function {res.name} must set timeout at most {ctx.cfg('maxTimeoutSeconds')} seconds."
