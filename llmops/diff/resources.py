"""The resources of two plans, matched and compared: added, changed (input paths) and removed.

Resources are matched by URN, then, among those left, by (type, name) when that pair is unique
on both sides (a resource whose parent changed keeps its name but gets a new URN). Inputs are
compared leaf by leaf into dotted paths (`spec.limits["nvidia.com/gpu"]`); lists of objects that
all carry a unique `name` are matched by it (`containers[name=vllm].image`), JSON documents held
in strings (IAM policies) are compared as documents.

Secrets: a value masked (`[secret]`) on either side is never kept, only the mask or the word
WITHHELD; and a value printed whole (an added list element) has its leaves withheld wherever
the other plan masks a leaf of the same shape.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from llmops.diff.replace import STATEFUL, replacement_paths
from llmops.offline import SECRET_MASK
from llmops.plan import component_of

WITHHELD = "(withheld: secret on one side)"
PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
INDEX = re.compile(r"\[[^\]]*\]")


class _Missing:
    """An absent key or list element (shown as `(absent)`)."""

    def __repr__(self) -> str:
        return "(absent)"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Change:
    path: str
    before: Any  # MISSING when the path is new
    after: Any  # MISSING when the path is gone
    secret: bool = False  # masked on one side: before/after hold only the mask or WITHHELD


@dataclass
class ResourceDiff:
    action: str  # added | changed | removed
    type: str
    name: str
    urn: str
    component: str
    protected: bool = False  # protect is set in the head (added, changed) or in the base (removed)
    changes: list[Change] = field(default_factory=list)
    attention: list[str] = field(default_factory=list)  # what a reviewer must not miss
    k8s_object: str = ""  # a Kubernetes object's kind and [namespace/]name, as kubectl shows it


def k8s_object(res: dict) -> str:
    if not res["type"].startswith("kubernetes:"):
        return ""
    inputs = res.get("inputs") or {}
    meta = inputs.get("metadata") if isinstance(inputs.get("metadata"), dict) else {}
    name = meta.get("name")
    if not isinstance(name, str) or not isinstance(inputs.get("kind"), str):
        return ""
    where = f"{meta['namespace']}/" if isinstance(meta.get("namespace"), str) else ""
    return f"{inputs['kind']} {where}{name}"


def compare_resources(base: dict[str, Any], head: dict[str, Any]) -> list[ResourceDiff]:
    """Every added, changed and removed resource, sorted by component, action, type and name."""
    pairs, added, removed = match(base["resources"], head["resources"])
    base_parts, head_parts = _components(base), _components(head)
    out = [_changed(b, h, head_parts(h)) for b, h in pairs]
    out += [_added(r, head_parts(r)) for r in added]
    out += [_removed(r, base_parts(r)) for r in removed]
    order = {"removed": 0, "changed": 1, "added": 2}
    return sorted(
        (d for d in out if d is not None), key=lambda d: (d.component, order[d.action], d.type, d.name)
    )


def match(base: list[dict], head: list[dict]) -> tuple[list[tuple[dict, dict]], list[dict], list[dict]]:
    """(matched pairs, added, removed): by URN first, then by a (type, name) unique on both sides."""
    by_urn = {r["urn"]: r for r in head if r.get("urn")}
    pairs = [(r, by_urn[r["urn"]]) for r in base if r.get("urn") in by_urn]
    taken = {id(r) for pair in pairs for r in pair}
    base_left = [r for r in base if id(r) not in taken]
    head_left = [r for r in head if id(r) not in taken]
    base_once, head_once = _unique_by_type_name(base_left), _unique_by_type_name(head_left)
    pairs += [(r, head_once[k]) for k, r in base_once.items() if k in head_once]
    taken = {id(r) for pair in pairs for r in pair}
    return pairs, [r for r in head_left if id(r) not in taken], [r for r in base_left if id(r) not in taken]


def _unique_by_type_name(resources: list[dict]) -> dict[tuple[str, str], dict]:
    counts = Counter((r["type"], r["name"]) for r in resources)
    return {(r["type"], r["name"]): r for r in resources if counts[r["type"], r["name"]] == 1}


def _components(plan: dict[str, Any]):
    """A function: resource -> the platform component it belongs to in `plan`."""
    by_name = {r["name"]: r for r in plan["resources"] if r["type"].startswith("llmops:")}
    return lambda res: component_of({"parent": None, **res}, by_name)


def _added(res: dict, component: str) -> ResourceDiff:
    diff = ResourceDiff(
        "added", res["type"], res["name"], res.get("urn") or "", component, bool(res.get("protect"))
    )
    diff.k8s_object = k8s_object(res)
    return diff


def _removed(res: dict, component: str) -> ResourceDiff:
    diff = ResourceDiff(
        "removed", res["type"], res["name"], res.get("urn") or "", component, bool(res.get("protect"))
    )
    diff.k8s_object = k8s_object(res)
    if diff.protected:
        diff.attention.append("protected: `pulumi up` refuses to delete it until protect is lifted")
    if diff.type in STATEFUL:
        diff.attention.append("holds data: deleting it loses what it stores")
    return diff


def _changed(base: dict, head: dict, component: str) -> ResourceDiff | None:
    """The differences of one matched resource, or None when there are none worth telling."""
    shapes = secret_shapes(base.get("inputs")) | secret_shapes(head.get("inputs"))
    changes = list(diff_values(base.get("inputs") or {}, head.get("inputs") or {}, "", shapes))
    diff = ResourceDiff(
        "changed",
        head["type"],
        head["name"],
        head.get("urn") or "",
        component,
        bool(head.get("protect")),
        changes,
    )
    diff.attention = _attention(base, head, diff)
    diff.k8s_object = k8s_object(head)
    return diff if diff.changes or diff.attention else None


def _attention(base: dict, head: dict, diff: ResourceDiff) -> list[str]:
    """Protect flips, identity changes, likely replacements and unmasked secrets."""
    notes = []
    was, now = bool(base.get("protect")), bool(head.get("protect"))
    if was != now:
        notes.append("protect turned on" if now else "protect turned off: it can now be deleted or replaced")
    if base.get("urn") and head.get("urn") and base["urn"] != head["urn"]:
        notes.append("URN changed (new parent or type): Pulumi replaces it unless the program adds an alias")
    if (base.get("provider") or "") != (head.get("provider") or ""):
        notes.append(f"provider changed ({base.get('provider')} -> {head.get('provider')}): may replace it")
    forced = replacement_paths(head["type"], [c.path for c in diff.changes])
    if forced:
        where = ", ".join(forced[:5]) + (f" and {len(forced) - 5} more" if len(forced) > 5 else "")
        note = f"likely replaced: changing {where} forces a new resource"
        note += "; it holds data a replacement does not carry over" if head["type"] in STATEFUL else ""
        notes.append(note + ("; it is protected, so `pulumi up` will fail" if was or now else ""))
    if now and diff.changes:
        notes.append(f"protected resource changed: {len(diff.changes)} input path(s)")
    if any(c.secret and c.before == SECRET_MASK and c.after == WITHHELD for c in diff.changes):
        notes.append("a value masked in the base is not masked in the head: check it is still a secret")
    return notes


def diff_values(before: Any, after: Any, path: str, shapes: frozenset[str] = frozenset()) -> Iterator[Change]:
    """The leaf paths where `before` and `after` differ (MISSING marks an absent side)."""
    if before == after:
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after), key=str):
            yield from diff_values(before.get(key, MISSING), after.get(key, MISSING), join(path, key), shapes)
    elif _masked(before) or _masked(after):
        yield Change(path, _mask_or_withheld(before), _mask_or_withheld(after), secret=True)
    elif isinstance(before, list) and isinstance(after, list):
        yield from _diff_lists(before, after, path, shapes)
    elif (docs := _json_documents(before, after)) is not None:
        yield from diff_values(*docs, path, shapes)
    else:
        yield Change(path, redact(before, path, shapes), redact(after, path, shapes))


def _diff_lists(before: list, after: list, path: str, shapes: frozenset[str]) -> Iterator[Change]:
    """Lists keyed by a unique `name` by name; equal lengths index by index; scalar lists whole;
    other lists as the elements removed (`[-]`) and added (`[+]`)."""
    keyed_before, keyed_after = _by_name(before), _by_name(after)
    if keyed_before is not None and keyed_after is not None:
        order_before, order_after = list(keyed_before), list(keyed_after)
        if [n for n in order_before if n in keyed_after] != [n for n in order_after if n in keyed_before]:
            yield Change(f"{path}(order)", order_before, order_after)  # initContainers run in order
        for name in sorted(set(keyed_before) | set(keyed_after), key=str):
            where = f"{path}[name={name}]"
            yield from diff_values(
                keyed_before.get(name, MISSING), keyed_after.get(name, MISSING), where, shapes
            )
    elif len(before) == len(after):
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            yield from diff_values(b, a, f"{path}[{i}]", shapes)
    elif all(not isinstance(v, (dict, list)) for v in before + after):
        yield Change(path, redact(before, path, shapes), redact(after, path, shapes))
    else:
        left = list(after)
        for item in before:
            if item in left:
                left.remove(item)
            else:
                yield Change(f"{path}[-]", redact(item, f"{path}[-]", shapes), MISSING)
        for item in left:
            yield Change(f"{path}[+]", MISSING, redact(item, f"{path}[+]", shapes))


def _by_name(items: list) -> dict[str, Any] | None:
    names = [i.get("name") for i in items if isinstance(i, dict)]
    if not items or len(names) != len(items) or not all(isinstance(n, str) for n in names):
        return None
    return dict(zip(names, items, strict=True)) if len(set(names)) == len(names) else None


def _json_documents(before: Any, after: Any) -> tuple[Any, Any] | None:
    """Both sides parsed, when both are strings holding a JSON object or array (IAM policies)."""
    if not (isinstance(before, str) and isinstance(after, str)):
        return None
    if not (before.lstrip()[:1] in ("{", "[") and after.lstrip()[:1] in ("{", "[")):
        return None
    try:
        return json.loads(before), json.loads(after)
    except ValueError:
        return None


def join(path: str, key: Any) -> str:
    """`path.key`, or `path["key"]` when the key is not a plain word (dots, slashes, ...)."""
    key = str(key)
    if PLAIN_KEY.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _masked(value: Any) -> bool:
    """The mask itself, or a map whose every value is masked (a Secret's stringData)."""
    if value == SECRET_MASK:
        return True
    return isinstance(value, dict) and bool(value) and all(v == SECRET_MASK for v in value.values())


def _mask_or_withheld(value: Any) -> Any:
    if value is MISSING or value == SECRET_MASK:
        return value
    return SECRET_MASK if _masked(value) else WITHHELD


def shape(path: str) -> str:
    """A path with its list positions erased: `env[3].value` and `env[+].value` -> `env[].value`."""
    return INDEX.sub("[]", path)


def secret_shapes(value: Any, path: str = "") -> frozenset[str]:
    """The shapes of every masked leaf in `value`."""
    if value == SECRET_MASK:
        return frozenset({shape(path)})
    if isinstance(value, dict):
        return frozenset().union(*(secret_shapes(v, join(path, k)) for k, v in value.items()))
    if isinstance(value, list):
        return frozenset().union(*(secret_shapes(v, f"{path}[]") for v in value))
    return frozenset()


def redact(value: Any, path: str, shapes: frozenset[str]) -> Any:
    """`value` with every leaf whose shape is masked somewhere replaced by WITHHELD."""
    if value is MISSING or not shapes:
        return value
    if shape(path) in shapes and value != SECRET_MASK:
        return WITHHELD
    if isinstance(value, dict):
        return {k: redact(v, join(path, k), shapes) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, f"{path}[]", shapes) for v in value]
    return value
