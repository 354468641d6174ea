"""The LLMOps CrossGuard rules. Importing this package registers every rule; it starts no server.

`policies()` builds the pulumi_policy objects (for `policies/__main__.py` and offline evaluation);
`pack_config()` writes the Pulumi policy-pack config for a data classification and region list.
"""

from __future__ import annotations

from typing import Any

from . import (  # noqa: F401  (importing registers the rules)
    cost,
    encryption,
    gateway,
    identity,
    k8s_workloads,
    logging_audit,
    network,
    prompt_store,
    public_exposure,
    residency,
    tagging,
)
from ._rule import CLASSIFICATIONS, RULES, Rule, to_policy

PACK_NAME = "llmops-policies"


def rules() -> list[Rule]:
    return sorted(RULES, key=lambda r: r.id)


def policies() -> list[Any]:
    return [to_policy(r) for r in rules()]


def pack_config(
    classification: str,
    allowed_regions: list[str] | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The `--policy-pack-config` document: per policy, its level for this classification and the
    shared properties (Pulumi applies "all" to enforcement levels only, so each policy gets them)."""
    if classification not in CLASSIFICATIONS:
        raise ValueError(f"{classification!r} is not one of {', '.join(CLASSIFICATIONS)}")
    config: dict[str, Any] = {}
    for rule in rules():
        entry: dict[str, Any] = {
            "enforcementLevel": rule.level_for(classification),
            "dataClassification": classification,
            "allowedRegions": list(allowed_regions or []),
        }
        entry.update((overrides or {}).get(rule.name, {}))
        config[rule.name] = entry
    return config


__all__ = ["PACK_NAME", "RULES", "Rule", "pack_config", "policies", "rules"]
