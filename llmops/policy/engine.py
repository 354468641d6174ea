"""Evaluates the real policy pack (policies/llmops_policies) in-process on a recorded plan.

It builds the same pulumi_policy argument objects the Pulumi engine builds (ResourceValidationArgs
per resource with its inputs behind pulumi_policy's unknown-checking proxy; StackValidationArgs with
every resource, parents linked) and applies the pack config the way the Pulumi CLI does: schema
defaults, then the policy's own entry; the enforcement level comes from the policy's entry, else
"all", else the policy's default.
"""

from __future__ import annotations

import importlib
import json
import re
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
# Stack names that may name a policies/config.<stack>.json (Pulumi's characters; no path separator).
STACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


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
    remediation: str = ""  # the rule's remediation
    # Stack settings that decide the verdict (llmops:cluster.endpointPublicAccess); () when the fix is code.
    setting: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["setting"] = list(self.setting)
        return out


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
    """The pack config for a plan checked without --config, and where it came from (one line).

    In order: the plan's own `policyConfig` document, used as is; the plan's `settings` (what
    `llmops plan` records from the stack file: dataClassification and allowedRegions), through
    `stack_config`, so policies/config.<stack>.json supplies its per-environment overrides when it
    is for the same classification, and the plan's allowedRegions, when it sets any, replace the
    file's; for plans without settings, the classification from the AWS provider's
    data-classification default tag (else regulated, the strictest) and allowedRegions from a
    top-level `allowedRegions`.
    A `settings` block that is not what `llmops plan` writes is an error (exit 2), never ignored.
    """
    mod = pack()
    if isinstance(plan.get("policyConfig"), dict):
        return plan["policyConfig"], describe(plan["policyConfig"], "the plan's policyConfig")
    settings = plan_settings(plan)
    if "dataClassification" in settings:
        classification = settings["dataClassification"]
        regions = settings.get("allowedRegions", [])
        config, origin = stack_config_source(str(plan.get("stack") or ""), classification, regions)
        return config, describe(config, f"the plan's settings; {origin}")
    classification, source = "regulated", "default (no data-classification tag found)"
    for res in plan["resources"]:
        if res.get("type") == AWS_PROVIDER:
            tags = _provider_tags(res.get("inputs") or {})
            if tags.get(TAG) in mod._rule.CLASSIFICATIONS:
                classification, source = tags[TAG], f"provider {res['name']} default tag {TAG}"
                break
    regions = settings.get("allowedRegions", plan.get("allowedRegions") or [])
    config = mod.pack_config(classification, list(regions))
    return config, describe(config, source)


def plan_settings(plan: dict[str, Any]) -> dict[str, Any]:
    """The plan's `settings` block, checked: {} when absent; LlmopsError (exit 2) when malformed, since
    ignoring it would check the plan against the wrong regions without a word."""
    from llmops.errors import EXIT_USAGE, LlmopsError

    settings = plan.get("settings")
    if settings is None:
        return {}
    classes = pack()._rule.CLASSIFICATIONS
    problems = []
    if not isinstance(settings, dict):
        problems.append(
            "settings: must be an object {environment, region, dataClassification, allowedRegions}"
        )
    else:
        value = settings.get("dataClassification")
        if "dataClassification" in settings and value not in classes:
            problems.append(
                f"settings.dataClassification: must be one of {', '.join(classes)} (got {value!r})"
            )
        regions = settings.get("allowedRegions")
        if "allowedRegions" in settings and not (
            isinstance(regions, list) and all(isinstance(r, str) and r for r in regions)
        ):
            problems.append("settings.allowedRegions: must be a list of region names")
    if problems:
        raise LlmopsError("\n".join(f"plan: {p}" for p in problems), EXIT_USAGE)
    return settings


def stack_config_source(
    stack: str, classification: str, allowed_regions: list[str] | None = None
) -> tuple[dict[str, Any], str]:
    """`llmops.policy.stack_config`, with a note saying which document it is.

    policies/config.<stack>.json is used when every entry is for `classification` (its enforcement
    levels were generated for one classification), with a non-empty `allowed_regions` replacing the
    file's allowedRegions: the stack's own residency setting wins over a stale file. An empty list
    is the stack setting's default ("any region"), which says nothing, so it does not lift a
    restriction the file holds. Otherwise the config is generated from the classification and
    regions.
    """
    from llmops.errors import EXIT_USAGE, LlmopsError
    from llmops.policy.catalogue import config_path

    regions = list(allowed_regions or [])
    if not STACK_NAME.fullmatch(stack):
        return pack().pack_config(classification, regions), "generated: the plan names no stack"
    path = config_path(stack)
    shown = f"policies/{path.name}"
    if not path.is_file():
        return pack().pack_config(classification, regions), f"generated: no {shown}"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise LlmopsError(f"{path}: cannot read policy config ({err})", EXIT_USAGE) from err
    entries = list(doc.values()) if isinstance(doc, dict) else []
    if not entries or not all(
        isinstance(v, dict) and v.get("dataClassification") == classification for v in entries
    ):
        return pack().pack_config(classification, regions), f"generated: {shown} is not for {classification}"
    if all(v.get("allowedRegions", []) == regions for v in entries):
        return doc, shown
    if not regions:
        return doc, f"{shown}; the stack sets no allowedRegions"
    doc = {k: {**v, "allowedRegions": regions} for k, v in doc.items()}
    return doc, f"{shown} with the plan's allowedRegions"


def describe(config: dict[str, Any], origin: str) -> str:
    """One line: classification, allowed regions, and where they came from."""
    entries = [v for v in config.values() if isinstance(v, dict)]
    classes = sorted({str(v["dataClassification"]) for v in entries if v.get("dataClassification")})
    regions = sorted({", ".join(v.get("allowedRegions") or []) for v in entries})
    classification = " / ".join(classes) or "from provider tags"
    allowed = " / ".join(r or "any" for r in regions) or "any"
    return f"{classification}, allowed regions {allowed} ({origin})"


def config_mismatch(config: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    """How a --config document disagrees with the plan's own settings (a stale or another stack's
    file): a different classification, or allowedRegions other than the ones the stack sets."""
    settings = plan_settings(plan)
    entries = [v for v in config.values() if isinstance(v, dict)]
    out = []
    want = settings.get("dataClassification")
    got = sorted({str(v["dataClassification"]) for v in entries if v.get("dataClassification")})
    if want and got and got != [want]:
        out.append(f"dataClassification {' / '.join(got)}, but the plan's settings say {want}")
    want_regions = list(settings.get("allowedRegions") or [])
    got_regions = sorted({", ".join(v.get("allowedRegions") or []) or "any" for v in entries})
    if want_regions and got_regions and got_regions != [", ".join(want_regions)]:
        out.append(
            f"allowedRegions {' / '.join(got_regions)}, but the plan's settings say {', '.join(want_regions)}"
        )
    return out


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
            found.append(
                Violation(
                    rule.name,
                    rule.id,
                    name,
                    rtype,
                    level,
                    rule.severity,
                    message,
                    rule.remediation,
                    rule.setting,
                )
            )

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
    """Human-readable report: one block per violation (what is wrong, the rule's fix, the stack
    settings to change when there are some), mandatory first, then a summary line."""
    lines = []
    for v in violations:
        lines.append(f"{v.level.upper():9} {v.id} {v.policy} [{v.severity}]  {v.type} {v.resource}")
        lines.append(f"          {v.message}")
        if v.remediation:
            lines.append(f"          fix: {v.remediation}")
        if v.setting:
            lines.append(f"          setting: {', '.join(v.setting)}")
    mandatory = sum(v.level == "mandatory" for v in violations)
    advisory = sum(v.level == "advisory" for v in violations)
    suffix = f" (classification {classification})" if classification else ""
    lines.append(f"policy: {mandatory} mandatory, {advisory} advisory violation(s){suffix}")
    return "\n".join(lines)
