"""What `llmops eval run` prints and posts, from the eval record (llmops/evals/runner.py).

    text(record) -> str         the terminal summary
    markdown(record) -> str     a pull-request comment: summary first, then the cases; under
                                MAX_BYTES (GitHub refuses comments of 65,536 characters or more),
                                truncating case rows, never the summary
    reasons(record) -> [str]    why a record did not pass (empty when it passed)

The Markdown starts with MARKER (`<!-- llmops-eval:NAME -->`) so a workflow can find and update
its own comment. Model outputs are untrusted text: they are clipped and HTML-escaped in cells.
"""

from __future__ import annotations

import html
from typing import Any

from llmops.evals.stats import ALPHA

MARKER = "<!-- llmops-eval:{name} -->"
MAX_BYTES = 65_536
_DETAIL_CHARS = 160
_OUTPUT_CHARS = 80


def reasons(record: dict[str, Any]) -> list[str]:
    out = []
    if not record["complete"]:
        out.append(
            f"incomplete: the cost cap ({_usd(record['max_cost_usd'])}) stopped the run with "
            f"{len(record['not_run'])} case(s) not run"
        )
    if record["pass_rate"] < record["threshold"]:
        out.append(
            f"pass rate {_pct(record['pass_rate'])} is below the threshold {_pct(record['threshold'])}"
        )
    baseline = record["baseline"]
    if baseline and baseline["regressed"]:
        out.append(
            f"significant regression against {_ref(baseline)}: {len(baseline['worsened'])} case(s) "
            f"worsened, {len(baseline['improved'])} improved, p = {baseline['p_value']:.4g} < {ALPHA}"
        )
    return out


def text(record: dict[str, Any]) -> str:
    lines = [_headline(record), *(f"  {line}" for line in _facts(record, markdown=False))]
    failed = [c for c in record["cases"] if not c["passed"] and not c.get("not_run")]
    if failed:
        lines.append("failed cases:")
        lines += [f"  {c['id']} ({_runs_passed(c)}): {_failure(c)}" for c in failed]
    if record["not_run"]:
        lines.append(f"not run: {', '.join(record['not_run'])}")
    verdict = reasons(record)
    lines.append("result: PASSED" if not verdict else "result: FAILED: " + "; ".join(verdict))
    return "\n".join(lines)


def markdown(record: dict[str, Any], limit: int = MAX_BYTES) -> str:
    verdict = reasons(record)
    head = [
        MARKER.format(name=record["prompt"]),
        f"### {'✅ passed' if not verdict else '❌ failed'}: eval of `{_ref(record)}`",
        "",
        *(f"- {line}" for line in _facts(record, markdown=True)),
        *(f"- **{reason}**" for reason in verdict),
        "",
    ]
    baseline = record["baseline"]
    columns = ["case", "candidate", *(["baseline", "delta"] if baseline else []), "details"]
    table = [
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    rows = [_row(case, baseline) for case in sorted(record["cases"], key=lambda c: _order(c, baseline))]
    out = "\n".join(head + table) + "\n"
    size = len(out.encode())
    for shown, row in enumerate(rows):
        rest = len(rows) - shown
        note = f"\n_{rest} more case(s) not shown: the report stays under {limit:,} bytes; see `--json`._\n"
        line = row + "\n"
        if size + len(line.encode()) + len(note.encode()) >= limit:
            return out + note
        out += line
        size += len(line.encode())
    return out


def _headline(record: dict[str, Any]) -> str:
    passed = sum(c["passed"] for c in record["cases"])
    return (
        f"{_ref(record)}: {passed}/{len(record['cases'])} cases passed ({_pct(record['pass_rate'])}), "
        f"threshold {_pct(record['threshold'])}"
    )


def _facts(record: dict[str, Any], markdown: bool) -> list[str]:
    code = (lambda s: f"`{s}`") if markdown else (lambda s: s)
    passed = sum(c["passed"] for c in record["cases"])
    eval_set = record["eval_set"]
    facts = []
    if markdown:
        facts.append(
            f"pass rate **{passed}/{len(record['cases'])} ({_pct(record['pass_rate'])})**, "
            f"threshold {_pct(record['threshold'])}"
        )
    baseline = record["baseline"]
    if baseline:
        verdict = "significant regression" if baseline["regressed"] else "no significant regression"
        facts.append(
            f"baseline {code(_ref(baseline))}: {_pct(baseline['pass_rate'])}; "
            f"{len(baseline['worsened'])} worsened, {len(baseline['improved'])} improved; "
            f"exact one-sided sign test p = {baseline['p_value']:.4g}: {verdict}"
        )
    else:
        facts.append("baseline: none (no production alias, or it is this version)")
    calls = record["calls"]
    cap = f" of a {_usd(record['max_cost_usd'])} cap" if record["max_cost_usd"] is not None else ""
    facts.append(
        f"cost {_usd(record['cost_usd'])}{cap} ({calls['gateway']} gateway call(s), "
        f"{calls['cached']} answer(s) from the cache)"
    )
    models = record["models"]
    judge = f", judge {code(models['judge'])}" if models["judge"] else ""
    baseline_model = f", baseline {code(models['baseline'])}" if models["baseline"] else ""
    facts.append(f"models: candidate {code(models['candidate'])}{baseline_model}{judge}")
    facts.append(
        f"eval set {code(eval_set['path'])} (sha256 {code(eval_set['sha256'][:12])}), "
        f"repeat {eval_set['repeat']}; run {code(record['run_id'])}"
    )
    return facts


def _ref(record: dict[str, Any]) -> str:
    alias = f" ({record['alias']})" if record.get("alias") else ""
    return f"{record['prompt']}:{record['version']}{alias}"


def _usd(amount: float) -> str:
    return "$" + (f"{amount:.8f}".rstrip("0").rstrip(".") or "0")


def _pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def _runs_passed(case: dict[str, Any]) -> str:
    return f"{sum(r['passed'] for r in case['runs'])}/{len(case['runs'])} runs passed"


def _failure(case: dict[str, Any]) -> str:
    """The failed assertions of the case's first failed run, and its output."""
    run = next((r for r in case["runs"] if not r["passed"]), None)
    if run is None:
        return ""
    failed = "; ".join(f"{a['type']}: {a['detail']}" for a in run["assertions"] if not a["passed"])
    return _clip(failed, _DETAIL_CHARS)


def _order(case: dict[str, Any], baseline: dict[str, Any] | None) -> int:
    """Worsened first, then other failures, improvements, cases not run, passes."""
    if baseline and case["id"] in baseline["worsened"]:
        return 0
    if not case["passed"] and not case.get("not_run"):
        return 1
    if baseline and case["id"] in baseline["improved"]:
        return 2
    return 3 if case.get("not_run") else 4


def _row(case: dict[str, Any], baseline: dict[str, Any] | None) -> str:
    if case.get("not_run"):
        cells = [f"`{case['id']}`", "not run", *(["", ""] if baseline else []), "stopped by the cost cap"]
        return "| " + " | ".join(cells) + " |"
    runs = case["runs"]
    mine = sum(r["passed"] for r in runs) / len(runs)
    cells = [f"`{case['id']}`", _mark(case["passed"], runs)]
    if baseline:
        theirs = baseline["cases"].get(case["id"])
        if theirs is None:
            cells += ["not run", ""]
        else:
            share = theirs["passes"] / theirs["runs"]
            delta = "worsened" if case["id"] in baseline["worsened"] else ""
            delta = "improved" if case["id"] in baseline["improved"] else delta
            if len(runs) > 1 and share != mine:
                delta = f"{delta} ({mine - share:+.2f})".strip()
            cells += [f"{'✅' if theirs['passed'] else '❌'} {theirs['passes']}/{theirs['runs']}", delta]
    detail = _failure(case)
    output = _clip(runs[0]["output"], _OUTPUT_CHARS)
    cells.append(_cell(f"{detail} — output: {output!r}" if detail else f"output: {output!r}"))
    return "| " + " | ".join(cells) + " |"


def _mark(passed: bool, runs: list[dict[str, Any]]) -> str:
    return f"{'✅' if passed else '❌'} {sum(r['passed'] for r in runs)}/{len(runs)}"


def _clip(value: str, limit: int) -> str:
    value = " ".join(value.split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _cell(value: str) -> str:
    """Escaped for a table cell: no HTML from the model, no column breaks, no newlines."""
    return html.escape(value, quote=False).replace("|", "\\|").replace("`", "'")
