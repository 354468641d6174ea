"""`llmops policy`: the CrossGuard pack evaluated offline on plan.json files.

Public surface for other commands (`llmops plan` calls these):
    evaluate_plan(plan, config=None) -> list[Violation]
    format_violations(violations, classification=None) -> str   (with each rule's fix and setting)
    infer_config(plan) -> (config, source)                  (the plan's settings, else its tags)
    pack_config(classification, allowed_regions) -> dict   (a --policy-pack-config document)
    stack_config(stack, classification, allowed_regions)  (policies/config.<stack>.json if it fits)
    load_plan(path) -> dict                                 (exit 2 on an invalid plan)
"""

from __future__ import annotations

from typing import Any

from llmops.policy.planfile import load_plan, validate_plan

# The engine imports pulumi_policy (and with it pulumi and grpc, ~0.7 s): loaded on first use only,
# so other `llmops` commands do not pay for it.
_ENGINE = {"Violation", "evaluate_plan", "format_violations", "infer_config", "pack"}


def __getattr__(name: str) -> Any:
    if name in _ENGINE:
        from llmops.policy import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'llmops.policy' has no attribute {name!r}")


def pack_config(
    classification: str,
    allowed_regions: list[str] | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    from llmops.policy.engine import pack

    return pack().pack_config(classification, allowed_regions, overrides)


def stack_config(stack: str, classification: str, allowed_regions: list[str] | None = None) -> dict[str, Any]:
    """The pack config for a stack: policies/config.<stack>.json when it exists and is for the stack's
    classification (it may carry per-environment overrides), with a non-empty `allowed_regions`
    replacing the file's, so the stack's own residency setting wins over a stale file; else the
    generated default for the classification and regions."""
    from llmops.policy.engine import stack_config_source

    return stack_config_source(stack, classification, allowed_regions)[0]


def add_parser(subparsers: Any) -> None:
    from llmops.policy.cli import add_parser as _add

    _add(subparsers)


__all__ = [
    "Violation",
    "add_parser",
    "evaluate_plan",
    "format_violations",
    "infer_config",
    "load_plan",
    "pack_config",
    "stack_config",
    "validate_plan",
]
