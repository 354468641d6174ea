"""Gate integrity (issue 13): what may move a protected alias, rollbacks of withdrawn versions,
harness eval records, and audit exit codes. Against moto, like the other registry tests."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime

import boto3
import pytest

from llmops.errors import EXIT_AUDIT_FAILED, EXIT_CONFLICT, EXIT_USAGE, LlmopsError
from llmops.prompts import PromptConflict, PromptFile, PromptRegistry
from llmops.prompts.layout import alias_key, now
from llmops.prompts.s3 import encode
from prompt_registry.helpers import EVAL_SET_SHA, harness_record, make_prompt, pass_eval, write_config

NAME = "support-bot"
# The phrase of each rule the gate applies (llmops/prompts/gate.py): a refusal names its rule.
RULES = {
    "none": "has no recorded eval",
    "manual": "was recorded by hand",
    "malformed": "is malformed",
    "other-version": "not support-bot:2",
    "other-eval-set": "not the one named for support-bot",
    "content": "the run evaluated content",
    "eval-set": "not the one required",
    "rolled-back": "rolled back away from version 2",
    "incomplete": "of the eval set's 12 cases",
    "pass-rate": "recomputed from the record's cases",
    "did-not-pass": "the run itself did not pass",
    "regressed": "regressed against",
}


@pytest.fixture
def two_versions(registry):
    registry.push(make_prompt(), "v1")
    registry.push(make_prompt(text="Hi {{ customer }}, what do you need?"), "v2")
    return registry


def fresh(registry) -> PromptRegistry:
    """Another CLI invocation: it reads the registry config anew."""
    return PromptRegistry(registry.bucket.name, registry.bucket.s3, boto3.client("sts"))


def forge_eval(registry, version: int, record: dict) -> None:
    """An eval record written around the registry (a PutObject by someone with write access)."""
    eval_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + uuid.uuid4().hex[:8]
    record = {**record, "id": eval_id, "recorded_by": "arn:aws:iam::1:role/x", "recorded_at": now()}
    key = f"prompts/{NAME}/evals/{version:06d}/{eval_id}.json"
    registry.bucket.s3.put_object(Bucket=registry.bucket.name, Key=key, Body=encode(record))


def refusal(registry, version: int, alias: str = "production", **kwargs) -> str:
    """The gate's message for promoting the version; asserts that nothing moved."""
    before = registry.aliases(NAME)
    with pytest.raises(PromptConflict) as info:
        registry.promote(NAME, version, alias, "try", **kwargs)
    assert info.value.exit_code == EXIT_CONFLICT
    assert registry.aliases(NAME) == before, "a refused move writes nothing"
    return str(info.value)


def write_prompt(path, **kwargs):
    path.write_text(json.dumps(make_prompt(**kwargs).canonical()))
    return path


def rules_named(message: str) -> list[str]:
    return [rule for rule, phrase in RULES.items() if phrase in message]


# -- the repro ------------------------------------------------------------------------


def test_a_self_approved_manual_eval_no_longer_opens_production(cli, tmp_path):
    """`eval-record NAME 2 --score -3 --threshold -5` then `promote --alias production`: exit 3."""
    assert cli("push", write_prompt(tmp_path / "v1.yaml"))[0] == 0
    assert cli("push", write_prompt(tmp_path / "v2.yaml", text="Hi {{ customer }}"))[0] == 0
    code, record, _ = cli("eval-record", NAME, "2", "--score", "-3", "--threshold", "-5")
    assert code == 0 and record["passed"] and record["kind"] == "manual", "it still annotates"
    code, out, err = cli("promote", NAME, "2", "--alias", "production", "--reason", "ship it")
    assert code == EXIT_CONFLICT and out["error"]["exit_code"] == EXIT_CONFLICT
    assert rules_named(err) == ["manual"] and "llmops eval run support-bot:2 --record" in err
    code, history, _ = cli("history", NAME)
    assert history["versions"][1]["latest_eval"]["kind"] == "manual" and history["aliases"] == {}


# -- each rule on its own -----------------------------------------------------------------------


def _manual(reg):
    reg.record_eval(NAME, 2, score=0.99, threshold=0.5)


def _malformed(reg):
    record = harness_record(reg, NAME, 2)
    del record["cases"]
    forge_eval(reg, 2, record)


def _other_version(reg):
    forge_eval(reg, 2, harness_record(reg, NAME, 1))  # version 1's run, filed under version 2


def _other_eval_set(reg):
    record = harness_record(reg, NAME, 2)
    record["eval_set"]["prompt"] = "ticket-classifier"
    forge_eval(reg, 2, record)


def _content(reg):
    forge_eval(reg, 2, harness_record(reg, NAME, 2, content_sha256=reg.get_version(NAME, 1)["content_hash"]))


def _incomplete(reg):
    record = harness_record(reg, NAME, 2)
    record["eval_set"]["cases"] = 12  # the run stopped after 10 of the set's 12 cases
    reg.record_harness_eval(NAME, 2, record)


def _claims_more_than_its_cases(reg):
    record = harness_record(reg, NAME, 2, passing=5, failing=5)
    record.update(pass_rate=1.0, passed=True)
    reg.record_harness_eval(NAME, 2, record)


def _did_not_pass(reg):
    pass_eval(reg, NAME, 2, passed=False)


def _regressed(reg):
    baseline = {"prompt": NAME, "version": 1, "pass_rate": 1.0, "p_value": 0.03, "regressed": True}
    baseline.update(worsened=["case-3", "case-7"], improved=[])
    pass_eval(reg, NAME, 2, baseline=baseline, passed=True)  # claims passed despite the regression


@pytest.mark.parametrize(
    ("rule", "setup"),
    [
        ("none", lambda reg: None),
        ("manual", _manual),
        ("malformed", _malformed),
        ("other-version", _other_version),
        ("other-eval-set", _other_eval_set),
        ("content", _content),
        ("incomplete", _incomplete),
        ("pass-rate", _claims_more_than_its_cases),
        ("did-not-pass", _did_not_pass),
        ("regressed", _regressed),
    ],
)
def test_the_gate_refuses_on_each_rule_alone(two_versions, rule, setup):
    setup(two_versions)
    message = refusal(two_versions, 2)
    assert rules_named(message) == [rule], message
    assert message.startswith("support-bot@production is protected: the eval gate refused to promote")


def test_pass_rate_is_held_to_the_registrys_floor(registry):
    write_config(registry, protected_aliases=["production"], models=None, min_pass_rate=0.95)
    registry.push(make_prompt())
    pass_eval(registry, NAME, 1, passing=9, failing=1, threshold=0.9)  # meets its eval set's 0.9
    message = refusal(registry, 1)
    assert rules_named(message) == ["pass-rate"]
    assert (
        "pass rate 0.9 (9 of 10 cases" in message and "below 0.95 (the registry's min_pass_rate)" in message
    )
    pass_eval(registry, NAME, 1, passing=19, failing=1, threshold=0.9)
    assert registry.promote(NAME, 1, "production", "meets the floor")["moved"]


def test_the_eval_set_the_caller_names_must_be_the_one_the_run_used(two_versions):
    pass_eval(two_versions, NAME, 2)
    message = refusal(two_versions, 2, eval_set_sha256="cd" * 32)
    assert rules_named(message) == ["eval-set"]
    # Naming an eval set gates any alias, not only protected ones.
    assert rules_named(refusal(two_versions, 2, alias="canary", eval_set_sha256="cd" * 32)) == ["eval-set"]
    with pytest.raises(LlmopsError, match="not a sha256 hex digest") as info:
        two_versions.promote(NAME, 2, "production", "x", eval_set_sha256="sha256:abc")
    assert info.value.exit_code == EXIT_USAGE


def test_a_passing_eval_run_opens_the_gate(two_versions):
    record = pass_eval(two_versions, NAME, 2, passing=11, failing=1, threshold=0.9)
    moved = two_versions.promote(NAME, 2, "production", "evaluated", eval_set_sha256=EVAL_SET_SHA)
    assert moved["moved"] and moved["version"] == 2
    assert moved["eval"] == {
        "id": record["id"],
        "kind": "harness",
        "passed": True,
        "threshold": 0.9,
        "pass_rate": 0.9167,
        "content_hash": two_versions.get_version(NAME, 2)["content_hash"],
        "eval_set_sha256": EVAL_SET_SHA,
        "regressed": False,
        "run_id": record["run_id"],
        "recorded_by": record["recorded_by"],
        "recorded_at": record["recorded_at"],
    }
    assert two_versions.audit(NAME)["intact"]


# -- rollbacks ----------------------------------------------------------------------------------


def test_two_rollbacks_cannot_put_a_withdrawn_version_back_without_a_fresh_eval(two_versions):
    reg = two_versions
    pass_eval(reg, NAME, 1)
    pass_eval(reg, NAME, 2)
    reg.promote(NAME, 1, "production", "launch")
    reg.promote(NAME, 2, "production", "v2")
    back = reg.rollback(NAME, "production", "incident 42: v2 leaks account numbers")
    assert (back["previous_version"], back["version"]) == (2, 1), "rolling back stays ungated"

    with pytest.raises(PromptConflict) as info:
        reg.rollback(NAME, "production", "undo")
    assert info.value.exit_code == EXIT_CONFLICT
    assert rules_named(str(info.value)) == ["rolled-back"] and "refused to roll back to version 2" in str(
        info.value
    )
    assert rules_named(refusal(reg, 2)) == ["rolled-back"], "promote applies the same rule"
    assert reg.aliases(NAME) == {"production": 1}

    fresh_run = pass_eval(reg, NAME, 2)  # v2 fixed? then a new eval run says so
    again = reg.rollback(NAME, "production", "v2 re-evaluated after the fix")
    assert (again["action"], again["version"], again["eval"]["id"]) == ("rollback", 2, fresh_run["id"])
    audit = reg.audit(NAME)
    assert audit["intact"], audit["problems"]
    assert [(m["action"], m["to_version"]) for m in audit["moves"]] == [
        ("promote", 1),
        ("promote", 2),
        ("rollback", 1),
        ("rollback", 2),
    ]


def test_rollback_is_ungated_when_the_target_was_never_withdrawn(two_versions):
    reg = two_versions
    pass_eval(reg, NAME, 1)
    pass_eval(reg, NAME, 2)
    reg.promote(NAME, 1, "production", "launch")
    reg.promote(NAME, 2, "production", "v2")
    reg.record_harness_eval(NAME, 1, harness_record(reg, NAME, 1, passing=1, failing=9))  # a later run failed
    back = reg.rollback(NAME, "production", "v2 is down: back to what served")
    assert back["version"] == 1 and back["eval"]["passed"] is False, "recovery does not wait for evals"


def test_unprotected_aliases_toggle_freely(two_versions):
    reg = two_versions
    reg.promote(NAME, 1, "canary", "a")
    reg.promote(NAME, 2, "canary", "b")
    assert [reg.rollback(NAME, "canary", f"toggle {i}")["version"] for i in range(3)] == [1, 2, 1]


def test_a_rollback_on_any_alias_withdraws_the_version(two_versions):
    reg = two_versions
    pass_eval(reg, NAME, 2)
    reg.promote(NAME, 1, "canary", "a")
    reg.promote(NAME, 2, "canary", "b")
    reg.rollback(NAME, "canary", "v2 misbehaves on canary")
    assert rules_named(refusal(reg, 2)) == ["rolled-back"]


def _chain(registry, alias: str, moves: list[dict]) -> None:
    """Alias records as a registry without `rolled_back_from` wrote them, correctly chained."""
    s3, key, previous = registry.bucket.s3, alias_key(NAME, alias), None
    for sequence, move in enumerate(moves, start=1):
        record = {
            "kind": "prompt-alias",
            "name": NAME,
            "alias": alias,
            "sequence": sequence,
            "previous_record_sha256": hashlib.sha256(previous).hexdigest() if previous else None,
            "moved_by": "arn:aws:iam::1:role/ci",
            "moved_at": f"2026-01-0{sequence}T00:00:00.000000Z",
            "reason": "before the upgrade",
            "eval": {"passed": True, "score": 0.9, "threshold": 0.85},
            **move,
        }
        previous = encode(record)
        s3.put_object(Bucket=registry.bucket.name, Key=key, Body=previous)


def test_rollbacks_recorded_before_the_upgrade_are_read_from_the_history(two_versions):
    reg = two_versions
    _chain(
        reg,
        "production",
        [
            {"action": "promote", "previous_version": None, "version": 1},
            {"action": "promote", "previous_version": 1, "version": 2},
            {"action": "rollback", "previous_version": 2, "version": 1},
        ],
    )
    reg.promote(NAME, 1, "staging", "a move on another alias reads the same history")
    pass_eval(reg, NAME, 2)  # recorded after the old rollback (2026-01-03)
    moved = reg.promote(NAME, 2, "production", "re-evaluated")
    assert moved["rolled_back_from"] == {"2": "2026-01-03T00:00:00.000000Z"}, "carried from now on"
    assert reg.audit(NAME)["intact"]


def test_audit_flags_a_move_that_forgets_a_rollback(two_versions):
    reg = two_versions
    pass_eval(reg, NAME, 1)
    pass_eval(reg, NAME, 2)
    reg.promote(NAME, 1, "production", "launch")
    reg.promote(NAME, 2, "production", "v2")
    reg.rollback(NAME, "production", "incident")
    current = reg.alias_record(NAME, "production")
    forged = {**current.data, "sequence": 4, "previous_record_sha256": current.sha256}
    forged.update(previous_version=1, version=2, action="promote", rolled_back_from={})
    s3 = reg.bucket.s3
    s3.put_object(Bucket=reg.bucket.name, Key=alias_key(NAME, "production"), Body=encode(forged))
    problems = reg.audit(NAME)["problems"]
    assert problems == [
        "production: move 4 does not carry the rollbacks before it (rolled_back_from differs from the "
        "history): a withdrawn version could return"
    ]


# -- harness records ----------------------------------------------------------------------------


def test_record_harness_eval_adds_who_and_when_and_keeps_the_key_layout(two_versions):
    record = harness_record(two_versions, NAME, 2)
    stored = two_versions.record_harness_eval(NAME, 2, record)
    assert stored["recorded_by"] == "arn:aws:sts::123456789012:user/moto" and stored["recorded_at"]
    assert {k: stored[k] for k in record} == record, "the run's record is stored as it was measured"
    keys = two_versions.bucket.keys(f"prompts/{NAME}/evals/")
    assert keys == [f"prompts/{NAME}/evals/000002/{stored['id']}.json"]
    s3 = two_versions.bucket.s3
    with pytest.raises(s3.exceptions.ClientError, match="PreconditionFailed"):
        s3.put_object(Bucket=two_versions.bucket.name, Key=keys[0], Body=b"{}", IfNoneMatch="*")


def test_record_harness_eval_refuses_a_malformed_or_mismatched_record(two_versions):
    reg = two_versions
    bad = harness_record(reg, NAME, 2, threshold=5)
    del bad["cases"][1]["passed"]
    with pytest.raises(LlmopsError) as info:
        reg.record_harness_eval(NAME, 2, bad)
    assert info.value.exit_code == EXIT_USAGE
    assert str(info.value).splitlines() == [
        "eval record for support-bot:2: 2 problem(s):",
        "  threshold: must be a number above 0, at most 1",
        "  cases[1].passed: must be true or false",
    ]

    for record, message in [
        (harness_record(reg, NAME, 1), "it is for support-bot:1"),
        (harness_record(reg, NAME, 2, content_sha256="sha256:" + "0" * 64), "is not the version's"),
    ]:
        with pytest.raises(LlmopsError, match=message) as info:
            reg.record_harness_eval(NAME, 2, record)
        assert info.value.exit_code == EXIT_USAGE and "nothing was recorded" in str(info.value)
    assert reg.latest_eval(NAME, 2) is None


# -- push ---------------------------------------------------------------------------------------


def test_push_refuses_an_unknown_parameter_and_names_the_nearest(cli, tmp_path):
    path = tmp_path / "typo.yaml"
    data = make_prompt().canonical()
    data["parameters"] = {"temprature": 0.2, "max_tokens": 100}
    path.write_text(json.dumps(data))
    code, out, err = cli("push", path)
    assert code == EXIT_USAGE and out["error"]["exit_code"] == EXIT_USAGE
    assert err.splitlines() == [
        f"error: {path}: 1 problem(s) in the prompt file:",
        "  parameters.temprature: unknown parameter; did you mean temperature?",
    ]


def test_push_refuses_a_model_the_gateway_does_not_serve(cli, registry, tmp_path):
    write_config(registry, protected_aliases=["production"], models=["qwen-small", "gpt-4o-mini"])
    code, _, err = cli("push", write_prompt(tmp_path / "p.yaml"))  # model llama-3-1-8b-instruct
    assert code == EXIT_USAGE
    assert (
        f"{tmp_path / 'p.yaml'}: 1 problem(s) in the prompt file:\n  model: 'llama-3-1-8b-instruct' is not "
        "a route this stack's gateway serves (it serves: qwen-small, gpt-4o-mini)"
    ) in err
    code, _, err = cli("push", write_prompt(tmp_path / "p.yaml", model="qwen-smal"))
    assert code == EXIT_USAGE and "did you mean qwen-small?" in err
    assert cli("push", write_prompt(tmp_path / "p.yaml", model="qwen-small"))[0] == 0
    assert registry.version_numbers(NAME) == [1]


def test_the_library_checks_what_the_file_check_checks(registry):
    """A PromptFile built without parse_prompt still meets the parameter allowlist at push."""
    data = make_prompt().canonical()
    data["parameters"] = {"top_k": 40, "repetiton_penalty": 1.1}
    with pytest.raises(LlmopsError, match=r"parameters\.repetiton_penalty: unknown parameter; did you mean "):
        registry.push(PromptFile.model_validate(data))


def test_a_malformed_registry_config_is_reported(registry):
    write_config(registry, protected_aliases="production", models="qwen-small", min_pass_rate=2)
    with pytest.raises(LlmopsError) as info:
        fresh(registry).push(make_prompt())
    assert info.value.exit_code == EXIT_USAGE
    assert str(info.value).startswith(
        f"s3://{registry.bucket.name}/_registry/config.json: protected_aliases:"
    )
    assert "models: must be a list" in str(info.value) and "min_pass_rate: must be a number" in str(
        info.value
    )


# -- audit exit codes ---------------------------------------------------------------------------


def test_audit_exits_4_on_a_broken_chain(cli, registry):
    registry.push(make_prompt())
    registry.push(make_prompt(text="v2 {{ customer }}"))
    registry.promote(NAME, 1, "canary", "first")
    registry.promote(NAME, 2, "canary", "second")
    assert cli("audit", NAME)[0] == 0
    s3, key = registry.bucket.s3, alias_key(NAME, "canary")
    forged = json.loads(s3.get_object(Bucket=registry.bucket.name, Key=key)["Body"].read())
    forged["version"] = 1
    s3.put_object(Bucket=registry.bucket.name, Key=key, Body=json.dumps(forged).encode())
    code, out, err = cli("audit", NAME)
    assert code == EXIT_AUDIT_FAILED == 4
    assert out["intact"] is False and out["versioning"] == "Enabled" and len(out["problems"]) >= 2
    count = len(out["problems"])
    assert err.splitlines() == [
        f"error: audit of {NAME}: the history chain is broken ({count} problem(s); see the output)"
    ]
    code, text, _ = cli("audit", NAME, as_json=False)
    assert code == 4 and "PROBLEM: canary: move 3 carries sequence 2" in text
    assert text.rstrip().endswith(f"audit FAILED: {count} problem(s) above")


def test_audit_exits_4_when_bucket_versioning_is_suspended(cli, registry):
    registry.push(make_prompt())
    registry.promote(NAME, 1, "canary", "first")
    s3 = registry.bucket.s3
    s3.put_bucket_versioning(Bucket=registry.bucket.name, VersioningConfiguration={"Status": "Suspended"})
    code, out, err = cli("audit", NAME)
    assert code == 4 and out["intact"] is False and out["versioning"] == "Suspended"
    assert out["problems"][0].startswith("bucket versioning is suspended: an alias move overwrites")
    assert "bucket versioning is off" in err


# -- the CLI's --eval-set -----------------------------------------------------------------------


def test_promote_eval_set_flag_hashes_the_file_with_the_harness(cli, registry, tmp_path):
    evalset = pytest.importorskip("llmops.evals.evalset", reason="the eval-set loader is not written yet")
    registry.push(make_prompt())
    path = tmp_path / f"{NAME}.yaml"
    case = {
        "id": "greets",
        "vars": {"customer": "Layla", "question": "hi"},
        "assert": [{"type": "contains", "value": "Layla"}],
    }
    path.write_text(json.dumps({"prompt": NAME, "threshold": 0.9, "repeat": 1, "cases": [case]}))
    digest = evalset.load_eval_set(path).content_hash
    record = harness_record(registry, NAME, 1)
    record["eval_set"]["sha256"] = digest
    registry.record_harness_eval(NAME, 1, record)
    other = tmp_path / "other" / f"{NAME}.yaml"
    other.parent.mkdir()
    other.write_text(json.dumps({"prompt": NAME, "threshold": 0.8, "repeat": 1, "cases": [case]}))
    code, _, err = cli("promote", NAME, "1", "--alias", "production", "--reason", "r", "--eval-set", other)
    assert code == EXIT_CONFLICT and "not the one required" in err
    code, moved, _ = cli("promote", NAME, "1", "--alias", "production", "--reason", "r", "--eval-set", path)
    assert code == 0 and moved["eval"]["eval_set_sha256"] == digest
    code, _, err = cli(
        "promote", NAME, "1", "--alias", "x", "--reason", "r", "--eval-set", tmp_path / "no.yaml"
    )
    assert code == EXIT_USAGE and str(tmp_path / "no.yaml") in err
