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


# -- eval coverage: the prompt registry on moto, written by the real PromptRegistry ----------------

PROMPTS = "llmops-test-prompts"
TEMPLATE = "Classify the ticket into a queue.\nTicket: {{ ticket }}"


def harness_record(name: str, version: int, content_hash: str, passed: bool) -> dict:
    """What `llmops eval run --record` stores (the shape record_harness_eval accepts)."""
    return {
        "kind": "harness",
        "prompt": name,
        "version": version,
        "content_sha256": content_hash,
        "eval_set": {
            "path": f"evals/{name}.yaml",
            "prompt": name,
            "sha256": "0" * 64,
            "threshold": 0.9,
            "repeat": 1,
            "cases": 1,
        },
        "threshold": 0.9,
        "pass_rate": 1.0 if passed else 0.0,
        "cases": [{"id": "case-1", "passed": passed, "runs": []}],
        "baseline": None,
        "passed": passed,
        "models": {"candidate": "qwen-small", "baseline": None, "judge": None},
        "judge": None,
        "run_id": f"run-{name}-{version}",
        "cost_usd": 0.0,
    }


@pytest.fixture
def registry(aws, monkeypatch):
    """A prompt registry bucket next to the logs bucket, named by PROMPT_BUCKET."""
    from llmops.prompts.registry import PromptRegistry

    aws["s3"].create_bucket(Bucket=PROMPTS)
    aws["s3"].put_bucket_versioning(Bucket=PROMPTS, VersioningConfiguration={"Status": "Enabled"})
    monkeypatch.setenv("PROMPT_BUCKET", PROMPTS)
    return PromptRegistry(PROMPTS, aws["s3"], boto3.client("sts", region_name=REGION))


def push_versions(registry, name: str, count: int) -> list[dict]:
    from llmops.prompts.format import PromptFile

    doc = {"name": name, "owner": "team-it", "classification": "internal", "model": "qwen-small"}
    return [
        registry.push(
            PromptFile.model_validate({**doc, "variables": ["ticket"], "template": f"{TEMPLATE} #{i}"})
        )
        for i in range(1, count + 1)
    ]


def record_evals(registry, version: dict, *evals: str) -> None:
    """Eval records in order (the last is the latest): harness-pass, harness-fail, manual-pass."""
    name, number = version["name"], version["version"]
    for kind in evals:
        if kind == "manual-pass":
            registry.record_eval(name, number, score=0.99, threshold=0.5)
        else:
            record = harness_record(name, number, version["content_hash"], kind == "harness-pass")
            registry.record_harness_eval(name, number, record)


def spend_record(request_metadata: dict | None, team: str = "payments", n: int = 0) -> dict:
    """A real LiteLLM spend-log record with the request `metadata` as the proxy logs it (under
    metadata.requester_metadata, verified against litellm 1.100.5's proxy: docs/cost.md)."""
    record = json.loads(json.dumps(read_records(SPEND_LOGS_SELF_HOSTED)[0]))
    record["id"] = f"chatcmpl-coverage-{n}"
    record["metadata"]["spend_logs_metadata"] = {"team": team}
    requester = {"spend_logs_metadata": {"team": team}, **(request_metadata or {})}
    record["metadata"]["requester_metadata"] = requester
    return record


def prompt_metadata(name: str, version: int, **more) -> dict:
    """What PromptClient's ServedPrompt.metadata holds (llmops/prompts/client.py)."""
    return {"prompt_name": name, "prompt_alias": "production", "prompt_version": str(version), **more}


def upload_records(aws, records: list[dict]) -> None:
    for i, record in enumerate(records):
        aws["s3"].put_object(
            Bucket=BUCKET, Key=f"spend-logs/2026-11-23/cov-{i}.json", Body=json.dumps(record)
        )


def coverage_of(emf: list[dict]) -> list[dict]:
    return [e for e in emf if "CoverageRequests" in e]


def by_version(coverage: list[dict], field: str) -> dict:
    """Sum of a field per PromptVersion (one record per object), without the zeros."""
    sums: dict = {}
    for e in coverage:
        sums[e.get("PromptVersion")] = sums.get(e.get("PromptVersion"), 0) + e[field]
    return {v: n for v, n in sums.items() if n}


SPEND_LOGS_SELF_HOSTED = next(p for p in fixture_files() if p.name == "self_hosted_success.json")


def test_coverage_counts_requests_whose_latest_eval_is_a_passing_harness_run(aws, registry, capsys):
    versions = push_versions(registry, "ticket-classifier", 6)
    record_evals(registry, versions[0], "harness-pass")  # v1: covered
    record_evals(registry, versions[1], "harness-fail")  # v2: failed
    record_evals(registry, versions[2], "manual-pass")  # v3: a manual record never covers
    # v4: no eval record at all
    record_evals(registry, versions[4], "harness-fail", "harness-pass")  # v5: the latest passed
    record_evals(registry, versions[5], "harness-pass", "manual-pass")  # v6: the latest is manual
    plan = {1: 3, 2: 2, 3: 1, 4: 1, 5: 2, 6: 1}  # version -> requests
    records = [
        spend_record(prompt_metadata("ticket-classifier", v), n=10 * v + i)
        for v, count in plan.items()
        for i in range(count)
    ]
    records.append(spend_record(None, n=90))  # no prompt metadata: traffic no test covers
    records.append(spend_record(prompt_metadata("ticket-classifier", 1, llmops_eval=True), n=91))  # eval
    upload_records(aws, records)
    result, emf, logs = run(drain(aws), capsys)

    assert result == {"batchItemFailures": []}
    coverage = coverage_of(emf)
    for record in coverage:
        assert_valid_emf(record)
        assert record["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Environment", "Team"]]
        assert record["Team"] == "payments" and record["Environment"] == "test"
    counted = sum(plan.values()) + 1  # the eval request is not counted
    assert sum(e["CoverageRequests"] for e in coverage) == counted
    assert by_version(coverage, "EvalCoveredRequests") == {1: 3, 5: 2}
    assert by_version(coverage, "UncoveredRequests") == {2: 2, 3: 1, 4: 1, 6: 1, None: 1}
    # The cost metrics still count every request, eval traffic included.
    cost = [e for e in emf if "CostUSD" in e]
    assert sum(e["Requests"] for e in cost) == len(records)
    done = [line for line in logs if line["message"] == "spend-log object aggregated"]
    assert sum(line["evalRequests"] for line in done) == 1


def test_without_a_registry_only_the_cost_metrics_are_emitted(aws, capsys):
    upload_records(aws, [spend_record(prompt_metadata("ticket-classifier", 1))])
    _, emf, _ = run(drain(aws), capsys)
    assert emf and coverage_of(emf) == []


def test_registry_lookups_are_made_once_cached_and_bounded(aws, registry, capsys, monkeypatch):
    versions = push_versions(registry, "ticket-classifier", 3)
    for version in versions:
        record_evals(registry, version, "harness-pass")
    calls: list[tuple[str, str]] = []

    def count(params, model, **kwargs):
        if params.get("Bucket") == PROMPTS:
            calls.append((model.name, params.get("Prefix") or params.get("Key")))

    handler._s3().meta.events.register("provide-client-params.s3", count)
    upload_records(aws, [spend_record(prompt_metadata("ticket-classifier", 1), n=i) for i in range(4)])
    _, emf, _ = run(drain(aws), capsys)
    assert [c[0] for c in calls] == ["ListObjectsV2", "GetObject"]  # four objects, one lookup
    assert sum(e["EvalCoveredRequests"] for e in coverage_of(emf)) == 4

    calls.clear()
    upload_records(aws, [spend_record(prompt_metadata("ticket-classifier", 1), n=9)])
    _, emf, _ = run(drain(aws), capsys)  # a warm invocation within the TTL: no S3 call
    assert calls == [] and sum(e["EvalCoveredRequests"] for e in coverage_of(emf)) == 1

    monkeypatch.setattr(handler, "EVAL_CACHE_SECONDS", 0.0)
    monkeypatch.setattr(handler, "MAX_EVAL_LOOKUPS", 1)
    handler._eval_cache.clear()
    upload_records(aws, [spend_record(prompt_metadata("ticket-classifier", v), n=v) for v in (2, 3)])
    result, emf, logs = run(drain(aws), capsys)
    assert result == {"batchItemFailures": []}
    assert [c[0] for c in calls] == ["ListObjectsV2", "GetObject"]  # the bound: one lookup
    assert sum(e["EvalCoveredRequests"] for e in coverage_of(emf)) == 1  # the other counts as not covered
    assert any(line["message"].startswith("too many prompt versions") for line in logs)


def test_an_unreadable_registry_counts_requests_as_not_covered_and_keeps_the_cost(aws, capsys, monkeypatch):
    monkeypatch.setenv("PROMPT_BUCKET", "no-such-prompt-bucket")
    records = [spend_record(prompt_metadata("ticket-classifier", 1), n=i) for i in range(2)]
    upload_records(aws, records)
    result, emf, logs = run(drain(aws), capsys)

    assert result == {"batchItemFailures": []}
    assert sum(e["Requests"] for e in emf if "CostUSD" in e) == 2
    coverage = coverage_of(emf)
    assert sum(e["CoverageRequests"] for e in coverage) == 2
    assert sum(e["EvalCoveredRequests"] for e in coverage) == 0
    failures = [line for line in logs if line["message"].startswith("eval record lookup failed")]
    assert failures and "NoSuchBucket" in failures[0]["error"]


def test_duplicate_delivery_adds_no_coverage_either(aws, registry, capsys):
    (version,) = push_versions(registry, "ticket-classifier", 1)
    record_evals(registry, version, "harness-pass")
    upload_records(aws, [spend_record(prompt_metadata("ticket-classifier", 1))])
    event = drain(aws)
    _, first, _ = run(event, capsys)
    _, again, _ = run(event, capsys)
    assert len(coverage_of(first)) == 1 and again == []


def test_prompt_metadata_that_names_no_version_is_not_covered(aws, registry, capsys):
    (version,) = push_versions(registry, "ticket-classifier", 1)
    record_evals(registry, version, "harness-pass")
    odd = [
        {"prompt_name": "ticket-classifier"},  # no version
        {"prompt_name": "ticket-classifier", "prompt_version": "latest"},
        {"prompt_name": "ticket-classifier", "prompt_version": True},  # a bool is not version 1
        {"prompt_name": "Ticket Classifier", "prompt_version": "1"},  # not a registry name
        {"prompt_name": "ticket-classifier\n", "prompt_version": "1"},  # nor is this one
        {"prompt_name": "ticket-classifier", "prompt_version": 1},  # a number works too
    ]
    upload_records(aws, [spend_record(m, n=i) for i, m in enumerate(odd)])
    _, emf, _ = run(drain(aws), capsys)
    coverage = coverage_of(emf)
    assert sum(e["CoverageRequests"] for e in coverage) == len(odd)
    assert sum(e["EvalCoveredRequests"] for e in coverage) == 1
