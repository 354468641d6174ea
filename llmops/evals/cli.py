"""Eval sets of prompts: `llmops eval run` (through the gateway) and `llmops eval coverage`.

`llmops eval run PROMPT_REF` resolves NAME, NAME@ALIAS or NAME:VERSION in the prompt registry
(--bucket, default $LLMOPS_PROMPT_BUCKET; boto3's settings apply), runs the eval set
(evals/NAME.yaml unless --eval-set) through the gateway ($LLMOPS_GATEWAY_URL, $LLMOPS_GATEWAY_KEY,
$LLMOPS_GATEWAY_CA_CERT), compares with the baseline (--baseline, default the prompt's
`production` alias when it points elsewhere) and, with --record, stores the result as the
version's eval record. Exit codes: 0 passed; 1 prompt, version or alias not found; 2 invalid input
(eval set, arguments, gateway settings, registry unreachable); 3 below the threshold, a significant
regression, or stopped by the cost cap.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from llmops.errors import EXIT_CONFLICT, EXIT_OK, LlmopsError
from llmops.evals import coverage, report
from llmops.evals.evalset import EvalSetError, check_against_prompt, eval_set_path, load_eval_set
from llmops.evals.gateway import Gateway
from llmops.evals.runner import DEFAULT_CONCURRENCY, ResponseCache, Runner, Target, build_record
from llmops.prompts.cli import BUCKET_ENV, registry
from llmops.prompts.layout import check_name
from llmops.prompts.registry import REF

BASELINE_ALIAS = "production"
MAX_CONCURRENCY = 32


def run(args: argparse.Namespace) -> int:
    try:
        record, stored = _run(args)
    except LlmopsError as err:
        if args.json:
            print(json.dumps({"error": {"message": str(err), "exit_code": err.exit_code}}, indent=2))
        raise
    if args.json:
        print(json.dumps({**record, "recorded": stored}, indent=2, ensure_ascii=False))
    else:
        print(report.text(record))
        if stored is not None:
            print(f"recorded eval {stored.get('id', '')} for {record['prompt']}:{record['version']}")
        elif args.record:
            print("not recorded: the run is incomplete")
    return EXIT_OK if record["passed"] else EXIT_CONFLICT


def _run(args: argparse.Namespace) -> tuple[dict, dict | None]:
    """Everything that can be checked without the gateway is checked before the first call."""
    if args.max_cost is not None and not (math.isfinite(args.max_cost) and args.max_cost > 0):
        raise LlmopsError(f"--max-cost must be a positive number of USD, got {args.max_cost}")
    if not 1 <= args.concurrency <= MAX_CONCURRENCY:
        raise LlmopsError(f"--concurrency must be from 1 to {MAX_CONCURRENCY}, got {args.concurrency}")
    if args.report is not None:
        _check_writable(args.report)
    match = REF.match(args.ref)
    if not match:
        raise LlmopsError(f"{args.ref!r} is not NAME, NAME@ALIAS or NAME:VERSION")
    name = check_name(match["name"])
    path = args.eval_set or eval_set_path(name)
    if args.eval_set is None and not path.exists():
        raise LlmopsError(
            f"{path}: no eval set for prompt {name}; write one (docs/evals.md) or pass --eval-set"
        )
    eval_set = load_eval_set(path)
    gateway = Gateway.from_env()

    reg = registry(args)
    candidate = Target.from_record("candidate", reg.get(args.ref))
    baseline = None
    if args.baseline is not None:
        baseline = Target.from_record("baseline", reg.get(args.baseline))
        if (baseline.name, baseline.version) == (candidate.name, candidate.version):
            raise LlmopsError(f"--baseline {args.baseline} is the candidate itself ({candidate.ref})")
    else:
        pointer = reg.alias_record(name, BASELINE_ALIAS)
        if pointer is not None and pointer.data["version"] != candidate.version:
            baseline = Target.from_record("baseline", reg.get(f"{name}@{BASELINE_ALIAS}"))
    problems = check_against_prompt(eval_set, candidate.prompt)
    if baseline is not None:
        problems += _baseline_problems(eval_set, baseline)
    if problems:
        raise EvalSetError(problems)

    cache = None if args.no_cache else ResponseCache.default()
    runner = Runner(gateway, concurrency=args.concurrency, max_cost=args.max_cost, cache=cache)
    outcome = runner.run(eval_set, candidate, baseline)
    record = build_record(eval_set, path, candidate, baseline, outcome)
    body = report.markdown(record)
    if args.report is not None:
        try:
            args.report.write_text(body, encoding="utf-8")
        except OSError as err:
            raise LlmopsError(f"{args.report}: cannot write the report ({err.strerror})") from None
    stored = None
    if args.record and record["complete"]:
        stored = reg.record_harness_eval(
            candidate.name, candidate.version, record, report=body.encode(), report_ext="md"
        )
    return record, stored


def _baseline_problems(eval_set, baseline: Target) -> list[str]:
    """The baseline is rendered with the variables it declares, so a case must give all of them
    (a candidate may add variables; then the cases give them and the baseline ignores them)."""
    declared = [v.name for v in baseline.prompt.variables]
    problems = []
    for i, case in enumerate(eval_set.cases):
        missing = [v for v in declared if v not in case.vars]
        if missing:
            problems.append(
                f"{eval_set.source}: cases[{i}].vars: missing {', '.join(missing)}, which the "
                f"baseline {baseline.ref} declares"
            )
    return problems


def _check_writable(path: Path) -> None:
    """A report that cannot be written is bad input, found before any money is spent."""
    if path.is_dir():
        raise LlmopsError(f"{path}: is a directory; pass the report file to write")
    if not path.parent.is_dir():
        raise LlmopsError(f"{path}: no such directory {path.parent}; create it or pass another --report path")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="eval sets of prompts", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="eval_command", required=True, parser_class=type(parser))
    help_text = "run a prompt version's eval set through the gateway, against its baseline"
    p = sub.add_parser("run", help=help_text, description=help_text)
    p.set_defaults(func=run)
    p.add_argument("ref", metavar="PROMPT_REF", help="NAME (latest), NAME@ALIAS or NAME:VERSION")
    p.add_argument(
        "--baseline", metavar="PROMPT_REF", help=f"compare with this version (default: @{BASELINE_ALIAS})"
    )
    p.add_argument("--eval-set", type=Path, metavar="FILE", help="the eval set (default: evals/NAME.yaml)")
    p.add_argument("--record", action="store_true", help="store the result as the version's eval record")
    p.add_argument("--max-cost", type=float, metavar="USD", help="stop before spending more than this")
    p.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"calls in flight at once (default {DEFAULT_CONCURRENCY})",
    )
    p.add_argument("--no-cache", action="store_true", help="ask the gateway even for answers in the cache")
    p.add_argument(
        "--report", type=Path, metavar="FILE", help="write the Markdown report (a PR comment) here"
    )
    p.add_argument("--bucket", help=f"the prompt bucket (default: ${BUCKET_ENV})")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    coverage.register(sub)
