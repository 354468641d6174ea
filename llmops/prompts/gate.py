"""The eval gate: what a version's latest eval record must show before a protected alias moves to it.

Eval records come in two kinds. `harness` records are what `llmops eval run --record` measured
(stored through `PromptRegistry.record_harness_eval`): per-case results on the eval set named for
the prompt, whose threshold is reviewed in the repository rather than typed on a command line.
`manual` records (`llmops prompts eval-record`; records written before harness records existed,
kind `prompt-eval`, count as manual) annotate a version but never open the gate: whoever types
the score also types the threshold.

The gate recomputes the pass rate from the record's cases instead of trusting the figure the
record states, and applies the registry's `min_pass_rate` on top of the eval set's threshold.
"""

from __future__ import annotations

import math
import re
from typing import Any

HARNESS = "harness"
MANUAL = "manual"
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def harness_problems(record: Any) -> list[str]:
    """What is wrong with the shape of a harness record, each `path: problem`; [] if well-formed."""
    if not isinstance(record, dict):
        return ["the record must be a JSON object"]
    get = record.get
    threshold, rate, cost = get("threshold"), get("pass_rate"), get("cost_usd")
    checks = [
        ("kind", get("kind") == HARNESS, f"must be {HARNESS!r}"),
        ("prompt", isinstance(get("prompt"), str), "must be the prompt's name"),
        ("version", _count(get("version")), "must be a version number"),
        ("content_sha256", isinstance(get("content_sha256"), str), "must be the version's content hash"),
        ("threshold", _number(threshold) and 0 < threshold <= 1, "must be a number above 0, at most 1"),
        ("pass_rate", _number(rate) and 0 <= rate <= 1, "must be a number from 0 to 1"),
        ("passed", isinstance(get("passed"), bool), "must be true or false"),
        ("run_id", isinstance(get("run_id"), str) and bool(get("run_id")), "must be the run's id"),
        ("models", isinstance(get("models"), dict), "must name the models the run used"),
        ("cost_usd", cost is None or _number(cost), "must be a number or null"),
        ("baseline", "baseline" in record, "must be the paired comparison, or null without a baseline"),
    ]
    eval_set = get("eval_set")
    if isinstance(eval_set, dict):
        sha = eval_set.get("sha256")
        checks += [
            ("eval_set.path", isinstance(eval_set.get("path"), str), "must be the eval set's path"),
            ("eval_set.prompt", isinstance(eval_set.get("prompt"), str), "must name the prompt it evaluates"),
            (
                "eval_set.sha256",
                isinstance(sha, str) and bool(SHA256_HEX.match(sha)),
                "must be a sha256 digest",
            ),
            ("eval_set.repeat", _count(eval_set.get("repeat")), "must be the runs per case"),
            ("eval_set.cases", _count(eval_set.get("cases")), "must be the number of cases in the set"),
            (
                "eval_set.threshold",
                eval_set.get("threshold") == threshold,
                "must equal the record's threshold",
            ),
        ]
    else:
        checks.append(
            ("eval_set", False, "must describe the set (path, prompt, sha256, threshold, repeat, cases)")
        )
    baseline = get("baseline")
    if baseline is not None:
        ok = isinstance(baseline, dict) and isinstance(baseline.get("regressed"), bool)
        checks.append(("baseline.regressed", ok, "must be true or false"))
    cases = get("cases")
    checks.append(("cases", isinstance(cases, list) and bool(cases), "must list the result of every case"))
    seen: set[str] = set()
    for i, case in enumerate(cases if isinstance(cases, list) else []):
        case = case if isinstance(case, dict) else {}
        case_id = case.get("id")
        checks += [
            (f"cases[{i}].id", isinstance(case_id, str) and case_id not in seen, "must be a case id, once"),
            (f"cases[{i}].passed", isinstance(case.get("passed"), bool), "must be true or false"),
        ]
        seen.add(str(case_id))
    return [f"{path}: {what}" for path, ok, what in checks if not ok]


def gate_refusals(
    record: dict[str, Any] | None,
    *,
    name: str,
    version: int,
    content_hash: str,
    min_pass_rate: float | None,
    eval_set_sha256: str | None = None,
    rolled_back_at: str | None = None,
) -> list[str]:
    """Why `record` (the version's latest eval record) cannot open a protected alias; [] if it can.

    `rolled_back_at`: when an alias was last rolled back away from this version (the record must
    be newer). `eval_set_sha256`: the eval set the caller requires the run to have used."""
    fresh = f"run `llmops eval run {name}:{version} --record`"
    if record is None:
        return [f"version {version} has no recorded eval; {fresh}"]
    label = f"eval record {record.get('id')} ({record.get('recorded_at')}, {record.get('recorded_by')})"
    if record.get("kind") != HARNESS:
        return [
            f"its latest {label} was recorded by hand (`eval-record`), which annotates a version but "
            f"cannot open a protected alias; {fresh}"
        ]
    problems = harness_problems(record)
    if problems:
        return [f"its latest {label} is malformed ({'; '.join(problems)}); {fresh}"]
    if (record["prompt"], record["version"]) != (name, version):
        return [f"its latest {label} is for {record['prompt']}:{record['version']}, not {name}:{version}"]

    out = []
    eval_set = record["eval_set"]
    if eval_set["prompt"] != name:
        out.append(f"the run used the eval set of {eval_set['prompt']!r}, not the one named for {name}")
    if record["content_sha256"] != content_hash:
        out.append(
            f"the run evaluated content {record['content_sha256']}, but version {version} is {content_hash}"
        )
    if eval_set_sha256 is not None and eval_set["sha256"] != eval_set_sha256:
        out.append(
            f"the run used eval set {eval_set['sha256'][:12]}… ({eval_set['path']}), "
            f"not the one required ({eval_set_sha256[:12]}…)"
        )
    if rolled_back_at is not None and not str(record["recorded_at"]) > rolled_back_at:
        out.append(
            f"an alias was rolled back away from version {version} at {rolled_back_at}, after this eval "
            f"was recorded: a withdrawn version returns only through a fresh passing eval"
        )
    cases = record["cases"]
    if len(cases) != eval_set["cases"]:
        out.append(f"the run covers {len(cases)} of the eval set's {eval_set['cases']} cases")
    passed = sum(1 for case in cases if case["passed"])
    floor = min_pass_rate if min_pass_rate is not None else 0.0
    required = max(record["threshold"], floor)
    if passed / len(cases) < required:
        why = "the registry's min_pass_rate" if floor > record["threshold"] else "the eval set's threshold"
        out.append(
            f"pass rate {passed / len(cases):.4g} ({passed} of {len(cases)} cases, recomputed from the "
            f"record's cases) is below {required} ({why})"
        )
    if not record["passed"]:
        out.append("the run itself did not pass (passed: false)")
    baseline = record["baseline"]
    if baseline is not None and baseline["regressed"]:
        worse = ", ".join(map(str, baseline.get("worsened") or [])) or "?"
        out.append(
            f"it regressed against {baseline.get('prompt', name)}:{baseline.get('version')} "
            f"(p = {baseline.get('p_value')}; worse on {worse})"
        )
    if out:
        out[-1] += f"; {fresh}"
    return out


def eval_summary(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """What an alias move keeps of the eval it was made on (the audit shows it)."""
    if record is None:
        return None
    keys = ("id", "kind", "passed", "threshold", "recorded_by", "recorded_at")
    out = {k: record.get(k) for k in keys}
    if record.get("kind") == HARNESS:
        baseline = record.get("baseline")
        eval_set = record.get("eval_set")
        out.update(
            pass_rate=record.get("pass_rate"),
            content_hash=record.get("content_sha256"),
            eval_set_sha256=eval_set.get("sha256") if isinstance(eval_set, dict) else None,
            regressed=bool(baseline.get("regressed")) if isinstance(baseline, dict) else False,
            run_id=record.get("run_id"),
        )
    else:
        out.update(kind=MANUAL, score=record.get("score"), content_hash=record.get("content_hash"))
    return out
