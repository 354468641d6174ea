#!/usr/bin/env bash
# Scenario (outside the test suite): replay real LiteLLM spend-log records, re-labelled with
# other teams and routes, through the spend-aggregator Lambda on moto (S3 -> SQS -> handler)
# and through `llmops cost aggregate`, and check the per-team CostUSD totals against sums
# computed straight from the records. Redelivers everything once to show nothing doubles.
#
#   scenarios/cost_replay.sh [RECORDS]      (default 600 records; PYTHON=... to pick python)
#
# Exit 0 when every team's total matches, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=scenario AWS_SECRET_ACCESS_KEY=scenario
export ENVIRONMENT=scenario IDEMPOTENCY_TABLE=scenario-idempotency

exec "$PYTHON" - "${1:-600}" <<'EOF'
import contextlib, copy, gzip, io, json, math, random, sys, tempfile
from pathlib import Path

import boto3
from moto import mock_aws

from lambdas.spend_aggregator import handler
from llmops.cost import aggregate_files

records_wanted = int(sys.argv[1])
rng = random.Random(2026)
fixtures = Path("tests/fixtures/spend_logs")
real = [json.loads(p.read_text()) for p in sorted(fixtures.glob("*.json")) if p.name != "objects.json"]
print(f"{len(real)} real LiteLLM records from {fixtures}")

# Re-label: a team from the key (production), from request tags only, or none; some routes
# external (the real fixtures are all self-hosted).
TEAMS = ["risk", "claims", "underwriting", "support"]
records = []
for i in range(records_wanted):
    r = copy.deepcopy(rng.choice(real))
    r["id"] = f"replay-{i}"
    way = rng.random()
    tags = [t for t in r.get("request_tags") or [] if not t.startswith("team:")]
    r["metadata"]["spend_logs_metadata"] = None
    r["metadata"]["user_api_key_team_id"] = None
    team = rng.choice(TEAMS)
    if way < 0.6:
        r["metadata"]["user_api_key_team_id"] = team
    elif way < 0.85:
        tags.append(f"team:{team}")
    else:
        team = "unassigned"
    r["request_tags"] = tags
    if r["status"] == "success":
        r["response_cost"] = round(r["response_cost"] * rng.uniform(0.5, 40), 12)
    if rng.random() < 0.3:
        r["custom_llm_provider"], r["api_base"], r["model_group"] = "openai", "https://api.openai.com/v1", "gpt-4o-mini"
    r["_expected_team"] = team
    records.append(r)

expected = {}
for r in records:
    expected[r["_expected_team"]] = expected.get(r["_expected_team"], 0.0) + r["response_cost"]
    del r["_expected_team"]

# Objects: the first 20 as single-record .json (as LiteLLM writes them), the rest split into a
# .jsonl batch and a gzipped .jsonl batch.
objects = {f"spend-logs/replay/{r['id']}.json": json.dumps(r).encode() for r in records[:20]}
half = 20 + (len(records) - 20) // 2
objects["spend-logs/replay/batch-1.jsonl"] = "".join(json.dumps(r) + "\n" for r in records[20:half]).encode()
objects["spend-logs/replay/batch-2.jsonl.gz"] = gzip.compress(
    "".join(json.dumps(r) + "\n" for r in records[half:]).encode()
)


def run_lambda(event):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = handler.handler(event)
    emf = [d for d in map(json.loads, filter(None, out.getvalue().splitlines())) if "_aws" in d]
    return result, emf


with mock_aws():
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    s3.create_bucket(Bucket="replay-logs")
    url = sqs.create_queue(QueueName="replay")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket="replay-logs",
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    boto3.client("dynamodb").create_table(
        TableName="scenario-idempotency", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    )
    handler.reset_clients()
    for key, body in objects.items():
        s3.put_object(Bucket="replay-logs", Key=key, Body=body)
    messages = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for m in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            messages.append({"messageId": m["MessageId"], "body": m["Body"]})
    result, emf = run_lambda({"Records": messages})
    again, emf_again = run_lambda({"Records": messages})  # at-least-once delivery, twice

lambda_totals = {}
for e in emf:
    lambda_totals[e["Team"]] = lambda_totals.get(e["Team"], 0.0) + e["CostUSD"]

with tempfile.TemporaryDirectory() as tmp:
    paths = []
    for key, body in objects.items():
        path = Path(tmp) / key.rsplit("/", 1)[1]
        path.write_bytes(body)
        paths.append(path)
    out = io.StringIO()
    code = aggregate_files(paths, "scenario", out=out)
cli_totals = {}
for line in out.getvalue().splitlines():
    e = json.loads(line)
    cli_totals[e["Team"]] = cli_totals.get(e["Team"], 0.0) + e["CostUSD"]

ok = result["batchItemFailures"] == [] and again["batchItemFailures"] == [] and emf_again == [] and code == 0
print(f"{len(records)} records in {len(objects)} objects; Lambda EMF records: {len(emf)}; "
      f"after redelivery: {len(emf_again)}")
print(f"{'team':14} {'expected USD':>14} {'Lambda USD':>14} {'CLI USD':>14}")
for team in sorted(set(expected) | set(lambda_totals) | set(cli_totals)):
    want, got, cli = expected.get(team, 0.0), lambda_totals.get(team, 0.0), cli_totals.get(team, 0.0)
    match = math.isclose(want, got, rel_tol=1e-9) and math.isclose(want, cli, rel_tol=1e-9)
    ok &= match
    print(f"{team:14} {want:14.6f} {got:14.6f} {cli:14.6f} {'ok' if match else 'MISMATCH'}")
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
EOF
