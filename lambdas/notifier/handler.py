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

Team alarms (a `Team` dimension) are routed to the team's contact (TEAM_CONTACTS, from the team
files): the message names the contact, and goes to the webhook of that Slack channel when the
secret lists one under `channels`, else to the default webhook. E-mail contacts are SNS
subscriptions on the team's topic (components/cost_alarms.py) and need no code here.

Environment: SLACK_WEBHOOK_SECRET_ID (Secrets Manager id or ARN; the secret string is the
webhook URL, or JSON with a `url` / `webhook_url` key and optionally `channels`: {"#channel":
webhook URL}), SECRET_CACHE_SECONDS (default 300, so a rotated URL is picked up without a
redeploy), ENVIRONMENT (shown in every message), TEAM_CONTACTS (JSON {team: contact}).
A failed post raises, so Lambda's asynchronous retries (and then the DLQ) take over.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from dataclasses import dataclass
from functools import cache

import boto3

_cached: dict[str, tuple[float, Webhooks]] = {}
MAX_SECTION = 2900  # Slack section text limit is 3000 characters
EMOJI = {"ALARM": ":rotating_light:", "OK": ":white_check_mark:", "INSUFFICIENT_DATA": ":grey_question:"}


@cache
def _secrets():
    return boto3.client("secretsmanager")


def reset_clients() -> None:
    _secrets.cache_clear()
    _cached.clear()


@dataclass(frozen=True)
class Webhooks:
    default: str
    channels: dict[str, str]

    def for_contact(self, contact: str | None) -> str:
        return self.channels.get(contact or "", self.default)


def _url(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise ValueError(f"{where} is not a webhook URL")
    return value


def webhooks() -> Webhooks:
    secret_id = os.environ["SLACK_WEBHOOK_SECRET_ID"]
    ttl = float(os.environ.get("SECRET_CACHE_SECONDS", "300"))
    hit = _cached.get(secret_id)
    if hit and time.monotonic() - hit[0] < ttl:
        return hit[1]
    value = _secrets().get_secret_value(SecretId=secret_id)["SecretString"].strip()
    channels: dict[str, str] = {}
    if value.startswith("{"):
        doc = json.loads(value)
        value = doc.get("url") or doc.get("webhook_url") or ""
        raw = doc.get("channels") or {}
        if not isinstance(raw, dict):
            raise ValueError(f"secret {secret_id}: channels must map a channel to its webhook URL")
        channels = {str(k): _url(v, f"secret {secret_id}: channels.{k}") for k, v in raw.items()}
    hooks = Webhooks(_url(value, f"secret {secret_id}"), channels)
    _cached[secret_id] = (time.monotonic(), hooks)
    return hooks


def team_contacts() -> dict[str, str]:
    return json.loads(os.environ.get("TEAM_CONTACTS") or "{}")


def handler(event: dict, context: object = None) -> dict:
    hooks, contacts = webhooks(), team_contacts()
    sent = 0
    for record in event.get("Records", []):
        sns = record.get("Sns", {})
        payload = render(sns.get("Subject"), sns.get("Message", ""), sns.get("TopicArn", ""), contacts)
        post(hooks.for_contact(payload.get("contact")), payload)
        sent += 1
        print(json.dumps({"level": "INFO", "message": "notification sent", "kind": payload["kind"]}))
    return {"sent": sent}


def post(url: str, payload: dict) -> None:
    body = json.dumps({k: v for k, v in payload.items() if k in ("text", "blocks")}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        if not 200 <= response.status < 300:
            raise RuntimeError(f"webhook answered HTTP {response.status}")


# -- rendering -----------------------------------------------------------------------------


def render(
    subject: str | None, message: str, topic_arn: str = "", contacts: dict[str, str] | None = None
) -> dict:
    """Slack payload {kind, text, blocks, contact} for one SNS message (contact: the team's, for
    a team alarm)."""
    try:
        doc = json.loads(message)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and "AlarmName" in doc and "NewStateValue" in doc:
        return _alarm(doc, contacts or {})
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


def _alarm(doc: dict, contacts: dict[str, str]) -> dict:
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
    contact = contacts.get(dims.get("Team") or "")
    if contact:
        fields.insert(1, ("Contact", _esc(contact)))
    return _payload("alarm", title, fields, body, link) | {"contact": contact}


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
