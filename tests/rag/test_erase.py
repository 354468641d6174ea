"""`llmops rag erase`: a source's points leave every collection, and the receipt says so."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from qdrant_client import QdrantClient

from llmops import cli
from rag.stores import collection, llmops, point

NOW = datetime.now(UTC)


def sources(client: QdrantClient, name: str) -> list[str]:
    """Every point's source_id, read by scrolling the whole collection (no filter involved)."""
    records, _ = client.scroll(name, limit=10_000, with_payload=True)
    return sorted(r.payload["source_id"] for r in records)


@pytest.fixture
def path(tmp_path):
    client = QdrantClient(path=str(tmp_path / "store"))
    collection(
        client,
        "kb",
        [point(0, NOW, source="alice"), point(1, NOW, source="alice"), point(2, NOW, source="bob")],
    )
    collection(client, "faq", [point(0, NOW, source="alice"), point(1, NOW, source="carol")])
    collection(client, "other", [point(0, NOW, source="bob")])
    client.close()
    return tmp_path / "store"


def test_erase_deletes_the_source_everywhere_and_prints_a_verified_receipt(path):
    proc = llmops("rag", "erase", "--source-id", "alice", "--path", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    receipt = json.loads(proc.stdout)
    assert receipt["source_id"] == "alice" and receipt["store"] == f"path:{path}"
    assert receipt["collections"] == [
        {"collection": "faq", "points_before": 1, "points_deleted": 1, "points_after": 0},
        {"collection": "kb", "points_before": 2, "points_deleted": 2, "points_after": 0},
        {"collection": "other", "points_before": 0, "points_deleted": 0, "points_after": 0},
    ]
    assert (receipt["points_deleted"], receipt["points_remaining"], receipt["verified"]) == (3, 0, True)
    started = datetime.fromisoformat(receipt["started_at"])
    assert NOW <= started <= datetime.fromisoformat(receipt["finished_at"]) <= datetime.now(UTC)
    assert "snapshots" in receipt["not_covered"]

    client = QdrantClient(path=str(path))  # what the store holds now, read independently
    assert (sources(client, "kb"), sources(client, "faq"), sources(client, "other")) == (
        ["bob"],
        ["carol"],
        ["bob"],
    )
    client.close()


def test_erasing_again_finds_nothing_and_exits_1(path, capsys):
    assert cli.main(["rag", "erase", "--source-id", "carol", "--path", str(path)]) == 0
    out = capsys.readouterr().out
    assert "faq: 1 deleted (1 before, 0 after)" in out and "total deleted: 1; remaining: 0" in out
    assert cli.main(["rag", "erase", "--source-id", "carol", "--path", str(path)]) == 1
    captured = capsys.readouterr()
    assert "total deleted: 0" in captured.out
    assert captured.err == "error: no point with source_id 'carol' in any of 3 collection(s)\n"


def test_an_empty_source_id_is_refused(path, capsys):
    assert cli.main(["rag", "erase", "--source-id", " ", "--path", str(path)]) == 2
    assert capsys.readouterr().err == "error: --source-id must not be empty\n"
