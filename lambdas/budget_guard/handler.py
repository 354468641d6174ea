"""Budget guard: a team's cost alarm going to ALARM blocks the team in the LiteLLM gateway;
the alarm returning to OK unblocks it.

Triggered by SNS with CloudWatch alarm messages (JSON: AlarmName, NewStateValue, Trigger).
The team is the alarm metric's `Team` dimension (the aggregator's team id, which is the
LiteLLM team_id of the key). Calls LiteLLM's admin API as in litellm 1.100.5
`proxy/management_endpoints/team_endpoints.py`:
  POST {url}/team/block   {"team_id": "..."}  -> the team row with blocked=true
  POST {url}/team/unblock {"team_id": "..."}
with `Authorization: Bearer <master key>`. The gateway URL is GATEWAY_URL (https://<the gateway's
private DNS name>, not a secret), verified against the CA in GATEWAY_CA_CERT (PEM; unset: the
system's trust store); the master key is the secret GATEWAY_SECRET_ID, either the bare key
(`sk-...`, as the gateway component stores it) or JSON {"master_key": ..., "url": ...}.

Safety rules:
- `unassigned` (traffic from keys without a team) is never blocked: there is no team to block.
- A team is unblocked only when none of its other guarding alarms (alarms on the team's
  LLMOps metrics whose actions include GUARD_TOPIC_ARN, the topic this Lambda listens to) is
  still in ALARM (CloudWatch DescribeAlarms): one alarm returning to OK does not lift a block
  another one still justifies. Alarms that only notify never hold a block.
- DRY_RUN=true logs what would be done and calls nothing.
- A 404 (team unknown to the gateway) is logged and not retried; network errors and 5xx
  raise, so Lambda's asynchronous retries and then the DLQ take over.

Environment: GATEWAY_URL, GATEWAY_CA_CERT, GATEWAY_SECRET_ID, DRY_RUN,
GUARD_TOPIC_ARN (unset: every alarm on the team's metrics counts as guarding),
ENVIRONMENT (alarms carrying another Environment dimension are ignored), SECRET_CACHE_SECONDS.
Every decision is one JSON log line with an `action` field.
"""

from __future__ import annotations

import json
import os
import ssl
import time
import urllib.error
import urllib.request
from functools import cache

import boto3

NAMESPACE = "LLMOps"
NEVER_BLOCK = {"unassigned"}
_cached: dict[str, tuple[float, dict]] = {}


@cache
def _secrets():
    return boto3.client("secretsmanager")


@cache
def _cloudwatch():
    return boto3.client("cloudwatch")


def reset_clients() -> None:
    _secrets.cache_clear()
    _cloudwatch.cache_clear()
    _tls.cache_clear()
    _cached.clear()


def log(action: str, **fields) -> None:
    print(json.dumps({"level": "INFO" if action != "error" else "ERROR", "action": action, **fields}))


def gateway() -> dict:
    secret_id = os.environ["GATEWAY_SECRET_ID"]
    hit = _cached.get(secret_id)
    if hit and time.monotonic() - hit[0] < float(os.environ.get("SECRET_CACHE_SECONDS", "300")):
        return hit[1]
    value = _secrets().get_secret_value(SecretId=secret_id)["SecretString"].strip()
    doc = json.loads(value) if value.startswith("{") else {"master_key": value}
    url = os.environ.get("GATEWAY_URL") or doc.get("url") or ""
    if not url.startswith(("http://", "https://")) or not doc.get("master_key"):
        raise ValueError(f"need GATEWAY_URL (or url in {secret_id}) and a master key in {secret_id}")
    doc = {"url": url, "master_key": doc["master_key"]}
    _cached[secret_id] = (time.monotonic(), doc)
    return doc


def handler(event: dict, context: object = None) -> dict:
    results = [handle_message(r.get("Sns", {}).get("Message", "")) for r in event.get("Records", [])]
    return {"results": results}


def alarm_dimensions(alarm: dict) -> tuple[str | None, dict[str, str]]:
    """(namespace, dimensions) of a simple or metric-math alarm's metric(s)."""
    trigger = alarm.get("Trigger") or {}
    namespace = trigger.get("Namespace")
    dims = {d.get("name"): d.get("value") for d in trigger.get("Dimensions") or []}
    for metric in trigger.get("Metrics") or []:
        inner = (metric.get("MetricStat") or {}).get("Metric") or {}
        namespace = namespace or inner.get("Namespace")
        for d in inner.get("Dimensions") or []:
            dims.setdefault(d.get("name"), d.get("value"))
    return namespace, dims


def handle_message(message: str) -> str:
    try:
        alarm = json.loads(message)
    except ValueError:
        alarm = None
    if not isinstance(alarm, dict) or "AlarmName" not in alarm:
        log("skip", reason="not a CloudWatch alarm message")
        return "skip"
    name, state = alarm["AlarmName"], alarm.get("NewStateValue")
    namespace, dims = alarm_dimensions(alarm)
    team = dims.get("Team")
    environment = os.environ.get("ENVIRONMENT")
    dry_run = os.environ.get("DRY_RUN", "false").lower() in ("1", "true", "yes")
    base = {"alarm": name, "state": state, "team": team, "dryRun": dry_run}
    if namespace != NAMESPACE or not team:
        log("skip", reason="alarm is not on an LLMOps metric with a Team dimension", **base)
        return "skip"
    if environment and dims.get("Environment") not in (None, environment):
        log("skip", reason=f"alarm belongs to environment {dims.get('Environment')}", **base)
        return "skip"
    if team in NEVER_BLOCK:
        log("skip", reason="traffic without a team cannot be blocked", **base)
        return "skip"
    if state == "ALARM":
        action = "block"
    elif state == "OK":
        still = other_alarms_in_alarm(team, name)
        if still:
            log("keep-blocked", reason="other alarms of this team are still in ALARM", alarms=still, **base)
            return "keep-blocked"
        action = "unblock"
    else:
        log("skip", reason=f"no action for state {state}", **base)
        return "skip"
    if dry_run:
        log(f"would-{action}", **base)
        return f"would-{action}"
    return call_gateway(action, team, base)


def other_alarms_in_alarm(team: str, except_name: str) -> list[str]:
    guard_topic = os.environ.get("GUARD_TOPIC_ARN")
    names = []
    for page in _cloudwatch().get_paginator("describe_alarms").paginate(StateValue="ALARM"):
        for alarm in page.get("MetricAlarms", []):
            if alarm["AlarmName"] == except_name:
                continue
            if guard_topic and guard_topic not in alarm.get("AlarmActions", []):
                continue
            namespaces = {alarm.get("Namespace")}
            dims = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
            for metric in alarm.get("Metrics", []):
                inner = (metric.get("MetricStat") or {}).get("Metric") or {}
                namespaces.add(inner.get("Namespace"))
                dims.update({d["Name"]: d["Value"] for d in inner.get("Dimensions", [])})
            if NAMESPACE in namespaces and dims.get("Team") == team:
                names.append(alarm["AlarmName"])
    return names


@cache
def _tls(ca_pem: str | None) -> ssl.SSLContext:
    """Certificates and host names verified, against the gateway's own CA when one is given."""
    return ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()


def call_gateway(action: str, team: str, base: dict) -> str:
    gw = gateway()
    url = gw["url"].rstrip("/") + f"/team/{action}"
    request = urllib.request.Request(
        url,
        data=json.dumps({"team_id": team}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {gw['master_key']}"},
        method="POST",
    )
    try:
        context = _tls(os.environ.get("GATEWAY_CA_CERT") or None)
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            reply = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        if err.code == 404:  # the team does not exist in the gateway: retrying cannot help
            log("error", reason="team not found in the gateway", status=404, **base)
            return "not-found"
        log("error", reason=f"gateway answered HTTP {err.code}", status=err.code, **base)
        raise
    blocked = reply.get("blocked") if isinstance(reply, dict) else None
    log(f"{action}ed", gatewayBlocked=blocked, **base)
    return f"{action}ed"
