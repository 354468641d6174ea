"""Entry point the Pulumi CLI runs: builds the PolicyPack, which serves gRPC and never returns.

Nothing else may import this file; tests and `llmops policy check` import `llmops_policies`.
"""

from llmops_policies import PACK_NAME, policies
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name=PACK_NAME,
    policies=policies(),
    # Each policy carries its own level (its level for regulated data); the per-environment
    # config files (config.<env>.json) set the level each classification gets.
    enforcement_level=EnforcementLevel.MANDATORY,
    description="Regulated-data guardrails for the LLMOps platform",
    provider="aws",
)
