"""Every shipped stack passes every mandatory rule of the pack, with its own policy config.

PENDING lists mandatory violations that are expected because a component is not built yet; an
entry whose violation disappears fails the test too, so the list only ever shrinks.
"""

from __future__ import annotations

import pytest

from llmops.policy import evaluate_plan, format_violations, stack_config
from tests.stack_plans import SHIPPED_STACKS

# (stack, policy, resource): why it is expected, and what removes it.
PENDING: dict[tuple[str, str, str], str] = {}


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_shipped_stack_passes_every_mandatory_rule(plans, stack):
    result = plans[stack]
    settings = result.settings
    config = stack_config(stack, settings.data_classification, list(settings.allowed_regions))
    found = evaluate_plan(result.plan.to_dict(), config)
    mandatory = [v for v in found if v.level == "mandatory"]
    unexpected = [v for v in mandatory if (stack, v.policy, v.resource) not in PENDING]
    assert not unexpected, format_violations(unexpected)
    stale = {k for k in PENDING if k[0] == stack} - {(stack, v.policy, v.resource) for v in mandatory}
    assert not stale, f"no longer violated, remove from PENDING: {sorted(stale)}"
