"""Local qdrant-client stores for the retrieval tests, written through qdrant-client's own API
(never through llmops.rag), so what the tests read back is what the store holds."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from qdrant_client import QdrantClient, models

ROOT = Path(__file__).resolve().parents[2]
DIM = 4


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def point(i: int, indexed: datetime | None, model: str | None = "bge-m3", source: str | None = None, **extra):
    payload = dict(extra)
    if indexed is not None:
        payload["indexed_at"] = stamp(indexed)
        payload["source_updated_at"] = stamp(indexed - timedelta(hours=1))
    if model is not None:
        payload["embedding_model"] = model
    payload["source_id"] = source or f"doc-{i}"
    return models.PointStruct(id=i, vector=[1.0, float(i % 3), 0.5, 0.25], payload=payload)


def collection(client: QdrantClient, name: str, points: list, metadata: dict | None = None) -> None:
    client.create_collection(
        name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE), metadata=metadata
    )
    if points:
        client.upsert(name, points, wait=True)


# A store written by another process: the script gets the store path and a JSON spec
# {collection: {"metadata": {...} | null, "ages_hours": [hours before now, ...]}}.
_WRITER = """
import json, sys
from datetime import UTC, datetime, timedelta
from qdrant_client import QdrantClient, models
path, spec = sys.argv[1], json.loads(sys.argv[2])
now = datetime.now(UTC)
client = QdrantClient(path=path)
vectors = models.VectorParams(size=4, distance=models.Distance.COSINE)
for name, item in spec.items():
    client.create_collection(name, vectors_config=vectors, metadata=item.get("metadata"))
    points = [
        models.PointStruct(id=i, vector=[1.0, 0.0, 0.0, float(i)], payload={
            "source_id": f"{name}-{i}", "embedding_model": "bge-m3",
            "indexed_at": (now - timedelta(hours=h)).isoformat(),
            "source_updated_at": (now - timedelta(hours=h + 1)).isoformat()})
        for i, h in enumerate(item["ages_hours"])
    ]
    if points:
        client.upsert(name, points, wait=True)
client.close()
"""


def write_store_in_another_process(path: Path, spec: dict) -> None:
    subprocess.run([sys.executable, "-c", _WRITER, str(path), json.dumps(spec)], check=True, cwd=ROOT)


def llmops(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llmops", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
