"""The freshness exporter's main() against a real local store and CloudWatch in moto."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws
from qdrant_client import QdrantClient

from llmops.rag import exporter
from rag.stores import ROOT, collection, point

REGION = "eu-west-1"
NAMESPACE = "LLMOps/Retrieval"
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
        "vectorSize": 4,
        "distance": "Cosine",
        "embeddingModel": "bge-m3",
        "maxAgeHours": 6,
        "ownerTeam": None,
    },
]


@pytest.fixture
def env(tmp_path, monkeypatch):
    now = datetime.now(UTC)
    client = QdrantClient(path=str(tmp_path / "store"))
    # kb exists without platform metadata (written before the exporter ran): 30 h and 50 h old points,
    # one of them embedded with another model; faq is declared but missing; notes is not declared.
    collection(
        client, "kb", [point(0, now - timedelta(hours=30)), point(1, now - timedelta(hours=50), model="e5")]
    )
    collection(client, "notes", [point(0, now - timedelta(hours=1))])
    client.close()
    for name, value in {
        "QDRANT_PATH": str(tmp_path / "store"),
        "ENVIRONMENT": "test",
        "COLLECTIONS_JSON": json.dumps(DECLARED),
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("QDRANT_URL", raising=False)
    monkeypatch.delenv("METRIC_NAMESPACE", raising=False)
    with mock_aws():
        yield {
            "now": now,
            "store": tmp_path / "store",
            "cloudwatch": boto3.client("cloudwatch", region_name=REGION),
        }


def metrics(cloudwatch) -> dict[tuple[str, str], dict[str, str]]:
    """(collection, metric name) -> dimensions, for everything in the namespace."""
    out = {}
    for page in cloudwatch.get_paginator("list_metrics").paginate(Namespace=NAMESPACE):
        for m in page["Metrics"]:
            dims = {d["Name"]: d["Value"] for d in m["Dimensions"]}
            out[(dims["Collection"], m["MetricName"])] = dims
    return out


def value(cloudwatch, name: str, collection_name: str, now: datetime) -> float:
    got = cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName=name,
        Dimensions=[
            {"Name": "Environment", "Value": "test"},
            {"Name": "Collection", "Value": collection_name},
        ],
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=5),
        Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]
    [point_] = got
    return point_["Maximum"]


def test_main_ensures_measures_and_puts_the_metrics(env):
    assert exporter.main() == 0
    cw, now = env["cloudwatch"], env["now"]
    put = metrics(cw)
    names = {"IndexAgeSeconds", "StalePointsShare", "EmbeddingModelDriftPoints", "PointsCount"}
    assert {m for c, m in put if c == "kb"} == names
    assert {m for c, m in put if c == "notes"} == names
    assert {m for c, m in put if c == "faq"} == names - {"IndexAgeSeconds"}, "empty: missing data, breaching"
    assert all(dims == {"Environment": "test", "Collection": c} for (c, _), dims in put.items())

    assert 30 * 3600 <= value(cw, "IndexAgeSeconds", "kb", now) < 30 * 3600 + 60
    assert value(cw, "StalePointsShare", "kb", now) == 100.0  # both older than the declared 24 h
    assert value(cw, "EmbeddingModelDriftPoints", "kb", now) == 1.0
    assert value(cw, "PointsCount", "kb", now) == 2.0
    assert value(cw, "PointsCount", "faq", now) == 0.0
    assert value(cw, "StalePointsShare", "notes", now) == 0.0  # no objective: nothing judged stale

    client = QdrantClient(path=str(env["store"]))
    assert client.get_collection("faq").config.metadata["max_age_hours"] == 6
    assert client.get_collection("kb").config.metadata["owner_team"] == "search"
    client.close()


def test_a_bad_declaration_still_puts_every_collection_and_exits_1(env, monkeypatch):
    monkeypatch.setenv("COLLECTIONS_JSON", json.dumps([{**DECLARED[0], "vectorSize": 768}, DECLARED[1]]))
    monkeypatch.setenv("METRIC_NAMESPACE", NAMESPACE)
    assert exporter.main() == 1
    assert {c for c, _ in metrics(env["cloudwatch"])} == {"kb", "faq", "notes"}


@pytest.mark.parametrize(
    ("name", "value_"), [("COLLECTIONS_JSON", "{not json"), ("COLLECTIONS_JSON", "{}"), ("QDRANT_PATH", "")]
)
def test_unusable_configuration_puts_nothing(env, monkeypatch, capsys, name, value_):
    monkeypatch.setenv(name, value_)
    assert exporter.main() == 1
    assert json.loads(capsys.readouterr().err.splitlines()[0])["level"] == "ERROR"
    assert metrics(env["cloudwatch"]) == {}


def test_a_locked_store_is_an_error_not_a_traceback(env, capsys):
    holder = QdrantClient(path=str(env["store"]))
    try:
        assert exporter.main() == 1
    finally:
        holder.close()
    assert "already accessed" in json.loads(capsys.readouterr().err.splitlines()[-1])["error"]


def test_the_exporter_imports_nothing_else_of_llmops():
    code = "import sys, llmops.rag.exporter; print(sorted(m for m in sys.modules if m.startswith('llmops')))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert json.loads(out.replace("'", '"')) == [
        "llmops",
        "llmops.rag",
        "llmops.rag.exporter",
        "llmops.rag.freshness",
    ]
