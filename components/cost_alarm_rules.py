"""The rules behind the cost alarms: daily cost alarms per team and per model, an anomaly-band
alarm per team, an AWS Budget on GPU spend and a Cost Anomaly Detection monitor.

Metrics come from the spend aggregator (namespace LLMOps, dimension sets [Environment, Team],
[Environment, Team, Model], [Environment, Model, Route]); an alarm must name exactly one of
those sets, which is why the per-model alarm adds the two routes with metric math.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pulumi
import pulumi_aws as aws

if TYPE_CHECKING:
    from components.cost_alarms import CostAlarms, CostAlarmsArgs

NAMESPACE = "LLMOps"
DAY_SECONDS = 86400
ANOMALY_PERIOD_SECONDS = 3600
ROUTES = ("self-hosted", "external")  # lambdas/spend_aggregator/aggregate.py route_of
GPU_POOL_TAG = "karpenter.sh/nodepool"  # Karpenter tags every instance with its NodePool


def _slug(value: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in value.lower()).strip("-")[:60]


def add_alarms(
    parent: CostAlarms,
    name: str,
    args: CostAlarmsArgs,
    alerts: pulumi.Output[str],
    guard: pulumi.Output[str] | None,
    alerts_policy: pulumi.Resource,
) -> None:
    ctx, settings = args.context, args.settings
    env, prefix = ctx.settings.environment, ctx.settings.name_prefix
    child = pulumi.ResourceOptions(parent=parent)
    # Budgets and Cost Anomaly Detection refuse a subscriber topic they may not publish to.
    after_policy = pulumi.ResourceOptions(parent=parent, depends_on=[alerts_policy])

    for budget in settings.team_budgets:
        dims = {"Environment": env, "Team": budget.team}
        actions = [alerts, guard] if guard is not None and budget.block else [alerts]
        aws.cloudwatch.MetricAlarm(
            f"{name}-team-{_slug(budget.team)}-daily-cost",
            name=f"{prefix}-team-{_slug(budget.team)}-daily-cost",
            alarm_description=f"LLM cost of team {budget.team} over 24 hours above ${budget.daily_usd:,.2f}",
            namespace=NAMESPACE,
            metric_name="CostUSD",
            dimensions=dims,
            statistic="Sum",
            period=DAY_SECONDS,
            evaluation_periods=1,
            threshold=budget.daily_usd,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",  # no traffic is no spend
            alarm_actions=actions,
            ok_actions=actions,  # OK lifts the guard's block
            opts=child,
        )
        aws.cloudwatch.MetricAlarm(
            f"{name}-team-{_slug(budget.team)}-cost-anomaly",
            name=f"{prefix}-team-{_slug(budget.team)}-cost-anomaly",
            alarm_description=f"Hourly LLM cost of team {budget.team} above its anomaly band",
            comparison_operator="GreaterThanUpperThreshold",
            evaluation_periods=2,
            datapoints_to_alarm=2,
            threshold_metric_id="band",
            treat_missing_data="notBreaching",
            metric_queries=[
                {
                    "id": "cost",
                    "return_data": True,
                    "metric": {
                        "namespace": NAMESPACE,
                        "metric_name": "CostUSD",
                        "dimensions": dims,
                        "period": ANOMALY_PERIOD_SECONDS,
                        "stat": "Sum",
                    },
                },
                {
                    "id": "band",
                    "return_data": True,
                    "expression": f"ANOMALY_DETECTION_BAND(cost, {settings.anomaly_band_stddevs:g})",
                    "label": "expected cost",
                },
            ],
            alarm_actions=[alerts],  # notifies only: anomalies are for people to judge
            opts=child,
        )

    for budget in settings.model_budgets:
        queries = [
            {
                "id": f"r{i}",
                "return_data": False,
                "metric": {
                    "namespace": NAMESPACE,
                    "metric_name": "CostUSD",
                    "dimensions": {"Environment": env, "Model": budget.model, "Route": route},
                    "period": DAY_SECONDS,
                    "stat": "Sum",
                },
            }
            for i, route in enumerate(ROUTES)
        ]
        total = " + ".join(f"FILL(r{i}, 0)" for i in range(len(ROUTES)))
        aws.cloudwatch.MetricAlarm(
            f"{name}-model-{_slug(budget.model)}-daily-cost",
            name=f"{prefix}-model-{_slug(budget.model)}-daily-cost",
            alarm_description=f"LLM cost of model {budget.model} in 24 hours above ${budget.daily_usd:,.2f}",
            comparison_operator="GreaterThanThreshold",
            evaluation_periods=1,
            threshold=budget.daily_usd,
            treat_missing_data="notBreaching",
            metric_queries=[
                *queries,
                {"id": "total", "return_data": True, "expression": total, "label": "cost"},
            ],
            alarm_actions=[alerts],
            ok_actions=[alerts],
            opts=child,
        )

    if settings.gpu_monthly_budget_usd is not None and args.gpu_pool_names:
        subscribers = {"subscriber_sns_topic_arns": [alerts]}
        aws.budgets.Budget(
            f"{name}-gpu-budget",
            name=f"{prefix}-gpu",
            budget_type="COST",
            time_unit="MONTHLY",
            limit_amount=f"{settings.gpu_monthly_budget_usd:.2f}",
            limit_unit="USD",
            cost_filters=[
                {
                    "name": "TagKeyValue",
                    "values": [f"user:{GPU_POOL_TAG}${pool}" for pool in args.gpu_pool_names],
                }
            ],
            notifications=[
                {
                    "comparison_operator": "GREATER_THAN",
                    "notification_type": "ACTUAL",
                    "threshold": 80,
                    "threshold_type": "PERCENTAGE",
                    **subscribers,
                },
                {
                    "comparison_operator": "GREATER_THAN",
                    "notification_type": "FORECASTED",
                    "threshold": 100,
                    "threshold_type": "PERCENTAGE",
                    **subscribers,
                },
            ],
            opts=after_policy,
        )

    # Cost Anomaly Detection on everything tagged with this environment (a custom monitor; the
    # account-wide per-service monitor is one per account and belongs to the account owner).
    monitor = aws.costexplorer.AnomalyMonitor(
        f"{name}-anomaly-monitor",
        name=f"{prefix}-spend",
        monitor_type="CUSTOM",
        monitor_specification=json.dumps(
            {"Tags": {"Key": "environment", "Values": [env], "MatchOptions": ["EQUALS"]}}
        ),
        opts=child,
    )
    aws.costexplorer.AnomalySubscription(
        f"{name}-anomaly-subscription",
        name=f"{prefix}-anomalies",
        frequency="IMMEDIATE",  # SNS subscribers require IMMEDIATE
        monitor_arn_lists=[monitor.arn],
        subscribers=[{"type": "SNS", "address": alerts}],
        threshold_expression={
            "dimension": {
                "key": "ANOMALY_TOTAL_IMPACT_ABSOLUTE",
                "match_options": ["GREATER_THAN_OR_EQUAL"],
                "values": [f"{settings.anomaly_min_impact_usd:g}"],
            }
        },
        opts=after_policy,
    )
