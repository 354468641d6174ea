"""Freshness exporter: `python -m llmops.rag.exporter`, scheduled in the VPC next to Qdrant.

Ensures the stack's declared collections (freshness.ensure_collections), measures every
collection (freshness.measure) and puts, per collection, IndexAgeSeconds, StalePointsShare,
EmbeddingModelDriftPoints and PointsCount with dimensions Environment and Collection.

A collection with no readable `indexed_at` (empty, or points without it) gets no
IndexAgeSeconds datum, so its alarm sees missing data, which the alarms treat as breaching.

Environment: QDRANT_URL (or QDRANT_PATH, a qdrant-client local store, for tests and trials),
QDRANT_API_KEY_FILE (optional: a file holding the API key),
ENVIRONMENT, COLLECTIONS_JSON (the declared list, llmops:vectorDb.collections; default []),
METRIC_NAMESPACE (default LLMOps/Retrieval). boto3 takes region and credentials its usual way.

Exit 0 when every metric was put; 1 when a declared collection could not be ensured (the
metrics of all collections are still put), or Qdrant, CloudWatch or the configuration failed. Imports: the
standard library, qdrant_client, boto3 and llmops.rag.freshness, so it ships alone.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from llmops.rag.freshness import CollectionFreshness, ensure_collections, measure

DEFAULT_NAMESPACE = "LLMOps/Retrieval"
MAX_DATA_PER_CALL = 1000  # PutMetricData accepts up to 1,000 metric data per request


# Metric name -> CloudWatch unit, per collection with DIMENSIONS (what alarms and verify read).
METRICS = {
    "IndexAgeSeconds": "Seconds",
    "StalePointsShare": "Percent",
    "EmbeddingModelDriftPoints": "Count",
    "PointsCount": "Count",
}
DIMENSIONS = ("Environment", "Collection")


def metric_data(results: list[CollectionFreshness], environment: str, now: datetime) -> list[dict]:
    """PutMetricData MetricData for every collection (IndexAgeSeconds only when it is known)."""
    data = []
    for result in results:
        dimensions = [
            {"Name": n, "Value": v} for n, v in zip(DIMENSIONS, (environment, result.name), strict=True)
        ]
        values = {
            "IndexAgeSeconds": result.index_age_seconds,
            "StalePointsShare": result.stale_share * 100,
            "EmbeddingModelDriftPoints": result.model_drift_points,
            "PointsCount": result.points,
        }
        data += [
            {
                "MetricName": name,
                "Dimensions": dimensions,
                "Timestamp": now,
                "Value": float(value),
                "Unit": unit,
            }
            for name, unit in METRICS.items()
            if (value := values[name]) is not None
        ]
    return data


def log(level: str, message: str, **fields) -> None:
    print(json.dumps({"level": level, "message": message, **fields}, default=str), file=sys.stderr)


def main() -> int:
    try:
        url, path = os.environ.get("QDRANT_URL"), os.environ.get("QDRANT_PATH")
        if not (url or path):
            raise KeyError("QDRANT_URL")
        environment = os.environ["ENVIRONMENT"]
        declared = json.loads(os.environ.get("COLLECTIONS_JSON") or "[]")
        if not isinstance(declared, list):
            raise ValueError("COLLECTIONS_JSON must be a JSON list of collections")
        key_file = os.environ.get("QDRANT_API_KEY_FILE")
        api_key = None
        if key_file:
            with open(key_file, encoding="utf-8") as f:
                api_key = f.read().strip() or None
    except (KeyError, ValueError, OSError) as err:
        log("ERROR", "exporter configuration unusable", error=repr(err))
        return 1
    namespace = os.environ.get("METRIC_NAMESPACE") or DEFAULT_NAMESPACE

    code = 0
    try:
        client = QdrantClient(url=url, api_key=api_key) if url else QdrantClient(path=path)
        try:
            try:
                created = ensure_collections(client, declared)
                if created:
                    log("INFO", "collections created", collections=created)
            except (ValueError, KeyError, TypeError) as err:  # a bad declaration: still measure all
                log("ERROR", "declared collections could not be ensured", error=str(err))
                code = 1
            now = datetime.now(UTC)
            results = measure(client, now, None)
        finally:
            client.close()
    except (ResponseHandlingException, UnexpectedResponse, RuntimeError) as err:  # RuntimeError: store lock
        log("ERROR", "Qdrant could not be measured; no metrics put", error=str(err))
        return 1

    data = metric_data(results, environment, now)
    cloudwatch = boto3.client("cloudwatch")
    try:
        for start in range(0, len(data), MAX_DATA_PER_CALL):
            cloudwatch.put_metric_data(
                Namespace=namespace, MetricData=data[start : start + MAX_DATA_PER_CALL]
            )
    except (BotoCoreError, ClientError) as err:
        log("ERROR", "PutMetricData failed", error=str(err))
        return 1
    for result in results:
        log("INFO", "collection measured", **result.to_json())
    return code


if __name__ == "__main__":
    sys.exit(main())
