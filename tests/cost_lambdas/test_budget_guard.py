"""Budget guard Lambda against a local stub of LiteLLM's admin API and moto CloudWatch."""

from __future__ import annotations

import json
import urllib.error

import boto3
import pytest
from moto import mock_aws

from cost_lambdas.helpers import RecordingServer
from lambdas.budget_guard import handler
from tests.tls_certs import issue

REGION = "us-east-1"
MASTER_KEY = "sk-test-master"


class TeamApi:
    """Behaves like litellm 1.100.5 /team/block and /team/unblock: bearer auth, 404 for an
    unknown team_id, the updated team row as the answer."""

    def __init__(self, teams: list[str]):
        self.blocked = {team: False for team in teams}

    def __call__(self, path, headers, body):
        if headers.get("Authorization") != f"Bearer {MASTER_KEY}":
            return 401, {"error": "Authentication Error"}
        if path not in ("/team/block", "/team/unblock") or set(body) != {"team_id"}:
            return 422, {"error": "unexpected request"}
        team = body["team_id"]
        if team not in self.blocked:
            return 404, {"detail": {"error": f"Team not found, passed team_id={team}"}}
        self.blocked[team] = path == "/team/block"
        return 200, {"team_id": team, "blocked": self.blocked[team]}


def alarm_message(team: str, state: str, name: str | None = None, environment: str = "prod") -> str:
    return json.dumps(
        {
            "AlarmName": name or f"llmops-{environment}-team-{team}-daily-cost",
            "NewStateValue": state,
            "OldStateValue": "OK" if state == "ALARM" else "ALARM",
            "NewStateReason": "Threshold Crossed",
            "Trigger": {
                "MetricName": "CostUSD",
                "Namespace": "LLMOps",
                "Statistic": "SUM",
                "Dimensions": [
                    {"name": "Environment", "value": environment},
                    {"name": "Team", "value": team},
                ],
                "Threshold": 100.0,
            },
        }
    )


def event(*messages: str) -> dict:
    return {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": m}} for m in messages]}


@pytest.fixture
def gateway(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("ENVIRONMENT", "prod")
    monkeypatch.delenv("DRY_RUN", raising=False)
    api = TeamApi(["payments", "search"])
    with mock_aws(), RecordingServer(respond=api) as server:
        handler.reset_clients()
        arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="llmops/prod/gateway-admin",
            SecretString=json.dumps({"url": server.url, "master_key": MASTER_KEY}),
        )["ARN"]
        monkeypatch.setenv("GATEWAY_SECRET_ID", arn)
        yield server, api
        handler.reset_clients()


def actions(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_alarm_blocks_and_ok_unblocks_the_team(gateway, capsys):
    server, api = gateway
    assert handler.handler(event(alarm_message("payments", "ALARM")))["results"] == ["blocked"]
    assert api.blocked == {"payments": True, "search": False}
    assert server.requests[0]["path"] == "/team/block" and server.requests[0]["json"] == {
        "team_id": "payments"
    }
    assert handler.handler(event(alarm_message("payments", "OK")))["results"] == ["unblocked"]
    assert api.blocked["payments"] is False and server.requests[1]["path"] == "/team/unblock"
    logged = actions(capsys)
    assert [(a["action"], a["team"], a["gatewayBlocked"]) for a in logged] == [
        ("blocked", "payments", True),
        ("unblocked", "payments", False),
    ]


def test_dry_run_calls_nothing_and_says_what_it_would_do(gateway, capsys, monkeypatch):
    server, api = gateway
    monkeypatch.setenv("DRY_RUN", "true")
    results = handler.handler(event(alarm_message("payments", "ALARM"), alarm_message("search", "OK")))
    assert results["results"] == ["would-block", "would-unblock"]
    assert server.requests == [] and not any(api.blocked.values())
    assert all(a["dryRun"] is True for a in actions(capsys))


def test_ok_keeps_the_block_while_another_guarding_alarm_of_the_team_is_in_alarm(
    gateway, capsys, monkeypatch
):
    server, api = gateway
    guard_topic = "arn:aws:sns:us-east-1:123456789012:llmops-prod-budget-guard"
    monkeypatch.setenv("GUARD_TOPIC_ARN", guard_topic)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    for name, alarm_actions in (
        ("notify-only", []),
        ("llmops-prod-team-payments-cost-anomaly", [guard_topic]),
    ):
        put_team_alarm(cloudwatch, name, alarm_actions)
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="test")
    handler.handler(event(alarm_message("payments", "ALARM")))
    assert handler.handler(event(alarm_message("payments", "OK")))["results"] == ["keep-blocked"]
    assert api.blocked["payments"] is True and len(server.requests) == 1
    assert actions(capsys)[-1]["alarms"] == ["llmops-prod-team-payments-cost-anomaly"]


def test_alarms_that_only_notify_do_not_hold_a_block(gateway, monkeypatch):
    _, api = gateway
    monkeypatch.setenv("GUARD_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:llmops-prod-budget-guard")
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    put_team_alarm(cloudwatch, "notify-only", [])
    cloudwatch.set_alarm_state(AlarmName="notify-only", StateValue="ALARM", StateReason="test")
    handler.handler(event(alarm_message("payments", "ALARM")))
    assert handler.handler(event(alarm_message("payments", "OK")))["results"] == ["unblocked"]
    assert api.blocked["payments"] is False


def put_team_alarm(cloudwatch, name: str, actions: list[str]) -> None:
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        AlarmActions=actions,
        Namespace="LLMOps",
        MetricName="CostUSD",
        Dimensions=[{"Name": "Environment", "Value": "prod"}, {"Name": "Team", "Value": "payments"}],
        Statistic="Sum",
        Period=3600,
        EvaluationPeriods=1,
        Threshold=10,
        ComparisonOperator="GreaterThanThreshold",
    )


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (alarm_message("unassigned", "ALARM"), "without a team"),
        (alarm_message("payments", "ALARM", environment="staging"), "environment staging"),
        (alarm_message("payments", "INSUFFICIENT_DATA"), "no action"),
        ("AWS Budget Notification ...", "not a CloudWatch alarm"),
    ],
)
def test_messages_that_must_not_act_are_skipped(gateway, capsys, message, reason):
    server, _ = gateway
    assert handler.handler(event(message))["results"] == ["skip"]
    assert server.requests == []
    assert reason in actions(capsys)[0]["reason"]


def test_unknown_team_is_logged_not_retried(gateway, capsys):
    assert handler.handler(event(alarm_message("ghost", "ALARM")))["results"] == ["not-found"]
    assert actions(capsys)[0]["status"] == 404


def test_bare_master_key_secret_with_url_from_the_environment(gateway, monkeypatch):
    server, api = gateway
    arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="llmops/prod/gateway/master-key-abc",
        SecretString=MASTER_KEY,  # as the gateway stores it
    )["ARN"]
    monkeypatch.setenv("GATEWAY_SECRET_ID", arn)
    monkeypatch.setenv("GATEWAY_URL", server.url)
    assert handler.handler(event(alarm_message("search", "ALARM")))["results"] == ["blocked"]
    assert api.blocked["search"] is True


def test_gateway_errors_raise_for_retry(gateway):
    with RecordingServer(status=503) as failing:
        secret = json.dumps({"url": failing.url, "master_key": MASTER_KEY})
        boto3.client("secretsmanager", region_name=REGION).put_secret_value(
            SecretId="llmops/prod/gateway-admin", SecretString=secret
        )
        handler._cached.clear()  # as after SECRET_CACHE_SECONDS
        with pytest.raises(urllib.error.HTTPError):
            handler.handler(event(alarm_message("payments", "ALARM")))
        assert failing.requests[0]["path"] == "/team/block"


def test_the_gateway_is_called_over_verified_tls(gateway, monkeypatch, tmp_path):
    """As deployed: https to the gateway, verified against the CA the stack passes in
    GATEWAY_CA_CERT; a server whose certificate that CA did not issue is refused."""
    _, api = gateway
    trusted = issue(tmp_path / "ours", ["gateway.prod.llmops.internal"], ["127.0.0.1"])
    other = issue(tmp_path / "other", ["gateway.prod.llmops.internal"], ["127.0.0.1"])
    with RecordingServer(respond=api, tls=trusted) as server:
        monkeypatch.setenv("GATEWAY_URL", server.url)
        monkeypatch.setenv("GATEWAY_CA_CERT", trusted.ca_pem)
        assert handler.handler(event(alarm_message("payments", "ALARM"))) == {"results": ["blocked"]}
        assert api.blocked["payments"] is True and server.url.startswith("https://")
        handler.reset_clients()
        monkeypatch.setenv("GATEWAY_CA_CERT", other.ca_pem)
        with pytest.raises(urllib.error.URLError) as refused:
            handler.handler(event(alarm_message("payments", "OK")))
        assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)
