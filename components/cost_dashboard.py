"""The `<prefix>-llm-usage` CloudWatch dashboard: eval coverage and spend per team (docs/cost.md).

Coverage per team is metric math on the spend aggregator's coverage metrics,
100 * EvalCoveredRequests / CoverageRequests, one expression per team the stack declares (team
stacks, teamBudgets, and `unassigned`): CloudWatch metric math divides a time series by a time
series, or an array of them by one time series, but not one array by another, so a SEARCH over the
Team dimension cannot give a ratio per team. All teams together are the ratio of two SUM(SEARCH())
expressions; the request and spend graphs search the Team dimension, so teams the stack does not
declare show there. A Logs Insights table lists the uncovered prompt versions from the aggregator's
own EMF lines (their Prompt and PromptVersion properties).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from lambdas.spend_aggregator.aggregate import COVERAGE_METRICS, NAMESPACE, UNASSIGNED

(COUNTED, _), (COVERED, _) = COVERAGE_METRICS
PERIOD_SECONDS = 3600
TEAMS_PER_GRAPH = 100  # 3 metrics and expressions each; CloudWatch allows 500 per graph


def _search(metric: str, environment: str) -> str:
    """Every team's series of a metric of the [Environment, Team] dimension set."""
    schema = f"{{{NAMESPACE},Environment,Team}}"
    return (
        f"SEARCH('{schema} MetricName=\"{metric}\" Environment=\"{environment}\"', 'Sum', {PERIOD_SECONDS})"
    )


def _coverage_metrics(environment: str, teams: Sequence[str]) -> list[list]:
    """Per team: the two counts (hidden) and their ratio; then all teams together."""
    metrics: list[list] = []
    for i, team in enumerate(teams):
        for prefix, metric in (("c", COVERED), ("r", COUNTED)):
            metrics.append(
                [
                    NAMESPACE,
                    metric,
                    "Environment",
                    environment,
                    "Team",
                    team,
                    {"id": f"{prefix}{i}", "visible": False},
                ]
            )
        metrics.append([{"expression": f"100*c{i}/r{i}", "label": team, "id": f"share{i}"}])
    metrics += [
        [{"expression": _search(COVERED, environment), "id": "call", "visible": False}],
        [{"expression": _search(COUNTED, environment), "id": "rall", "visible": False}],
        [{"expression": "100*SUM(call)/SUM(rall)", "label": "all teams", "id": "shareall"}],
    ]
    return metrics


def dashboard_body(
    environment: str, region: str, teams: Sequence[str], log_group: str, coverage: bool = True
) -> str:
    """The dashboard's JSON (CloudWatch dashboard body structure; widgets without x and y are
    placed left to right, top to bottom). Without `coverage` (no prompt registry), spend only."""
    graph = {"region": region, "stat": "Sum", "period": PERIOD_SECONDS}
    spend = [[{"expression": _search("CostUSD", environment), "id": "spend", "label": ""}]]
    spend_widget = _widget("metric", 12, {**graph, "metrics": spend}, title="Spend by team, USD per hour")
    if not coverage:
        return json.dumps({"widgets": [spend_widget]}, separators=(",", ":"))
    teams = sorted({*teams, UNASSIGNED})
    chunks = [teams[i : i + TEAMS_PER_GRAPH] for i in range(0, len(teams), TEAMS_PER_GRAPH)]
    percent = {"left": {"min": 0, "max": 100, "label": "%", "showUnits": False}}
    widgets: list[dict] = []
    for n, chunk in enumerate(chunks):
        part = f" ({n + 1}/{len(chunks)})" if len(chunks) > 1 else ""
        shares = {**graph, "metrics": _coverage_metrics(environment, chunk)}
        widgets += [
            _widget("metric", 12, shares, title=f"Eval coverage by team, % of requests{part}", yAxis=percent),
            _widget(
                "metric",
                12,
                shares,
                title=f"Eval coverage over the time range, %{part}",
                view="singleValue",
                setPeriodToTimeRange=True,
            ),
        ]
    requests = [
        [{"expression": _search(COUNTED, environment), "id": "counted", "label": "counted"}],
        [{"expression": _search(COVERED, environment), "id": "covered", "label": "covered"}],
    ]
    # A blank Prompt / PromptVersion: requests that named no prompt version.
    query = (
        f"SOURCE '{log_group}' | filter Environment = \"{environment}\" and UncoveredRequests > 0"
        " | stats sum(UncoveredRequests) as requests by Team, Prompt, PromptVersion"
        " | sort requests desc | limit 100"
    )
    widgets += [
        _widget(
            "metric",
            12,
            {**graph, "metrics": requests},
            title="Requests by team: counted for coverage, covered",
        ),
        spend_widget,
        _widget(
            "log", 24, {"region": region, "query": query}, title="Uncovered prompt versions", view="table"
        ),
    ]
    return json.dumps({"widgets": widgets}, separators=(",", ":"))


def _widget(kind: str, width: int, properties: dict, *, title: str, view: str = "timeSeries", **more) -> dict:
    return {
        "type": kind,
        "width": width,
        "height": 6,
        "properties": {**properties, "title": title, "view": view, **more},
    }


def usage_dashboard(
    parent: pulumi.Resource,
    name: str,
    prefix: str,
    environment: str,
    region: str,
    teams: Sequence[str],
    log_group: pulumi.Input[str],
    coverage: bool,
) -> aws.cloudwatch.Dashboard:
    return aws.cloudwatch.Dashboard(
        f"{name}-llm-usage",
        dashboard_name=f"{prefix}-llm-usage",
        dashboard_body=pulumi.Output.from_input(log_group).apply(
            lambda group: dashboard_body(environment, region, teams, group, coverage)
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )
