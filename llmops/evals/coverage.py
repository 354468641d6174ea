"""`llmops eval coverage SPEND_LOG_FILE...`: the share of gateway requests covered by regression tests.

A request is covered when the prompt version it names (the `prompt_name` and `prompt_version` that
`PromptClient` puts in the request metadata; LiteLLM logs them under `metadata.requester_metadata`)
has, as its latest eval record, a passing harness run (`llmops eval run --record`): the rule the
spend aggregator applies for its EvalCoveredRequests metric (`aggregate.covers`). Requests that name
no prompt version are not covered; the eval harness's own requests (`llmops_eval: true`) are not
counted. Spend-log files are read by the aggregator's core, as `llmops cost aggregate` reads them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lambdas.spend_aggregator.aggregate import Aggregator, covers
from llmops.cost import check_spend_logs, read_spend_log
from llmops.errors import EXIT_OK, EXIT_USAGE, LlmopsError
from llmops.prompts.cli import BUCKET_ENV, registry

NO_PROMPT = "(no prompt metadata)"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds `coverage` to the `llmops eval` subcommands."""
    help_text = "per team, the share of gateway requests whose prompt version passed its eval"
    p = subparsers.add_parser(
        "coverage",
        help=help_text,
        description=(
            f"{help_text[0].upper()}{help_text[1:]}, from LiteLLM spend-log files (.json: one record; "
            ".jsonl: one per line; gzip of either), looking each prompt version up once in the registry. "
            "Malformed lines are reported on stderr as FILE:LINE: reason and skipped; the exit code is "
            "then 2. A missing file exits 1."
        ),
    )
    p.add_argument("files", nargs="+", metavar="SPEND_LOG_FILE", type=Path, help="spend-log file(s)")
    p.add_argument("--bucket", help=f"the prompt bucket (default: ${BUCKET_ENV})")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        aggregator, malformed = read_spend_logs(list(args.files), sys.stderr)
        versions = sorted(aggregator.prompt_versions())
        verdicts: dict[tuple[str, int], bool] = {}
        if versions:  # only then is the registry needed
            reg = registry(args)
            verdicts = {(n, v): covers(reg.latest_eval(n, v), n, v) for n, v in versions}
    except LlmopsError as err:
        if args.json:
            print(json.dumps({"error": {"message": str(err), "exit_code": err.exit_code}}, indent=2))
        raise
    report = coverage_report(aggregator, lambda name, version: verdicts[(name, version)])
    report["malformed_lines"] = malformed
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else text(report))
    if malformed:
        print(f"{malformed} malformed line(s) skipped", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def read_spend_logs(files: list[Path], err) -> tuple[Aggregator, int]:
    """All files through one Aggregator: (the aggregator, malformed lines and unreadable files)."""
    check_spend_logs(files)
    aggregator = Aggregator()
    unreadable = sum(not read_spend_log(path, aggregator, err) for path in files)
    return aggregator, unreadable + aggregator.malformed


def coverage_report(aggregator: Aggregator, covered: Callable[[str, int], bool]) -> dict[str, Any]:
    """Per team: requests counted, covered, the share, and the uncovered prompt versions (most
    requests first); and the totals."""
    teams: dict[str, dict[str, Any]] = {}
    for (team, name, version), (requests, _) in aggregator.prompts.items():
        entry = teams.setdefault(team, {"team": team, "requests": 0, "covered": 0, "uncovered": []})
        entry["requests"] += requests
        if name is not None and version is not None and covered(name, version):
            entry["covered"] += requests
        else:
            entry["uncovered"].append({"prompt": name, "version": version, "requests": requests})
    for entry in teams.values():
        entry["share"] = entry["covered"] / entry["requests"]
        entry["uncovered"].sort(key=lambda u: (-u["requests"], u["prompt"] or "", u["version"] or 0))
    requests = sum(t["requests"] for t in teams.values())
    covered_requests = sum(t["covered"] for t in teams.values())
    return {
        "teams": [teams[t] for t in sorted(teams)],
        "total": {
            "requests": requests,
            "covered": covered_requests,
            "share": covered_requests / requests if requests else None,
        },
        "eval_requests": aggregator.eval_requests,
    }


def _version_label(item: dict[str, Any]) -> str:
    if item["prompt"] is None:
        return NO_PROMPT
    return (
        f"{item['prompt']}:{item['version']}"
        if item["version"] is not None
        else f"{item['prompt']} (no version)"
    )


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def text(report: dict[str, Any]) -> str:
    rows = [("team", "requests", "covered", "share")]
    rows += [(t["team"], str(t["requests"]), str(t["covered"]), _share(t["share"])) for t in report["teams"]]
    total = report["total"]
    rows.append(("all teams", str(total["requests"]), str(total["covered"]), _share(total["share"])))
    width = max(len(r[0]) for r in rows)
    lines = [f"{r[0]:<{width}}  {r[1]:>9}  {r[2]:>9}  {r[3]:>7}" for r in rows]
    for team in report["teams"]:
        if team["uncovered"]:
            lines.append(f"\nuncovered, {team['team']}:")
            lines += [f"  {_version_label(u):<50} {u['requests']:>9}" for u in team["uncovered"]]
    lines.append(f"\neval traffic not counted: {report['eval_requests']} request(s)")
    return "\n".join(lines)
