"""Checking one model output against one assertion of an eval set (llmops/evals/evalset.py).

    check(assertion, output, latency_ms=..., cost_usd=..., judge=...) -> AssertionResult

Each result carries a short sentence (`detail`) that reports show next to the case, so a reviewer
sees why a case failed without opening the raw output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from llmops.evals.evalset import Assertion

Judge = Callable[[str, str], tuple[bool, str]]
"""judge(rubric, output) -> (passed, reason): grades an llm-rubric assertion through the gateway."""

_SHOWN = 60  # characters of an output or value quoted in a detail
_REASON = 200  # characters of the judge's reason kept in a detail


@dataclass(frozen=True)
class AssertionResult:
    type: str
    passed: bool
    detail: str


def check(
    assertion: Assertion,
    output: str,
    *,
    latency_ms: float,
    cost_usd: float | None,
    judge: Judge | None,
) -> AssertionResult:
    """Exceptions raised by `judge` (the gateway unreachable, ...) propagate to the caller."""
    kind, value = assertion.type, getattr(assertion, "value", None)
    if kind == "equals":
        expected, actual = value.strip(), output.strip()
        passed = actual == expected
        detail = (
            f"output is {_quote(expected)}"
            if passed
            else f"expected {_quote(expected)}, got {_quote(actual)}"
        )
    elif kind in ("contains", "icontains", "not-contains"):
        folded = kind == "icontains"
        at = output.casefold().find(value.casefold()) if folded else output.find(value)
        passed = (at >= 0) != (kind == "not-contains")
        case = " (ignoring case)" if folded else ""
        detail = (
            f"output contains {_quote(value)}{case} at character {at}"
            if at >= 0
            else f"output does not contain {_quote(value)}{case}"
        )
    elif kind == "regex":
        match = re.search(value, output)
        passed = match is not None
        pattern = _clip(value, _SHOWN)
        detail = f"/{pattern}/ matches {_quote(match.group(0))}" if match else f"no match for /{pattern}/"
    elif kind in ("is-json", "json-schema"):
        passed, detail = _json(output, value)
    elif kind == "llm-rubric":
        if judge is None:
            passed, detail = False, "no judge to grade the rubric; the eval set needs a judge"
        else:
            passed, reason = judge(value, output)
            verdict = "the judge passed it" if passed else "the judge failed it"
            detail = f"{verdict}: {_clip(reason, _REASON)}" if reason.strip() else verdict
    elif kind == "max-latency-ms":
        passed = latency_ms <= value
        detail = f"took {latency_ms:.0f} ms, {'within' if passed else 'over'} the {value:g} ms limit"
    elif kind == "max-cost-usd":
        if cost_usd is None:
            passed = False
            detail = f"cost unknown (the gateway reported none), so the {value:g} USD limit cannot be checked"
        else:
            passed = cost_usd <= value
            detail = f"cost {cost_usd:.6g} USD, {'within' if passed else 'over'} the {value:g} USD limit"
    else:  # the eval set's validation admits only the types above
        raise ValueError(f"unknown assertion type {kind!r}")
    return AssertionResult(type=kind, passed=passed, detail=detail)


def _json(output: str, schema: dict | None) -> tuple[bool, str]:
    try:
        document = json.loads(output)
    except json.JSONDecodeError as err:
        return False, f"output is not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})"
    if schema is None:
        return True, "output is valid JSON"
    # Formats (date, email, ...) are checked too: a schema saying `format: date` means it.
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = list(validator.iter_errors(document))
    if not errors:
        return True, "output matches the schema"
    error = best_match(errors)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return (
        False,
        f"output does not match the schema: at {error.json_path}: {_clip(error.message, _SHOWN * 2)}{more}",
    )


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _quote(text: str) -> str:
    # repr, not _clip: a difference in inner whitespace or a newline must stay visible.
    return repr(text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "...")


__all__ = ["AssertionResult", "Judge", "check"]
