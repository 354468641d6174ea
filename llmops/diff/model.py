"""The diff of two plan documents: resources, cost, policy, contracts, exposure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmops.diff.checks import (
    CostDelta,
    Moved,
    PolicyDelta,
    contract_delta,
    cost_delta,
    exposure_delta,
    policy_delta,
)
from llmops.diff.resources import ResourceDiff, compare_resources
from llmops.errors import EXIT_USAGE, LlmopsError


@dataclass
class PlanDiff:
    base_stack: str
    head_stack: str
    base_resources: int
    head_resources: int
    resources: list[ResourceDiff]
    cost: CostDelta
    policy: PolicyDelta
    contracts: Moved
    exposure: Moved

    def count(self, action: str) -> int:
        return sum(d.action == action for d in self.resources)

    @property
    def attention(self) -> list[ResourceDiff]:
        """Resources with something a reviewer must not miss (protect, replacement, URN, secrets)."""
        return [d for d in self.resources if d.attention]

    @property
    def failing(self) -> bool:
        """The head brings a mandatory violation or a broken contract the base did not have."""
        return bool(self.policy.new_mandatory or self.contracts.new)


def diff_plans(base: dict[str, Any], head: dict[str, Any], allow_stack_change: bool = False) -> PlanDiff:
    """Compares two plan documents (as `llmops.policy.load_plan` returns them); plans of two
    different stacks are refused (LlmopsError, exit 2) unless `allow_stack_change`."""
    base_stack, head_stack = str(base.get("stack") or ""), str(head.get("stack") or "")
    if base_stack != head_stack and not allow_stack_change:
        raise LlmopsError(
            f"the base plan is of stack {base_stack or '(none)'!r} and the head plan of "
            f"{head_stack or '(none)'!r}; compare plans of one stack, or pass --allow-stack-change",
            EXIT_USAGE,
        )
    base_doc, head_doc = normalized(base), normalized(head)
    return PlanDiff(
        base_stack,
        head_stack,
        len(base_doc["resources"]),
        len(head_doc["resources"]),
        compare_resources(base_doc, head_doc),
        cost_delta(base_doc, head_doc),
        policy_delta(base, head),
        contract_delta(base, head),
        exposure_delta(base_doc, head_doc),
    )


def normalized(plan: dict[str, Any]) -> dict[str, Any]:
    """The plan with the fields a valid plan may leave out filled in (inputs, parent, protect)."""
    resources = [
        {**r, "inputs": r.get("inputs") or {}, "parent": r.get("parent"), "protect": bool(r.get("protect"))}
        for r in plan["resources"]
    ]
    return {**plan, "resources": resources}
