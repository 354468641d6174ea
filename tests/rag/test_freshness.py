"""Freshness per collection (llmops.rag.freshness, `llmops rag freshness`) on real local stores."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from conftest import run_cli
from local_servers import free_port
from qdrant_client import QdrantClient, models

from llmops.rag import freshness
from llmops.rag.freshness import FROM_DEFAULT, FROM_METADATA, MODEL_FROM_NEWEST_POINT, measure
from rag.stores import collection, llmops, point, write_store_in_another_process

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def store(tmp_path):
    """fresh, stale, mixed-model, empty and metadata-less collections, at NOW."""
    client = QdrantClient(path=str(tmp_path / "store"))
    objective = {"embedding_model": "bge-m3", "max_age_hours": 24}
    collection(
        client,
        "kb-fresh",
        [point(0, NOW - HOUR), point(1, NOW - 2 * HOUR), point(2, NOW - 30 * HOUR)],
        objective,
    )
    collection(client, "kb-stale", [point(0, NOW - 48 * HOUR), point(1, NOW - 50 * HOUR)], objective)
    collection(
        client,
        "kb-mixed",
        [
            point(0, NOW - HOUR),
            point(1, NOW - HOUR, model="e5-large"),
            point(2, NOW - 3 * HOUR, model=None),
            point(3, NOW - 2 * HOUR),
        ],
        {"embedding_model": "bge-m3", "max_age_hours": 12},
    )
    collection(client, "kb-empty", [], {"embedding_model": "bge-m3", "max_age_hours": 12})
    collection(
        client,
        "plain",
        [point(0, NOW - 5 * HOUR, model="e5-large"), point(1, NOW - 9 * HOUR, model="bge-m3")],
    )
    collection(client, "undated", [point(0, None), point(1, NOW - 3 * HOUR)], {"max_age_hours": 6})
    yield client
    client.close()


def by_name(results):
    return {r.name: r for r in results}


def test_collections_are_measured_against_their_metadata(store):
    got = by_name(measure(store, NOW, None))
    assert list(got) == sorted(got), "sorted by name"

    fresh = got["kb-fresh"]
    assert (fresh.points, fresh.index_age_seconds, fresh.newest_indexed_at) == (3, 3600.0, NOW - HOUR)
    assert (fresh.max_age_hours, fresh.objective_source) == (24.0, FROM_METADATA)
    assert (fresh.stale_points, fresh.stale_share) == (1, pytest.approx(1 / 3))  # the 30 h old point
    assert not fresh.breached

    stale = got["kb-stale"]
    assert (stale.index_age_seconds, stale.stale_points, stale.stale_share) == (48 * 3600.0, 2, 1.0)
    assert stale.breached

    mixed = got["kb-mixed"]
    assert (mixed.embedding_model, mixed.embedding_model_source) == ("bge-m3", FROM_METADATA)
    assert mixed.model_drift_points == 2, "e5-large and the point without a model"
    assert not mixed.breached


def test_an_empty_collection_with_an_objective_is_breached(store):
    empty = by_name(measure(store, NOW, None))["kb-empty"]
    assert (empty.points, empty.index_age_seconds, empty.newest_indexed_at) == (0, None, None)
    assert (empty.stale_points, empty.stale_share, empty.model_drift_points) == (0, 0.0, 0)
    assert empty.breached


def test_points_without_indexed_at_count_as_stale(store):
    undated = by_name(measure(store, NOW, None))["undated"]
    assert (undated.points, undated.stale_points, undated.index_age_seconds) == (2, 1, 3 * 3600.0)
    assert not undated.breached


def test_a_collection_without_metadata_uses_the_default_or_is_not_judged(store):
    plain = by_name(measure(store, NOW, None))["plain"]
    assert (plain.max_age_hours, plain.objective_source, plain.breached) == (None, None, False)
    assert (plain.stale_points, plain.stale_share) == (0, 0.0)
    # drift against the model of the newest point (5 h old, e5-large)
    assert (plain.embedding_model, plain.embedding_model_source) == ("e5-large", MODEL_FROM_NEWEST_POINT)
    assert plain.model_drift_points == 1

    judged = by_name(measure(store, NOW, 4.0))
    assert (judged["plain"].max_age_hours, judged["plain"].objective_source) == (4.0, FROM_DEFAULT)
    assert judged["plain"].breached and judged["plain"].stale_points == 2
    # metadata wins over the default
    assert (judged["kb-fresh"].max_age_hours, judged["kb-fresh"].breached) == (24.0, False)


def test_now_must_be_aware(store):
    with pytest.raises(ValueError, match="timezone"):
        measure(store, NOW.replace(tzinfo=None), None)


def test_bad_objective_metadata_is_ignored(tmp_path):
    client = QdrantClient(path=str(tmp_path / "s"))
    for i, bad in enumerate((True, "24", -1, 0, None)):
        collection(client, f"c{i}", [point(0, NOW - 2 * HOUR)], {"max_age_hours": bad})
    for result in measure(client, NOW, 1.0):
        assert (result.max_age_hours, result.objective_source, result.breached) == (1.0, FROM_DEFAULT, True)
    client.close()


# -- ensure_collections ----------------------------------------------------------------------------

DECLARED = [
    {
        "name": "kb",
        "vectorSize": 4,
        "distance": "Cosine",
        "embeddingModel": "bge-m3",
        "maxAgeHours": 24,
        "ownerTeam": "search",
    },
    {
        "name": "faq",
        "vectorSize": 8,
        "distance": "dot",
        "embeddingModel": "e5",
        "maxAgeHours": 168,
        "ownerTeam": None,
    },
]


def test_ensure_collections_creates_then_is_idempotent(tmp_path):
    client = QdrantClient(path=str(tmp_path / "s"))
    assert sorted(freshness.ensure_collections(client, DECLARED)) == ["faq", "kb"]
    kb = client.get_collection("kb").config
    assert (kb.params.vectors.size, kb.params.vectors.distance) == (4, models.Distance.COSINE)
    assert kb.metadata == {
        "embedding_model": "bge-m3",
        "max_age_hours": 24,
        "owner_team": "search",
        "last_full_reembed_at": None,
    }
    assert client.get_collection("faq").config.params.vectors.distance == models.Distance.DOT

    client.update_collection(
        "kb", metadata={"last_full_reembed_at": "2026-05-01T00:00:00Z"}
    )  # the re-embed job
    changed = [{**DECLARED[0], "maxAgeHours": 12}, DECLARED[1]]
    assert freshness.ensure_collections(client, changed) == []
    kb = client.get_collection("kb").config.metadata
    assert (kb["max_age_hours"], kb["last_full_reembed_at"]) == (12, "2026-05-01T00:00:00Z")
    client.close()


def test_ensure_collections_reports_a_mismatch_and_does_the_rest(tmp_path):
    client = QdrantClient(path=str(tmp_path / "s"))
    collection(client, "kb", [])  # 4-dimensional, no metadata
    wrong = [{**DECLARED[0], "vectorSize": 768}, DECLARED[1]]
    with pytest.raises(ValueError, match=r"kb: has vectors .* declared size 768"):
        freshness.ensure_collections(client, wrong)
    assert client.collection_exists("faq")
    assert client.get_collection("kb").config.metadata is None, "left alone"
    client.close()


def test_ensure_collections_refuses_an_unusable_declaration_and_does_the_rest(tmp_path):
    client = QdrantClient(path=str(tmp_path / "s"))
    bad = [{**DECLARED[0], "distance": "cosinus"}, {"name": "x"}, DECLARED[1]]
    with pytest.raises(ValueError, match=r"kb: unusable declaration .*distance 'cosinus' is not one of.*x: "):
        freshness.ensure_collections(client, bad)
    assert [c.name for c in client.get_collections().collections] == ["faq"]
    client.close()


# -- the CLI ---------------------------------------------------------------------------------------


def test_cli_end_to_end_on_a_store_written_by_another_process(tmp_path):
    """Timestamps relative to the real now; collections without platform metadata (--max-age)."""
    path = tmp_path / "store"
    write_store_in_another_process(
        path, {"fresh-docs": {"ages_hours": [1, 2, 3]}, "stale-docs": {"ages_hours": [40, 50]}}
    )
    proc = llmops("rag", "freshness", "--path", str(path), "--max-age", "24h")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    [summary] = proc.stderr.splitlines()
    assert summary.startswith("error: ") and "stale-docs" in summary and "fresh-docs" not in summary
    # What needs action: only the breaching collection is listed, the others counted.
    assert "fresh-docs" not in proc.stdout
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()[2:]}
    assert rows["stale-docs"].endswith("BREACHED")
    assert "1 other collection(s) not breaching (--all lists them)" in proc.stdout
    proc = llmops("rag", "freshness", "--path", str(path), "--max-age", "24h", "--all")
    assert proc.returncode == 1, proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()[2:]}
    assert rows["stale-docs"].endswith("BREACHED") and not rows["fresh-docs"].endswith("BREACHED")

    proc = llmops("rag", "freshness", "--path", str(path), "--max-age", "3d", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["breached"] == []
    stale = {c["name"]: c for c in report["collections"]}["stale-docs"]
    assert 40 * 3600 <= stale["index_age_seconds"] < 41 * 3600
    assert (stale["max_age_hours"], stale["objective_source"]) == (72.0, "--max-age")


def test_cli_json_shape(store, capsys, tmp_path):
    store.close()
    code, out, err = run_cli(["rag", "freshness", "--path", str(tmp_path / "store"), "--json"], capsys)
    report = json.loads(out)
    assert set(report) == {"store", "measured_at", "default_max_age_hours", "collections", "breached"}
    assert report["store"] == f"path:{tmp_path / 'store'}" and report["default_max_age_hours"] is None
    datetime.fromisoformat(report["measured_at"])
    keys = {
        "name", "points", "newest_indexed_at", "index_age_seconds", "max_age_hours", "objective_source",
        "stale_points", "stale_share", "model_drift_points", "embedding_model", "embedding_model_source",
        "breached",
    }  # fmt: skip
    for row in report["collections"]:
        assert set(row) == keys
    # NOW is in the past: every collection with an objective is breached
    assert report["breached"] == ["kb-empty", "kb-fresh", "kb-mixed", "kb-stale", "undated"]
    assert code == 1 and err.startswith("error: 5 of 6 collection(s) breach")


@pytest.mark.parametrize("value", ["24", "0h", "-1h", "1y", "h", "1.h", " ", "1e3h"])
def test_bad_max_age_is_a_usage_error(value, tmp_path, capsys):
    code, out, err = run_cli(["rag", "freshness", "--path", str(tmp_path), f"--max-age={value}"], capsys)
    assert code == 2 and out == ""
    assert f"argument --max-age: {value!r} is not a positive duration" in err and "90m, 24h or 7d" in err


@pytest.mark.parametrize(("value", "hours"), [("90m", 1.5), ("24h", 24.0), ("7d", 168.0), ("1.5h", 1.5)])
def test_durations(value, hours):
    from llmops.rag.cli import duration_hours

    assert duration_hours(value) == hours


def test_a_store_open_in_another_process_is_a_clear_error(store, tmp_path):
    proc = llmops("rag", "freshness", "--path", str(tmp_path / "store"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --path ") and "open in another process" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


def test_a_directory_that_is_not_a_store_is_refused_and_left_alone(tmp_path, capsys):
    code, _, err = run_cli(["rag", "freshness", "--path", str(tmp_path / "nope")], capsys)
    assert code == 2 and "no such directory" in err and not (tmp_path / "nope").exists()
    code, _, err = run_cli(["rag", "freshness", "--path", str(tmp_path)], capsys)
    assert code == 2 and "not a qdrant-client local store" in err and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("meta", ["{", "{}", '{"collections": {"c": {"vectors": 7}}, "aliases": {}}'])
def test_a_damaged_store_is_a_clear_error(tmp_path, capsys, meta):
    (tmp_path / "meta.json").write_text(meta)
    code, _, err = run_cli(["rag", "freshness", "--path", str(tmp_path)], capsys)
    assert code == 2 and err.startswith(f"error: --path {tmp_path}: cannot open the local store (")
    assert len(err.splitlines()) == 1


def test_an_unreachable_server_is_a_clear_error(capsys, monkeypatch):
    monkeypatch.setenv("QDRANT_API_KEY", "k")
    code, _, err = run_cli(["rag", "freshness", "--url", f"http://127.0.0.1:{free_port()}"], capsys)
    warning, error = err.splitlines()
    assert (
        warning.startswith("warning: $QDRANT_API_KEY is sent to http://127.0.0.1:")
        and "without TLS" in warning
    )
    assert code == 2 and error.startswith("error: cannot reach Qdrant at http://127.0.0.1:")


def test_no_collections_is_not_a_breach(tmp_path, capsys):
    QdrantClient(path=str(tmp_path / "s")).close()
    code, out, err = run_cli(["rag", "freshness", "--path", str(tmp_path / "s"), "--max-age", "1h"], capsys)
    assert (code, err) == (0, "") and "(no collections)" in out
