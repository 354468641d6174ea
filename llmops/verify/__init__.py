"""`llmops verify`: the contracts between components, checked on a recorded plan.

Component tests check each piece against its own assumptions; these contracts check that the
assumptions meet: every selector selects something, every consumed metric has a producer, every
wired network path is allowed and routed, every AWS call is granted, every delivery has its
resource policy, and what AWS validates at creation is ordered after its permission.

Public surface:
    verify_plan(plan: dict) -> list[Finding]
    format_findings(findings) -> str
    contracts_table() -> str
    add_parser(subparsers)
"""

from __future__ import annotations

from typing import Any

from llmops.verify import (  # noqa: F401
    capacity,
    containers,
    freshness,
    gateway_cache,
    metrics,
    network,
    ordering,
    permissions,
    prices,
    selectors,
    tls,
)
from llmops.verify.contracts import CONTRACTS, Contract, Finding
from llmops.verify.model import PlanView


def verify_plan(plan: dict[str, Any]) -> list[Finding]:
    """Every broken contract of the plan, sorted by contract then resource."""
    view = PlanView(plan)
    found = {f for c in CONTRACTS for f in c.check(view)}
    return sorted(found, key=lambda f: (f.contract, f.resource, f.peer, f.message))


def format_findings(findings: list[Finding]) -> str:
    lines = []
    for f in findings:
        lines.append(f"BROKEN    {f.contract}  {f.resource} -> {f.peer}")
        lines.append(f"          {f.message}")
        if f.fix:
            lines.append(f"          fix: {f.fix}")
    lines.append(f"verify: {len(findings)} broken contract(s) of {len(CONTRACTS)} checked")
    return "\n".join(lines)


def contracts_table() -> str:
    """The contracts as a Markdown table (docs/verify.md embeds it; a test keeps it in step)."""
    rows = ["| contract | area | what it checks |", "|---|---|---|"]
    for c in sorted(CONTRACTS, key=lambda c: (c.area, c.id)):
        rows.append(f"| `{c.id}` | {c.area} | {c.description.removeprefix('Checks whether ')} |")
    return "\n".join(rows)


def add_parser(subparsers: Any) -> None:
    from llmops.verify.cli import add_parser as _add

    _add(subparsers)


__all__ = [
    "CONTRACTS",
    "Contract",
    "Finding",
    "add_parser",
    "contracts_table",
    "format_findings",
    "verify_plan",
]
