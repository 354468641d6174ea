"""Offline plans of the shipped stacks, computed once per test session (about a second each)."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from llmops import PROJECT_DIR
from llmops import plan as plan_cmd

SHIPPED_STACKS = tuple(
    sorted(p.stem.removeprefix("Pulumi.") for p in (PROJECT_DIR / "stacks").glob("Pulumi.*.yaml"))
)
_BUILD = Path(tempfile.mkdtemp(prefix="llmops-test-build-"))
atexit.register(shutil.rmtree, _BUILD, ignore_errors=True)


@functools.cache
def stack_plan(stack: str) -> plan_cmd.PlanResult:
    """The plan of a shipped stack; its manifests are written under result.out_dir/manifests."""
    return plan_cmd.run(stack, _BUILD)


def k8s_objects(stack: str, kind: str, namespace: str | None = None) -> dict[str, dict]:
    """Rendered Kubernetes objects of one kind, by metadata.name."""
    out = {}
    for obj in plan_cmd.manifests(stack_plan(stack).plan):
        meta = obj.get("metadata") or {}
        if obj.get("kind") == kind and (namespace is None or meta.get("namespace") == namespace):
            out[meta["name"]] = obj
    return out


def pod_spec(obj: dict) -> dict:
    """The pod template of a workload object (Deployment, StatefulSet, DaemonSet, Job, CronJob)."""
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"] if "template" in spec else spec


def containers(obj: dict) -> list[dict]:
    pod = pod_spec(obj)
    return [*pod.get("initContainers", []), *pod.get("containers", [])]
