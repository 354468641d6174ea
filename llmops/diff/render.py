"""A PlanDiff as text (for a terminal) and as JSON (for machines); shared value formatting.

Values are shown as JSON, shortened to VALUE_WIDTH characters; multi-line text as the lines that
changed. Masked values stay `[secret]` or WITHHELD: a Change never holds a secret to show.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from llmops.diff.model import PlanDiff
from llmops.diff.resources import MISSING, Change, ResourceDiff

VALUE_WIDTH = 100
MAX_PATHS = 20  # changed paths shown per resource (JSON has them all)
MAX_TEXT_LINES = 6  # changed lines shown of a multi-line value
SIGN = {"added": "+", "changed": "~", "removed": "-"}
SCALES = (("fixed", "idle without GPUs"), ("minimum", "minimum scale"), ("maximum", "maximum scale"))


def show(value: Any, width: int = VALUE_WIDTH) -> str:
    """A value on one line: JSON, shortened with its full length noted."""
    if value is MISSING:
        return "(absent)"
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= width else f"{text[: width - 1]}… ({len(text)} chars)"


def change_parts(change: Change, arrow: str = "->") -> tuple[str, str, list[str]]:
    """(path, what changed, extra lines): a multi-line text value adds its changed lines."""
    path = change.path or "(inputs)"
    if change.before is MISSING:
        return path, f"added {show(change.after)}", []
    if change.after is MISSING:
        return path, f"removed (was {show(change.before)})", []
    if multiline(change):
        lines = changed_lines(change.before, change.after)
        added, removed = sum(x.startswith("+") for x in lines), sum(x.startswith("-") for x in lines)
        shown = [line[:VALUE_WIDTH] for line in lines[:MAX_TEXT_LINES]]
        if len(lines) > MAX_TEXT_LINES:
            shown.append(f"... {len(lines) - MAX_TEXT_LINES} more changed line(s)")
        return path, f"text changed, +{added} -{removed} line(s)", shown
    secret = "  (secret)" if change.secret else ""
    return path, f"{show(change.before)} {arrow} {show(change.after)}{secret}", []


def change_lines(change: Change) -> list[str]:
    """A change as text lines: `path: before -> after`, then any changed lines of a text."""
    path, what, extra = change_parts(change)
    return [f"{path}: {what}", *(f"  {line}" for line in extra)]


def multiline(change: Change) -> bool:
    return (
        not change.secret
        and isinstance(change.before, str)
        and isinstance(change.after, str)
        and ("\n" in change.before or "\n" in change.after)
    )


def changed_lines(before: str, after: str) -> list[str]:
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return [line for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def resource_title(d: ResourceDiff) -> str:
    shown = f" ({d.k8s_object})" if d.k8s_object else ""
    return f"{SIGN[d.action]} {d.type} {d.name}{shown}" + ("  [protected]" if d.protected else "")


def path_lines(d: ResourceDiff) -> list[str]:
    """The changed paths of a resource, at most MAX_PATHS, then how many more there are."""
    out = [line for c in d.changes[:MAX_PATHS] for line in change_lines(c)]
    if len(d.changes) > MAX_PATHS:
        out.append(f"... {len(d.changes) - MAX_PATHS} more changed path(s) (`llmops diff --json` lists all)")
    return out


def money(value: float, signed: bool = False) -> str:
    return f"{value:+,.0f}" if signed else f"{value:,.0f}"


def by_component(diff: PlanDiff) -> dict[str, list[ResourceDiff]]:
    out: dict[str, list[ResourceDiff]] = {}
    for d in diff.resources:
        out.setdefault(d.component, []).append(d)
    return out


def counts(items: list[ResourceDiff]) -> str:
    return " ".join(f"{SIGN[a]}{sum(d.action == a for d in items)}" for a in ("added", "changed", "removed"))


def violation_line(v: Any) -> str:
    return f"{v.level.upper()} {v.id} {v.policy}  {v.type} {v.resource}: {v.message}"


def finding_line(f: Any) -> str:
    return f"{f.contract}  {f.resource} -> {f.peer}: {f.message}"


# --- text ------------------------------------------------------------------------------------


def text(diff: PlanDiff) -> str:
    """The terminal report: summary, what changed in the checks, attention, resources by component."""
    out = [*_text_summary(diff), *_text_checks(diff)]
    if diff.attention:
        out += ["", "Needs attention:"]
        out += [f"  {resource_title(d)}: {'; '.join(d.attention)}" for d in diff.attention]
    for component, items in by_component(diff).items():
        out += ["", f"{component} ({counts(items)})"]
        for d in items:
            out.append(f"  {resource_title(d)}")
            out += [f"      {line}" for line in path_lines(d)]
    return "\n".join(out)


def _text_summary(diff: PlanDiff) -> list[str]:
    stack = (
        diff.head_stack if diff.base_stack == diff.head_stack else f"{diff.base_stack} -> {diff.head_stack}"
    )
    out = [
        f"llmops diff: stack {stack or '(none)'}, {diff.base_resources} -> {diff.head_resources} resources",
        f"Resources: {diff.count('added')} added, {diff.count('changed')} changed, "
        f"{diff.count('removed')} removed",
        f"Monthly cost (USD){'base':>26}{'head':>11}{'delta':>11}",
    ]
    for key, label in SCALES:
        base, head = diff.cost.base[key], diff.cost.head[key]
        out.append(f"  {label:<30}{money(base):>12}{money(head):>11}{money(head - base, True):>11}")
    out += [f"  not priced in the head: {item}" for item in diff.cost.unpriced]
    for line in diff.cost.lines:
        low, high = money(line.delta("minimum"), True), money(line.delta("maximum"), True)
        out.append(f"  {line.label:<56} min {low:>9}  max {high:>9}")
    p, c, e = diff.policy, diff.contracts, diff.exposure
    out += [
        f"Policy: {len(p.new)} new violation(s) ({len(p.new_mandatory)} mandatory), {len(p.gone)} fixed "
        f"(base {p.base_count}, head {p.head_count})",
        f"Contracts: {len(c.new)} newly broken, {len(c.gone)} fixed "
        f"(base {c.base_count}, head {c.head_count})",
        f"Internet exposure: {len(e.new)} new, {len(e.gone)} closed",
    ]
    return out


def _text_checks(diff: PlanDiff) -> list[str]:
    sections = [
        ("New policy violations:", [violation_line(v) for v in diff.policy.new]),
        ("Now mandatory (advisory in the base):", [violation_line(v) for v in diff.policy.escalated]),
        ("Fixed policy violations:", [violation_line(v) for v in diff.policy.gone]),
        ("Newly broken contracts:", [finding_line(f) for f in diff.contracts.new]),
        ("Fixed contracts:", [finding_line(f) for f in diff.contracts.gone]),
        ("New internet exposure:", diff.exposure.new),
        ("Closed internet exposure:", diff.exposure.gone),
    ]
    out = []
    for title, lines in sections:
        if lines:
            out += ["", title, *(f"  {line}" for line in lines)]
    return out


# --- JSON ------------------------------------------------------------------------------------


def as_json(diff: PlanDiff) -> str:
    """Everything, unshortened (values that were secret on either side stay masked)."""
    doc = {
        "base": {"stack": diff.base_stack, "resources": diff.base_resources},
        "head": {"stack": diff.head_stack, "resources": diff.head_resources},
        "failing": diff.failing,
        "resources": [_resource_json(d) for d in diff.resources],
        "cost": {
            "base": diff.cost.base,
            "head": diff.cost.head,
            "delta": {k: diff.cost.delta(k) for k in diff.cost.base},
            "unpriced": diff.cost.unpriced,
            "lines": [
                {
                    "key": d.key,
                    "label": d.label,
                    "base": d.base,
                    "head": d.head,
                    "delta": {k: d.delta(k) for k in d.base},
                }
                for d in diff.cost.lines
            ],
        },
        "policy": {
            "new": [v.to_dict() for v in diff.policy.new],
            "escalated": [v.to_dict() for v in diff.policy.escalated],
            "fixed": [v.to_dict() for v in diff.policy.gone],
            "newMandatory": len(diff.policy.new_mandatory),
            "base": diff.policy.base_count,
            "head": diff.policy.head_count,
        },
        "contracts": {
            "new": [f.to_dict() for f in diff.contracts.new],
            "fixed": [f.to_dict() for f in diff.contracts.gone],
            "base": diff.contracts.base_count,
            "head": diff.contracts.head_count,
        },
        "exposure": {"new": diff.exposure.new, "closed": diff.exposure.gone},
    }
    return json.dumps(doc, indent=2, sort_keys=False)


def _resource_json(d: ResourceDiff) -> dict[str, Any]:
    changes = []
    for c in d.changes:
        item: dict[str, Any] = {"path": c.path}
        item.update({k: v for k, v in (("before", c.before), ("after", c.after)) if v is not MISSING})
        changes.append({**item, "secret": c.secret})
    return {
        "action": d.action,
        "type": d.type,
        "name": d.name,
        "object": d.k8s_object or None,
        "urn": d.urn,
        "component": d.component,
        "protected": d.protected,
        "attention": d.attention,
        "changes": changes,
    }
