"""`llmops plan`: what it writes, what it prints, and the engine under it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from llmops import fakes, instances
from llmops.offline import run_program
from llmops.plan import exposure, manifests, summary
from llmops.settings import read_stack_file


def test_plan_json_holds_the_foundation_of_every_stack(plans):
    for name, result in plans.items():
        doc = json.loads((result.out_dir / "plan.json").read_text())
        assert doc["stack"] == name
        types = [r["type"] for r in doc["resources"]]
        assert set(doc["resources"][0]) == {
            "type", "name", "urn", "id", "parent", "inputs", "outputs", "dependsOn", "dependencies",
            "propertyDependencies", "protect", "provider",
        }  # fmt: skip
        assert doc["settings"]["region"] == result.settings.region
        assert types.count("aws:eks/cluster:Cluster") == 1
        cluster_addons = [
            r
            for r in doc["resources"]
            if r["type"] == "aws:eks/addon:Addon" and r["parent"] == f"llmops-{name}-cluster"
        ]
        assert len(cluster_addons) == 5
        assert types.count("aws:eks/nodeGroup:NodeGroup") == 1
        assert types.count("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass") >= 1
        assert types.count("kubernetes:karpenter.sh/v1:NodePool") == len(result.settings.gpu_pools)
        karpenter = [
            r
            for r in doc["resources"]
            if r["type"] == "kubernetes:helm.sh/v4:Chart" and "karpenter" in r["name"]
        ]
        assert len(karpenter) == 1


def test_every_resource_but_the_platform_has_a_recorded_parent(plans):
    resources = plans["prod"].plan.resources
    names = {r["name"] for r in resources}
    orphans = [r["name"] for r in resources if r["parent"] is None]
    assert orphans == ["llmops-prod"]
    assert all(r["parent"] in names for r in resources if r["parent"])
    vpc = plans["prod"].plan.named("llmops-prod-network-vpc")
    assert vpc["parent"] == "llmops-prod-network"


def test_plan_records_protection_providers_and_dependencies(plans):
    """What a reviewer (and `llmops verify`) needs beyond inputs, as the engine reports it."""
    for name, result in plans.items():
        by_name = {r["name"]: r for r in result.plan.resources}
        # The gateway's database: RDS, or the in-cluster PostgreSQL's StatefulSet (dev).
        database = next(
            r
            for r in by_name.values()
            if r["type"] == "aws:rds/instance:Instance"
            or r["name"] == f"llmops-{name}-gateway-db-statefulset"
        )
        assert database["protect"] is result.settings.deletion_protection, name
        deployment = by_name[f"llmops-{name}-gateway-deployment"]
        assert deployment["provider"] == f"llmops-{name}-cluster-k8s"
        assert by_name[f"llmops-{name}-network-vpc"]["provider"] == f"llmops-{name}-aws"
        # Through inputs: the cluster's role ARN; explicit: the control-plane log group.
        cluster = by_name[f"llmops-{name}-cluster-eks"]
        assert cluster["propertyDependencies"]["roleArn"] == [f"llmops-{name}-cluster-role"]
        assert f"llmops-{name}-cluster-control-plane-logs" in cluster["dependsOn"]
        assert set(cluster["dependsOn"]) | {
            d for v in cluster["propertyDependencies"].values() for d in v
        } == set(cluster["dependencies"])


def test_manifests_are_written_one_file_per_object(plans):
    for result in plans.values():
        files = sorted((result.out_dir / "manifests").glob("*.yaml"))
        objects = manifests(result.plan)
        assert len(files) == len(objects) > 0
        for path in files:
            obj = yaml.safe_load(path.read_text())
            assert {"apiVersion", "kind", "metadata"} <= set(obj), path


def test_summary_names_components_exposure_and_cost_source(plans):
    text = "\n".join(summary(plans["dev"]))
    for expected in (
        "network (",
        "cluster (",
        "gpu (",
        "Exposed to the internet:",
        "EKS API endpoint llmops-dev: public, from 203.0.113.0/24",
        "total at minimum scale",
        "total at maximum scale",
        "prices: llmops/pricing/eu-west-1.yaml",
    ):
        assert expected in text


def test_prod_exposes_nothing_but_nat_egress(plans):
    assert all(line.startswith("NAT gateway") for line in exposure(plans["prod"].plan))


def test_cost_estimate_scales_from_idle_to_the_gpu_limits(plans):
    prod, dev = plans["prod"].estimate, plans["dev"].estimate
    # Idle, only the models' floors (minReplicas) hold GPUs; dev's model scales to zero.
    assert prod.minimum == pytest.approx(prod.fixed + sum(cost for _, cost in prod.floor_lines))
    assert prod.floor_lines and dev.floor_lines == [] and dev.minimum == dev.fixed
    # prod's ceiling at me-central-1 prices: 16 L40S at g6e.48xlarge's per-GPU price (an unverified
    # estimate: no list price found), and from the AWS Price List (instances.vantage.sh, 2026-01-21)
    # 8 H200 of p5en.48xlarge and 8 L4 at the dearest per GPU of g6, g6.16xlarge (one L4, 4.17104).
    g6e = instances.INSTANCE_TYPES["g6e.48xlarge"].usd_per_hour("me-central-1")
    expected_gpu = (16 * g6e / 8 + 8 * 75.9552 / 8 + 8 * 4.17104) * 730
    gpu_max = sum(line.monthly_max for line in prod.lines if line.kind == "gpu-pool")
    assert gpu_max == pytest.approx(expected_gpu)
    assert dev.maximum < prod.maximum


def test_recorded_plans_are_deterministic():
    config = read_stack_file(__import__("llmops").PROJECT_DIR / "stacks" / "Pulumi.dev.yaml")
    first = run_program("dev", config, "eu-west-1").to_dict()
    second = run_program("dev", config, "eu-west-1").to_dict()
    assert first == second


def test_plan_never_writes_a_secret(plans):
    for result in plans.values():
        text = (result.out_dir / "plan.json").read_text()
        assert "certificate-authority-data" not in text
        assert "[secret]" in text


def test_every_invoke_the_program_makes_has_a_fake(plans):
    tokens = {i["token"] for r in plans.values() for i in r.plan.invokes}
    assert tokens <= set(fakes.INVOKES)
    assert "aws:index/getCallerIdentity:getCallerIdentity" in tokens


def test_make_plan_path_prints_summary_and_exits_0(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "llmops", "plan", "prod", "--build-dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Stack prod: me-central-1, data classification regulated")
    assert (tmp_path / "prod" / "plan.json").is_file()
