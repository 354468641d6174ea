"""Every Kubernetes object the program declares validates against the schema of the
cluster's Kubernetes version (built-in kinds) or of the pinned chart's CRD (custom kinds)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest

from llmops.plan import manifests

SCHEMAS = Path(__file__).parent / "schemas"
# Custom resources: group/version/kind -> JSON schema converted from the pinned chart's CRD
# (see tests/schemas/SOURCE.md). A custom kind without a schema here fails the test.
CRD_SCHEMAS = {
    ("karpenter.sh/v1", "NodePool"): "karpenter.sh_v1_NodePool.json",
    ("karpenter.k8s.aws/v1", "EC2NodeClass"): "karpenter.k8s.aws_v1_EC2NodeClass.json",
    ("vpcresources.k8s.aws/v1beta1", "SecurityGroupPolicy"): (
        "vpcresources.k8s.aws_v1beta1_SecurityGroupPolicy.json"
    ),
}


def _builtin(obj: dict) -> bool:
    group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
    return "." not in group or group.endswith(".k8s.io")


def _objects(plans):
    for name, result in sorted(plans.items()):
        for obj in manifests(result.plan):
            yield name, result.settings.cluster.kubernetes_version, obj


def test_builtin_objects_validate_strictly(plans):
    checked = 0
    for stack, version, obj in _objects(plans):
        if not _builtin(obj):
            continue
        try:
            kubernetes_validate.validate(obj, f"{version}.0", strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(
                f"{stack}: {obj['kind']} {obj['metadata'].get('name')}: {err.message} at {list(err.path)}"
            )
        checked += 1
    assert checked > 0


def test_custom_resources_validate_against_their_crd(plans):
    checked = 0
    for stack, _, obj in _objects(plans):
        if _builtin(obj):
            continue
        key = (obj["apiVersion"], obj["kind"])
        assert key in CRD_SCHEMAS, f"{stack}: no CRD schema for {key}: add it under tests/schemas/"
        schema = json.loads((SCHEMAS / CRD_SCHEMAS[key]).read_text())
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(obj), key=str)
        assert not errors, f"{stack}: {obj['kind']} {obj['metadata']['name']}: " + "; ".join(
            f"{e.message} at {list(e.path)}" for e in errors
        )
        checked += 1
    assert checked > 0


def test_crd_schemas_reject_a_broken_node_pool():
    """The schemas are strict enough to catch a real mistake (guards against empty schemas)."""
    schema = json.loads((SCHEMAS / CRD_SCHEMAS[("karpenter.sh/v1", "NodePool")]).read_text())
    broken = {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": "x"},
        "spec": {
            "template": {"spec": {"requirements": [], "nodeClassRef": {"kind": "EC2NodeClass"}}},
            "disruption": {"consolidationPolicy": "Never"},
        },
    }
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))
