"""Spend aggregator: S3 object-created events (through SQS) -> CloudWatch metrics via EMF.

Each SQS message carries one S3 event notification for a LiteLLM spend-log object. For every
new object the handler streams it, aggregates requests, tokens, errors and cost per (team,
model, route) with the shared core in `aggregate.py`, and prints one Embedded Metric Format
record per group to stdout (and, for requests that carried retrieval metadata, the age of the
documents retrieved); Lambda ships stdout to CloudWatch Logs, which turns the records
into metrics in the `LLMOps` namespace.

Exactly-once per object version: a DynamoDB item keyed by bucket/key#version (or ETag) is
written with a conditional put (`attribute_not_exists`) *after* the object was read and
aggregated and *before* its records are printed. A redelivered or duplicated event loses the
conditional put and prints nothing; an object whose read fails is not claimed and is retried.
The remaining window (a crash between the put and the prints, which are plain writes to
stdout) would under-count, never double-count. Items expire through DynamoDB TTL.

Failures are reported per SQS message (`batchItemFailures`; the event source mapping needs
`ReportBatchItemFailures`), so one bad object never re-runs the whole batch; after the
queue's maxReceiveCount a message goes to the DLQ.

Eval coverage (with PROMPT_BUCKET set): for every prompt version the object's requests name, the
version's latest eval record in the prompt registry (`prompts/<name>/evals/<version:06d>/`, the
greatest record key) says whether it is covered (`aggregate.covers`); the handler prints one
coverage EMF record per (team, prompt, version) after the cost records. Answers are cached for
EVAL_CACHE_SECONDS across warm invocations and looked up once per invocation, at most
MAX_EVAL_LOOKUPS per invocation; a version that could not be looked up counts as not covered
(coverage is never over-reported, and the cost metrics never wait for the registry).

Environment: ENVIRONMENT (metric dimension), IDEMPOTENCY_TABLE (DynamoDB table, hash key
`pk` string), IDEMPOTENCY_TTL_DAYS (default 35: longer than the queue's retention), PROMPT_BUCKET
(the prompt registry; unset: no coverage records).

The standard library, boto3 (in the Lambda Python runtime) and msgspec, which the component
zips with the handler (lambdas/spend_aggregator/requirements.txt, `make lambda-deps`).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from functools import cache
from urllib.parse import unquote_plus

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from .aggregate import Aggregator, covers  # the zip holds the folder: `spend_aggregator.handler.handler`

_MISSING = ("NoSuchKey", "NoSuchVersion", "404")
# Eval record keys as the registry writes them (llmops/prompts/registry.py EVAL_RECORD): a UTC
# timestamp first, so the greatest key is the latest record; report files never match.
EVAL_RECORD = re.compile(r"\d{8}T\d{12}Z-[0-9a-f]{8}\.json")
EVAL_CACHE_SECONDS = 300.0  # a new eval record shows in coverage within this time
MAX_EVAL_LOOKUPS = 50  # registry lookups per invocation (each: a listing and one GetObject)
MAX_EVAL_LIST_PAGES = 5  # of up to 1,000 keys under one version's evals/ prefix
_eval_cache: dict[tuple[str, str, int], tuple[bool, float]] = {}  # -> (covered, expires at)


@cache
def _s3():
    return boto3.client("s3")


@cache
def _dynamodb():
    return boto3.client("dynamodb")


def reset_clients() -> None:
    """Tests call this after starting moto so new clients are created inside the mock."""
    _s3.cache_clear()
    _dynamodb.cache_clear()
    _eval_cache.clear()


def log(level: str, message: str, **fields) -> None:
    """One JSON log line (never an EMF record: it has no `_aws` key)."""
    print(
        json.dumps({"level": level, "message": message, **fields}, default=str), file=sys.stdout, flush=False
    )


def emit(record: dict) -> None:
    print(json.dumps(record, separators=(",", ":")))


@dataclass
class EvalLookups:
    """One invocation's registry lookups: answers newer than its start are reused, at most
    MAX_EVAL_LOOKUPS are made."""

    started: float = field(default_factory=time.monotonic)
    made: int = 0
    skipped: int = 0

    def covered(self, name: str, version: int) -> bool:
        bucket = os.environ["PROMPT_BUCKET"]
        cached = _eval_cache.get((bucket, name, version))
        if cached is not None and cached[1] > self.started:
            return cached[0]
        if self.made >= MAX_EVAL_LOOKUPS:
            self.skipped += 1
            return False
        self.made += 1
        try:
            covered = covers(latest_eval_record(bucket, name, version), name, version)
        except (ClientError, BotoCoreError, ValueError) as err:  # not cached: asked again next time
            log(
                "ERROR",
                "eval record lookup failed; counted as not covered",
                prompt=name,
                version=version,
                error=repr(err),
            )
            return False
        _eval_cache[(bucket, name, version)] = (covered, time.monotonic() + EVAL_CACHE_SECONDS)
        return covered


def latest_eval_record(bucket: str, name: str, version: int) -> object:
    """The version's latest eval record (decoded JSON), or None when it has none."""
    prefix = f"prompts/{name}/evals/{version:06d}/"
    latest = None  # the greatest record id
    pages = _s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    for number, page in enumerate(pages):
        if number == MAX_EVAL_LIST_PAGES:  # the latest record would be on a later page: never guess
            raise ValueError(f"more than {number} pages of keys under s3://{bucket}/{prefix}")
        for obj in page.get("Contents", []):
            record_id = obj["Key"][len(prefix) :]
            if EVAL_RECORD.fullmatch(record_id) and (latest is None or record_id > latest):
                latest = record_id
    if latest is None:
        return None
    with _s3().get_object(Bucket=bucket, Key=f"{prefix}{latest}")["Body"] as body:
        return json.loads(body.read())


def handler(event: dict, context: object = None) -> dict:
    failures = []
    lookups = EvalLookups()
    for message in event.get("Records", []):
        message_id = message.get("messageId", "?")
        try:
            process_message(message, lookups)
        except Exception as err:  # report this message only; the rest of the batch succeeds
            log(
                "ERROR",
                "spend-log message failed; SQS will redeliver it",
                messageId=message_id,
                error=repr(err),
            )
            failures.append({"itemIdentifier": message_id})
    sys.stdout.flush()
    return {"batchItemFailures": failures}


def process_message(message: dict, lookups: EvalLookups) -> None:
    body = json.loads(message["body"])
    if body.get("Type") == "Notification" and "Message" in body:  # S3 -> SNS -> SQS fan-out
        body = json.loads(body["Message"])
    if body.get("Event") == "s3:TestEvent":  # sent once when the notification is configured
        log("INFO", "S3 test event ignored", bucket=body.get("Bucket"))
        return
    records = body.get("Records")
    if not isinstance(records, list):
        raise ValueError("message body is not an S3 event notification (no Records list)")
    for record in records:
        if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            log("INFO", "not an object-created event; ignored", eventName=record.get("eventName"))
            continue
        s3 = record["s3"]
        obj = s3["object"]
        process_object(
            bucket=s3["bucket"]["name"],
            key=unquote_plus(obj["key"]),  # event keys are URL-encoded, spaces as '+'
            version_id=obj.get("versionId") or None,
            # Unversioned buckets: ETag plus the per-key event sequencer tells writes apart.
            etag=":".join(filter(None, (obj.get("eTag"), obj.get("sequencer")))) or None,
            lookups=lookups,
        )


def process_object(
    bucket: str, key: str, version_id: str | None, etag: str | None, lookups: EvalLookups
) -> None:
    environment = os.environ.get("ENVIRONMENT", "dev")
    table = os.environ["IDEMPOTENCY_TABLE"]
    ttl_days = int(os.environ.get("IDEMPOTENCY_TTL_DAYS", "35"))
    pk = f"{bucket}/{key}#{version_id or etag or 'unversioned'}"
    source = f"s3://{bucket}/{key}"

    if _already_done(table, pk):  # cheap early exit for duplicates; the put below decides
        log("INFO", "duplicate delivery; object already counted", object=source, idempotencyKey=pk)
        return
    request = {"Bucket": bucket, "Key": key}
    if version_id:
        request["VersionId"] = version_id
    try:
        response = _s3().get_object(**request)
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code in _MISSING:  # deleted (lifecycle) or replaced before we ran: nothing to count
            log("WARNING", "spend-log object is gone; skipped", object=source, code=code)
            return
        raise
    started = time.monotonic()
    aggregator = Aggregator()
    with response["Body"] as body:
        aggregator.add_stream(body, key)
    coverage = []
    if os.environ.get("PROMPT_BUCKET"):  # looked up before the claim: a timeout here claims nothing
        skipped = lookups.skipped
        coverage = aggregator.coverage_records(environment, lookups.covered, source=source)
        if lookups.skipped > skipped:
            log(
                "WARNING",
                "too many prompt versions in one invocation; the rest counted as not covered",
                object=source,
                notLookedUp=lookups.skipped - skipped,
            )

    if not _claim(table, pk, ttl_days, aggregator.records):
        log("INFO", "duplicate delivery; object already counted", object=source, idempotencyKey=pk)
        return
    for record in aggregator.emf_records(environment, source=source):
        emit(record)
    for record in coverage:
        emit(record)
    if aggregator.malformed:
        log(
            "WARNING",
            "malformed spend-log lines skipped",
            object=source,
            malformedLines=aggregator.malformed,
            samples=[{"line": n, "reason": r} for n, r in aggregator.samples],
        )
    if aggregator.retrieval_problems:
        log(
            "WARNING",
            "retrieval metadata unreadable; those requests have no retrieval age (their cost counts)",
            object=source,
            requests=aggregator.retrieval_problems,
            samples=[{"line": n, "reason": r} for n, r in aggregator.retrieval_samples],
        )
    log(
        "INFO",
        "spend-log object aggregated",
        object=source,
        records=aggregator.records,
        groups=len(aggregator.groups),
        evalRequests=aggregator.eval_requests,
        malformedLines=aggregator.malformed,
        seconds=round(time.monotonic() - started, 3),
    )


def _already_done(table: str, pk: str) -> bool:
    item = _dynamodb().get_item(TableName=table, Key={"pk": {"S": pk}}, ConsistentRead=True)
    return "Item" in item


def _claim(table: str, pk: str, ttl_days: int, records: int) -> bool:
    now = int(time.time())
    try:
        _dynamodb().put_item(
            TableName=table,
            Item={
                "pk": {"S": pk},
                "processedAt": {"N": str(now)},
                "records": {"N": str(records)},
                "expiresAt": {"N": str(now + ttl_days * 86400)},  # the table's TTL attribute
            },
            ConditionExpression="attribute_not_exists(pk)",
        )
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True
