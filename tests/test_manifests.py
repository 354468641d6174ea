"""The manifest quality gate: every Kubernetes object of every shipped stack validates against
the schema of the cluster's Kubernetes version (strict), passes checkov's Kubernetes checks or
is listed in tests/checkov-suppressions.yaml with a reason, and runs unprivileged with limits
and pinned images."""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError
from stack_plans import SHIPPED_STACKS, containers, stack_plan

from llmops.plan import manifests

ROOT = Path(__file__).resolve().parent.parent
SUPPRESSIONS = Path(__file__).with_name("checkov-suppressions.yaml")
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "ReplicaSet")
# Custom resources have no schema in kubernetes-validate; their CRD schemas are checked elsewhere.
BUILTIN_GROUP_SUFFIX = ".k8s.io"


def label(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')}.{meta.get('namespace', 'cluster')}.{meta.get('name')}"


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_manifests_validate_against_the_cluster_version(stack):
    result = stack_plan(stack)
    version = result.settings.cluster.kubernetes_version
    problems, custom = [], []
    for obj in manifests(result.plan):
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except SchemaNotFoundError:
            group = obj["apiVersion"].rpartition("/")[0]
            # Only custom resources may lack a schema; a built-in kind without one is an error.
            if "." not in group or group.endswith(BUILTIN_GROUP_SUFFIX):
                problems.append(f"{label(obj)}: no schema for built-in {obj['apiVersion']}")
            custom.append(label(obj))
        except ValidationError as err:
            path = ".".join(str(p) for p in err.path)
            problems.append(f"{label(obj)}: {path}: {err.message}")
    assert not problems, "\n".join(problems)
    assert len(custom) < len(manifests(result.plan)), "nothing was validated"


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_containers_are_unprivileged_limited_and_pinned(stack):
    problems = []
    for obj in manifests(stack_plan(stack).plan):
        if obj.get("kind") not in WORKLOADS:
            continue
        for c in containers(obj):
            where = f"{label(obj)} container {c['name']}"
            sc = c.get("securityContext") or {}
            if sc.get("privileged") is not False:
                problems.append(f"{where}: privileged must be false")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation must be false")
            if "ALL" not in (sc.get("capabilities") or {}).get("drop", []):
                problems.append(f"{where}: capabilities must drop ALL")
            limits = (c.get("resources") or {}).get("limits") or {}
            requests = (c.get("resources") or {}).get("requests") or {}
            if not {"cpu", "memory"} <= set(limits) or not {"cpu", "memory"} <= set(requests):
                problems.append(f"{where}: needs cpu and memory requests and limits")
            image = c.get("image", "")
            tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
            if "@sha256:" not in image and tag in ("", "latest"):
                problems.append(f"{where}: image {image!r} is not pinned")
    assert not problems, "\n".join(problems)


def checkov_bin() -> Path:
    path = Path(os.environ.get("CHECKOV_BIN") or ROOT / ".venv-checkov" / "bin" / "checkov")
    if not path.is_file():
        pytest.fail(
            f"checkov not found at {path}: run `make venv` (it builds .venv-checkov from "
            "requirements-checkov.txt) or set CHECKOV_BIN"
        )
    return path


def suppressions() -> list[dict]:
    entries = yaml.safe_load(SUPPRESSIONS.read_text())
    for entry in entries:
        assert set(entry) == {"check", "resource", "reason"}, f"bad suppression entry {entry}"
        assert len(entry["reason"].split()) >= 8, f"{entry['check']}: the reason must explain why"
    return entries


def test_suppression_file_is_short_and_reasoned():
    assert len(suppressions()) <= 10


@functools.cache
def checkov_findings(stack: str) -> list[dict]:
    """checkov's failed checks on the stack's manifests (the run takes about 10 s)."""
    directory = stack_plan(stack).out_dir / "manifests"
    command = [str(checkov_bin()), "-d", str(directory), "--framework", "kubernetes", "--skip-download"]
    run = subprocess.run([*command, "-o", "json", "--quiet"], capture_output=True, text=True, timeout=600)
    assert run.returncode in (0, 1), f"checkov failed to run: {run.stderr[-2000:]}"
    report = json.loads(run.stdout) if run.stdout.strip() else {}
    reports = [r for r in (report if isinstance(report, list) else [report]) if r]
    assert all(r.get("summary", {}).get("parsing_errors", 0) == 0 for r in reports), "checkov could not parse"
    passed = sum(r.get("summary", {}).get("passed", 0) for r in reports)
    assert passed > 100, f"checkov scanned almost nothing in {directory}"
    return [f for r in reports for f in (r.get("results") or {}).get("failed_checks", [])]


def suppressed(finding: dict, entry: dict) -> bool:
    return entry["check"] == finding["check_id"] and fnmatch.fnmatch(finding["resource"], entry["resource"])


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_checkov_finds_nothing_unreviewed(stack):
    entries = suppressions()
    unreviewed = [
        f"{f['check_id']} {f['resource']}: {f['check_name']}"
        for f in checkov_findings(stack)
        if not any(suppressed(f, e) for e in entries)
    ]
    assert not unreviewed, "fix these or list them in tests/checkov-suppressions.yaml:\n" + "\n".join(
        unreviewed
    )


def test_no_stale_suppressions():
    findings = [f for stack in SHIPPED_STACKS for f in checkov_findings(stack)]
    stale = [e for e in suppressions() if not any(suppressed(f, e) for f in findings)]
    assert not stale, f"suppressions matching no finding any more (remove them): {stale}"


# Custom resources: group/version/kind -> JSON schema converted from the pinned chart's CRD
# (see tests/schemas/SOURCE.md). A custom kind without a schema here fails the test.
CRD_SCHEMA_DIR = Path(__file__).parent / "schemas"
CRD_SCHEMAS = {
    ("karpenter.sh/v1", "NodePool"): "karpenter.sh_v1_NodePool.json",
    ("karpenter.k8s.aws/v1", "EC2NodeClass"): "karpenter.k8s.aws_v1_EC2NodeClass.json",
    ("vpcresources.k8s.aws/v1beta1", "SecurityGroupPolicy"): (
        "vpcresources.k8s.aws_v1beta1_SecurityGroupPolicy.json"
    ),
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_v1alpha1_ScaledObject.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda.sh_v1alpha1_TriggerAuthentication.json",
}
# Custom kinds whose CRD schema could not be had offline (none today); each needs a reason here
# and is checked by the component tests instead.
CRDS_WITHOUT_SCHEMA: set[tuple[str, str]] = set()


def crd_validator(key: tuple[str, str]):
    import jsonschema

    return jsonschema.Draft7Validator(json.loads((CRD_SCHEMA_DIR / CRD_SCHEMAS[key]).read_text()))


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_custom_resources_validate_against_their_crd(stack):
    checked = 0
    for obj in manifests(stack_plan(stack).plan):
        group = obj["apiVersion"].rpartition("/")[0]
        key = (obj["apiVersion"], obj["kind"])
        if "." not in group or group.endswith(BUILTIN_GROUP_SUFFIX) or key in CRDS_WITHOUT_SCHEMA:
            continue
        assert key in CRD_SCHEMAS, f"{label(obj)}: no CRD schema for {key}: add it under tests/schemas/"
        errors = sorted(crd_validator(key).iter_errors(obj), key=str)
        assert not errors, f"{label(obj)}: " + "; ".join(f"{e.message} at {list(e.path)}" for e in errors)
        checked += 1
    assert checked >= 2  # at least the EC2NodeClass and one NodePool


def test_crd_schemas_reject_a_broken_node_pool():
    """The schemas are strict enough to catch a real mistake (guards against empty schemas)."""
    broken = {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": "x"},
        "spec": {
            "template": {"spec": {"requirements": [], "nodeClassRef": {"kind": "EC2NodeClass"}}},
            "disruption": {"consolidationPolicy": "Never"},
        },
    }
    assert list(crd_validator(("karpenter.sh/v1", "NodePool")).iter_errors(broken))


def test_crd_schemas_reject_a_broken_scaled_object():
    """KEDA's schema is strict too: a ScaledObject needs a target and typed triggers."""
    broken = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "x"},
        "spec": {"minReplicaCount": "zero", "triggers": [{"metadata": {}}]},
    }
    messages = [e.message for e in crd_validator(("keda.sh/v1alpha1", "ScaledObject")).iter_errors(broken)]
    assert any("scaleTargetRef" in m for m in messages) and any("'type'" in m for m in messages), messages
