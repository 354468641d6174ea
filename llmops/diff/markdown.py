"""A PlanDiff as a pull-request comment: the summary first, then details in `<details>` blocks.

The comment starts with MARKER, so a workflow can find and update its own comment. It stays
under GitHub's comment limit (LIMIT characters; counted here in UTF-8 bytes, which is never
fewer): the summary is always whole (its lists are capped at SUMMARY_ITEMS), the details are
cut where the limit would be crossed, with a line saying how many entries were left out.
"""

from __future__ import annotations

import html
import re
from typing import Any

from llmops.diff.model import PlanDiff
from llmops.diff.render import (
    MAX_PATHS,
    MAX_TEXT_LINES,
    SCALES,
    VALUE_WIDTH,
    by_component,
    changed_lines,
    counts,
    money,
    multiline,
    show,
)
from llmops.diff.resources import MISSING, Change, ResourceDiff

MARKER = "<!-- llmops-diff -->"
LIMIT = 65_536
RESERVE = 600  # kept free for the closing tags and the truncation note
SUMMARY_ITEMS = 10
ITEM_WIDTH = 300


def markdown(diff: PlanDiff, limit: int = LIMIT) -> str:
    """The whole comment, under `limit` (bytes of UTF-8)."""
    summary = "\n".join(_summary(diff))
    return _fit(summary, _detail_blocks(diff), limit)


def code(value: str) -> str:
    """An inline code span that holds any text (backticks included) on one line."""
    value = " ".join(value.split("\n"))
    fence = "`"
    while fence in value:
        fence += "`"
    pad = " " if value.startswith("`") or value.endswith("`") or fence != "`" else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def prose(value: str, width: int = ITEM_WIDTH) -> str:
    """Free text from a plan or a rule, on one line, with HTML escaped, shortened to `width`."""
    value = " ".join(value.split())
    value = value if len(value) <= width else value[: width - 1] + "…"
    return html.escape(value, quote=False)


# --- summary ---------------------------------------------------------------------------------


def _summary(diff: PlanDiff) -> list[str]:
    stack = (
        diff.head_stack if diff.base_stack == diff.head_stack else f"{diff.base_stack} → {diff.head_stack}"
    )
    p, c, e = diff.policy, diff.contracts, diff.exposure
    mandatory = len(p.new_mandatory)
    out = [
        MARKER,
        f"### llmops diff: {code(stack or '(none)')}",
        "",
        "| | base | head | change |",
        "|---|---:|---:|---|",
        f"| resources | {diff.base_resources} | {diff.head_resources} | "
        f"{diff.count('added')} added, {diff.count('changed')} changed, {diff.count('removed')} removed |",
    ]
    for key, label in SCALES[1:]:
        base, head = diff.cost.base[key], diff.cost.head[key]
        out.append(
            f"| monthly cost at {label} (USD) | {money(base)} | {money(head)} | {money(head - base, True)} |"
        )
    out += [
        f"| policy violations | {p.base_count} | {p.head_count} | {len(p.new)} new"
        f"{f' (**{mandatory} mandatory**)' if mandatory else ''}, {len(p.gone)} fixed |",
        f"| broken contracts | {c.base_count} | {c.head_count} | "
        f"{f'**{len(c.new)} newly broken**' if c.new else '0 newly broken'}, {len(c.gone)} fixed |",
        f"| internet exposure | {e.base_count} | {e.head_count} | {len(e.new)} new, {len(e.gone)} closed |",
        "",
        _verdict(diff),
    ]
    out += _capped("New mandatory policy violations", [_violation(v) for v in p.new_mandatory])
    out += _capped("Newly broken contracts", [_finding(f) for f in c.new])
    out += _capped("New internet exposure", [prose(x) for x in e.new])
    out += _capped(
        "Needs attention",
        [f"{code(d.name)} ({code(d.type)}): {prose('; '.join(d.attention))}" for d in diff.attention],
    )
    return out


def _violation(v: Any) -> str:
    return f"{v.level} {code(v.id)} {v.policy} on {code(v.resource)} ({code(v.type)}): {prose(v.message)}"


def _finding(f: Any) -> str:
    return f"{code(f.contract)} {code(f.resource)} → {code(f.peer)}: {prose(f.message)}"


def _verdict(diff: PlanDiff) -> str:
    if not diff.failing:
        return "✅ No new mandatory policy violation or broken contract."
    return (
        f"❌ **The head introduces {len(diff.policy.new_mandatory)} mandatory policy violation(s) and "
        f"{len(diff.contracts.new)} broken contract(s)** the base did not have."
    )


def _capped(title: str, lines: list[str]) -> list[str]:
    if not lines:
        return []
    out = ["", f"**{title}**", ""] + [f"- {line}" for line in lines[:SUMMARY_ITEMS]]
    if len(lines) > SUMMARY_ITEMS:
        out.append(f"- … and {len(lines) - SUMMARY_ITEMS} more (details below)")
    return out


# --- details ---------------------------------------------------------------------------------

Entry = tuple[str, str]  # (in full, compact: the first line only, when the full one does not fit)
Block = tuple[str, list[Entry]]  # (the <summary> line's text, its entries)


def _detail_blocks(diff: PlanDiff) -> list[Block]:
    p, c, e = diff.policy, diff.contracts, diff.exposure
    checks = [
        (f"Policy: {len(p.new)} new, {len(p.escalated)} now mandatory, {len(p.gone)} fixed",
         [f"- new: {_violation(v)}" for v in p.new]
         + [f"- now mandatory: {_violation(v)}" for v in p.escalated]
         + [f"- fixed: {_violation(v)}" for v in p.gone]),
        (f"Contracts: {len(c.new)} newly broken, {len(c.gone)} fixed",
         [f"- broken: {_finding(f)}" for f in c.new] + [f"- fixed: {_finding(f)}" for f in c.gone]),
        (f"Internet exposure: {len(e.new)} new, {len(e.gone)} closed",
         [f"- new: {prose(x)}" for x in e.new] + [f"- closed: {prose(x)}" for x in e.gone]),
    ]  # fmt: skip
    cost = [
        f"- {prose(d.label)}: {money(d.delta('minimum'), True)} at minimum, "
        f"{money(d.delta('maximum'), True)} at maximum (USD/month)"
        for d in diff.cost.lines
    ]
    if cost:
        checks.insert(0, (f"Cost: {len(cost)} line(s) moved", cost))
    blocks = [(title, [(x, x) for x in entries]) for title, entries in checks if entries]
    for component, items in by_component(diff).items():
        blocks.append((f"{component} ({counts(items)})", [_resource_entry(d) for d in items]))
    return blocks


def _resource_entry(d: ResourceDiff) -> Entry:
    title = f"- **{d.action}** {code(d.type)} {code(d.name)}" + (
        f" ({code(d.k8s_object)})" if d.k8s_object else ""
    )
    title += " (protected)" if d.protected else ""
    notes = [f"  - ⚠️ {prose(note)}" for note in d.attention]
    lines = [title, *notes]
    for change in d.changes[:MAX_PATHS]:
        lines += _change(change)
    if len(d.changes) > MAX_PATHS:
        lines.append(
            f"  - … {len(d.changes) - MAX_PATHS} more changed path(s) (`llmops diff --json` lists all)"
        )
    compact = title + (f": {len(d.changes)} changed path(s), not shown" if d.changes else "")
    return "\n".join(lines), "\n".join([compact, *notes])


def _change(change: Change) -> list[str]:
    """A changed path as a list item: values in code spans, a text's changed lines in a diff block."""
    path = code(change.path or "(inputs)")
    if change.before is MISSING:
        return [f"  - {path}: added {code(show(change.after))}"]
    if change.after is MISSING:
        return [f"  - {path}: removed (was {code(show(change.before))})"]
    if multiline(change):
        lines = changed_lines(change.before, change.after)
        shown = [line[:VALUE_WIDTH] for line in lines[:MAX_TEXT_LINES]]
        more = f", {len(lines) - MAX_TEXT_LINES} more not shown" if len(lines) > MAX_TEXT_LINES else ""
        fence = "`" * max(3, 1 + max((len(run) for run in re.findall("`+", "".join(shown))), default=0))
        block = [f"    {fence}diff", *(f"    {line}" for line in shown), f"    {fence}"]
        return [f"  - {path}: text, {len(lines)} changed line(s){more}", "", *block]
    secret = " (secret)" if change.secret else ""
    return [f"  - {path}: {code(show(change.before))} → {code(show(change.after))}{secret}"]


def _fit(summary: str, blocks: list[Block], limit: int) -> str:
    """The summary, then the detail entries in order: in full while the compact form of every
    later entry still fits under `limit`, else compact, else left out; a closing line counts what
    was shortened or left out. Sizes are UTF-8 bytes of the parts joined by newlines."""
    size = lambda text: len(text.encode("utf-8")) + 1  # noqa: E731  (its newline)
    frames = [size(_opening(title)) + size(_CLOSING) for title, _ in blocks]
    tail = sum(frames) + sum(size(compact) for _, entries in blocks for _, compact in entries)
    parts, used, compacted, left_out = [summary, ""], size(summary) + size(""), 0, 0
    for (title, entries), frame in zip(blocks, frames, strict=True):
        kept, cost = [], frame
        tail -= frame
        for full, compact in entries:
            tail -= size(compact)
            if left_out == 0 and used + cost + size(full) + tail + RESERVE <= limit:
                kept.append(full)
            elif left_out == 0 and used + cost + size(compact) + RESERVE <= limit:
                kept.append(compact)
                compacted += full != compact
            else:
                left_out += 1
                continue
            cost += size(kept[-1])
        if kept:
            parts += [_opening(title), *kept, _CLOSING]
            used += cost
    if compacted or left_out:
        parts += ["", _truncated(compacted, left_out)]
    return "\n".join(parts) + "\n"


_CLOSING = "\n</details>"


def _opening(title: str) -> str:
    return f"<details><summary>{prose(title)}</summary>\n"


def _truncated(compacted: int, left_out: int) -> str:
    said = [f"{compacted} shown without their changed paths"] if compacted else []
    said += [f"{left_out} left out"] if left_out else []
    return (
        f"_Detail entries: {' and '.join(said)}, to stay under GitHub's comment limit; "
        "run `llmops diff BASE HEAD` (or `--json`) for all of them._"
    )
