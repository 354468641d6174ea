"""Retrieval conventions for applications: stamp points when indexing, describe what answered.

    payload = point_payload(source_id="kb/123", source_updated_at=doc.updated_at,
                            embedding_model="bge-m3", source_version="7", title=doc.title)
    client.upsert("kb", [index_point(id, vector, payload)])
    ...
    hits = client.query_points("kb", query=vector, limit=5).points
    reply = openai.chat.completions.create(
        model=..., messages=..., extra_body={"metadata": retrieval_metadata(hits, collection="kb")})

LiteLLM's proxy copies the request's `metadata` into the spend log's
`metadata.requester_metadata` (litellm/proxy/litellm_pre_call_utils.py), where the spend
aggregator reads `retrieval` and emits the age of the documents behind each answer
(docs/retrieval.md). The standard library only; qdrant-client is imported by `index_point`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

RETRIEVAL = "retrieval"  # the key under the request's metadata
MAX_SOURCE_IDS = 50  # source ids listed per request; a retrieval payload cap keeps spend logs small
_REQUIRED = ("source_id", "source_updated_at", "indexed_at", "embedding_model")


def _timestamp(value: datetime | str, what: str) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{what} must be an RFC 3339 timestamp, got {value!r}") from None
    if not isinstance(value, datetime):
        raise ValueError(f"{what} must be a datetime or an RFC 3339 string, got {type(value).__name__}")
    if value.tzinfo is None:
        raise ValueError(f"{what} must carry a time zone (e.g. 2026-01-31T09:00:00Z), got {value}")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def point_payload(
    *,
    source_id: str,
    source_updated_at: datetime | str,
    embedding_model: str,
    indexed_at: datetime | str | None = None,
    source_version: str | None = None,
    **extra: object,
) -> dict:
    """A payload with the conventions stamped (RFC 3339 UTC timestamps; `indexed_at` defaults to
    now). `extra` keys are the application's own (title, chunk, ...)."""
    if not isinstance(source_id, str) or not source_id.strip():
        raise ValueError(f"source_id must be a non-empty string, got {source_id!r}")
    if not isinstance(embedding_model, str) or not embedding_model.strip():
        raise ValueError(f"embedding_model must be a non-empty string, got {embedding_model!r}")
    payload = {
        **extra,
        "source_id": source_id,
        "source_updated_at": _timestamp(source_updated_at, "source_updated_at"),
        "indexed_at": _timestamp(indexed_at or datetime.now(UTC), "indexed_at"),
        "embedding_model": embedding_model,
    }
    if source_version is not None:
        payload["source_version"] = str(source_version)
    return payload


def index_point(point_id: int | str, vector: object, payload: Mapping) -> object:
    """A qdrant_client PointStruct whose payload follows the conventions (build it with
    `point_payload`; a payload missing one of them is refused here, before the upsert)."""
    from qdrant_client import models

    missing = [key for key in _REQUIRED if not payload.get(key)]
    if missing:
        raise ValueError(f"payload lacks {', '.join(missing)}; build it with point_payload()")
    return models.PointStruct(id=point_id, vector=vector, payload=dict(payload))


def _payload_of(point: object) -> Mapping:
    """A qdrant ScoredPoint / Record (`.payload`), a REST hit ({"payload": ...}) or a payload."""
    payload = getattr(point, "payload", None)
    if payload is None and isinstance(point, Mapping):
        payload = point.get("payload", point)
    return payload if isinstance(payload, Mapping) else {}


def retrieval_metadata(points: Iterable[object], collection: str | None = None) -> dict:
    """`{"retrieval": {...}}` for the gateway request's `metadata`: newest and oldest
    `source_updated_at` (RFC 3339, null when no point carries one), the distinct source ids in
    retrieval order (at most MAX_SOURCE_IDS, `source_ids_truncated` when cut), `source_versions`
    ({source id: version}, when points carry one), `collection` and `count` (points retrieved)."""
    count = 0
    times: list[datetime] = []
    ids: list[str] = []
    seen: set[str] = set()
    versions: dict[str, str] = {}
    for point in points:
        count += 1
        payload = _payload_of(point)
        updated = payload.get("source_updated_at")
        if isinstance(updated, str):
            try:
                parsed = datetime.fromisoformat(updated)
            except ValueError:
                parsed = None
            if parsed is not None:
                times.append(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))
        source = payload.get("source_id")
        if isinstance(source, str) and source and source not in seen:
            seen.add(source)
            ids.append(source)
            version = payload.get("source_version")
            if version is not None and len(ids) <= MAX_SOURCE_IDS:
                versions[source] = str(version)
    retrieval: dict = {
        "newest_source_updated_at": _timestamp(max(times), "newest") if times else None,
        "oldest_source_updated_at": _timestamp(min(times), "oldest") if times else None,
        "source_ids": ids[:MAX_SOURCE_IDS],
        "count": count,
    }
    if len(ids) > MAX_SOURCE_IDS:
        retrieval["source_ids_truncated"] = True
    if versions:
        retrieval["source_versions"] = versions
    if collection is not None:
        retrieval["collection"] = collection
    return {RETRIEVAL: retrieval}
