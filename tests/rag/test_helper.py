"""llmops.rag: payloads stamped with the conventions, and retrieved points as request metadata."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from qdrant_client import QdrantClient, models

from llmops import rag

T = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)


def test_point_payload_stamps_the_conventions_in_utc():
    gulf = timezone(timedelta(hours=4))
    payload = rag.point_payload(
        source_id="kb/1",
        source_updated_at=datetime(2026, 3, 1, 12, 30, tzinfo=gulf),
        embedding_model="bge-m3",
        indexed_at="2026-03-02T00:00:00+00:00",
        source_version=7,
        title="Fees",
    )
    assert payload == {
        "title": "Fees",
        "source_id": "kb/1",
        "source_updated_at": "2026-03-01T08:30:00Z",
        "indexed_at": "2026-03-02T00:00:00Z",
        "embedding_model": "bge-m3",
        "source_version": "7",
    }
    before = datetime.now(UTC)
    stamped = datetime.fromisoformat(
        rag.point_payload(source_id="s", source_updated_at=T, embedding_model="m")["indexed_at"]
    )
    assert before - timedelta(seconds=1) <= stamped <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source_id": ""}, "source_id must be a non-empty string"),
        ({"embedding_model": None}, "embedding_model must be a non-empty string"),
        ({"source_updated_at": datetime(2026, 1, 1)}, "source_updated_at must carry a time zone"),
        ({"source_updated_at": "yesterday"}, "source_updated_at must be an RFC 3339 timestamp"),
        ({"indexed_at": 1700000000}, "indexed_at must be a datetime or an RFC 3339 string"),
    ],
)
def test_point_payload_refuses_what_breaks_the_conventions(kwargs, message):
    base = {"source_id": "s", "source_updated_at": T, "embedding_model": "m"}
    with pytest.raises(ValueError, match=message):
        rag.point_payload(**{**base, **kwargs})


def test_index_point_refuses_a_payload_without_the_conventions():
    with pytest.raises(ValueError, match="lacks indexed_at"):
        rag.index_point(1, [0.0], {"source_id": "s", "source_updated_at": "x", "embedding_model": "m"})


def test_retrieval_metadata_from_points_a_local_store_returns(tmp_path):
    client = QdrantClient(path=str(tmp_path / "s"))
    client.create_collection(
        "kb", vectors_config=models.VectorParams(size=2, distance=models.Distance.COSINE)
    )
    docs = [
        ("a", T - timedelta(days=30), "3"),
        ("b", T, None),
        ("a", T - timedelta(days=2), "3"),
        ("c", T - timedelta(days=400), "1"),
    ]
    client.upsert(
        "kb",
        [
            rag.index_point(
                i,
                [1.0, i / 10],
                rag.point_payload(source_id=s, source_updated_at=u, embedding_model="m", source_version=v),
            )
            for i, (s, u, v) in enumerate(docs)
        ],
        wait=True,
    )
    hits = client.query_points("kb", query=[1.0, 0.0], limit=10).points
    assert {type(h).__name__ for h in hits} == {"ScoredPoint"}
    got = rag.retrieval_metadata(hits, collection="kb")["retrieval"]
    assert got["newest_source_updated_at"] == "2026-03-01T08:30:00Z"
    assert got["oldest_source_updated_at"] == (T - timedelta(days=400)).isoformat().replace("+00:00", "Z")
    assert sorted(got["source_ids"]) == ["a", "b", "c"] and len(got["source_ids"]) == 3
    assert got["source_versions"] == {"a": "3", "c": "1"}
    assert (got["count"], got["collection"]) == (4, "kb")

    records, _ = client.scroll("kb", limit=10)  # Records (no score) work the same
    assert rag.retrieval_metadata(records, collection="kb") == {"retrieval": got}
    client.close()


def test_retrieval_metadata_from_rest_hits_and_payloads():
    hits = [
        {"id": 1, "score": 0.9, "payload": {"source_id": "x", "source_updated_at": "2026-01-01T00:00:00"}},
        {"source_id": "y", "source_updated_at": "2026-01-02T00:00:00+02:00"},  # a payload itself
        {"id": 3, "payload": {"source_id": "z"}},  # undated: counted, not in newest/oldest
        object(),
    ]
    got = rag.retrieval_metadata(hits)["retrieval"]
    assert got == {
        "newest_source_updated_at": "2026-01-01T22:00:00Z",
        "oldest_source_updated_at": "2026-01-01T00:00:00Z",
        "source_ids": ["x", "y", "z"],
        "count": 4,
    }
    assert rag.retrieval_metadata([]) == {
        "retrieval": {
            "newest_source_updated_at": None,
            "oldest_source_updated_at": None,
            "source_ids": [],
            "count": 0,
        }
    }


def test_source_ids_are_capped():
    hits = [{"source_id": f"s{i}", "source_version": i} for i in range(rag.MAX_SOURCE_IDS + 5)]
    got = rag.retrieval_metadata(hits)["retrieval"]
    assert len(got["source_ids"]) == rag.MAX_SOURCE_IDS and got["source_ids_truncated"] is True
    assert list(got["source_versions"]) == got["source_ids"]
