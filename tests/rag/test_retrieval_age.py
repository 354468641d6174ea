"""The spend aggregator's age of retrieved documents, from spend logs the real proxy wrote.

The records are tests/fixtures/spend_logs/team_tagged_success.json (LiteLLM 1.100.5's s3_v2
object for a request with `metadata`: the proxy copied that metadata, nested objects included,
into `metadata.requester_metadata`) with `retrieval` added there, as llmops.rag puts it in the
request's metadata. Expected ages are computed here from the times the test chose.
"""

from __future__ import annotations

import copy
import json
import math
from datetime import UTC, datetime

import pytest
from cost_lambdas.helpers import SPEND_LOGS, UNITS, parse_stdout
from cost_lambdas.test_spend_aggregator import BUCKET, aws, drain, run  # noqa: F401 - aws is a fixture

from lambdas.spend_aggregator.aggregate import Aggregator
from llmops import cli, rag

BASE = json.loads((SPEND_LOGS / "team_tagged_success.json").read_text())
START = BASE["startTime"]
AGE_METRICS = ("RetrievedNewestDocumentAgeSeconds", "RetrievedOldestDocumentAgeSeconds")


def at(seconds_before_start: float) -> str:
    return datetime.fromtimestamp(START - seconds_before_start, UTC).isoformat().replace("+00:00", "Z")


def record(retrieval: object = None, **top) -> dict:
    r = copy.deepcopy(BASE)
    if retrieval is not None:
        r["metadata"]["requester_metadata"]["retrieval"] = retrieval
    r.update(top)
    return r


def aged(newest_s: float, oldest_s: float) -> dict:
    return record(
        {"newest_source_updated_at": at(newest_s), "oldest_source_updated_at": at(oldest_s), "count": 3}
    )


def aggregate(records: list[dict]) -> Aggregator:
    aggregator = Aggregator()
    aggregator.add_lines(json.dumps(r).encode() for r in records)
    return aggregator


def split(emf: list[dict]) -> tuple[list[dict], list[dict]]:
    cost = [e for e in emf if "CostUSD" in e]
    ages = [e for e in emf if AGE_METRICS[0] in e]
    assert len(cost) + len(ages) == len(emf)
    return cost, ages


def assert_valid_age_record(e: dict) -> None:
    """EMF specification: every dimension a string member, every metric a member whose value is
    a number or an array of at most 100 numbers, units from CloudWatch's StandardUnit."""
    [directive] = e["_aws"]["CloudWatchMetrics"]
    assert isinstance(e["_aws"]["Timestamp"], int) and e["_aws"]["Timestamp"] > 0
    assert directive["Namespace"] == "LLMOps"
    assert directive["Dimensions"] == [["Environment", "Team"], ["Environment", "Model", "Route"]]
    for dimension in {d for ds in directive["Dimensions"] for d in ds}:
        assert isinstance(e[dimension], str) and e[dimension]
    assert [(m["Name"], m["Unit"]) for m in directive["Metrics"]] == [(n, "Seconds") for n in AGE_METRICS]
    assert all(m["Unit"] in UNITS for m in directive["Metrics"])
    for name in AGE_METRICS:
        values = e[name]
        assert isinstance(values, list) and 1 <= len(values) <= 100
        assert all(isinstance(v, float) and math.isfinite(v) and v >= 0 for v in values)


def test_ages_of_the_newest_and_oldest_document_per_request():
    records = [aged(3600, 86400), aged(7200, 30 * 86400), aged(60, 60), record()]  # the last: no retrieval
    aggregator = aggregate(records)
    cost, ages = split(aggregator.emf_records("test"))
    assert sum(e["Requests"] for e in cost) == 4 and aggregator.retrieval_problems == 0
    [age] = ages
    assert_valid_age_record(age)
    assert (age["Environment"], age["Team"]) == ("test", "payments")
    assert (age["Model"], age["Route"]) == (cost[0]["Model"], cost[0]["Route"])
    assert age[AGE_METRICS[0]] == pytest.approx([3600, 7200, 60], abs=1e-3)
    assert age[AGE_METRICS[1]] == pytest.approx([86400, 30 * 86400, 60], abs=1e-3)
    assert age["_aws"]["Timestamp"] == int(BASE["endTime"] * 1000)


def test_a_document_newer_than_the_request_has_age_zero():
    [age] = split(aggregate([aged(-120, 600)]).emf_records("test"))[1]
    assert (age[AGE_METRICS[0]], age[AGE_METRICS[1]]) == ([0.0], [pytest.approx(600, abs=1e-3)])


BAD_RETRIEVAL = [
    "newest is yesterday",
    ["2026-01-01T00:00:00Z"],
    {"newest_source_updated_at": "yesterday", "oldest_source_updated_at": at(10)},
    {"newest_source_updated_at": at(10), "oldest_source_updated_at": at(5)},  # oldest after newest
    {"newest_source_updated_at": at(10)},
    {"newest_source_updated_at": 1767225600, "oldest_source_updated_at": 1767225600},  # epochs, not RFC 3339
]


@pytest.mark.parametrize("bad", BAD_RETRIEVAL, ids=range(len(BAD_RETRIEVAL)))
def test_malformed_retrieval_metadata_never_drops_the_cost(bad):
    records = [record(bad), aged(100, 200)]
    aggregator = aggregate(records)
    cost, ages = split(aggregator.emf_records("test"))
    assert (aggregator.records, aggregator.malformed, aggregator.retrieval_problems) == (2, 0, 1)
    assert math.fsum(e["CostUSD"] for e in cost) == pytest.approx(2 * BASE["response_cost"], rel=1e-12)
    assert [len(e[AGE_METRICS[0]]) for e in ages] == [1], "only the good request has an age"
    [(line, reason)] = aggregator.retrieval_samples
    assert line == 1 and reason.startswith("metadata.requester_metadata.retrieval: ")


def test_a_record_without_start_time_keeps_its_cost():
    aggregator = aggregate([aged(1, 2) | {"startTime": None}])
    assert (aggregator.records, aggregator.retrieval_problems, aggregator.retrieval) == (1, 1, {})
    assert "no startTime" in aggregator.retrieval_samples[0][1]


def test_retrieval_of_undated_documents_is_no_problem_and_no_age():
    aggregator = aggregate([record(rag.retrieval_metadata([{"source_id": "x"}])["retrieval"])])
    assert (aggregator.records, aggregator.retrieval_problems, aggregator.retrieval) == (1, 0, {})


def test_records_decoded_by_json_loads_carry_retrieval_too():
    odd = aged(30, 40)
    odd["metadata"]["spend_logs_metadata"] = "not an object"  # msgspec refuses the shape
    [age] = split(aggregate([odd]).emf_records("test"))[1]
    assert age[AGE_METRICS[0]] == [pytest.approx(30, abs=1e-3)]


def test_more_than_100_requests_are_split_across_records():
    aggregator = aggregate([aged(i, i + 1) for i in range(250)])
    ages = split(aggregator.emf_records("test"))[1]
    assert [len(e[AGE_METRICS[0]]) for e in ages] == [100, 100, 50]
    for e in ages:
        assert_valid_age_record(e)
    assert [v for e in ages for v in e[AGE_METRICS[0]]] == pytest.approx(list(range(250)), abs=1e-3)


def test_the_helper_output_round_trips_through_the_aggregator():
    hits = [
        {"payload": {"source_id": "a", "source_updated_at": at(3 * 86400)}},
        {"payload": {"source_id": "b", "source_updated_at": at(5)}},
    ]
    [age] = split(aggregate([record(rag.retrieval_metadata(hits, "kb")["retrieval"])]).emf_records("e"))[1]
    assert age[AGE_METRICS[0]] == [pytest.approx(5, abs=1e-3)]
    assert age[AGE_METRICS[1]] == [pytest.approx(3 * 86400, abs=1e-3)]


def test_the_lambda_emits_ages_and_logs_unreadable_retrieval(aws, capsys):  # noqa: F811 - the fixture
    body = "\n".join(json.dumps(r) for r in (aged(10, 20), record("bad"))).encode()
    aws["s3"].put_object(Bucket=BUCKET, Key="spend-logs/2026-06-01/batch.jsonl", Body=body)
    result, emf, logs = run(drain(aws), capsys)
    assert result == {"batchItemFailures": []}
    cost, ages = split(emf)
    assert sum(e["Requests"] for e in cost) == 2
    [age] = ages
    assert_valid_age_record(age)
    assert age["SourceObject"] == f"s3://{BUCKET}/spend-logs/2026-06-01/batch.jsonl"
    [warning] = [line for line in logs if line["level"] == "WARNING"]
    assert warning["requests"] == 1 and warning["samples"][0]["line"] == 2


def test_cost_aggregate_prints_the_same(tmp_path, capsys):
    path = tmp_path / "logs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (aged(10, 20), record("bad"))))
    assert cli.main(["cost", "aggregate", str(path), "--environment", "test"]) == 0
    emf, _ = parse_stdout(capsys.readouterr().out)
    ages = split(emf)[1]
    assert ages == split(aggregate([aged(10, 20), record("bad")]).emf_records("test", source=str(path)))[1]
