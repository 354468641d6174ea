"""Settings of the cost alarms: budgets per team and model, anomaly bands, GPU budget, actions."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, field_validator

from llmops.settings.base import Settings

# Allowed values of CloudWatch Logs PutRetentionPolicy (CloudWatch Logs API reference).
RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


def _unique(field: str):
    def check(items: list) -> list:
        names = [getattr(i, field) for i in items]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"{field} must be unique; repeated: {', '.join(dupes)}")
        return items

    return check


class TeamBudget(Settings):
    team: str = Field(min_length=1, max_length=250)
    """LiteLLM team id (the Team dimension of the LLMOps metrics)."""
    daily_usd: float = Field(gt=0)
    """Alarm when the team's LLM cost over the trailing 24 hours exceeds this."""
    block: bool = True
    """The budget guard blocks the team in the gateway while this alarm is in ALARM (and
    budgetGuardDryRun is off). False: the alarm only notifies."""


class ModelBudget(Settings):
    model: str = Field(min_length=1, max_length=250)
    """Public model name in the gateway (the Model dimension: LiteLLM's model_group)."""
    daily_usd: float = Field(gt=0)
    """Alarm when the model's cost over the trailing 24 hours, all teams and routes, exceeds this."""


class CostAlarmSettings(Settings):
    team_budgets: Annotated[list[TeamBudget], AfterValidator(_unique("team"))] = Field(default_factory=list)
    """Daily cost alarms per team, keyed by team. Each team also gets an anomaly-band alarm."""
    model_budgets: Annotated[list[ModelBudget], AfterValidator(_unique("model"))] = Field(
        default_factory=list
    )
    """Daily cost alarms per model, keyed by model."""
    anomaly_band_stddevs: float = Field(3.0, ge=1, le=10)
    """Width of the CloudWatch anomaly-detection band on each team's hourly cost, in standard
    deviations. Wider bands alert less often."""
    gpu_monthly_budget_usd: float | None = Field(None, gt=0)
    """AWS Budget on the GPU nodes' EC2 spend (by the `karpenter.sh/nodepool` cost-allocation
    tag of the stack's GPU pools), with alerts at 80% actual and 100% forecast. Unset: no budget.
    The tag must be activated as a cost-allocation tag in the Billing console first."""
    anomaly_min_impact_usd: float = Field(100.0, ge=0)
    """Cost Anomaly Detection notifies about anomalies whose total impact is at least this."""
    alert_emails: list[str] = Field(default_factory=list)
    """Addresses subscribed to the alerts topic (each confirms by email). Slack is separate."""
    slack_notifications: bool = True
    """Run the notifier: alerts go to the Slack webhook whose URL operators store in the
    created `<prefix>/cost-alerts/slack-webhook` secret."""
    budget_guard_dry_run: bool = True
    """The budget guard logs the block/unblock it would do and calls nothing. Turn off per stack
    once the team alarms are trusted: a blocked team gets errors from the gateway."""
    idle_gpu_threshold_percent: float = Field(5.0, gt=0, le=100)
    """A GPU node whose every GPU stays below this utilisation for the idle window is reported."""
    idle_gpu_window_minutes: int = Field(60, ge=15, le=1440)
    """How long a GPU node must stay idle before it is reported."""
    idle_gpu_check_minutes: int = Field(15, ge=5, le=1440)
    """How often the idle-GPU detector runs."""
    log_retention_days: int = 365
    """Retention of the Lambdas' log groups (the spend metrics' raw EMF records live there).
    One of CloudWatch's allowed values (1, 3, 5, 7, 14, 30, ..., 3653)."""

    @field_validator("alert_emails")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if "@" not in v.strip("@")]
        if bad:
            raise ValueError(f"not email addresses: {', '.join(bad)}")
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        # Allowed values of PutRetentionPolicy (CloudWatch Logs API reference).
        allowed = RETENTION_DAYS
        if value not in allowed:
            raise ValueError(f"{value} is not a CloudWatch Logs retention; use one of {allowed}")
        return value
