"""Erasure of one source's points from every collection, with a receipt that shows it reached the index.

Counted before and after: the receipt is what the store says after the delete, not what was
asked of it. qdrant-client and the standard library only.
"""

from __future__ import annotations

from datetime import UTC, datetime

from qdrant_client import QdrantClient, models

from llmops.rag.freshness import SOURCE_ID, rfc3339

# What a receipt cannot cover, said in every receipt (docs/retrieval.md "Erasure").
NOT_COVERED = (
    "Qdrant snapshots taken before this erasure (the backups bucket) still hold the points until "
    "their retention ends; copies outside Qdrant (source systems, caches, logs) are not touched"
)


def erase_source(client: QdrantClient, source_id: str, store: str) -> dict:
    """Deletes every point whose payload `source_id` equals `source_id`, collection by collection
    (waiting for each delete to be applied), and returns the receipt."""
    selector = models.Filter(
        must=[models.FieldCondition(key=SOURCE_ID, match=models.MatchValue(value=source_id))]
    )
    started = datetime.now(UTC)
    rows = []
    for name in sorted(c.name for c in client.get_collections().collections):
        before = client.count(name, count_filter=selector, exact=True).count
        if before:
            client.delete(name, points_selector=models.FilterSelector(filter=selector), wait=True)
        after = client.count(name, count_filter=selector, exact=True).count
        rows.append(
            {
                "collection": name,
                "points_before": before,
                "points_deleted": before - after,
                "points_after": after,
            }
        )
    return {
        "source_id": source_id,
        "store": store,
        "started_at": rfc3339(started),
        "finished_at": rfc3339(datetime.now(UTC)),
        "collections": rows,
        "points_deleted": sum(r["points_deleted"] for r in rows),
        "points_remaining": sum(r["points_after"] for r in rows),
        "verified": all(r["points_after"] == 0 for r in rows),
        "not_covered": NOT_COVERED,
    }
