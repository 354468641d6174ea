"""`llmops cost aggregate` and the aggregation core it shares with the Lambda."""

from __future__ import annotations

import gzip
import io
import json

import pytest

from cost_lambdas.helpers import (
    all_records,
    assert_sums_equal,
    assert_valid_emf,
    emf_sums,
    expected_sums,
    fixture_files,
    parse_stdout,
)
from lambdas.spend_aggregator.aggregate import Aggregator, SpendFields, decode_record, route_of
from llmops import cli


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    cli.COMMAND_MODULES = ["llmops.cost"]  # only this area; other areas are tested in their own files
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(autouse=True)
def _restore_modules():
    saved = list(cli.COMMAND_MODULES)
    yield
    cli.COMMAND_MODULES = saved


def test_cli_prints_valid_emf_summing_to_the_fixtures(capsys):
    files = [str(p) for p in fixture_files()]
    code, out, err = run_cli(["cost", "aggregate", *files, "--environment", "staging"], capsys)
    assert code == 0, err
    emf, logs = parse_stdout(out)
    assert logs == [] and emf
    for record in emf:
        assert_valid_emf(record)
        assert record["Environment"] == "staging"
    assert_sums_equal(emf_sums(emf), expected_sums(all_records()))


def test_cli_reads_gzip_and_jsonl_the_same_as_plain(tmp_path, capsys):
    records = all_records()
    plain = tmp_path / "batch.jsonl"
    plain.write_text("".join(json.dumps(r) + "\n" for r in records))
    packed = tmp_path / "batch.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    _, out_plain, _ = run_cli(["cost", "aggregate", str(plain)], capsys)
    _, out_packed, _ = run_cli(["cost", "aggregate", str(packed)], capsys)
    strip = [{k: v for k, v in e.items() if k != "SourceObject"} for e in parse_stdout(out_plain)[0]]
    assert strip == [{k: v for k, v in e.items() if k != "SourceObject"} for e in parse_stdout(out_packed)[0]]


def test_cli_reports_malformed_lines_with_file_and_line(tmp_path, capsys):
    good = [json.dumps(r) for r in all_records()]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        "\n".join([good[0], "not json at all", *good[1:], '{"response_cost": 0.1, "prompt_tokens": -3}'])
        + "\n"
    )
    code, out, err = run_cli(["cost", "aggregate", str(bad)], capsys)
    assert code == 2
    assert f"{bad}:2: not valid JSON" in err
    assert f"{bad}:{len(good) + 2}: prompt_tokens must be a finite number >= 0" in err
    assert_sums_equal(emf_sums(parse_stdout(out)[0]), expected_sums(all_records()))  # good lines kept


def test_cli_rejects_json_that_is_not_a_spend_log(capsys):
    index = str(fixture_files()[0].parent / "objects.json")  # the fixtures' name -> S3 key map
    code, out, err = run_cli(["cost", "aggregate", index], capsys)
    assert code == 2 and out == ""
    assert f"{index}:1: not a LiteLLM spend-log record (no response_cost)" in err


def test_cli_missing_file_is_not_found(tmp_path, capsys):
    code, out, err = run_cli(["cost", "aggregate", str(tmp_path / "nope.jsonl")], capsys)
    assert code == 1 and out == ""
    assert "nope.jsonl: no such file" in err and "Traceback" not in err


def test_cli_truncated_gzip_is_reported_not_a_traceback(tmp_path, capsys):
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"response_cost": 1}\n' * 100)[:-12])
    code, _, err = run_cli(["cost", "aggregate", str(path)], capsys)
    assert code == 2 and f"{path}: cannot read" in err


@pytest.mark.parametrize(
    ("provider", "api_base", "route"),
    [
        ("hosted_vllm", "", "self-hosted"),
        ("openai", "http://vllm-llama.models.svc.cluster.local:8000/v1", "self-hosted"),
        ("openai", "http://10.0.3.7:8000/v1", "self-hosted"),
        ("openai", "http://vllm:8000", "self-hosted"),
        ("openai", "https://api.openai.com/v1", "external"),
        ("bedrock", "", "external"),
        (None, None, "external"),
    ],
)
def test_route_of(provider, api_base, route):
    assert route_of(provider, api_base) == route


def test_team_falls_back_to_unassigned_and_model_to_model_group():
    base = all_records()[0]
    agg = Aggregator()
    agg.add({**base, "metadata": {}, "model_group": "chat-small"})
    agg.add({**base, "metadata": None, "model_group": None, "model": "m"})
    agg.add({**base, "metadata": {"user_api_key_team_id": "  "}, "model_group": "chat-small"})
    assert {(team, model) for team, model, _ in agg.groups} == {
        ("unassigned", "chat-small"),
        ("unassigned", "m"),
    }
    assert sum(g[3] for g in agg.groups.values()) == 3


@pytest.mark.parametrize(
    "patch",
    [{"response_cost": True}, {"response_cost": "0.1"}, {"prompt_tokens": 1.5}, {"completion_tokens": -1}],
)
def test_wrongly_typed_numbers_are_malformed(patch):
    agg = Aggregator()
    assert agg.add({**all_records()[0], **patch}, line_no=7) is False
    assert agg.malformed == 1 and agg.samples[0][0] == 7 and agg.groups == {}


def test_blank_lines_are_not_malformed():
    agg = Aggregator()
    agg.add_lines([b"\n", json.dumps(all_records()[0]).encode() + b"\n", b"   \n"])
    assert agg.malformed == 0 and agg.records == 1


def test_stream_without_peek_is_adapted():
    class Body:  # botocore's StreamingBody offers read(n) only
        def __init__(self, data: bytes):
            self._io = io.BytesIO(data)

        def read(self, n: int = -1) -> bytes:
            return self._io.read(n)

    data = gzip.compress("".join(json.dumps(r) + "\n" for r in all_records()).encode())
    agg = Aggregator()
    agg.add_stream(Body(data), "x.jsonl.gz")
    assert agg.records == len(all_records())


def _variants(record: dict) -> list[dict]:
    """The record, and copies a client or another LiteLLM version could produce."""
    injected = json.loads(json.dumps(record))
    # a client can put anything in its request metadata; it must not shadow the fields we read
    injected["metadata"]["requester_metadata"] = {
        "user_api_key_team_id": "spoof",
        "response_cost": 0,
        "spend_logs_metadata": {"team": "spoof"},
    }
    injected["metadata"]["spend_logs_metadata"] = {"team": None, "nested": {"team": "spoof"}}
    reordered = dict(reversed(list(record.items())))  # another field order
    odd_metadata = {**record, "metadata": "not an object"}  # not SpendFields' shape: json.loads path
    odd_labels = {**record, "metadata": {**record["metadata"], "spend_logs_metadata": ["x"]}}
    return [record, injected, reordered, odd_metadata, odd_labels]


def test_field_decoder_agrees_with_json_loads():
    for record in all_records():
        assert type(decode_record(json.dumps(record))) is SpendFields  # real records take the fast path
        for variant in _variants(record):
            for text in (json.dumps(variant), json.dumps(variant, indent=2)):
                fast, full = Aggregator(), Aggregator()
                fast.add_lines([text.replace("\n", " ").encode()])
                full.add(json.loads(text))
                assert fast.groups == full.groups and fast.records == full.records == 1


@pytest.mark.parametrize(
    "line",
    [
        '{"response_cost": NaN}',
        '{"response_cost": Infinity}',
        "[1, 2]",
        '{"a": 1',
        '{"response_cost": 1e999}',
        '{"response_cost": 1, "messages": ' + "[" * 100_000 + "]" * 100_000 + "}",  # past any recursion limit
    ],
)
def test_lines_json_accepts_but_we_do_not(line):
    agg = Aggregator()
    agg.add_lines([line, json.dumps(all_records()[0])])  # the next line is still counted
    assert agg.malformed == 1 and agg.records == 1 and agg.samples[0][0] == 1


@pytest.mark.parametrize(
    ("metadata", "tags", "team"),
    [
        ({"user_api_key_team_id": "risk", "spend_logs_metadata": {"team": "spoof"}}, ["team:spoof"], "risk"),
        ({"user_api_key_team_id": None, "spend_logs_metadata": {"team": "claims"}}, ["team:other"], "claims"),
        ({"user_api_key_team_id": None, "spend_logs_metadata": None}, ["route:x", "team:support"], "support"),
        ({"user_api_key_team_id": None, "spend_logs_metadata": {}}, ["route:x"], "unassigned"),
    ],
)
def test_team_precedence_key_team_then_spend_logs_metadata_then_tag(metadata, tags, team):
    base = all_records()[0]
    agg = Aggregator()
    agg.add({**base, "metadata": {**base["metadata"], **metadata}, "request_tags": tags})
    assert [key[0] for key in agg.groups] == [team]
