"""Each assertion type passing and failing on realistic outputs, with the detail a report shows."""

from __future__ import annotations

import json

import jsonschema
import pytest
from pydantic import TypeAdapter

from llmops.evals.assertions import AssertionResult, check
from llmops.evals.evalset import ASSERTION_TYPES, Assertion

ASSERTION = TypeAdapter(Assertion)
SCHEMA = {
    "type": "object",
    "properties": {
        "queue": {"enum": ["network", "hardware", "access"]},
        "opened": {"type": "string", "format": "date"},
    },
    "required": ["queue"],
}


def run(
    assertion: dict, output: str, *, latency_ms: float = 120.0, cost_usd: float | None = 1e-5, judge=None
):
    result = check(
        ASSERTION.validate_python(assertion), output, latency_ms=latency_ms, cost_usd=cost_usd, judge=judge
    )
    assert isinstance(result, AssertionResult) and result.type == assertion["type"]
    return result


# (assertion, output, passes, phrase in the detail)
CASES = [
    ({"type": "equals", "value": "network"}, "  network\n", True, "output is 'network'"),
    ({"type": "equals", "value": " network "}, "network", True, "output is 'network'"),
    ({"type": "equals", "value": "network"}, "Network", False, "expected 'network', got 'Network'"),
    ({"type": "equals", "value": "network"}, "network.", False, "got 'network.'"),
    (
        {"type": "contains", "value": "AED 1,500"},
        "The annual fee is AED 1,500.",
        True,
        "contains 'AED 1,500'",
    ),
    ({"type": "contains", "value": "Layla"}, "Hello layla, ...", False, "does not contain 'Layla'"),
    ({"type": "icontains", "value": "Sanadak"}, "escalate to SANADAK", True, "(ignoring case)"),
    # Unicode case folding, not just lower(): German ß folds to ss
    ({"type": "icontains", "value": "STRASSE"}, "Hauptstraße 5", True, "(ignoring case)"),
    ({"type": "icontains", "value": "agent"}, "I cannot help with that.", False, "does not contain 'agent'"),
    (
        {"type": "not-contains", "value": "4111"},
        "Please do not share card numbers.",
        True,
        "does not contain",
    ),
    (
        {"type": "not-contains", "value": "1234567"},
        "Your ID 784-1990-1234567-1 ...",
        False,
        "at character 17",
    ),
    ({"type": "regex", "value": r"4\.10?\s?%"}, "The 12-month rate is 4.1 % p.a.", True, "matches '4.1 %'"),
    ({"type": "regex", "value": "^network$"}, "queue: network", False, "no match for /^network$/"),
    ({"type": "is-json"}, ' {"queue": "network"} ', True, "output is valid JSON"),
    (
        {"type": "is-json"},
        "queue: network",
        False,
        "not valid JSON: Expecting value (line 1",
    ),
    ({"type": "json-schema", "value": SCHEMA}, '{"queue": "access"}', True, "matches the schema"),
    (
        {"type": "json-schema", "value": SCHEMA},
        '{"queue": "printer"}',
        False,
        "at $.queue: 'printer' is not one",
    ),
    ({"type": "json-schema", "value": SCHEMA}, '{"opened": 3}', False, "(and 1 more)"),
    ({"type": "json-schema", "value": SCHEMA}, "network", False, "output is not valid JSON"),
    ({"type": "max-latency-ms", "value": 500}, "x", True, "took 120 ms, within the 500 ms limit"),
    ({"type": "max-latency-ms", "value": 100}, "x", False, "took 120 ms, over the 100 ms limit"),
    ({"type": "max-cost-usd", "value": 0.001}, "x", True, "cost 1e-05 USD, within the 0.001 USD limit"),
    ({"type": "max-cost-usd", "value": 0.000001}, "x", False, "over the 1e-06 USD limit"),
]


@pytest.mark.parametrize(
    ("assertion", "output", "passes", "phrase"),
    CASES,
    ids=[f"{a['type']}-{'pass' if p else 'fail'}" for a, _, p, _ in CASES],
)
def test_each_assertion_type_passes_and_fails(assertion, output, passes, phrase):
    result = run(assertion, output)
    assert result.passed is passes, result.detail
    assert phrase in result.detail, result.detail


def test_every_type_has_a_passing_and_a_failing_case():
    covered = {(a["type"], passes) for a, _, passes, _ in CASES}
    without_rubric = set(ASSERTION_TYPES) - {"llm-rubric"}  # the judge has its own tests below
    assert covered == {(t, p) for t in without_rubric for p in (True, False)}


def test_the_outputs_above_agree_with_json_and_jsonschema():
    # independent verdicts: the standard library's parser and jsonschema's own validator
    for assertion, output, passes, _ in CASES:
        if assertion["type"] == "is-json":
            try:
                json.loads(output)
                parsed = True
            except json.JSONDecodeError:
                parsed = False
            assert parsed is passes
        if assertion["type"] == "json-schema" and passes:
            jsonschema.validate(json.loads(output), SCHEMA)


def test_json_schema_checks_formats():
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    assert not checker.conforms("14/03/2026", "date") and checker.conforms("2026-03-14", "date")
    assert run({"type": "json-schema", "value": SCHEMA}, '{"queue": "access", "opened": "2026-03-14"}').passed
    failed = run({"type": "json-schema", "value": SCHEMA}, '{"queue": "access", "opened": "14/03/2026"}')
    assert not failed.passed and "at $.opened: '14/03/2026' is not a 'date'" in failed.detail


def test_the_judge_grades_the_rubric():
    calls = []

    def judge(rubric: str, output: str) -> tuple[bool, str]:
        calls.append((rubric, output))
        return "agent" in output, "offers an agent" if "agent" in output else "no agent offered"

    rubric = {"type": "llm-rubric", "value": "Offers to connect the customer with an agent."}
    passed = run(rubric, "I can connect you with an agent.", judge=judge)
    failed = run(rubric, "The fee is AED 25.", judge=judge)
    assert calls == [
        (rubric["value"], "I can connect you with an agent."),
        (rubric["value"], "The fee is AED 25."),
    ]
    assert (passed.passed, passed.detail) == (True, "the judge passed it: offers an agent")
    assert (failed.passed, failed.detail) == (False, "the judge failed it: no agent offered")
    assert run(rubric, "x", judge=lambda r, o: (False, "  ")).detail == "the judge failed it"


def test_a_rubric_without_a_judge_fails_and_says_why():
    result = run({"type": "llm-rubric", "value": "Polite."}, "Hello", judge=None)
    assert not result.passed and "no judge" in result.detail


def test_judge_errors_reach_the_caller():
    def unreachable(rubric, output):
        raise ConnectionError("gateway down")

    with pytest.raises(ConnectionError):
        run({"type": "llm-rubric", "value": "Polite."}, "Hello", judge=unreachable)


def test_latency_and_cost_limits_are_inclusive():
    assert run({"type": "max-latency-ms", "value": 120}, "x", latency_ms=120).passed
    assert run({"type": "max-cost-usd", "value": 0.00002}, "x", cost_usd=0.00002).passed


def test_an_unknown_cost_fails_the_cost_limit():
    result = run({"type": "max-cost-usd", "value": 0.001}, "x", cost_usd=None)
    assert not result.passed and "cost unknown" in result.detail and "0.001 USD" in result.detail


def test_details_stay_short_sentences_for_long_outputs():
    output = "Dear customer,\n" + "the fee schedule says many things. " * 400
    results = [
        run({"type": "equals", "value": "network"}, output),
        run({"type": "regex", "value": "(?s)Dear.*things"}, output),
        run({"type": "json-schema", "value": SCHEMA}, json.dumps({"queue": output})),
        run({"type": "llm-rubric", "value": "Brief."}, output, judge=lambda r, o: (False, o)),
    ]
    for result in results:
        assert len(result.detail) <= 300 and "\n" not in result.detail, result.detail
