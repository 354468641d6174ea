"""What the checks of `llmops plan` say about the base and about the head, and how that moved:
monthly cost, policy violations, broken contracts and internet exposure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmops import estimate
from llmops.offline import RecordedPlan


@dataclass
class LineDelta:
    """One billing line of the estimate (llmops/estimate.py), matched by key; 0 where absent."""

    key: str
    label: str  # the head's label, else the base's
    base: dict[str, float]  # {"minimum": USD, "maximum": USD}
    head: dict[str, float]

    def delta(self, scale: str) -> float:
        return self.head[scale] - self.base[scale]


@dataclass
class CostDelta:
    """Monthly USD of each plan: the idle platform without GPUs (fixed), the totals at minimum and
    at maximum scale, and each line whose cost moved."""

    base: dict[str, float]
    head: dict[str, float]
    unpriced: list[str] = field(default_factory=list)  # items of the head no price covers
    lines: list[LineDelta] = field(default_factory=list)

    def delta(self, scale: str) -> float:
        return self.head[scale] - self.base[scale]


@dataclass
class Moved:
    """Items (violations, findings, exposure lines) only in the head (`new`) or only in the base (`gone`)."""

    new: list[Any]
    gone: list[Any]
    base_count: int
    head_count: int


@dataclass
class PolicyDelta(Moved):
    # In both plans, but mandatory only in the head (a stricter classification or config).
    escalated: list[Any] = field(default_factory=list)

    @property
    def new_mandatory(self) -> list[Any]:
        return [v for v in self.new if v.level == "mandatory"] + self.escalated


def cost_delta(base: dict[str, Any], head: dict[str, Any]) -> CostDelta:
    """`llmops.estimate` of each plan, both with this checkout's price tables (what `llmops plan`
    writes to cost.json), so the delta is the change of the infrastructure, not of the prices."""
    before, after = estimate.estimate(base), estimate.estimate(head)
    scales = lambda e: {"fixed": e.fixed, "minimum": e.minimum, "maximum": e.maximum}  # noqa: E731
    return CostDelta(
        scales(before),
        scales(after),
        [u for u in after.unpriced if u not in before.unpriced],
        line_deltas(before, after),
    )


def line_deltas(before: estimate.Estimate, after: estimate.Estimate) -> list[LineDelta]:
    """The lines whose monthly cost differs at either scale, in the head's order, then removed ones."""
    zero = {"minimum": 0.0, "maximum": 0.0}
    costs = lambda e: {  # noqa: E731
        line.key: ({"minimum": line.monthly_min, "maximum": line.monthly_max}, line.label) for line in e.lines
    }
    old, new = costs(before), costs(after)
    out = []
    for key in [*new, *(k for k in old if k not in new)]:
        (head, label), base = new.get(key, (zero, old.get(key, (zero, key))[1])), old.get(key, (zero, ""))[0]
        moved = LineDelta(key, label, base, head)
        if any(abs(moved.delta(scale)) >= 0.005 for scale in zero):
            out.append(moved)
    return out


def policy_delta(base: dict[str, Any], head: dict[str, Any]) -> PolicyDelta:
    """The policy pack on each plan, with the config `llmops policy check` infers for it (its
    stack's settings and policies/config.<stack>.json); violations matched by (rule id, resource)."""
    from llmops.policy import evaluate_plan, infer_config

    before = evaluate_plan(base, infer_config(base)[0])
    after = evaluate_plan(head, infer_config(head)[0])
    key = lambda v: (v.id, v.resource)  # noqa: E731
    before_keys, after_keys = {key(v) for v in before}, {key(v) for v in after}
    mandatory_before = {key(v) for v in before if v.level == "mandatory"}
    escalated = [
        v
        for v in after
        if v.level == "mandatory" and key(v) in before_keys and key(v) not in mandatory_before
    ]
    return PolicyDelta(
        [v for v in after if key(v) not in before_keys],
        [v for v in before if key(v) not in after_keys],
        len(before),
        len(after),
        escalated,
    )


def contract_delta(base: dict[str, Any], head: dict[str, Any]) -> Moved:
    """`llmops verify` on each plan; findings matched by (contract, resource, peer)."""
    from llmops.verify import verify_plan

    before, after = verify_plan(base), verify_plan(head)
    key = lambda f: (f.contract, f.resource, f.peer)  # noqa: E731
    before_keys, after_keys = {key(f) for f in before}, {key(f) for f in after}
    return Moved(
        [f for f in after if key(f) not in before_keys],
        [f for f in before if key(f) not in after_keys],
        len(before),
        len(after),
    )


def exposure_delta(base: dict[str, Any], head: dict[str, Any]) -> Moved:
    """What `llmops plan` lists as exposed to the internet, opened (`new`) and closed (`gone`)."""
    before, after = exposure(base), exposure(head)
    return Moved(
        [e for e in after if e not in before], [e for e in before if e not in after], len(before), len(after)
    )


def exposure(doc: dict[str, Any]) -> list[str]:
    """`llmops.plan.exposure` of a plan document whose resources all have `inputs` (it reads a
    RecordedPlan's resources)."""
    from llmops.plan import exposure as plan_exposure

    return plan_exposure(RecordedPlan(str(doc.get("stack") or ""), doc["resources"]))
