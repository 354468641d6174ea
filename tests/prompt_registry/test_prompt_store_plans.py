"""The registry config in the shipped stacks' plans, against the gateway config of the same plan.

Apart from test_prompt_store_component.py: a whole plan run there would also pass through the
stack transformations that module's fixtures register."""

from __future__ import annotations

import json

import pytest
import yaml
from stack_plans import SHIPPED_STACKS, stack_plan

from llmops.prompts.layout import CONFIG_KEY


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_registry_config_lists_exactly_the_routes_the_gateway_serves(stack):
    """The models `push` accepts are the model_name of every route in the gateway's LiteLLM config."""
    resources = stack_plan(stack).plan.resources
    configs = [
        r["inputs"]
        for r in resources
        if r["type"] == "aws:s3/bucketObjectv2:BucketObjectv2" and r["inputs"]["key"] == CONFIG_KEY
    ]
    litellm = [
        yaml.safe_load(r["inputs"]["data"]["config.yaml"])
        for r in resources
        if r["type"] == "kubernetes:core/v1:ConfigMap" and "config.yaml" in (r["inputs"].get("data") or {})
    ]
    assert len(configs) == 1 and len(litellm) == 1
    served = [route["model_name"] for route in litellm[0]["model_list"]]
    assert served and sorted(json.loads(configs[0]["content"])["models"]) == sorted(served)
