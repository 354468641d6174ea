"""`llmops diff BASE_PLAN HEAD_PLAN [--markdown|--json] [--allow-stack-change]`: a thin parser."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from llmops.errors import EXIT_NOT_FOUND, EXIT_OK


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "diff",
        help="compare two plan.json files (a pull request's base and head): resources, cost, policy, "
        "contracts, exposure (exit 1 when the head brings a mandatory violation or a broken contract)",
        description="Compare the plan.json of a base branch with the one of a pull request's head, "
        "offline: resources added, changed and removed per component, the monthly cost delta, policy "
        "violations and broken contracts that appear or disappear, new internet exposure. Exit 0 when "
        "the diff was produced, 1 when the head introduces a mandatory policy violation or a broken "
        "contract, 2 on bad input.",
    )
    parser.add_argument(
        "base", type=Path, metavar="BASE_PLAN", help="plan.json of the base (build/STACK/plan.json)"
    )
    parser.add_argument("head", type=Path, metavar="HEAD_PLAN", help="plan.json of the head")
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--markdown",
        action="store_true",
        help="a pull-request comment: starts with <!-- llmops-diff -->, under GitHub's 65,536 characters",
    )
    output.add_argument("--json", action="store_true", help="everything, for machines")
    parser.add_argument(
        "--limit",
        type=_positive,
        default=None,
        metavar="BYTES",
        help="with --markdown: stay under this many bytes instead of 65,536 (the preview workflow "
        "puts three stacks in one comment)",
    )
    parser.add_argument(
        "--allow-stack-change", action="store_true", help="compare plans of two different stacks"
    )
    parser.set_defaults(func=run_diff)


def _positive(text: str) -> int:
    from llmops.diff.markdown import LIMIT

    if not text.isdigit() or not 4096 <= int(text) <= LIMIT:
        raise argparse.ArgumentTypeError(f"{text!r}: a number of bytes from 4096 to {LIMIT}")
    return int(text)


def run_diff(args: argparse.Namespace) -> int:
    from llmops.diff.markdown import LIMIT, markdown
    from llmops.diff.model import diff_plans
    from llmops.diff.render import as_json, text
    from llmops.policy import load_plan

    base, head = load_plan(args.base), load_plan(args.head)
    diff = diff_plans(base, head, args.allow_stack_change)
    print(
        markdown(diff, args.limit or LIMIT) if args.markdown else as_json(diff) if args.json else text(diff),
        end="" if args.markdown else "\n",
    )
    if not diff.failing:
        return EXIT_OK
    print(
        f"error: the head introduces {len(diff.policy.new_mandatory)} mandatory policy violation(s) and "
        f"{len(diff.contracts.new)} broken contract(s) the base did not have",
        file=sys.stderr,
    )
    return EXIT_NOT_FOUND
