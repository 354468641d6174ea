"""Notifier: SNS messages from CloudWatch alarms, AWS Budgets and Cost Anomaly Detection -> Slack.

Each SNS record becomes one Slack message (Block Kit blocks plus a plain `text` fallback for
notifications and clients without blocks) posted to an incoming webhook. Email goes through
plain SNS email subscriptions and needs no code.

Message shapes (what each source publishes to SNS):
- CloudWatch alarm: JSON with AlarmName, NewStateValue, NewStateReason, Trigger{...}
  (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html).
- AWS Budgets: plain text, "Budget Name: ...", "Budgeted Amount: $...", "Alert Type: ACTUAL".
- Cost Anomaly Detection (IMMEDIATE subscriptions): JSON with anomalyId, impact{totalImpact,
  totalActualSpend, totalExpectedSpend}, rootCauses[], anomalyDetailsLink, monitorName.
Anything else is forwarded as it came (pretty-printed when JSON), never dropped.

Environment: SLACK_WEBHOOK_SECRET_ID (Secrets Manager id or ARN; the secret string is the
webhook URL, or JSON with a `url` / `webhook_url` key), SECRET_CACHE_SECONDS (default 300,
so a rotated URL is picked up without a redeploy), ENVIRONMENT (shown in every message).
A failed post raises, so Lambda's asynchronous retries (and then the DLQ) take over.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from functools import cache

import boto3

_cached: dict[str, tuple[float, str]] = {}
MAX_SECTION = 2900  # Slack section text limit is 3000 characters
EMOJI = {"ALARM": ":rotating_light:", "OK": ":white_check_mark:", "INSUFFICIENT_DATA": ":grey_question:"}


@cache
def _secrets():
    return boto3.client("secretsmanager")


def reset_clients() -> None:
    _secrets.cache_clear()
    _cached.clear()


def webhook_url() -> str:
    secret_id = os.environ["SLACK_WEBHOOK_SECRET_ID"]
    ttl = float(os.environ.get("SECRET_CACHE_SECONDS", "300"))
    hit = _cached.get(secret_id)
    if hit and time.monotonic() - hit[0] < ttl:
        return hit[1]
    value = _secrets().get_secret_value(SecretId=secret_id)["SecretString"].strip()
    if value.startswith("{"):
        doc = json.loads(value)
        value = doc.get("url") or doc.get("webhook_url") or ""
    if not value.startswith(("https://", "http://")):
        raise ValueError(f"secret {secret_id} does not hold a webhook URL")
    _cached[secret_id] = (time.monotonic(), value)
    return value


def handler(event: dict, context: object = None) -> dict:
    url = webhook_url()
    sent = 0
    for record in event.get("Records", []):
        sns = record.get("Sns", {})
        payload = render(sns.get("Subject"), sns.get("Message", ""), sns.get("TopicArn", ""))
        post(url, payload)
        sent += 1
        print(json.dumps({"level": "INFO", "message": "notification sent", "kind": payload["kind"]}))
    return {"sent": sent}


def post(url: str, payload: dict) -> None:
    body = json.dumps({k: v for k, v in payload.items() if k != "kind"}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        if not 200 <= response.status < 300:
            raise RuntimeError(f"webhook answered HTTP {response.status}")


# -- rendering -----------------------------------------------------------------------------


def render(subject: str | None, message: str, topic_arn: str = "") -> dict:
    """Slack payload {kind, text, blocks} for one SNS message."""
    try:
        doc = json.loads(message)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and "AlarmName" in doc and "NewStateValue" in doc:
        return _alarm(doc)
    if isinstance(doc, dict) and "anomalyId" in doc:
        return _anomaly(doc)
    if doc is None and "Budget Name:" in message:
        return _budget(subject, message)
    return _unknown(subject, message, doc, topic_arn)


def _env() -> str:
    return os.environ.get("ENVIRONMENT", "")


def _esc(text: object) -> str:
    """Slack mrkdwn escaping (api.slack.com/reference/surfaces/formatting#escaping)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _payload(kind: str, title: str, fields: list[tuple[str, str]], body: str = "", link: str = "") -> dict:
    env = _env()
    header = f"[{env}] {title}" if env else title
    blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": header[:150]}}]
    if body:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": body[:MAX_SECTION]}})
    if fields:
        blocks.append(
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": f"*{_esc(k)}*\n{v}"[:2000]} for k, v in fields[:10]],
            }
        )
    if link:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{link}|Open in AWS console>"}]}
        )
    lines = [header, *([body] if body else []), *(f"{k}: {v}" for k, v in fields)]
    return {"kind": kind, "text": "\n".join(lines)[:MAX_SECTION], "blocks": blocks}


def _alarm(doc: dict) -> dict:
    state = doc.get("NewStateValue", "?")
    trigger = doc.get("Trigger") or {}
    dims = {d.get("name"): d.get("value") for d in trigger.get("Dimensions") or []}
    for metric in trigger.get("Metrics") or []:  # metric-math / anomaly-band alarms
        stat = metric.get("MetricStat") or {}
        for d in (stat.get("Metric") or {}).get("Dimensions") or []:
            dims.setdefault(d.get("name"), d.get("value"))
    fields = [("State", f"{doc.get('OldStateValue', '?')} → *{_esc(state)}*")]
    fields += [(name, _esc(value)) for name, value in dims.items() if name]
    if trigger.get("MetricName"):
        fields.append(("Metric", _esc(f"{trigger.get('Namespace', '')} {trigger['MetricName']}".strip())))
    if trigger.get("Threshold") is not None:
        op = trigger.get("ComparisonOperator", "")
        fields.append(("Threshold", _esc(f"{op} {trigger['Threshold']}".strip())))
    arn = doc.get("AlarmArn", "")
    region = arn.split(":")[3] if arn.count(":") >= 5 else ""
    link = (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#alarmsV2:alarm/"
        + urllib.request.quote(doc["AlarmName"])
        if region
        else ""
    )
    title = f"{EMOJI.get(state, ':bell:')} {doc['AlarmName']} is {state}"
    body = _esc(doc.get("NewStateReason", ""))
    if doc.get("AlarmDescription"):
        body = f"{_esc(doc['AlarmDescription'])}\n{body}"
    return _payload("alarm", title, fields, body, link)


_BUDGET_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z ]{2,40}):\s*(\S.*?)\s*$")
_BUDGET_KEYS = ("Budget Name", "Budget Type", "Budgeted Amount", "Alert Type", "Alert Threshold")


def _budget(subject: str | None, message: str) -> dict:
    values = {}
    for line in message.splitlines():
        match = _BUDGET_LINE.match(line)
        if match and match.group(1) not in values:
            values[match.group(1)] = match.group(2)
    name = values.get("Budget Name", "budget")
    fields = [(k, _esc(values[k])) for k in _BUDGET_KEYS if k in values and k != "Budget Name"]
    fields += [(k, _esc(v)) for k, v in values.items() if k.endswith(" Amount") and k not in _BUDGET_KEYS]
    sentence = next((p.strip() for p in message.split("\n\n") if p.strip().startswith("You requested")), "")
    body = _esc(" ".join(sentence.split())) if sentence else _esc(subject or "")
    return _payload("budget", f":moneybag: AWS Budget alert: {name}", fields, body)


def _money(value: object) -> str:
    try:
        return f"${float(value):,.2f}"
    except (TypeError, ValueError):
        return "?"


def _anomaly(doc: dict) -> dict:
    impact = doc.get("impact") or {}
    fields = [
        ("Monitor", _esc(doc.get("monitorName") or doc.get("monitorArn", "?"))),
        ("Dimension", _esc(doc.get("dimensionalValue", "?"))),
        ("Actual spend", _money(impact.get("totalActualSpend"))),
        ("Expected spend", _money(impact.get("totalExpectedSpend"))),
        ("Period", _esc(f"{doc.get('anomalyStartDate', '?')} → {doc.get('anomalyEndDate') or 'ongoing'}")),
    ]
    if impact.get("totalImpactPercentage") is not None:
        fields.append(("Above expected", f"{float(impact['totalImpactPercentage']):,.1f}%"))
    causes = []
    for cause in (doc.get("rootCauses") or [])[:5]:
        parts = [
            cause.get(k) for k in ("service", "region", "usageType", "linkedAccountName", "linkedAccount")
        ]
        causes.append("• " + _esc(" / ".join(str(p) for p in parts if p)))
    body = "*Root causes*\n" + "\n".join(causes) if causes else ""
    title = f":chart_with_upwards_trend: Cost anomaly: {_money(impact.get('totalImpact'))} above expected"
    return _payload("anomaly", title, fields, body, doc.get("anomalyDetailsLink", ""))


def _unknown(subject: str | None, message: str, doc: object, topic_arn: str) -> dict:
    topic = topic_arn.rsplit(":", 1)[-1] if topic_arn else "SNS"
    text = json.dumps(doc, indent=2, sort_keys=True) if doc is not None else message
    body = f"```{_esc(text)[: MAX_SECTION - 10]}```" if text.strip() else "_(empty message)_"
    return _payload("unknown", f":envelope: {subject or 'Notification'} ({topic})", [], body)
