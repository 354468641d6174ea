"""Spend aggregator Lambda against moto: S3 -> SQS notifications -> handler -> EMF on stdout."""

from __future__ import annotations

import gzip
import json

import boto3
import pytest
from moto import mock_aws

from cost_lambdas.helpers import (
    all_records,
    assert_sums_equal,
    assert_valid_emf,
    emf_sums,
    expected_cost_by_team,
    expected_sums,
    fixture_files,
    fixture_keys,
    parse_stdout,
    read_records,
)
from lambdas.spend_aggregator import handler

BUCKET = "llmops-test-gateway-logs"
TABLE = "llmops-test-spend-idempotency"
REGION = "us-east-1"


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("ENVIRONMENT", "test")
    monkeypatch.setenv("IDEMPOTENCY_TABLE", TABLE)
    with mock_aws():
        handler.reset_clients()
        s3 = boto3.client("s3", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        queue_url = sqs.create_queue(QueueName="spend-logs")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        s3.put_bucket_notification_configuration(
            Bucket=BUCKET,
            NotificationConfiguration={
                "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]
            },
        )
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield {"s3": s3, "sqs": sqs, "queue_url": queue_url}
        handler.reset_clients()


def drain(aws) -> dict:
    """Everything on the queue as the Lambda SQS event the event source mapping would send."""
    records = []
    while True:
        got = aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10)
        if not got.get("Messages"):
            break
        for m in got["Messages"]:
            aws["sqs"].delete_message(QueueUrl=aws["queue_url"], ReceiptHandle=m["ReceiptHandle"])
            records.append({"messageId": m["MessageId"], "body": m["Body"], "eventSource": "aws:sqs"})
    return {"Records": records}


def upload_fixtures(aws) -> None:
    keys = fixture_keys()
    for path in fixture_files():
        aws["s3"].put_object(Bucket=BUCKET, Key=keys[path.name], Body=path.read_bytes())


def run(event, capsys) -> tuple[dict, list[dict], list[dict]]:
    result = handler.handler(event, None)
    emf, logs = parse_stdout(capsys.readouterr().out)
    return result, emf, logs


def test_emf_records_are_valid_and_sum_to_the_fixtures(aws, capsys):
    upload_fixtures(aws)
    event = drain(aws)
    assert any("s3:TestEvent" in r["body"] for r in event["Records"]), "moto sends the S3 test event"
    result, emf, _ = run(event, capsys)

    assert result == {"batchItemFailures": []}
    assert emf, "no EMF records printed"
    for record in emf:
        assert_valid_emf(record)
        assert record["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "LLMOps"
        assert record["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
            ["Environment", "Team"],
            ["Environment", "Team", "Model"],
            ["Environment", "Model", "Route"],
        ]
        assert record["Environment"] == "test"
        assert record["Route"] in ("self-hosted", "external")
    records = all_records()
    assert_sums_equal(emf_sums(emf), expected_sums(records))
    by_team: dict[str, float] = {}
    for record in emf:
        by_team[record["Team"]] = by_team.get(record["Team"], 0.0) + record["CostUSD"]
    assert by_team.keys() == expected_cost_by_team(records).keys()
    for team, cost in expected_cost_by_team(records).items():
        assert by_team[team] == pytest.approx(cost, rel=1e-9, abs=1e-12), team


def test_one_emf_record_per_group_per_object(aws, capsys):
    upload_fixtures(aws)
    _, emf, _ = run(drain(aws), capsys)
    for path in fixture_files():
        mine = [e for e in emf if e["SourceObject"].endswith("/" + fixture_keys()[path.name])]
        groups = [(e["Team"], e["Model"], e["Route"]) for e in mine]
        assert len(groups) == len(set(groups)), f"{path.name}: a group was emitted twice"
        assert sum(e["Requests"] for e in mine) == len(read_records(path)), path.name


def test_duplicate_delivery_adds_nothing(aws, capsys):
    upload_fixtures(aws)
    event = drain(aws)
    _, first, _ = run(event, capsys)
    result, again, logs = run(event, capsys)  # the same messages delivered a second time
    assert first and again == []
    assert result == {"batchItemFailures": []}
    assert sum(1 for line in logs if line["message"].startswith("duplicate delivery")) == len(fixture_files())


def test_new_version_of_an_object_is_counted_again(aws, capsys):
    path = fixture_files()[0]
    versions = [
        aws["s3"].put_object(Bucket=BUCKET, Key="k/" + path.name, Body=path.read_bytes())["VersionId"]
        for _ in range(2)
    ]
    event = drain(aws)
    # Real S3 puts the versionId in events of versioned buckets; moto 5.2 leaves it out.
    created = [r for r in event["Records"] if "ObjectCreated" in r["body"]]
    for record, version in zip(created, versions, strict=True):
        body = json.loads(record["body"])
        body["Records"][0]["s3"]["object"]["versionId"] = version
        record["body"] = json.dumps(body)
    _, emf, _ = run(event, capsys)
    assert sum(e["Requests"] for e in emf) == 2 * len(read_records(path))


def test_malformed_line_is_counted_reported_and_skipped(aws, capsys):
    lines = [json.dumps(r) for r in all_records()]
    lines.insert(1, '{"response_cost": 0.5, "prompt_tokens": "12"')  # truncated JSON
    lines.insert(3, json.dumps({**all_records()[0], "response_cost": "0.25"}))  # cost as a string
    body = gzip.compress(("\n".join(lines) + "\n").encode())
    aws["s3"].put_object(Bucket=BUCKET, Key="batch/malformed.jsonl.gz", Body=body)
    result, emf, logs = run(drain(aws), capsys)

    assert result == {"batchItemFailures": []}
    assert_sums_equal(emf_sums(emf), expected_sums(all_records()))
    [report] = [line for line in logs if line["message"] == "malformed spend-log lines skipped"]
    assert report["malformedLines"] == 2
    assert [s["line"] for s in report["samples"]] == [2, 4]
    assert "response_cost" in report["samples"][1]["reason"]


def test_one_bad_message_fails_alone(aws, capsys):
    upload_fixtures(aws)
    event = drain(aws)
    event["Records"].append({"messageId": "not-json", "body": "{oops"})
    s3_part = {"bucket": {"name": "no-such-bucket"}, "object": {"key": "x.json"}}
    gone = {"Records": [{"eventName": "ObjectCreated:Put", "s3": s3_part}]}
    event["Records"].append({"messageId": "bucket-gone", "body": json.dumps(gone)})
    result, emf, logs = run(event, capsys)

    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == ["bucket-gone", "not-json"]
    assert_sums_equal(emf_sums(emf), expected_sums(all_records()))  # the good messages still counted
    assert sum(1 for line in logs if line["level"] == "ERROR") == 2


def test_failed_read_is_not_claimed_and_retry_counts_once(aws, capsys, monkeypatch):
    path = fixture_files()[0]
    aws["s3"].put_object(Bucket=BUCKET, Key="retry/" + path.name, Body=path.read_bytes())
    event = drain(aws)
    original = handler._s3

    class Flaky:
        def get_object(self, **kwargs):
            raise handler.ClientError({"Error": {"Code": "SlowDown", "Message": "throttled"}}, "GetObject")

    monkeypatch.setattr(handler, "_s3", lambda: Flaky())
    result, emf, _ = run(event, capsys)
    assert emf == [] and len(result["batchItemFailures"]) == 1
    monkeypatch.setattr(handler, "_s3", original)
    result, emf, _ = run(event, capsys)
    assert result == {"batchItemFailures": []}
    assert sum(e["Requests"] for e in emf) == len(read_records(path))


def test_deleted_object_is_skipped_not_retried(aws, capsys):
    aws["s3"].put_object(Bucket=BUCKET, Key="gone.json", Body=b"{}")
    event = drain(aws)
    versions = aws["s3"].list_object_versions(Bucket=BUCKET, Prefix="gone.json")["Versions"]
    aws["s3"].delete_object(Bucket=BUCKET, Key="gone.json", VersionId=versions[0]["VersionId"])
    result, emf, logs = run(event, capsys)
    assert result == {"batchItemFailures": []} and emf == []
    assert any(line["message"] == "spend-log object is gone; skipped" for line in logs)
