"""`llmops verify STACK|PLAN_JSON`: a thin parser over `verify_plan`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from llmops.errors import EXIT_NOT_FOUND, EXIT_OK


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="check the contracts between components on a plan (exit 1 on a broken one)",
        description="Check, on the offline plan of a stack or on a plan.json, that every selector selects "
        "something, every consumed metric has a producer, every wired network path is allowed and routed, "
        "every AWS call and delivery is permitted and what AWS validates at creation is ordered after it.",
    )
    parser.add_argument(
        "target", nargs="?", help="stack name or stack file (planned offline first), or a plan.json"
    )
    parser.add_argument("--json", action="store_true", help='print {"findings": [...]} instead of text')
    parser.add_argument(
        "--build-dir", default="build", help="where a stack's plan is written (default: build)"
    )
    parser.add_argument("--list", action="store_true", help="print the contracts (a Markdown table) and exit")
    parser.set_defaults(func=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    from llmops.verify import contracts_table, format_findings, verify_plan

    if args.list:
        print(contracts_table())
        return EXIT_OK
    if not args.target:
        from llmops.errors import LlmopsError

        raise LlmopsError("verify: give a stack (dev, staging, prod, or a stack file) or a plan.json")
    if args.target.endswith(".json"):
        from llmops.policy import load_plan

        findings = verify_plan(load_plan(args.target))
    else:
        from llmops import plan

        findings = plan.run(args.target, Path(args.build_dir)).findings
    if args.json:
        print(json.dumps({"findings": [f.to_dict() for f in findings]}, indent=2))
    else:
        print(format_findings(findings))
    return EXIT_NOT_FOUND if findings else EXIT_OK
