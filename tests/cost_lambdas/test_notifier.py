"""Notifier Lambda: each SNS source becomes a readable Slack message on a local webhook."""

from __future__ import annotations

import json
import urllib.error

import boto3
import pytest
from moto import mock_aws

from cost_lambdas.helpers import RecordingServer
from lambdas.notifier import handler

REGION = "us-east-1"
TOPIC = "arn:aws:sns:us-east-1:123456789012:llmops-prod-cost-alerts"

ALARM = {
    "AlarmName": "llmops-prod-team-payments-daily-cost",
    "AlarmDescription": "Daily LLM spend of team payments",
    "AWSAccountId": "123456789012",
    "NewStateValue": "ALARM",
    "NewStateReason": "Threshold Crossed: 1 datapoint [131.2 (23/11/26 00:00:00)] was greater than the "
    "threshold (100.0).",
    "StateChangeTime": "2026-11-23T10:05:00.000+0000",
    "Region": "US East (N. Virginia)",
    "AlarmArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:llmops-prod-team-payments-daily-cost",
    "OldStateValue": "OK",
    "Trigger": {
        "MetricName": "CostUSD",
        "Namespace": "LLMOps",
        "Statistic": "SUM",
        "Dimensions": [{"value": "prod", "name": "Environment"}, {"value": "payments", "name": "Team"}],
        "Period": 86400,
        "EvaluationPeriods": 1,
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": 100.0,
    },
}
# AWS Budgets publishes plain text (format as delivered to SNS subscribers).
BUDGET = """AWS Budget Notification November 23, 2026
AWS Account 123456789012

Dear AWS Customer,

You requested that we alert you when the ACTUAL Cost associated with your llmops-prod-gpu budget
is greater than $800.00 for the current month. The ACTUAL Cost associated with this budget is
$912.34. You can find additional details below and by accessing the AWS Budgets dashboard [1].

Budget Name: llmops-prod-gpu
Budget Type: Cost
Budgeted Amount: $1,000.00
Alert Type: ACTUAL
Alert Threshold: > $800.00
ACTUAL Amount: $912.34

[1] https://console.aws.amazon.com/billing/home#/budgets
"""
ANOMALY = {
    "accountId": "123456789012",
    "anomalyDetailsLink": "https://console.aws.amazon.com/cost-management/home#/anomaly-detection/monitors/"
    "abcdef12/anomalies/12345678",
    "anomalyEndDate": "2026-11-23T00:00:00Z",
    "anomalyId": "12345678-abcd-ef12-3456-987654321a12",
    "anomalyScore": {"currentScore": 0.71, "maxScore": 0.71},
    "anomalyStartDate": "2026-11-21T00:00:00Z",
    "dimensionalValue": "Amazon Elastic Compute Cloud - Compute",
    "impact": {
        "maxImpact": 410.0,
        "totalActualSpend": 1502.5,
        "totalExpectedSpend": 690.0,
        "totalImpact": 812.5,
        "totalImpactPercentage": 117.75,
    },
    "monitorArn": "arn:aws:ce::123456789012:anomalymonitor/abcdef12",
    "monitorName": "llmops-prod-gpu-spend",
    "rootCauses": [
        {
            "linkedAccount": "123456789012",
            "region": "us-east-1",
            "service": "Amazon Elastic Compute Cloud - Compute",
            "usageType": "BoxUsage:p5.48xlarge",
        }
    ],
    "subscriptionId": "sub-1",
    "subscriptionName": "llmops-prod-anomalies",
}


def sns_event(message: str, subject: str | None = None) -> dict:
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "Sns": {"Type": "Notification", "TopicArn": TOPIC, "Subject": subject, "Message": message},
            }
        ]
    }


@pytest.fixture
def slack(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("ENVIRONMENT", "prod")
    with mock_aws(), RecordingServer() as server:
        handler.reset_clients()
        arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="llmops/prod/slack-webhook", SecretString=server.url + "/services/T000/B000/XXXX"
        )["ARN"]
        monkeypatch.setenv("SLACK_WEBHOOK_SECRET_ID", arn)
        yield server
        handler.reset_clients()


def posted_text(server: RecordingServer) -> str:
    """Everything a reader sees: the fallback text and every block's text."""
    [request] = server.requests
    payload = request["json"]
    assert request["path"] == "/services/T000/B000/XXXX"
    assert payload["text"] and payload["blocks"][0]["type"] == "header"
    parts = [payload["text"]]
    for block in payload["blocks"]:
        if "text" in block:
            parts.append(block["text"]["text"])
        parts += [f["text"] for f in block.get("fields", [])]
        parts += [e["text"] for e in block.get("elements", [])]
    return "\n".join(parts)


def test_alarm_message_names_alarm_state_team_and_threshold(slack):
    assert handler.handler(sns_event(json.dumps(ALARM), "ALARM: team payments"))["sent"] == 1
    text = posted_text(slack)
    for fact in (
        "llmops-prod-team-payments-daily-cost is ALARM",
        "payments",
        "OK → *ALARM*",
        "100.0",
        "CostUSD",
    ):
        assert fact in text, fact
    assert "[prod]" in text
    assert "console.aws.amazon.com/cloudwatch/home?region=us-east-1#alarmsV2:alarm/" in text


def test_budget_text_becomes_fields(slack):
    handler.handler(sns_event(BUDGET, "AWS Budgets: llmops-prod-gpu has exceeded your alert threshold"))
    text = posted_text(slack)
    for fact in (
        "AWS Budget alert: llmops-prod-gpu",
        "Budgeted Amount*\n$1,000.00",
        "ACTUAL Amount*\n$912.34",
    ):
        assert fact in text, fact
    assert "greater than $800.00" in text


def test_anomaly_shows_impact_spend_and_root_cause(slack):
    handler.handler(sns_event(json.dumps(ANOMALY)))
    text = posted_text(slack)
    for fact in (
        "$812.50 above expected",
        "$1,502.50",
        "$690.00",
        "117.8%",
        "BoxUsage:p5.48xlarge",
        "llmops-prod-gpu-spend",
    ):
        assert fact in text, fact
    assert ANOMALY["anomalyDetailsLink"] in text


@pytest.mark.parametrize(
    "message", ["GPU pool drained by operator <ops@example.com>", '{"custom": {"x": 1}}']
)
def test_unknown_messages_are_forwarded_readably(slack, message):
    handler.handler(sns_event(message, "Manual note"))
    text = posted_text(slack)
    assert "Manual note" in text and "llmops-prod-cost-alerts" in text
    if message.startswith("{"):
        assert '"custom": {\n    "x": 1' in text  # pretty-printed JSON
    else:
        assert "&lt;ops@example.com&gt;" in text  # escaped, so Slack does not eat it as a link


def test_webhook_secret_is_read_once_and_cached(slack):
    calls = []
    handler._secrets().meta.events.register(
        "before-call.secrets-manager.GetSecretValue", lambda **kw: calls.append(1)
    )
    handler.handler(sns_event(json.dumps(ALARM)))
    handler.handler(sns_event(BUDGET))
    assert len(slack.requests) == 2 and len(calls) == 1


def test_secret_may_be_json(slack, monkeypatch):
    arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="llmops/prod/slack-json",
        SecretString=json.dumps({"url": slack.url + "/services/T000/B000/XXXX"}),
    )["ARN"]
    monkeypatch.setenv("SLACK_WEBHOOK_SECRET_ID", arn)
    handler.handler(sns_event(BUDGET))
    assert "llmops-prod-gpu" in posted_text(slack)


def test_webhook_error_raises_for_lambda_retry(slack):
    slack.status = 500
    with pytest.raises(urllib.error.HTTPError):
        handler.handler(sns_event(json.dumps(ALARM)))


def test_team_alarm_names_the_contact_and_goes_to_its_channel_webhook(slack, monkeypatch):
    monkeypatch.setenv("TEAM_CONTACTS", json.dumps({"payments": "#payments-alerts"}))
    arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="llmops/prod/slack-channels",
        SecretString=json.dumps(
            {
                "url": slack.url + "/services/T000/B000/XXXX",
                "channels": {"#payments-alerts": slack.url + "/services/T000/B111/PAYMENTS"},
            }
        ),
    )["ARN"]
    monkeypatch.setenv("SLACK_WEBHOOK_SECRET_ID", arn)
    handler.handler(sns_event(json.dumps(ALARM)))
    handler.handler(sns_event(BUDGET))  # not a team's: the default webhook
    team, other = slack.requests
    assert team["path"] == "/services/T000/B111/PAYMENTS"
    assert "Contact: #payments-alerts" in team["json"]["text"]
    assert other["path"] == "/services/T000/B000/XXXX"
    assert set(team["json"]) == {"text", "blocks"}  # Slack gets nothing else


def test_team_without_a_channel_webhook_is_named_on_the_default_one(slack, monkeypatch):
    monkeypatch.setenv("TEAM_CONTACTS", json.dumps({"payments": "payments@example.com"}))
    handler.handler(sns_event(json.dumps(ALARM)))
    assert "payments@example.com" in posted_text(slack)


def test_a_channel_that_is_not_a_url_is_named_in_the_error(slack, monkeypatch):
    arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="llmops/prod/slack-bad",
        SecretString=json.dumps({"url": slack.url + "/x", "channels": {"#payments": "not-a-url"}}),
    )["ARN"]
    monkeypatch.setenv("SLACK_WEBHOOK_SECRET_ID", arn)
    with pytest.raises(ValueError, match=r"channels\.#payments is not a webhook URL"):
        handler.handler(sns_event(json.dumps(ALARM)))
