"""The registry library against moto: versions, races, the eval gate, rollback and audit."""

from __future__ import annotations

import hashlib
import json
import threading

import boto3
import pytest

from llmops.errors import EXIT_CONFLICT, EXIT_NOT_FOUND, LlmopsError
from llmops.prompts import PromptConflict, PromptNotFound, PromptRegistry
from llmops.prompts.layout import alias_key, version_key
from prompt_registry.helpers import RaceGate, harness_record, make_prompt, pass_eval


def test_push_numbers_versions_and_skips_identical_content(registry):
    first = registry.push(make_prompt(), "first")
    again = registry.push(make_prompt(), "same content")
    second = registry.push(make_prompt(text="Hi {{ customer }}"), "friendlier")
    assert (first["version"], first["created"]) == (1, True)
    assert (again["version"], again["created"]) == (1, False)
    assert (second["version"], second["created"]) == (2, True)
    assert second["author"] == "arn:aws:sts::123456789012:user/moto"
    assert registry.version_numbers("support-bot") == [1, 2]


def test_versions_are_never_overwritten(registry):
    registry.push(make_prompt())
    s3 = registry.bucket.s3
    with pytest.raises(s3.exceptions.ClientError, match="PreconditionFailed"):
        key = version_key("support-bot", 1)
        s3.put_object(Bucket=registry.bucket.name, Key=key, Body=b"{}", IfNoneMatch="*")


def test_racing_pushes_get_distinct_numbers(bucket):
    racers = 4
    gate = RaceGate(racers, "/versions/")
    results, errors = [], []

    def push(i):
        try:
            reg = PromptRegistry(bucket, gate.client(boto3.client("s3")), boto3.client("sts"))
            results.append(reg.push(make_prompt(text=f"Variant {i}: {{{{ customer }}}}"), f"racer {i}"))
        except Exception as err:  # reported below with the failing racer
            errors.append(err)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(r["version"] for r in results) == [1, 2, 3, 4]
    reg = PromptRegistry(bucket, boto3.client("s3"), boto3.client("sts"))
    stored = {reg.get_version("support-bot", v)["message"] for v in range(1, racers + 1)}
    assert stored == {f"racer {i}" for i in range(racers)}, "a racer's version was overwritten"


def test_racing_promotions_exactly_one_wins(bucket):
    setup = PromptRegistry(bucket, boto3.client("s3"), boto3.client("sts"))
    for i in range(3):
        setup.push(make_prompt(text=f"v{i + 1} {{{{ customer }}}}"))
    setup.promote("support-bot", 1, "staging", "first")
    gate = RaceGate(2, "/aliases/")
    outcomes: dict[int, object] = {}

    def promote(version):
        reg = PromptRegistry(bucket, gate.client(boto3.client("s3")), boto3.client("sts"))
        try:
            outcomes[version] = reg.promote("support-bot", version, "staging", f"to {version}")
        except PromptConflict as err:
            outcomes[version] = err

    threads = [threading.Thread(target=promote, args=(v,)) for v in (2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [v for v, o in outcomes.items() if isinstance(o, dict)]
    losers = [o for o in outcomes.values() if isinstance(o, PromptConflict)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert losers[0].exit_code == EXIT_CONFLICT
    assert f"it now points to version {winners[0]}" in str(losers[0])
    assert setup.aliases("support-bot") == {"staging": winners[0]}
    moves = setup.audit("support-bot")["moves"]
    assert [m["to_version"] for m in moves] == [1, winners[0]], "the loser's move must not be recorded"


def test_eval_gate_refuses_protected_alias_without_a_passing_eval(registry):
    registry.push(make_prompt())
    with pytest.raises(PromptConflict, match="no recorded eval") as info:
        registry.promote("support-bot", 1, "production", "launch")
    assert info.value.exit_code == EXIT_CONFLICT
    failing = harness_record(registry, "support-bot", 1, passing=7, failing=3)
    registry.record_harness_eval("support-bot", 1, failing)
    with pytest.raises(PromptConflict, match=r"pass rate 0\.7 \(7 of 10 cases.*below 0\.9"):
        registry.promote("support-bot", 1, "production", "launch")
    assert registry.alias_record("support-bot", "production") is None, "a refused promotion wrote nothing"
    record = pass_eval(registry, "support-bot", 1)
    moved = registry.promote("support-bot", 1, "production", "launch")
    assert moved["moved"] and moved["eval"]["passed"] and moved["eval"]["kind"] == "harness"
    assert (moved["eval"]["id"], moved["eval"]["run_id"]) == (record["id"], record["run_id"])


def test_latest_eval_decides_the_gate(registry):
    registry.push(make_prompt())
    pass_eval(registry, "support-bot", 1)
    later = harness_record(registry, "support-bot", 1, passing=5, failing=5)  # a later run regressed
    registry.record_harness_eval("support-bot", 1, later)
    with pytest.raises(PromptConflict, match=r"pass rate 0\.5 "):
        registry.promote("support-bot", 1, "production", "launch")
    pass_eval(registry, "support-bot", 1)
    registry.record_eval("support-bot", 1, score=0.99, threshold=0.5)  # a manual note on top
    with pytest.raises(PromptConflict, match="recorded by hand"):
        registry.promote("support-bot", 1, "production", "launch")


def test_unprotected_aliases_need_no_eval_and_protection_comes_from_the_bucket(registry):
    registry.push(make_prompt())
    assert registry.promote("support-bot", 1, "staging", "try it")["moved"]
    body = json.dumps({"protected_aliases": ["production", "staging"]}).encode()
    registry.bucket.s3.put_object(Bucket=registry.bucket.name, Key="_registry/config.json", Body=body)
    fresh = PromptRegistry(registry.bucket.name, registry.bucket.s3, boto3.client("sts"))
    fresh.push(make_prompt(text="v2 {{ customer }}"))
    with pytest.raises(PromptConflict, match="staging is protected"):
        fresh.promote("support-bot", 2, "staging", "try v2")


def test_eval_report_is_stored_with_its_digest(registry, tmp_path):
    registry.push(make_prompt())
    report = tmp_path / "report.json"
    report.write_text('{"accuracy": 0.92}')
    record = registry.record_eval("support-bot", 1, 0.92, 0.85, report)
    s3 = registry.bucket.s3
    body = s3.get_object(Bucket=registry.bucket.name, Key=record["report"]["key"])["Body"].read()
    assert body == report.read_bytes() and record["kind"] == "manual"
    assert record["report"]["key"].endswith(".report.json") and len(record["report"]["sha256"]) == 64
    assert registry.latest_eval("support-bot", 1) == record, "the report file is not an eval record"

    markdown = b"# ticket-classifier:1\n\n10 of 10 cases passed\n"
    run = harness_record(registry, "support-bot", 1)
    stored = registry.record_harness_eval("support-bot", 1, run, report=markdown)
    body = s3.get_object(Bucket=registry.bucket.name, Key=stored["report"]["key"])["Body"].read()
    assert body == markdown and stored["report"]["key"].endswith(".report.md")
    assert stored["report"]["sha256"] == hashlib.sha256(markdown).hexdigest()
    assert registry.latest_eval("support-bot", 1) == stored
    assert registry.promote("support-bot", 1, "production", "evaluated")["eval"]["id"] == stored["id"]


def test_rollback_returns_to_the_previous_version(registry):
    for i in range(3):
        registry.push(make_prompt(text=f"v{i + 1} {{{{ customer }}}}"))
        pass_eval(registry, "support-bot", i + 1)
    registry.promote("support-bot", 1, "production", "launch")
    registry.promote("support-bot", 3, "production", "new tone")
    back = registry.rollback("support-bot", "production", "complaints about v3")
    assert (back["previous_version"], back["version"], back["action"]) == (3, 1, "rollback")
    assert registry.get("support-bot@production")["version"] == 1


def test_rollback_fails_when_there_is_nothing_to_roll_back_to(registry):
    registry.push(make_prompt())
    with pytest.raises(PromptNotFound, match="no alias production"):
        registry.rollback("support-bot", "production", "x")
    registry.promote("support-bot", 1, "canary", "first")
    with pytest.raises(PromptNotFound, match="never moved") as info:
        registry.rollback("support-bot", "canary", "x")
    assert info.value.exit_code == EXIT_NOT_FOUND


def test_audit_lists_every_move_oldest_first(registry):
    for i in range(3):
        registry.push(make_prompt(text=f"v{i + 1} {{{{ customer }}}}"))
        pass_eval(registry, "support-bot", i + 1)
    registry.promote("support-bot", 1, "production", "launch")
    registry.promote("support-bot", 2, "staging", "try v2")
    registry.promote("support-bot", 2, "production", "v2 evaluated")
    registry.promote("support-bot", 3, "production", "v3 evaluated")
    registry.rollback("support-bot", "production", "incident 42")
    audit = registry.audit("support-bot")
    assert audit["intact"] and audit["problems"] == []
    fields = ("alias", "action", "from_version", "to_version", "reason")
    moves = [tuple(m[f] for f in fields) for m in audit["moves"]]
    assert moves == [
        ("production", "promote", None, 1, "launch"),
        ("staging", "promote", None, 2, "try v2"),
        ("production", "promote", 1, 2, "v2 evaluated"),
        ("production", "promote", 2, 3, "v3 evaluated"),
        ("production", "rollback", 3, 2, "incident 42"),
    ]
    assert all(m["moved_by"].startswith("arn:aws:") and m["s3_version_id"] for m in audit["moves"])
    assert audit["moves"][0]["eval"]["passed"] is True


def test_audit_detects_a_rewritten_alias_record(registry):
    registry.push(make_prompt())
    registry.push(make_prompt(text="v2 {{ customer }}"))
    registry.promote("support-bot", 1, "canary", "first")
    registry.promote("support-bot", 2, "canary", "second")
    s3, key = registry.bucket.s3, alias_key("support-bot", "canary")
    forged = json.loads(s3.get_object(Bucket=registry.bucket.name, Key=key)["Body"].read())
    forged.update(version=1, reason="never happened")  # written around the registry
    s3.put_object(Bucket=registry.bucket.name, Key=key, Body=json.dumps(forged).encode())
    audit = registry.audit("support-bot")
    assert not audit["intact"]
    assert any("move 3 carries sequence 2" in p for p in audit["problems"])
    assert any("sha256 mismatch" in p for p in audit["problems"])


def test_audit_flags_a_protected_move_without_eval_and_deleted_records(registry):
    registry.push(make_prompt())
    record = {
        "kind": "prompt-alias",
        "name": "support-bot",
        "alias": "production",
        "version": 1,
        "previous_version": None,
        "sequence": 1,
        "previous_record_sha256": None,
        "action": "promote",
        "reason": "bypass",
        "moved_by": "someone",
        "moved_at": "2026-01-01T00:00:00Z",
        "eval": None,
    }
    s3, key = registry.bucket.s3, alias_key("support-bot", "production")
    s3.put_object(Bucket=registry.bucket.name, Key=key, Body=json.dumps(record).encode())
    s3.delete_object(Bucket=registry.bucket.name, Key=key)
    problems = registry.audit("support-bot")["problems"]
    assert any("production: move 1 to version 1 has no passing eval" in p for p in problems)
    assert any("alias record was deleted" in p for p in problems)


def test_get_detects_a_version_altered_outside_the_registry(registry):
    registry.push(make_prompt())
    s3, key = registry.bucket.s3, version_key("support-bot", 1)
    record = json.loads(s3.get_object(Bucket=registry.bucket.name, Key=key)["Body"].read())
    record["prompt"]["parameters"]["temperature"] = 1.5
    s3.put_object(Bucket=registry.bucket.name, Key=key, Body=json.dumps(record).encode())
    with pytest.raises(Exception, match="does not match its recorded hash"):
        registry.get("support-bot:1")


def test_references_resolve_by_alias_version_and_latest(registry):
    registry.push(make_prompt())
    registry.push(make_prompt(text="v2 {{ customer }}"))
    registry.promote("support-bot", 1, "canary", "first")
    assert registry.get("support-bot")["version"] == 2
    assert registry.get("support-bot:1")["version"] == 1
    assert registry.get("support-bot@canary")["alias"] == "canary"
    with pytest.raises(PromptNotFound, match=r"no version 7 \(it has versions 1\.\.2\)"):
        registry.get("support-bot:7")
    with pytest.raises(PromptNotFound, match=r"no alias production \(aliases: canary\)"):
        registry.get("support-bot@production")
    diff = registry.diff("support-bot", "canary", "2")["diff"]
    assert "-  content: Hello {{ customer }}, how can I help?" in diff
    assert "+  content: v2 {{ customer }}" in diff


def test_records_written_around_the_registry_are_reported_not_crashed_on(registry):
    registry.push(make_prompt())
    s3 = registry.bucket.s3
    s3.put_object(
        Bucket=registry.bucket.name, Key=alias_key("support-bot", "canary"), Body=b'{"note": "hand-made"}'
    )
    with pytest.raises(
        LlmopsError, match=r"aliases/canary.json is not a registry record \(missing version\)"
    ):
        registry.get("support-bot@canary")
    s3.put_object(Bucket=registry.bucket.name, Key=alias_key("support-bot", "beta"), Body=b"not json")
    with pytest.raises(LlmopsError, match="not a JSON object"):
        registry.get("support-bot@beta")
    problems = registry.audit("support-bot")["problems"]
    assert any(p.startswith("beta: object version") and "not a JSON object" in p for p in problems)
