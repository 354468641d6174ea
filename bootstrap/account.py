"""Everything bootstrap declares in one account: the state backend, the CI roles, the in-VPC runners
and the budget on their spend, composed with the platform's own building blocks (components/)."""

from __future__ import annotations

import dataclasses
import json

import pulumi
import pulumi_aws as aws

from bootstrap.ci_access import CiAccess, CiAccessArgs
from bootstrap.runners import Runner, RunnerArgs, runs_on_label
from bootstrap.state import StateBackend, StateBackendArgs
from components.access_logs import AccessLogs, AccessLogsArgs
from components.context import AwsContext
from llmops.settings.bootstrap import BootstrapSettings


class Bootstrap(pulumi.ComponentResource):
    state: StateBackend
    ci: CiAccess
    runners: dict[str, Runner]
    connections: dict[str, aws.codeconnections.Connection]
    pending_runners: list[str]

    def __init__(self, name: str, settings: BootstrapSettings, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:bootstrap:Bootstrap", name, None, opts)
        tags = {"tags": settings.default_tags()}
        # One provider per region: the state's, and each runner's (the tags come from them only).
        providers = {
            region: aws.Provider(
                f"{name}-aws" if region == settings.region else f"{name}-aws-{region}",
                region=region,
                default_tags=tags,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for region in dict.fromkeys([settings.region, *(e.region for e in settings.environments)])
        }
        provider = providers[settings.region]
        invoke = pulumi.InvokeOptions(provider=provider)
        partition = aws.get_partition(opts=invoke)
        # The platform's context, built from bootstrap's settings: name_prefix, region and
        # deletion_protection are all the shared components read from it.
        ctx = AwsContext(
            settings=settings,  # type: ignore[arg-type]
            provider=provider,
            identity=aws.get_caller_identity(opts=invoke),
            partition=partition.partition,
            dns_suffix=partition.dns_suffix,
        )

        def in_region(region: str) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, providers={"aws": providers[region]})

        access_logs = AccessLogs(
            f"{name}-access-logs",
            AccessLogsArgs(ctx, settings.access_log_retention_days),
            in_region(settings.region),
        )
        ctx = dataclasses.replace(ctx, access_logs=access_logs.bucket)
        self.state = StateBackend(
            f"{name}-state",
            StateBackendArgs(ctx, settings.state.noncurrent_version_days),
            in_region(settings.region),
        )
        self.ci = CiAccess(
            f"{name}-ci",
            CiAccessArgs(
                context=ctx,
                repository=settings.github.repository,
                environments=list(settings.environments),
                state_bucket_arn=self.state.bucket.arn,
                state_key_arn=self.state.key.arn,
            ),
            in_region(settings.region),
        )

        # The GitHub connection of each region that hosts a runner exists from the first run: it
        # must be AVAILABLE (its console handshake done) before a runner's webhook can be created.
        self.connections = {
            region: aws.codeconnections.Connection(
                f"{name}-github-{region}",
                name=f"{settings.name_prefix}-{region}",  # at most 32 characters
                provider_type="GitHub",
                opts=in_region(region),
            )
            for region in dict.fromkeys(e.region for e in settings.environments if e.in_vpc_runner)
        }
        self.runners, self.pending_runners = {}, []
        for env in settings.environments:
            if not env.in_vpc_runner:
                continue
            if env.vpc is None:
                self.pending_runners.append(env.name)
                pulumi.log.warn(
                    f"{env.name}: no in-VPC runner yet; set llmops-bootstrap:environments[].vpc once its "
                    "platform stack exists (docs/ci.md, first deploy)",
                    resource=self,
                )
                continue
            self.runners[env.name] = Runner(
                f"{name}-runner-{env.name}",
                RunnerArgs(
                    context=ctx,
                    environment=env,
                    repository=settings.github.repository,
                    workflow=settings.github.deploy_workflow,
                    settings=settings.runner,
                    connection=self.connections[env.region],
                ),
                in_region(env.region),
            )
        _cost_alerts(name, settings, in_region(settings.region))
        self.register_outputs({})

    def runner_labels(self) -> dict[str, str]:
        return {env: runs_on_label(env) for env in self.runners}


def _cost_alerts(name: str, settings: BootstrapSettings, opts: pulumi.ResourceOptions) -> None:
    """A monthly budget and an anomaly monitor on what bootstrap creates (tagged environment=bootstrap),
    emailed: runners bill by the minute and nothing else watches them."""
    cfg = settings.cost_alerts
    notification = {"comparison_operator": "GREATER_THAN", "threshold_type": "PERCENTAGE",
                    "subscriber_email_addresses": list(cfg.emails)}  # fmt: skip
    aws.budgets.Budget(
        f"{name}-budget",
        name=f"{settings.name_prefix}-ci",
        budget_type="COST",
        time_unit="MONTHLY",
        limit_amount=f"{cfg.monthly_budget_usd:.2f}",
        limit_unit="USD",
        cost_filters=[{"name": "TagKeyValue", "values": [f"user:environment${settings.environment}"]}],
        notifications=[
            {**notification, "notification_type": "ACTUAL", "threshold": 80},
            {**notification, "notification_type": "FORECASTED", "threshold": 100},
        ],
        opts=opts,
    )
    monitor = aws.costexplorer.AnomalyMonitor(
        f"{name}-anomaly-monitor",
        name=f"{settings.name_prefix}-ci",
        monitor_type="CUSTOM",
        monitor_specification=json.dumps(
            {"Tags": {"Key": "environment", "Values": [settings.environment], "MatchOptions": ["EQUALS"]}}
        ),
        opts=opts,
    )
    aws.costexplorer.AnomalySubscription(
        f"{name}-anomaly-subscription",
        name=f"{settings.name_prefix}-ci-anomalies",
        frequency="DAILY",  # email subscribers: DAILY or WEEKLY (IMMEDIATE needs SNS)
        monitor_arn_lists=[monitor.arn],
        subscribers=[{"type": "EMAIL", "address": e} for e in cfg.emails],
        threshold_expression={
            "dimension": {
                "key": "ANOMALY_TOTAL_IMPACT_ABSOLUTE",
                "match_options": ["GREATER_THAN_OR_EQUAL"],
                "values": [f"{cfg.anomaly_min_impact_usd:g}"],
            }
        },
        opts=opts,
    )
