"""The small framework every rule module uses: rule metadata, config, and safe property access.

A rule is a plain function decorated with `@resource_rule(...)` or `@stack_rule(...)`. The
decorator records its metadata (stable id, kebab-case name, severity, remediation, anchors,
enforcement level per data classification) in `RULES`; `to_policy` turns it into a
pulumi_policy Policy. Checks yield violation messages ("X must ...") and never see how they
are reported, so the same function runs under the Pulumi engine and offline.

Unknown values: during `pulumi preview`, reading a property that is not yet known raises
`UnknownValueError`. Checks just read; the wrappers here catch the error and skip that resource
(stack rules: that one resource), so preview never fails or guesses on an unknown.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyComplianceFramework,
    PolicyConfigSchema,
    ResourceValidationPolicy,
    Severity,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

CLASSIFICATIONS = ("public", "internal", "confidential", "regulated")
M, A, D = "mandatory", "advisory", "disabled"
# Strictest wins when nothing says otherwise (no config, no data-classification tag).
DEFAULT_CLASSIFICATION = "regulated"
TAG = "data-classification"
# A stack-file key: llmops:cluster.endpointPublicAccess, llmops:gpuPools[].maxGpus, aws:region.
SETTING_KEY = re.compile(r"^(llmops|aws):[a-z][A-Za-z0-9]*(\[\])?(\.[a-z][A-Za-z0-9]*(\[\])?)*$")

SHARED_SCHEMA = {
    "dataClassification": {
        "type": "string",
        "enum": list(CLASSIFICATIONS),
        "description": "Highest classification of data in the stack. Unset: the data-classification "
        "default tag of the resource's AWS provider, else regulated.",
    },
    "allowedRegions": {
        "type": "array",
        "items": {"type": "string"},
        "description": "AWS regions the stack may use (data residency). Empty: any region.",
    },
}


@dataclass(frozen=True)
class Anchor:
    framework: str  # e.g. "Checkov", "CIS AWS 3.0", "PCI DSS 4.0", "ISO 27001:2022", "HIPAA", "GDPR", "UAE"
    ref: str

    def __str__(self) -> str:
        return f"{self.framework} {self.ref}"


def anchors(*pairs: str) -> tuple[Anchor, ...]:
    """anchors("Checkov:CKV_AWS_145", "ISO 27001:2022:A.8.24") -> Anchors (split on the last colon)."""
    out = []
    for pair in pairs:
        framework, _, ref = pair.rpartition(":")
        out.append(Anchor(framework.strip(), ref.strip()))
    return tuple(out)


def levels(public: str, internal: str, confidential: str, regulated: str) -> dict[str, str]:
    return dict(zip(CLASSIFICATIONS, (public, internal, confidential, regulated), strict=True))


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    description: str
    severity: str
    remediation: str
    anchors: tuple[Anchor, ...]
    levels: dict[str, str]
    check: Callable[..., Iterable[Any]]
    kind: str  # "resource" or "stack"
    types: tuple[str, ...] = ()
    config: dict[str, dict[str, Any]] = field(default_factory=dict)
    area: str = ""
    # The stack settings (README's settings table: `llmops:cluster.endpointPublicAccess`, `aws:region`)
    # that decide what this rule checks, when the fix is a stack-file change rather than code.
    setting: tuple[str, ...] = ()

    def level_for(self, classification: str) -> str:
        return self.levels[classification]

    def defaults(self) -> dict[str, Any]:
        return {k: v["default"] for k, v in self.config.items() if "default" in v}

    @property
    def remediation_steps(self) -> str:
        """The remediation with the stack settings to change, as the Pulumi CLI shows it."""
        if not self.setting:
            return self.remediation
        return f"{self.remediation} Stack setting: {', '.join(self.setting)}."


RULES: list[Rule] = []


def _register(kind: str, **meta: Any) -> Callable[[Callable], Callable]:
    def wrap(fn: Callable) -> Callable:
        area = fn.__module__.rsplit(".", 1)[-1]
        setting = meta.pop("setting", ())
        setting = (setting,) if isinstance(setting, str) else tuple(setting)
        rule = Rule(check=fn, kind=kind, area=area, setting=setting, **meta)
        if any(not SETTING_KEY.match(s) for s in rule.setting):
            raise ValueError(
                f"{rule.id}: setting must name stack settings like llmops:cluster.endpointPublicAccess"
            )
        if not rule.description.startswith("Checks whether "):
            raise ValueError(f"{rule.id}: description must start 'Checks whether '")
        if any(r.id == rule.id or r.name == rule.name for r in RULES):
            raise ValueError(f"{rule.id} {rule.name}: duplicate id or name")
        RULES.append(rule)
        return fn

    return wrap


def resource_rule(**meta: Any) -> Callable[[Callable], Callable]:
    """`check(res: Res, ctx: Ctx) -> Iterator[str]`, called for resources of `types` only."""
    return _register("resource", **meta)


def stack_rule(**meta: Any) -> Callable[[Callable], Callable]:
    """`check(stack: Stack, ctx: Ctx) -> Iterator[tuple[Res | None, str]]`."""
    return _register("stack", **meta)


# ---------------------------------------------------------------- property access


def get(obj: Any, path: str, default: Any = None) -> Any:
    """Reads a dotted path ("vpcConfig.endpointPublicAccess", "rules.0.status"). Missing -> default.

    Raises UnknownValueError when a value on the path is unknown (preview): the rule wrappers skip.
    """
    cur = obj
    for part in path.split("."):
        if isinstance(cur, Mapping):
            if part not in cur:
                return default
            cur = cur[part]
        elif is_list(cur) and part.isdigit():
            idx = int(part)
            if idx >= len(cur):
                return default
            cur = cur[idx]
        else:
            return default
        if cur is None:
            return default
    return cur


def is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def as_list(value: Any) -> list[Any]:
    """A list from a list, a single value, or None (IAM's "Action": "s3:GetObject" form)."""
    if value is None:
        return []
    if is_list(value):
        return [value[i] for i in range(len(value))]
    return [value]


def truthy(value: Any) -> bool:
    """Booleans that some providers model as strings ("true")."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def json_doc(value: Any) -> Any:
    """IAM and bucket policies arrive as JSON strings; dicts are accepted too."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every scalar leaf with its path, skipping unknown leaves instead of raising."""
    if isinstance(value, Mapping):
        for key in list(value):
            try:
                child = value[key]
            except UnknownValueError:
                continue
            yield from walk(child, f"{path}.{key}" if path else str(key))
    elif is_list(value):
        for i in range(len(value)):
            try:
                child = value[i]
            except UnknownValueError:
                continue
            yield from walk(child, f"{path}.{i}")
    else:
        yield path, value


# `with skip_unknown:` ends the block at the first unknown value (preview) and carries on after it.
# contextlib.suppress holds no state, so one instance serves every block.
skip_unknown = contextlib.suppress(UnknownValueError)


# ---------------------------------------------------------------- views passed to checks


@dataclass
class Res:
    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    parent: Res | None = None
    provider_props: Mapping[str, Any] | None = None
    deps: dict[str, list[Res]] = field(default_factory=dict)

    def get(self, path: str, default: Any = None) -> Any:
        return get(self.props, path, default)

    def ancestors(self) -> Iterator[Res]:
        cur = self.parent
        while cur is not None:
            yield cur
            cur = cur.parent

    @property
    def label(self) -> str:
        return f"{self.type.rsplit(':', 1)[-1]} {self.name}"


class Stack:
    def __init__(self, resources: list[Res]):
        self.resources = resources

    def of(self, *types: str) -> list[Res]:
        return [r for r in self.resources if r.type in types]


@dataclass(frozen=True)
class Ctx:
    classification: str
    allowed_regions: tuple[str, ...]
    config: Mapping[str, Any]

    def cfg(self, key: str) -> Any:
        return self.config.get(key)

    def region_allowed(self, region: str) -> bool:
        return not self.allowed_regions or region in self.allowed_regions


def provider_tags(provider_props: Mapping[str, Any] | None) -> dict[str, str] | None:
    """Default tags of an AWS provider (the engine passes defaultTags as a JSON string); None when
    they are unknown (preview), so callers can skip instead of reporting every tag missing."""
    if not provider_props:
        return {}
    try:
        doc = json_doc(provider_props.get("defaultTags"))
        tags = get(doc, "tags") if isinstance(doc, Mapping) else None
    except UnknownValueError:
        return None
    if isinstance(tags, Mapping):
        return {str(k): str(v) for k, v in tags.items()}
    return {}


def make_ctx(rule: Rule, config: Mapping[str, Any] | None, provider_props: Mapping[str, Any] | None) -> Ctx:
    merged = {**rule.defaults(), **dict(config or {})}
    classification = merged.get("dataClassification") or (provider_tags(provider_props) or {}).get(TAG)
    if classification not in CLASSIFICATIONS:
        classification = DEFAULT_CLASSIFICATION
    regions = tuple(str(r) for r in as_list(merged.get("allowedRegions")))
    return Ctx(classification, regions, merged)


def _collect(items: Iterable[Any]) -> list[Any]:
    """Runs a check's generator; an unknown value ends that check (what was found stays)."""
    found: list[Any] = []
    with skip_unknown:
        for item in items:
            found.append(item)
    return found


# ---------------------------------------------------------------- Pulumi policies


def _framework(rule: Rule) -> PolicyComplianceFramework:
    return PolicyComplianceFramework(
        name="LLMOps", version="1", reference=rule.id, specification="; ".join(str(a) for a in rule.anchors)
    )


def to_policy(rule: Rule) -> ResourceValidationPolicy | StackValidationPolicy:
    schema = PolicyConfigSchema(properties={**SHARED_SCHEMA, **rule.config})
    common = dict(
        name=rule.name,
        description=rule.description,
        enforcement_level=EnforcementLevel(rule.levels["regulated"]),
        config_schema=schema,
        display_name=f"{rule.id} {rule.name}",
        severity=Severity(rule.severity),
        framework=_framework(rule),
        tags=[rule.id, rule.area],
        remediation_steps=rule.remediation_steps,
    )
    if rule.kind == "resource":

        def validate(args, report_violation) -> None:
            if rule.types and args.resource_type not in rule.types:
                return
            provider = getattr(args.provider, "props", None) if args.provider else None
            ctx = make_ctx(rule, args.get_config(), provider)
            res = Res(args.resource_type, args.name, args.urn, args.props, provider_props=provider)
            for message in _collect(rule.check(res, ctx)):
                report_violation(message, None)

        return ResourceValidationPolicy(validate=validate, **common)

    def validate_stack(args, report_violation) -> None:
        views = _stack_views(args.resources)
        provider = next((r.provider_props for r in views if r.provider_props), None)
        ctx = make_ctx(rule, args.get_config(), provider)
        for res, message in _collect(rule.check(Stack(views), ctx)):
            report_violation(message, res.urn if res is not None else None)

    return StackValidationPolicy(validate=validate_stack, **common)


def _stack_views(resources: list[Any]) -> list[Res]:
    views: dict[int, Res] = {}
    for r in resources:
        provider = getattr(r.provider, "props", None) if getattr(r, "provider", None) else None
        views[id(r)] = Res(r.resource_type, r.name, r.urn, r.props, provider_props=provider)
    for r in resources:
        view = views[id(r)]
        if getattr(r, "parent", None) is not None and id(r.parent) in views:
            view.parent = views[id(r.parent)]
        for key, deps in (getattr(r, "property_dependencies", None) or {}).items():
            view.deps[key] = [views[id(d)] for d in deps if id(d) in views]
    return list(views.values())
