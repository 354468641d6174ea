"""Spend aggregator: S3 object-created events (through SQS) -> CloudWatch metrics via EMF.

Each SQS message carries one S3 event notification for a LiteLLM spend-log object. For every
new object the handler streams it, aggregates requests, tokens, errors and cost per (team,
model, route) with the shared core in `aggregate.py`, and prints one Embedded Metric Format
record per group to stdout; Lambda ships stdout to CloudWatch Logs, which turns the records
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

Environment: ENVIRONMENT (metric dimension), IDEMPOTENCY_TABLE (DynamoDB table, hash key
`pk` string), IDEMPOTENCY_TTL_DAYS (default 35: longer than the queue's retention).

The standard library, boto3 (in the Lambda Python runtime) and msgspec, which the component
zips with the handler (lambdas/spend_aggregator/requirements.txt, `make lambda-deps`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from functools import cache
from urllib.parse import unquote_plus

import boto3
from botocore.exceptions import ClientError

from .aggregate import Aggregator  # the zip holds the folder: `spend_aggregator.handler.handler`

_MISSING = ("NoSuchKey", "NoSuchVersion", "404")


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


def log(level: str, message: str, **fields) -> None:
    """One JSON log line (never an EMF record: it has no `_aws` key)."""
    print(
        json.dumps({"level": level, "message": message, **fields}, default=str), file=sys.stdout, flush=False
    )


def emit(record: dict) -> None:
    print(json.dumps(record, separators=(",", ":")))


def handler(event: dict, context: object = None) -> dict:
    failures = []
    for message in event.get("Records", []):
        message_id = message.get("messageId", "?")
        try:
            process_message(message)
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


def process_message(message: dict) -> None:
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
        )


def process_object(bucket: str, key: str, version_id: str | None, etag: str | None) -> None:
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

    if not _claim(table, pk, ttl_days, aggregator.records):
        log("INFO", "duplicate delivery; object already counted", object=source, idempotencyKey=pk)
        return
    for record in aggregator.emf_records(environment, source=source):
        emit(record)
    if aggregator.malformed:
        log(
            "WARNING",
            "malformed spend-log lines skipped",
            object=source,
            malformedLines=aggregator.malformed,
            samples=[{"line": n, "reason": r} for n, r in aggregator.samples],
        )
    log(
        "INFO",
        "spend-log object aggregated",
        object=source,
        records=aggregator.records,
        groups=len(aggregator.groups),
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
