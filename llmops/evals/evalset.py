"""Eval sets: `evals/<prompt>.yaml`, one per prompt, reviewed in the same pull request as the prompt.

    load_eval_set(path) -> EvalSet          read (llmops/inputs.py) and validate; every problem at
                                            once, each `<file>: <path>: <message>` (EvalSetError, exit 2)
    check_against_prompt(eval_set, prompt)  cases whose vars do not fit the prompt's variables
    eval_set_path(name) -> Path             where the eval set of a prompt lives (evals/<name>.yaml)

The threshold lives in the file, not on a command line, so whoever records an eval cannot pick the
bar it has to clear: changing it is a reviewed change to this file, and changes the content hash
that the eval record carries.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from llmops import PROJECT_DIR
from llmops.errors import EXIT_USAGE, LlmopsError
from llmops.inputs import load_yaml
from llmops.prompts.format import NAME, PARAMETERS, PromptFile

EVALS_DIR = PROJECT_DIR / "evals"
CASE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
MAX_REPEAT = 10
# Set by parse_eval_set, which checks the cross-field rules on the raw document so that they are
# reported together with the field errors (a model validator only runs once every field is valid).
_RAW_CHECKED = "raw_checked"


class EvalSetError(LlmopsError):
    """Invalid eval set content; `problems` are `<file>: <path>: <message>` lines."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        # one problem stays on one line, as every bad-file error of the CLI does
        lines = "".join(f"\n  {p}" for p in problems)
        message = problems[0] if len(problems) == 1 else f"{len(problems)} problems in the eval set:{lines}"
        super().__init__(message, EXIT_USAGE)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _text(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError(f"must be a string (got {_show(value)}); quote it in YAML")
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _positive(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number (got {_show(value)})")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"must be a positive number (got {value})")
    return value


def _var_value(value: Any) -> Any:
    # YAML reads an unquoted yes/no/on/off as a boolean and a list as a list; both would reach the
    # prompt as Python's rendering of them (True, ['a', 'b']) instead of the text the author meant.
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"must be a string or a number (got {_show(value)}); quote it in YAML")
    return value


def _judge_param(value: Any) -> Any:
    scalar = (str, int, float, bool, type(None))
    if isinstance(value, scalar) or (isinstance(value, list) and all(isinstance(v, scalar) for v in value)):
        return value
    raise ValueError("must be a scalar or a list of scalars, as the prompt's parameters are")


Text = Annotated[str, BeforeValidator(_text)]
Positive = Annotated[float, BeforeValidator(_positive)]
VarValue = Annotated[str | int | float, BeforeValidator(_var_value)]
JudgeParam = Annotated[Any, BeforeValidator(_judge_param)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- assertions ------------------------------------------------------------------------------


class Equals(_Model):
    """The output equals `value`, both trimmed of surrounding whitespace."""

    type: Literal["equals"]
    value: Text


class Contains(_Model):
    type: Literal["contains"]
    value: Text


class IContains(_Model):
    """`contains`, ignoring case."""

    type: Literal["icontains"]
    value: Text


class NotContains(_Model):
    type: Literal["not-contains"]
    value: Text


class Regex(_Model):
    """Python `re.search` of `value` in the output."""

    type: Literal["regex"]
    value: Text

    @field_validator("value")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as err:
            raise ValueError(f"not a valid Python regular expression: {err}") from None
        return value


class IsJson(_Model):
    type: Literal["is-json"]


class JsonSchema(_Model):
    """The output parses as JSON and validates against `value` (JSON Schema draft 2020-12)."""

    type: Literal["json-schema"]
    value: dict[str, Any]

    @field_validator("value", mode="before")
    @classmethod
    def _schema(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError(f"must be a JSON Schema object such as {{type: object}} (got {_show(value)})")
        try:
            Draft202012Validator.check_schema(value)
        except SchemaError as err:
            raise ValueError(
                f"not a valid JSON Schema (draft 2020-12): at {err.json_path}: {err.message}"
            ) from None
        return value


class LlmRubric(_Model):
    """The eval set's judge reads the output and decides whether it meets the rubric in `value`."""

    type: Literal["llm-rubric"]
    value: Text


class MaxLatencyMs(_Model):
    type: Literal["max-latency-ms"]
    value: Positive


class MaxCostUsd(_Model):
    type: Literal["max-cost-usd"]
    value: Positive


_ASSERTION_MODELS = (
    Equals,
    Contains,
    IContains,
    NotContains,
    Regex,
    IsJson,
    JsonSchema,
    LlmRubric,
    MaxLatencyMs,
    MaxCostUsd,
)
_BY_TYPE: dict[str, type[_Model]] = {
    get_args(m.model_fields["type"].annotation)[0]: m for m in _ASSERTION_MODELS
}
ASSERTION_TYPES = tuple(_BY_TYPE)
Assertion = Annotated[
    Equals
    | Contains
    | IContains
    | NotContains
    | Regex
    | IsJson
    | JsonSchema
    | LlmRubric
    | MaxLatencyMs
    | MaxCostUsd,
    Field(discriminator="type"),
]


# -- the file ----------------------------------------------------------------------------------


class JudgeSettings(BaseModel):
    """The gateway route that grades llm-rubric assertions; every other key is a chat parameter."""

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, JudgeParam] = Field(init=False)

    model: Text

    @property
    def params(self) -> dict[str, Any]:
        """Chat parameters sent with every judge request (temperature, max_tokens, ...)."""
        return dict(self.__pydantic_extra__ or {})


class Case(_Model):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str
    vars: dict[str, VarValue] = Field(default_factory=dict)
    """Values of the prompt's variables; exactly the variables the prompt declares."""
    assert_: list[Assertion] = Field(alias="assert")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not CASE_ID.match(value):
            raise ValueError(
                f"{value!r} must be lower-case letters, digits, '-' and '_', starting with a letter or digit"
            )
        return value

    @field_validator("assert_")
    @classmethod
    def _some(cls, value: list) -> list:
        if not value:
            raise ValueError("a case needs at least one assertion")
        return value


class EvalSet(_Model):
    prompt: str
    """Name of the prompt this set evaluates; the file is evals/<prompt>.yaml."""
    description: str | None = None
    threshold: float
    """Share of cases that must pass, 0 < threshold <= 1."""
    repeat: int = 1
    """Runs per case, 1..10; with more than one, a case passes when a strict majority of its runs pass."""
    judge: JudgeSettings | None = None
    cases: list[Case]

    _source: str = PrivateAttr(default="eval set")

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(f"{value!r} is not a prompt name (lower-case letters, digits and '-')")
        return value

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
            raise ValueError(
                f"must be a number greater than 0 and at most 1 (got {_show(value)}): "
                "the share of cases that must pass, e.g. 0.9"
            )
        return value

    @field_validator("repeat", mode="before")
    @classmethod
    def _repeat(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_REPEAT:
            raise ValueError(f"must be a whole number from 1 to {MAX_REPEAT} (got {_show(value)})")
        return value

    @field_validator("cases")
    @classmethod
    def _some(cls, value: list) -> list:
        if not value:
            raise ValueError("an eval set needs at least one case")
        return value

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> EvalSet:
        if not (info.context or {}).get(_RAW_CHECKED):
            problems = _cross_problems(self.model_dump(by_alias=True))
            if problems:
                raise ValueError("\n".join(problems))
        return self

    @property
    def source(self) -> str:
        """The file it was loaded from, as given to load_eval_set (used in problem messages)."""
        return self._source

    @property
    def content_hash(self) -> str:
        """sha256 (hex) of the validated set as canonical JSON: YAML layout and key order do not count."""
        data = json.dumps(
            self.model_dump(mode="json", by_alias=True),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(data.encode()).hexdigest()


def _cross_problems(data: Mapping[str, Any]) -> list[str]:
    """Rules on the raw document (tolerating any shape) that pydantic's field errors cannot express:
    the judge's parameter names, unique case ids, a judge for every llm-rubric."""
    problems, seen = [], {}
    judge = data.get("judge")
    for key in judge if isinstance(judge, Mapping) else []:
        # the prompts' list: a typo such as `temprature` would otherwise reach the gateway unnoticed
        if key != "model" and key not in PARAMETERS:
            near = difflib.get_close_matches(str(key), PARAMETERS, n=1)
            hint = f"did you mean {near[0]!r}?" if near else f"known: {', '.join(PARAMETERS)}"
            problems.append(f"judge.{key}: unknown chat parameter; {hint}")
    cases = data.get("cases")
    if not isinstance(cases, list):
        return problems
    for i, case in enumerate(cases):
        if not isinstance(case, Mapping):
            continue
        case_id = case.get("id")
        if isinstance(case_id, str) and case_id in seen:
            problems.append(
                f"cases[{i}].id: {case_id!r} is already the id of cases[{seen[case_id]}]; ids must be unique"
            )
        elif isinstance(case_id, str):
            seen[case_id] = i
        checks = case.get("assert")
        for j, check in enumerate(checks if isinstance(checks, list) else []):
            if isinstance(check, Mapping) and check.get("type") == "llm-rubric" and data.get("judge") is None:
                problems.append(
                    f"cases[{i}].assert[{j}]: llm-rubric needs a judge; "
                    "add `judge: {model: <gateway route>}` to the eval set"
                )
    return problems


# -- loading -----------------------------------------------------------------------------------


def eval_set_path(prompt_name: str, directory: Path = EVALS_DIR) -> Path:
    return directory / f"{prompt_name}.yaml"


def load_eval_set(path: Path) -> EvalSet:
    """Unreadable files and YAML syntax errors raise llmops.inputs.InputError; content problems
    raise EvalSetError listing all of them. Both exit 2."""
    return parse_eval_set(load_yaml(path, "eval set"), str(path), stem=Path(path).stem)


def parse_eval_set(data: Any, source: str, stem: str | None = None) -> EvalSet:
    """Validate a parsed document; `stem`, when given, is the file name the prompt must match."""
    if not isinstance(data, dict):
        found = "the file is empty" if data is None else f"found {type(data).__name__}"
        raise EvalSetError(
            [f"{source}: an eval set is a YAML mapping with prompt, threshold and cases ({found})"]
        )
    problems: list[str] = []
    eval_set = None
    try:
        eval_set = EvalSet.model_validate(data, context={_RAW_CHECKED: True})
    except ValidationError as err:
        problems += _field_problems(err, data)
    problems += _cross_problems(data)
    prompt = data.get("prompt")
    if stem is not None and isinstance(prompt, str) and prompt != stem:
        problems.append(
            f"prompt: {prompt!r} is not this file's name ({stem}); the eval set of a prompt is "
            f"evals/<prompt>.yaml, so rename the file to {prompt}.yaml or fix the prompt name"
        )
    if problems or eval_set is None:
        raise EvalSetError([f"{source}: {p}" for p in _in_file_order(problems, data)])
    eval_set._source = source
    return eval_set


def _field_problems(err: ValidationError, data: dict) -> list[str]:
    problems = []
    for e in err.errors():
        loc = _without_union_tags(list(e["loc"]))
        kind, msg = e["type"], e["msg"].removeprefix("Value error, ")
        if kind == "extra_forbidden":
            msg = _unknown_key(str(loc[-1]), _allowed_keys(loc[:-1], data))
        elif kind == "missing":
            msg = "required key is missing"
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            loc.append("type")
            tag = (e.get("ctx") or {}).get("tag")
            known = ", ".join(ASSERTION_TYPES)
            if kind == "union_tag_not_found":
                msg = f"required key is missing (one of: {known})"
            else:
                hint = difflib.get_close_matches(str(tag), ASSERTION_TYPES, n=1)
                msg = f"unknown assertion type {tag!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                msg += f"; the types are: {known}"
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            msg = f"must be a mapping (got {_show(e.get('input'))})"
        elif kind == "list_type":
            msg = f"must be a list (got {_show(e.get('input'))})"
        elif kind != "value_error" and not isinstance(e.get("input"), dict | list):
            msg += f" (got {_show(e.get('input'))})"
        where = _path(loc)
        problems += [f"{where}: {line}" if where else line for line in msg.splitlines()]
    return problems


def _in_file_order(problems: list[str], data: dict) -> list[str]:
    """Sorted as the file reads: by top-level key as written (missing keys last), then by index."""
    keys = [*data, *(k for k in EvalSet.model_fields if k not in data)]

    def position(problem: str) -> tuple[int, list[int]]:
        where = problem.split(": ", 1)[0]
        head = re.match(r"[^.\[]*", where).group(0)
        return (
            keys.index(head) if head in keys else len(keys),
            [int(n) for n in re.findall(r"\[(\d+)\]", where)],
        )

    return sorted(problems, key=position)


def _without_union_tags(loc: list) -> list:
    """pydantic puts the matched assertion type after its index (`assert, 0, regex, value`)."""
    for k in range(len(loc) - 2):
        if loc[k] == "assert" and isinstance(loc[k + 1], int) and loc[k + 2] in _BY_TYPE:
            return loc[: k + 2] + loc[k + 3 :]
    return loc


def _allowed_keys(loc: list, data: dict) -> list[str]:
    model: type[BaseModel] = EvalSet
    if len(loc) >= 2:
        model = Case
    if len(loc) == 4:
        check = data["cases"][loc[1]]["assert"][loc[3]]
        model = _BY_TYPE[check["type"]]
    return [f.alias or name for name, f in model.model_fields.items()]


def _unknown_key(key: str, allowed: list[str]) -> str:
    hint = difflib.get_close_matches(key, allowed, n=1)
    return (
        f"unknown key {key!r}"
        + (f" (did you mean {hint[0]!r}?)" if hint else "")
        + f"; allowed: {', '.join(allowed)}"
    )


def _path(loc: list) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# -- against the prompt --------------------------------------------------------------------------


def check_against_prompt(eval_set: EvalSet, prompt: PromptFile | Mapping[str, Any]) -> list[str]:
    """Problems (`<file>: <path>: <message>`) where the eval set does not fit the prompt: another
    prompt's name, or a case whose vars miss a declared variable or set an undeclared one.

    `prompt` is a PromptFile (load_prompt_file) or its canonical mapping (a version's `prompt`)."""
    if isinstance(prompt, PromptFile):
        name, declared = prompt.name, [v.name for v in prompt.variables]
    else:
        name = prompt.get("name")
        declared = [v if isinstance(v, str) else v["name"] for v in prompt.get("variables", [])]
    problems = []
    if name != eval_set.prompt:
        problems.append(f"prompt: the eval set is for {eval_set.prompt!r}, but the prompt is {name!r}")
    listed = ", ".join(declared) or "no variables"
    for i, case in enumerate(eval_set.cases):
        parts = []
        missing = [v for v in declared if v not in case.vars]
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        for key in case.vars:
            if key not in declared:
                hint = difflib.get_close_matches(key, declared, n=1)
                parts.append(f"unknown {key}" + (f" (did you mean {hint[0]}?)" if hint else ""))
        if parts:
            problems.append(f"cases[{i}].vars: {'; '.join(parts)}; prompt {name} declares {listed}")
    return [f"{eval_set.source}: {p}" for p in problems]


__all__ = [
    "ASSERTION_TYPES",
    "EVALS_DIR",
    "Assertion",
    "Case",
    "EvalSet",
    "EvalSetError",
    "JudgeSettings",
    "check_against_prompt",
    "eval_set_path",
    "load_eval_set",
    "parse_eval_set",
]
