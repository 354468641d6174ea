"""Eval-set files: every validation problem with its file and path, the content hash, the fit with
the prompt's variables, and the shipped eval sets against the shipped prompts and stacks."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from llmops import PROJECT_DIR
from llmops.errors import EXIT_USAGE
from llmops.evals.evalset import (
    EVALS_DIR,
    EvalSet,
    EvalSetError,
    check_against_prompt,
    eval_set_path,
    load_eval_set,
)
from llmops.inputs import InputError
from llmops.prompts.format import load_prompt_file
from llmops.settings import load_stack_file

EXAMPLE_PROMPTS = sorted((PROJECT_DIR / "examples" / "prompts").glob("*.yaml"))
STACK_FILES = sorted((PROJECT_DIR / "stacks").glob("Pulumi.*.yaml"))

VALID = {
    "prompt": "ticket-classifier",
    "threshold": 0.9,
    "judge": {"model": "qwen-small", "temperature": 0},
    "cases": [
        {
            "id": "vpn-drops",
            "vars": {"queues": "network, hardware", "ticket_text": "VPN drops every five minutes"},
            "assert": [{"type": "equals", "value": "network"}],
        },
        {
            "id": "printer-jam",
            "vars": {"queues": "network, hardware", "ticket_text": "Printer jams"},
            "assert": [{"type": "llm-rubric", "value": "Names the hardware queue"}],
        },
    ],
}


def write(tmp_path: Path, doc, name: str = "ticket-classifier") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(EvalSetError) as info:
        load_eval_set(path)
    assert info.value.exit_code == EXIT_USAGE
    lines = str(info.value).splitlines()
    assert (
        lines == info.value.problems
        if len(lines) == 1
        else lines[1:] == [f"  {p}" for p in info.value.problems]
    )
    return info.value.problems


def first_assert(doc: dict, assertion: dict) -> dict:
    doc["cases"][0]["assert"] = [assertion]
    return doc


def _invalid_regex() -> str:
    pattern = "(?P<queue>network"
    with pytest.raises(re.error):
        re.compile(pattern)  # an independent fact: Python's re refuses it
    return pattern


def _invalid_schema() -> dict:
    schema = {"type": "object", "required": "queue"}  # `required` must be an array
    with pytest.raises(jsonschema.SchemaError):
        jsonschema.Draft202012Validator.check_schema(schema)
    return schema


# (test id, how to break the valid document, [(path, phrase in the message), ...])
BROKEN = [
    (
        "top-level-typo",
        lambda d: d.update(treshold=d.pop("threshold")),
        [
            ("treshold", "unknown key 'treshold' (did you mean 'threshold'?)"),
            ("threshold", "required key is missing"),
        ],
    ),
    (
        "case-typo",
        lambda d: d["cases"][0].update(asert=d["cases"][0].pop("assert")),
        [
            ("cases[0].assert", "required key is missing"),
            ("cases[0].asert", "unknown key 'asert' (did you mean 'assert'?)"),
        ],
    ),
    (
        "assertion-typo",
        lambda d: first_assert(d, {"type": "equals", "valeu": "network"}),
        [
            ("cases[0].assert[0].value", "required key is missing"),
            ("cases[0].assert[0].valeu", "unknown key 'valeu' (did you mean 'value'?)"),
        ],
    ),
    (
        "is-json-takes-no-value",
        lambda d: first_assert(d, {"type": "is-json", "value": True}),
        [
            ("cases[0].assert[0].value", "unknown key 'value'; allowed: type"),
        ],
    ),
    (
        "unknown-type",
        lambda d: first_assert(d, {"type": "equal", "value": "x"}),
        [
            ("cases[0].assert[0].type", "unknown assertion type 'equal' (did you mean 'equals'?)"),
        ],
    ),
    (
        "missing-type",
        lambda d: first_assert(d, {"value": "x"}),
        [
            ("cases[0].assert[0].type", "required key is missing (one of: equals, contains"),
        ],
    ),
    (
        "assertion-not-a-mapping",
        lambda d: first_assert(d, "equals network"),
        [
            ("cases[0].assert[0]", "must be a mapping"),
        ],
    ),
    (
        "value-not-a-string",
        lambda d: first_assert(d, {"type": "contains", "value": 1.10}),
        [
            ("cases[0].assert[0].value", "must be a string (got 1.1); quote it in YAML"),
        ],
    ),
    (
        "value-empty",
        lambda d: first_assert(d, {"type": "not-contains", "value": "  "}),
        [
            ("cases[0].assert[0].value", "must not be empty"),
        ],
    ),
    (
        "regex-does-not-compile",
        lambda d: first_assert(d, {"type": "regex", "value": _invalid_regex()}),
        [
            ("cases[0].assert[0].value", "not a valid Python regular expression: missing )"),
        ],
    ),
    (
        "json-schema-invalid",
        lambda d: first_assert(d, {"type": "json-schema", "value": _invalid_schema()}),
        [
            ("cases[0].assert[0].value", "not a valid JSON Schema (draft 2020-12): at $.required:"),
        ],
    ),
    (
        "json-schema-not-an-object",
        lambda d: first_assert(d, {"type": "json-schema", "value": "object"}),
        [
            ("cases[0].assert[0].value", "must be a JSON Schema object"),
        ],
    ),
    (
        "latency-zero",
        lambda d: first_assert(d, {"type": "max-latency-ms", "value": 0}),
        [
            ("cases[0].assert[0].value", "must be a positive number (got 0)"),
        ],
    ),
    (
        "latency-not-a-number",
        lambda d: first_assert(d, {"type": "max-latency-ms", "value": "5s"}),
        [
            ("cases[0].assert[0].value", "must be a number (got '5s')"),
        ],
    ),
    (
        "cost-negative",
        lambda d: first_assert(d, {"type": "max-cost-usd", "value": -0.01}),
        [
            ("cases[0].assert[0].value", "must be a positive number (got -0.01)"),
        ],
    ),
    (
        "cost-boolean",
        lambda d: first_assert(d, {"type": "max-cost-usd", "value": True}),
        [
            ("cases[0].assert[0].value", "must be a number (got True)"),
        ],
    ),
    (
        "rubric-without-judge",
        lambda d: d.pop("judge"),
        [
            ("cases[1].assert[0]", "llm-rubric needs a judge"),
        ],
    ),
    (
        "judge-without-model",
        lambda d: d["judge"].pop("model"),
        [
            ("judge.model", "required key is missing"),
        ],
    ),
    (
        "judge-param-not-scalar",
        lambda d: d["judge"].update(temperature={"value": 0}),
        [
            ("judge.temperature", "must be a scalar or a list of scalars"),
        ],
    ),
    (
        "judge-parameter-typo",
        lambda d: d["judge"].update(temprature=0),
        [
            ("judge.temprature", "unknown chat parameter; did you mean 'temperature'?"),
        ],
    ),
    (
        "judge-overrides-the-request",
        lambda d: d["judge"].update(messages=[]),
        [
            ("judge.messages", "unknown chat parameter; known: temperature, top_p"),
        ],
    ),
    (
        "duplicate-case-id",
        lambda d: d["cases"][1].update(id="vpn-drops"),
        [
            ("cases[1].id", "'vpn-drops' is already the id of cases[0]; ids must be unique"),
        ],
    ),
    (
        "case-id-pattern",
        lambda d: d["cases"][0].update(id="VPN drops"),
        [
            ("cases[0].id", "'VPN drops' must be lower-case letters, digits"),
        ],
    ),
    (
        "prompt-differs-from-file-name",
        lambda d: d.update(prompt="retail-banking-support"),
        [
            ("prompt", "'retail-banking-support' is not this file's name (ticket-classifier)"),
        ],
    ),
    (
        "prompt-name-invalid",
        lambda d: d.update(prompt="Ticket Classifier"),
        [
            ("prompt", "'Ticket Classifier' is not a prompt name"),
            ("prompt", "is not this file's name"),
        ],
    ),
    (
        "threshold-zero",
        lambda d: d.update(threshold=0),
        [
            ("threshold", "must be a number greater than 0 and at most 1 (got 0)"),
        ],
    ),
    (
        "threshold-above-one",
        lambda d: d.update(threshold=1.5),
        [
            ("threshold", "greater than 0 and at most 1 (got 1.5)"),
        ],
    ),
    (
        "threshold-percent-string",
        lambda d: d.update(threshold="90%"),
        [
            ("threshold", "greater than 0 and at most 1 (got '90%')"),
        ],
    ),
    (
        "repeat-zero",
        lambda d: d.update(repeat=0),
        [
            ("repeat", "must be a whole number from 1 to 10 (got 0)"),
        ],
    ),
    (
        "repeat-eleven",
        lambda d: d.update(repeat=11),
        [
            ("repeat", "from 1 to 10 (got 11)"),
        ],
    ),
    (
        "repeat-fraction",
        lambda d: d.update(repeat=2.5),
        [
            ("repeat", "from 1 to 10 (got 2.5)"),
        ],
    ),
    (
        "no-cases",
        lambda d: d.update(cases=[]),
        [
            ("cases", "an eval set needs at least one case"),
        ],
    ),
    (
        "case-without-assertions",
        lambda d: d["cases"][0].update({"assert": []}),
        [
            ("cases[0].assert", "a case needs at least one assertion"),
        ],
    ),
    (
        "var-read-as-boolean",
        lambda d: d["cases"][0]["vars"].update(ticket_text=False),
        [
            ("cases[0].vars.ticket_text", "must be a string or a number (got False); quote it in YAML"),
        ],
    ),
    (
        "var-is-a-list",
        lambda d: d["cases"][0]["vars"].update(queues=["network", "hardware"]),
        [
            ("cases[0].vars.queues", "must be a string or a number"),
        ],
    ),
]


@pytest.mark.parametrize(("breaks", "expected"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_each_problem_is_reported_with_its_file_and_path(tmp_path, breaks, expected):
    doc = copy.deepcopy(VALID)
    breaks(doc)
    path = write(tmp_path, doc)
    found = problems_of(path)
    assert len(found) == len(expected), found
    for where, phrase in expected:
        assert any(line.startswith(f"{path}: {where}: ") and phrase in line for line in found), found


def test_every_problem_in_a_file_is_reported_at_once(tmp_path):
    doc = copy.deepcopy(VALID)
    doc["treshold"] = doc.pop("threshold")
    doc.pop("judge")
    doc["cases"][1]["id"] = "vpn-drops"
    doc["cases"][0]["assert"].append({"type": "regex", "value": "[a-"})
    found = problems_of(write(tmp_path, doc))
    # in the order the file reads (`treshold` was written last), missing keys at the end
    assert [line.split(": ")[1] for line in found] == [
        "cases[0].assert[1].value",
        "cases[1].id",
        "cases[1].assert[0]",
        "treshold",
        "threshold",
    ]


def test_a_yaml_boolean_is_not_taken_for_text(tmp_path):
    path = tmp_path / "ticket-classifier.yaml"
    path.write_text(
        "prompt: ticket-classifier\nthreshold: 0.9\ncases:\n"
        "  - id: a\n    vars: {queues: x, ticket_text: y}\n    assert:\n"
        "      - {type: equals, value: x}\n"
        "  - id: b\n    vars: {queues: x, ticket_text: y}\n    assert:\n"
        "      - {type: icontains, value: no}\n"
    )
    # YAML 1.1 reads an unquoted `no` as false: the loader says so instead of comparing with "False"
    assert problems_of(path) == [
        f"{path}: cases[1].assert[0].value: must be a string (got False); quote it in YAML"
    ]


@pytest.mark.parametrize(
    ("text", "phrase"),
    [("", "the file is empty"), ("- a\n- b\n", "found list"), ("just text\n", "found str")],
)
def test_a_document_that_is_not_a_mapping(tmp_path, text, phrase):
    path = tmp_path / "ticket-classifier.yaml"
    path.write_text(text)
    [line] = problems_of(path)
    assert line.startswith(f"{path}: an eval set is a YAML mapping") and phrase in line


def test_unreadable_files_fail_with_the_path_and_exit_2(tmp_path):
    with pytest.raises(InputError) as missing:
        load_eval_set(tmp_path / "ticket-classifier.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("prompt: [unclosed\n")
    with pytest.raises(InputError) as syntax:
        load_eval_set(broken)
    assert (missing.value.reason, missing.value.exit_code) == ("missing", EXIT_USAGE)
    assert (syntax.value.reason, syntax.value.exit_code) == ("syntax", EXIT_USAGE)
    assert str(broken) in str(syntax.value)


def test_a_valid_file_loads_with_its_judge_parameters(tmp_path):
    path = write(tmp_path, VALID)
    eval_set = load_eval_set(path)
    assert eval_set.source == str(path)
    assert (eval_set.threshold, eval_set.repeat, eval_set.description) == (0.9, 1, None)
    assert eval_set.judge is not None
    assert (eval_set.judge.model, eval_set.judge.params) == ("qwen-small", {"temperature": 0})
    assert [c.id for c in eval_set.cases] == ["vpn-drops", "printer-jam"]
    assert [(a.type, a.value) for a in eval_set.cases[0].assert_] == [("equals", "network")]


def test_the_content_hash_ignores_layout_and_follows_content(tmp_path):
    block = load_eval_set(write(tmp_path, VALID)).content_hash
    reordered = {k: VALID[k] for k in reversed(list(VALID))}
    flow = tmp_path / "flow" / "ticket-classifier.yaml"
    flow.parent.mkdir()
    flow.write_text("# a comment\n" + yaml.safe_dump(reordered, default_flow_style=True, width=60))
    assert load_eval_set(flow).content_hash == block
    assert re.fullmatch(r"[0-9a-f]{64}", block)

    stricter = copy.deepcopy(VALID)
    stricter["threshold"] = 1.0
    other = tmp_path / "other"
    other.mkdir()
    strict_hash = load_eval_set(write(other, stricter)).content_hash
    assert strict_hash != block
    # `1` and `1.0` are the same threshold, so the same content
    stricter["threshold"] = 1
    assert "threshold: 1\n" in write(other, stricter).read_text()
    assert load_eval_set(other / "ticket-classifier.yaml").content_hash == strict_hash


def test_validating_the_model_directly_applies_the_cross_field_rules():
    doc = copy.deepcopy(VALID)
    doc.pop("judge")
    with pytest.raises(ValidationError, match=r"cases\[1\]\.assert\[0\]: llm-rubric needs a judge"):
        EvalSet.model_validate(doc)


def test_eval_set_path_is_the_prompt_name_under_evals(tmp_path):
    assert eval_set_path("ticket-classifier") == PROJECT_DIR / "evals" / "ticket-classifier.yaml"
    assert eval_set_path("ticket-classifier", tmp_path) == tmp_path / "ticket-classifier.yaml"


def test_vars_are_checked_against_the_prompts_declared_variables(tmp_path):
    doc = copy.deepcopy(VALID)
    doc["cases"][0]["vars"] = {"queues": "network", "ticket": "VPN drops"}
    doc["cases"][1]["vars"] = {"ticket_text": "Printer jams"}
    path = write(tmp_path, doc)
    eval_set = load_eval_set(path)
    prompt = load_prompt_file(PROJECT_DIR / "examples" / "prompts" / "ticket-classifier.yaml")
    expected = [
        f"{path}: cases[0].vars: missing ticket_text; unknown ticket (did you mean ticket_text?); "
        "prompt ticket-classifier declares queues, ticket_text",
        f"{path}: cases[1].vars: missing queues; prompt ticket-classifier declares queues, ticket_text",
    ]
    assert check_against_prompt(eval_set, prompt) == expected
    # a version's stored content (the canonical mapping) gives the same answer
    assert check_against_prompt(eval_set, prompt.canonical()) == expected


def test_an_eval_set_for_another_prompt_is_reported(tmp_path):
    eval_set = load_eval_set(write(tmp_path, VALID))
    prompt = load_prompt_file(PROJECT_DIR / "examples" / "prompts" / "retail-banking-support.yaml")
    found = check_against_prompt(eval_set, prompt)
    assert found[0] == (
        f"{eval_set.source}: prompt: the eval set is for 'ticket-classifier', "
        "but the prompt is 'retail-banking-support'"
    )
    assert all(line.startswith(f"{eval_set.source}: cases[") for line in found[1:]) and len(found) == 3


# -- the shipped eval sets -----------------------------------------------------------------------


@pytest.mark.parametrize("prompt_path", EXAMPLE_PROMPTS, ids=lambda p: p.stem)
def test_every_example_prompt_has_a_fitting_eval_set(prompt_path):
    prompt = load_prompt_file(prompt_path)
    path = eval_set_path(prompt.name)
    eval_set = load_eval_set(path)
    assert check_against_prompt(eval_set, prompt) == []
    assert 8 <= len(eval_set.cases) <= 15
    assert len({a.type for c in eval_set.cases for a in c.assert_}) >= 3, "use several assertion types"
    # the prompt points at its eval set, relative to the repository root
    assert prompt.eval_set is not None and PROJECT_DIR / prompt.eval_set == path
    for case in eval_set.cases:
        prompt.render(case.vars)  # the real renderer accepts every case's values


@pytest.mark.parametrize("path", sorted(EVALS_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_eval_set_loads(path):
    assert load_eval_set(path).prompt == path.stem


def test_the_banking_set_grades_with_a_judge_and_the_clinical_set_checks_the_format():
    banking = load_eval_set(eval_set_path("retail-banking-support"))
    assert banking.judge is not None and any(a.type == "llm-rubric" for c in banking.cases for a in c.assert_)
    clinical = load_eval_set(eval_set_path("clinical-notes-summary"))
    assert sum(a.type == "regex" for c in clinical.cases for a in c.assert_) >= 5


def served_routes(stack_file: Path) -> set[str]:
    """What the stack's gateway serves: its self-hosted models and its external providers' models."""
    settings = load_stack_file(stack_file)
    return {m.name for m in settings.models} | set(settings.gateway.external_model_names())


def test_example_prompts_and_judges_name_routes_every_shipped_stack_serves():
    assert {p.name for p in STACK_FILES} >= {"Pulumi.dev.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml"}
    routes = {p.name: served_routes(p) for p in STACK_FILES}
    for prompt_path in EXAMPLE_PROMPTS:
        prompt = load_prompt_file(prompt_path)
        judge = load_eval_set(eval_set_path(prompt.name)).judge
        for model in [prompt.model] + ([judge.model] if judge else []):
            missing = sorted(stack for stack, served in routes.items() if model not in served)
            assert not missing, f"{prompt_path.name}: {model} is not served by {', '.join(missing)}"
