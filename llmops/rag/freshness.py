"""Index freshness per Qdrant collection: what `llmops rag freshness` prints and the exporter emits.

Conventions (docs/retrieval.md): every point's payload carries `source_id`, `source_updated_at`,
`indexed_at` (RFC 3339) and `embedding_model`; a collection's Qdrant metadata carries its
`embedding_model`, `max_age_hours` (the freshness objective), `owner_team` and
`last_full_reembed_at`. Collection metadata needs Qdrant (server or qdrant-client) 1.16 or later.

Depends only on qdrant-client and the standard library, so the exporter ships without the
rest of the llmops package.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

INDEXED_AT = "indexed_at"
SOURCE_UPDATED_AT = "source_updated_at"
SOURCE_ID = "source_id"
EMBEDDING_MODEL = "embedding_model"
MAX_AGE_HOURS = "max_age_hours"
OWNER_TEAM = "owner_team"
LAST_FULL_REEMBED_AT = "last_full_reembed_at"
# Where a collection's objective came from (CollectionFreshness.objective_source).
FROM_METADATA = "metadata"
FROM_DEFAULT = "default"
# Where the embedding model drift is measured against came from.
MODEL_FROM_NEWEST_POINT = "newest point"

# Payload indexes the platform creates: range filters and order_by on the timestamps (a Qdrant
# server orders only by an indexed field), keyword matches for erasure and drift counts.
PAYLOAD_INDEXES = {
    SOURCE_UPDATED_AT: models.PayloadSchemaType.DATETIME,
    INDEXED_AT: models.PayloadSchemaType.DATETIME,
    SOURCE_ID: models.PayloadSchemaType.KEYWORD,
    EMBEDDING_MODEL: models.PayloadSchemaType.KEYWORD,
}
SCAN_PAGE = 1000  # points per scroll page when a server cannot order by indexed_at


@dataclass
class CollectionFreshness:
    name: str
    points: int
    newest_indexed_at: datetime | None
    index_age_seconds: float | None  # None: no point carries a readable indexed_at
    max_age_hours: float | None  # the objective; None: neither metadata nor a default
    stale_points: int  # indexed before now - objective, or without a readable indexed_at
    stale_share: float  # stale_points / points; 0.0 without an objective or points
    model_drift_points: int  # points whose embedding_model is not embedding_model
    embedding_model: str | None  # what drift is measured against
    breached: bool
    objective_source: str | None = None  # FROM_METADATA, FROM_DEFAULT or None
    embedding_model_source: str | None = None  # FROM_METADATA, MODEL_FROM_NEWEST_POINT or None

    def to_json(self) -> dict:
        out = asdict(self)
        out["newest_indexed_at"] = rfc3339(self.newest_indexed_at) if self.newest_indexed_at else None
        return out


def rfc3339(value: datetime) -> str:
    """UTC, second precision or finer, with a Z: what the conventions write."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 payload value as an aware datetime (naive means UTC, as Qdrant reads it)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def objective_hours(value: object) -> float | None:
    """A usable max_age_hours: a positive finite number (never a bool)."""
    if type(value) in (int, float) and math.isfinite(value) and value > 0:
        return float(value)
    return None


def collection_metadata(client: QdrantClient, name: str) -> dict:
    metadata = client.get_collection(name).config.metadata
    return dict(metadata) if isinstance(metadata, dict) else {}


def measure(
    client: QdrantClient, now: datetime, default_max_age_hours: float | None
) -> list[CollectionFreshness]:
    """Every collection's freshness at `now`, sorted by name.

    The objective is the collection's `max_age_hours` metadata, else `default_max_age_hours`. A
    collection breaches it when its newest `indexed_at` is older, or when nothing in it carries
    one (an empty collection with an objective is breached: no data is not fresh data).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    names = sorted(c.name for c in client.get_collections().collections)
    return [_measure_one(client, name, now, default_max_age_hours) for name in names]


def _measure_one(
    client: QdrantClient, name: str, now: datetime, default_max_age_hours: float | None
) -> CollectionFreshness:
    metadata = collection_metadata(client, name)
    objective = objective_hours(metadata.get(MAX_AGE_HOURS))
    objective_source = FROM_METADATA if objective is not None else None
    if objective is None and default_max_age_hours is not None:
        objective, objective_source = default_max_age_hours, FROM_DEFAULT

    points = client.count(name, exact=True).count
    newest, newest_model = _newest(client, name)
    age = max(0.0, (now - newest).total_seconds()) if newest else None  # clock skew reads as 0

    model = metadata.get(EMBEDDING_MODEL)
    model_source = FROM_METADATA
    if not isinstance(model, str) or not model:
        model, model_source = newest_model, MODEL_FROM_NEWEST_POINT
    drift = 0
    if model:
        drift = _count(client, name, must_not=[_match(EMBEDDING_MODEL, model)])
    else:
        model_source = None

    stale = 0
    if objective is not None and points:
        cutoff = now - timedelta(hours=objective)
        recent = models.FieldCondition(key=INDEXED_AT, range=models.DatetimeRange(gte=cutoff))
        stale = points - _count(client, name, must=[recent])
    breached = objective is not None and (age is None or age > objective * 3600)
    return CollectionFreshness(
        name=name,
        points=points,
        newest_indexed_at=newest,
        index_age_seconds=age,
        max_age_hours=objective,
        stale_points=stale,
        stale_share=stale / points if points else 0.0,
        model_drift_points=drift,
        embedding_model=model,
        breached=breached,
        objective_source=objective_source,
        embedding_model_source=model_source,
    )


def _match(key: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _count(client: QdrantClient, name: str, **conditions) -> int:
    return client.count(name, count_filter=models.Filter(**conditions), exact=True).count


def _newest(client: QdrantClient, name: str) -> tuple[datetime | None, str | None]:
    """(newest indexed_at, that point's embedding_model). Ordered by the payload index when the
    collection has one; a server collection without it (created outside the platform) is scanned."""
    fields = [INDEXED_AT, EMBEDDING_MODEL]
    try:
        records, _ = client.scroll(
            name,
            order_by=models.OrderBy(key=INDEXED_AT, direction=models.Direction.DESC),
            limit=1,
            with_payload=fields,
        )
    except UnexpectedResponse:  # "No range index for `order_by` key"
        records = None
    if records is not None:
        payload = (records[0].payload or {}) if records else {}
        newest = parse_time(payload.get(INDEXED_AT))
        if newest is not None or not records:
            return newest, _model_of(payload)
    best: tuple[datetime | None, str | None] = (None, None)
    offset = None
    while True:
        records, offset = client.scroll(name, limit=SCAN_PAGE, offset=offset, with_payload=fields)
        for record in records:
            payload = record.payload or {}
            indexed = parse_time(payload.get(INDEXED_AT))
            if indexed is not None and (best[0] is None or indexed > best[0]):
                best = (indexed, _model_of(payload))
        if offset is None:
            return best


def _model_of(payload: dict) -> str | None:
    model = payload.get(EMBEDDING_MODEL)
    return model if isinstance(model, str) and model else None


def ensure_collections(client: QdrantClient, declared: list[dict]) -> list[str]:
    """Creates the declared collections that are missing, with their metadata and payload indexes,
    and brings the metadata and indexes of existing ones up to date. Idempotent: returns the names
    it created. An existing collection whose vectors differ from the declaration is left alone and
    reported, as is one whose metadata the server did not keep: after the others are done,
    ValueError names every such collection.

    declared: [{name, vectorSize, distance, embeddingModel, maxAgeHours, ownerTeam}]
    (llmops:vectorDb.collections). `last_full_reembed_at` starts as None and is never overwritten:
    the re-embedding job sets it.
    """
    existing = {c.name for c in client.get_collections().collections}
    created, problems = [], []
    for item in declared:
        name = item.get("name") if isinstance(item, dict) else None
        try:
            wanted = {
                EMBEDDING_MODEL: item["embeddingModel"],
                MAX_AGE_HOURS: item["maxAgeHours"],
                OWNER_TEAM: item.get("ownerTeam"),
            }
            size, distance = int(item["vectorSize"]), _distance(item["distance"])
            if not isinstance(name, str) or not name:
                raise ValueError("no name")
        except (KeyError, TypeError, ValueError) as err:
            problems.append(f"{name or repr(item)}: unusable declaration ({type(err).__name__}: {err})")
            continue
        if name not in existing:
            client.create_collection(
                name,
                vectors_config=models.VectorParams(size=size, distance=distance),
                metadata={**wanted, LAST_FULL_REEMBED_AT: None},
            )
            created.append(name)
        else:
            vectors = client.get_collection(name).config.params.vectors
            if not isinstance(vectors, models.VectorParams) or (vectors.size, vectors.distance) != (
                size,
                distance,
            ):
                problems.append(f"{name}: has vectors {vectors!r}, declared size {size} {distance.value}")
                continue
            current = collection_metadata(client, name)
            changes = {k: v for k, v in wanted.items() if current.get(k) != v}
            if LAST_FULL_REEMBED_AT not in current:
                changes[LAST_FULL_REEMBED_AT] = None
            if changes:
                client.update_collection(name, metadata=changes)  # merged into what is stored
        _ensure_indexes(client, name)
        stored = collection_metadata(client, name)
        if any(stored.get(k) != v for k, v in wanted.items()):  # a server older than 1.16 drops it
            problems.append(f"{name}: metadata not kept (needs Qdrant 1.16 or later), it has {stored}")
    if problems:
        raise ValueError("collections not as declared: " + "; ".join(problems))
    return created


def _ensure_indexes(client: QdrantClient, name: str) -> None:
    schema = client.get_collection(name).payload_schema or {}
    with warnings.catch_warnings():  # local mode warns that payload indexes have no effect there
        warnings.filterwarnings("ignore", message="Payload indexes have no effect", category=UserWarning)
        for field, kind in PAYLOAD_INDEXES.items():
            if field not in schema:
                client.create_payload_index(name, field, field_schema=kind, wait=True)


def _distance(value: str) -> models.Distance:
    for distance in models.Distance:
        if distance.value.lower() == str(value).lower():
            return distance
    choices = ", ".join(d.value for d in models.Distance)
    raise ValueError(f"distance {value!r} is not one of {choices}")
