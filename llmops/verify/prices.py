"""The idle-GPU detector prices every GPU type the stack's NodePools may launch in its region.

The cost_alarms component fills the Lambda's HOURLY_PRICES_USD from the stack region's table
(llmops/pricing/, `llmops.cost.gpu_price_environment`); the gpu_pools component writes what each
NodePool may launch. A type Karpenter can launch without a price makes the detector's alert say
"price unknown" for exactly the nodes it exists to cost.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from llmops import instances
from llmops.verify.contracts import Finding, contract
from llmops.verify.model import PlanView

CONTRACT = "gpu-idle-prices"
NODEPOOL = "kubernetes:karpenter.sh/v1:NodePool"
PRICES_ENV = "HOURLY_PRICES_USD"


def _requirement(pool: dict, key: str) -> list[str]:
    spec = ((pool["inputs"].get("spec") or {}).get("template") or {}).get("spec") or {}
    for req in spec.get("requirements") or []:
        if req.get("key") == key:
            return [str(v) for v in req.get("values") or []]
    return []


def launchable(pool: dict, region: str) -> list[instances.InstanceType]:
    """The catalogued GPU types a NodePool may launch that the region offers."""
    allowed = instances.types_in_pool(
        _requirement(pool, "node.kubernetes.io/instance-type"),
        _requirement(pool, "karpenter.k8s.aws/instance-family"),
    )
    return instances.offered_in(allowed, region)


@contract(
    CONTRACT,
    "cost",
    "Checks whether the idle-GPU detector Lambda's HOURLY_PRICES_USD prices every GPU instance type a "
    "Karpenter NodePool may launch in the stack's region, so its alert says what an idle node costs.",
)
def gpu_idle_prices(plan: PlanView) -> Iterator[Finding]:
    region = plan.settings.get("region") or ""
    for function in plan.of_type("aws:lambda/function:Function"):
        variables = ((function["inputs"].get("environment") or {}).get("variables")) or {}
        if PRICES_ENV not in variables:
            continue
        try:
            prices = json.loads(variables[PRICES_ENV])
        except (TypeError, ValueError):
            prices = {}
        for pool in plan.of_type(NODEPOOL):
            missing = [t.name for t in launchable(pool, region) if t.name not in prices]
            if missing:
                name = (pool["inputs"].get("metadata") or {}).get("name", pool["name"])
                yield Finding(
                    CONTRACT,
                    function["name"],
                    f"NodePool {name}",
                    f"{PRICES_ENV} must price {', '.join(missing)}, which NodePool {name} may launch "
                    f"in {region}",
                    "add the region's prices to llmops/pricing/ (llmops.cost.gpu_price_environment "
                    "passes every priced GPU type)",
                )
