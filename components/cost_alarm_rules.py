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


DAYS_PER_BUDGET = 30  # a team's monthly budget is LiteLLM's 30-day budget_duration
WARN_SHARE = 0.8  # the early warning, at 80% of the daily share


def _daily_cost_alarm(
    parent: CostAlarms, name: str, team: str, suffix: str, threshold: float, description: str, actions: list
) -> None:
    ctx = parent._ctx
    aws.cloudwatch.MetricAlarm(
        f"{name}-team-{_slug(team)}-{suffix}",
        name=f"{ctx.settings.name_prefix}-team-{_slug(team)}-{suffix}",
        alarm_description=description,
        namespace=NAMESPACE,
        metric_name="CostUSD",
        dimensions={"Environment": ctx.settings.environment, "Team": team},
        statistic="Sum",
        period=DAY_SECONDS,
        evaluation_periods=1,
        threshold=round(threshold, 2),
        comparison_operator="GreaterThanThreshold",
        treat_missing_data="notBreaching",  # no traffic is no spend
        alarm_actions=actions,
        ok_actions=actions,  # OK lifts the guard's block
        opts=pulumi.ResourceOptions(parent=parent),
    )


def add_alarms(
    parent: CostAlarms,
    name: str,
    args: CostAlarmsArgs,
    alerts: pulumi.Output[str],
    guard: pulumi.Output[str] | None,
) -> None:
    ctx, settings = args.context, args.settings
    env, prefix = ctx.settings.environment, ctx.settings.name_prefix
    child = pulumi.ResourceOptions(parent=parent)
    # Budgets and Cost Anomaly Detection refuse a subscriber topic they may not publish to.
    after_policy = pulumi.ResourceOptions(parent=parent, depends_on=[parent.topic_policies["alerts"]])
    blocking = [guard] if guard is not None else []

    for budget in settings.team_budgets:
        _daily_cost_alarm(
            parent,
            name,
            budget.team,
            "daily-cost",
            budget.daily_usd,
            f"LLM cost of team {budget.team} over 24 hours above ${budget.daily_usd:,.2f}",
            [alerts, *blocking] if budget.block else [alerts],
        )
    # Teams from stacks/teams/: LiteLLM stops a team at its monthly max_budget itself; these alarm
    # on the pace (CloudWatch evaluates at most 7 days), at 80% and 100% of the daily share.
    for team in args.teams:
        share = team.monthly_budget_usd / DAYS_PER_BUDGET
        own = [parent.team_topic_arns[team.team]] if team.team in parent.team_topic_arns else []
        _daily_cost_alarm(
            parent,
            name,
            team.team,
            "budget-80",
            WARN_SHARE * share,
            f"Team {team.team} spent over 80% of its daily budget share (${share:,.2f} of "
            f"${team.monthly_budget_usd:,.2f} a month) in 24 hours; contact {team.contact}",
            [alerts, *own],
        )
        _daily_cost_alarm(
            parent,
            name,
            team.team,
            "budget-100",
            share,
            f"Team {team.team} spent its daily budget share (${share:,.2f} of "
            f"${team.monthly_budget_usd:,.2f} a month) in 24 hours: the budget guard blocks it; "
            f"contact {team.contact}",
            [alerts, *own, *blocking],
        )

    for team_name in [b.team for b in settings.team_budgets] + [t.team for t in args.teams]:
        dims = {"Environment": env, "Team": team_name}
        aws.cloudwatch.MetricAlarm(
            f"{name}-team-{_slug(team_name)}-cost-anomaly",
            name=f"{prefix}-team-{_slug(team_name)}-cost-anomaly",
            alarm_description=f"Hourly LLM cost of team {team_name} above its anomaly band",
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
            # Notifies only: anomalies are for people to judge.
            alarm_actions=[
                alerts,
                *([parent.team_topic_arns[team_name]] if team_name in parent.team_topic_arns else []),
            ],
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
