"""Evaluates the real policy pack (policies/llmops_policies) in-process on a recorded plan.

It builds the same pulumi_policy argument objects the Pulumi engine builds (ResourceValidationArgs
per resource with its inputs behind pulumi_policy's unknown-checking proxy; StackValidationArgs with
every resource, parents linked) and applies the pack config the way the Pulumi CLI does: schema
defaults, then the policy's own entry; the enforcement level comes from the policy's entry, else
"all", else the policy's default.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
)
from pulumi_policy.proxy import unknown_checking_proxy

POLICIES_DIR = Path(__file__).resolve().parents[2] / "policies"
AWS_PROVIDER = "pulumi:providers:aws"
TAG = "data-classification"


def pack():
    """The rules package, imported from policies/ (it builds no PolicyPack, so no server starts)."""
    if str(POLICIES_DIR) not in sys.path:
        sys.path.insert(0, str(POLICIES_DIR))
    return importlib.import_module("llmops_policies")


@dataclass(frozen=True)
class Violation:
    policy: str  # the rule's kebab-case name (the Pulumi policy name)
    id: str  # the rule's stable id, e.g. LLMOPS-ENC-001
    resource: str  # logical name, or "(stack)"
    type: str
    level: str  # mandatory | advisory
    severity: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _opts(parent_urn: str | None) -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], parent_urn)


class _Plan:
    """The plan's resources with URNs, parents and providers resolved."""

    def __init__(self, plan: dict[str, Any]):
        stack = str(plan.get("stack") or "stack")
        self.items = []
        for res in plan["resources"]:
            urn = res.get("urn") or f"urn:pulumi:{stack}::llmops::{res['type']}::{res['name']}"
            self.items.append({**res, "urn": urn, "inputs": res.get("inputs") or {}})
        self.by_urn = {r["urn"]: r for r in self.items}
        self.by_name: dict[str, list[dict[str, Any]]] = {}
        for r in self.items:
            self.by_name.setdefault(r["name"], []).append(r)
        self.providers = [r for r in self.items if r["type"] == AWS_PROVIDER]

    def parent_urn(self, res: dict[str, Any]) -> str | None:
        ref = res.get("parent")
        if not ref:
            return None
        if ref in self.by_urn:
            return ref
        named = self.by_name.get(ref, [])
        # Components (llmops:...) are the usual parents; prefer them when names collide.
        named = sorted(named, key=lambda r: not r["type"].startswith("llmops:"))
        return named[0]["urn"] if named else None

    def provider_of(self, res: dict[str, Any]) -> dict[str, Any] | None:
        if not res["type"].startswith("aws:"):
            return None
        ref = res.get("provider")
        if ref:
            for p in self.providers:
                if ref == p["name"] or ref.startswith(p["urn"] + "::") or ref == p["urn"]:
                    return p
        return self.providers[0] if len(self.providers) == 1 else None


def infer_config(plan: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Pack config for a plan without one: the classification from the AWS provider's default tags
    (else regulated, the strictest), allowedRegions from the plan's `allowedRegions` if present."""
    mod = pack()
    if isinstance(plan.get("policyConfig"), dict):
        return plan["policyConfig"], "the plan's policyConfig"
    classification, source = "regulated", "default (no data-classification tag found)"
    for res in plan["resources"]:
        if res.get("type") == AWS_PROVIDER:
            tags = _provider_tags(res.get("inputs") or {})
            if tags.get(TAG) in mod._rule.CLASSIFICATIONS:
                classification, source = tags[TAG], f"provider {res['name']} default tag {TAG}"
                break
    regions = plan.get("allowedRegions") or []
    return mod.pack_config(classification, list(regions)), f"{classification} ({source})"


def _provider_tags(inputs: dict[str, Any]) -> dict[str, str]:
    return dict(pack()._rule.provider_tags(inputs) or {})


def _level(policy: Any, config: dict[str, Any]) -> str:
    entry = config.get(policy.name)
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and entry.get("enforcementLevel"):
        return str(entry["enforcementLevel"])
    every = config.get("all")
    if isinstance(every, str):
        return every
    if isinstance(every, dict) and every.get("enforcementLevel"):
        return str(every["enforcementLevel"])
    return (policy.enforcement_level or EnforcementLevel.ADVISORY).value


def _properties(policy: Any, config: dict[str, Any]) -> dict[str, Any]:
    props = {
        k: v["default"]
        for k, v in (policy.config_schema.properties if policy.config_schema else {}).items()
        if "default" in v
    }
    entry = config.get(policy.name)
    if isinstance(entry, dict):
        props.update({k: v for k, v in entry.items() if k != "enforcementLevel"})
    return props


def evaluate_plan(plan: dict[str, Any], config: dict[str, Any] | None = None) -> list[Violation]:
    """Every violation of every enabled policy on the plan, mandatory first.

    `config` is a Pulumi policy-pack config document (policies/config.<env>.json, or
    `pack_config(classification, allowed_regions)`); None infers it from the plan (`infer_config`).
    A rule that crashes on odd input is reported as its own violation at its level (fail closed),
    without the input's values.
    """
    mod = pack()
    if config is None:
        config, _ = infer_config(plan)
    rules = {r.name: r for r in mod.rules()}
    view = _Plan(plan)
    providers = {
        r["urn"]: PolicyProviderResource(
            AWS_PROVIDER, unknown_checking_proxy(dict(r["inputs"])), r["urn"], r["name"]
        )
        for r in view.providers
    }
    found: list[Violation] = []

    def reporter(rule: Any, level: str, default: dict[str, Any] | None):
        def report(message: str, urn: str | None = None) -> None:
            target = view.by_urn.get(urn or "") or default
            name, rtype = (target["name"], target["type"]) if target else ("(stack)", "pulumi:pulumi:Stack")
            found.append(Violation(rule.name, rule.id, name, rtype, level, rule.severity, message))

        return report

    proxies = {r["urn"]: unknown_checking_proxy(dict(r["inputs"])) for r in view.items}
    stack_resources: list[PolicyResource] | None = None
    for policy in mod.policies():
        level = _level(policy, config)
        if level == "disabled":
            continue
        level = "mandatory" if level == "remediate" else level
        rule = rules[policy.name]
        props = _properties(policy, config)
        if isinstance(policy, ResourceValidationPolicy):
            for res in view.items:
                if rule.types and res["type"] not in rule.types:
                    continue
                prov = view.provider_of(res)
                args = ResourceValidationArgs(
                    res["type"],
                    proxies[res["urn"]],
                    res["urn"],
                    res["name"],
                    _opts(view.parent_urn(res)),
                    providers.get(prov["urn"]) if prov else None,
                    dict(props),
                )
                _run(policy, args, reporter(rule, level, res))
        else:
            stack_resources = stack_resources or _stack_resources(view, providers)
            args = StackValidationArgs(stack_resources, dict(props))
            _run(policy, args, reporter(rule, level, None))
    order = {"mandatory": 0, "advisory": 1}
    return sorted(found, key=lambda v: (order.get(v.level, 2), v.id, v.resource))


def _run(policy: Any, args: Any, report: Any) -> None:
    try:
        policy.validate(args, report)
    except Exception as err:  # a rule bug must not pass silently: fail closed, echo no values
        report(
            f"Policy {policy.name} could not evaluate this resource ({type(err).__name__}); fix the rule or "
            f"input."
        )


def _stack_resources(view: _Plan, providers: dict[str, PolicyProviderResource]) -> list[PolicyResource]:
    made: dict[str, PolicyResource] = {}
    for res in view.items:
        props = {**res["inputs"], **(res.get("outputs") or {})}
        if res.get("id"):
            props.setdefault("id", res["id"])
        prov = view.provider_of(res)
        made[res["urn"]] = PolicyResource(
            res["type"],
            unknown_checking_proxy(props),
            res["urn"],
            res["name"],
            _opts(view.parent_urn(res)),
            providers.get(prov["urn"]) if prov else None,
            None,
            [],
            {},
        )
    for res in view.items:
        parent = view.parent_urn(res)
        if parent in made:
            made[res["urn"]].parent = made[parent]
    return list(made.values())


def format_violations(violations: list[Violation], classification: str | None = None) -> str:
    """Human-readable report: one block per violation, mandatory first, then a summary line."""
    lines = []
    for v in violations:
        lines.append(f"{v.level.upper():9} {v.id} {v.policy} [{v.severity}]  {v.type} {v.resource}")
        lines.append(f"          {v.message}")
    mandatory = sum(v.level == "mandatory" for v in violations)
    advisory = sum(v.level == "advisory" for v in violations)
    suffix = f" (classification {classification})" if classification else ""
    lines.append(f"policy: {mandatory} mandatory, {advisory} advisory violation(s){suffix}")
    return "\n".join(lines)
