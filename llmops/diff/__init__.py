"""`llmops diff BASE_PLAN HEAD_PLAN`: what a pull request changes, from two offline plans.

Compares the plan.json of the base branch with the one of the pull request's head, without
credentials: resources added, changed (input paths, before and after; secrets stay masked) and
removed per platform component, with protect flips, likely replacements and changes to protected
resources called out; the monthly cost at minimum and maximum scale; policy violations and broken
contracts that appear or disappear; new internet exposure. Text, `--markdown` (a pull-request
comment under GitHub's size limit) or `--json`.

Exit codes: 0 the diff was produced; 1 the head brings a mandatory policy violation or a broken
contract the base did not have; 2 bad input (a missing or invalid plan, plans of two stacks).

Layout: resources.py (matching and value diffs), replace.py (paths that likely force a
replacement), checks.py (cost, policy, contracts, exposure), model.py (PlanDiff, diff_plans),
render.py (text, JSON), markdown.py (the comment), cli.py (the parser).
"""

from __future__ import annotations

from typing import Any


def add_parser(subparsers: Any) -> None:
    from llmops.diff.cli import add_parser as _add

    _add(subparsers)


def diff_plans(base: dict[str, Any], head: dict[str, Any], allow_stack_change: bool = False):
    """The PlanDiff of two plan documents (see llmops.diff.model.diff_plans)."""
    from llmops.diff.model import diff_plans as _diff

    return _diff(base, head, allow_stack_change)


__all__ = ["add_parser", "diff_plans"]
