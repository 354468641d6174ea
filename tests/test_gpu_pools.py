"""GPU pools: Karpenter wiring, the node class, and one tainted, capped NodePool per pool."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import inputs_of
from upstream_facts import (
    ami_alias_problems,
    chart_identity,
    chart_problems,
    chart_support_problems,
    kubernetes_version,
)

from components.gpu_pools import INTERRUPTION_EVENTS

FACTS = Path(__file__).parent / "facts"


def karpenter_queue(result, stack: str) -> dict:
    return result.plan.named(f"llmops-{stack}-gpu-interruptions")["inputs"]


def test_karpenter_chart_is_pinned_and_wired_to_its_queue(plans):
    for name, result in plans.items():
        charts = {c["chart"]: c for c in inputs_of(result, "kubernetes:helm.sh/v4:Chart")}
        (karpenter,) = [c for c in charts.values() if chart_identity(c)[0] == "karpenter"]
        kubernetes = kubernetes_version(result)  # upstream facts: tests/facts/upstream.yaml
        problems = chart_problems(karpenter, kubernetes) + chart_support_problems(karpenter, kubernetes)
        assert not problems, (name, problems)
        queue = karpenter_queue(result, name)
        # The queue is auto-named by Pulumi; Karpenter gets that physical name.
        assert karpenter["values"]["settings"]["interruptionQueue"].startswith(
            f"llmops-{name}-gpu-interruptions-"
        )
        assert karpenter["values"]["settings"]["clusterName"] == f"llmops-{name}"
        assert queue["kmsMasterKeyId"].startswith("arn:aws:kms:")


def test_interruption_events_target_the_queue(plans):
    result = plans["prod"]
    queue = karpenter_queue(result, "prod")
    ours = [r for r in result.plan.resources if r["parent"] == "llmops-prod-gpu"]
    rules = [r["inputs"] for r in ours if r["type"] == "aws:cloudwatch/eventRule:EventRule"]
    assert sorted(json.loads(r["eventPattern"])["detail-type"][0] for r in rules) == sorted(
        p["detail-type"][0] for p in INTERRUPTION_EVENTS.values()
    )
    targets = [r["inputs"] for r in ours if r["type"] == "aws:cloudwatch/eventTarget:EventTarget"]
    assert len(targets) == len(rules) and all(t["arn"].startswith("arn:aws:sqs:") for t in targets)
    assert queue["messageRetentionSeconds"] == 300


def test_controller_uses_pod_identity_and_a_scoped_policy(plans):
    result = plans["prod"]
    (association,) = [
        a
        for a in inputs_of(result, "aws:eks/podIdentityAssociation:PodIdentityAssociation")
        if a["serviceAccount"] == "karpenter"
    ]
    assert (association["namespace"], association["serviceAccount"]) == ("kube-system", "karpenter")
    policy = json.loads(result.plan.named("llmops-prod-gpu-controller-policy")["inputs"]["policy"])
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    terminate = by_sid["AllowScopedDeletion"]
    assert terminate["Condition"]["StringEquals"] == {
        "aws:ResourceTag/kubernetes.io/cluster/llmops-prod": "owned"
    }
    assert by_sid["AllowPassingInstanceRole"]["Resource"].startswith("arn:aws:iam::111122223333:role/")
    wildcard = [s["Sid"] for s in policy["Statement"] if s["Resource"] == "*" and "Condition" not in s]
    assert wildcard == ["AllowPricingReadActions", "AllowUnscopedInstanceProfileListAction"]
    grants = by_sid["AllowKeyGrantsForAWSResources"]
    assert grants["Action"] == "kms:CreateGrant"
    assert grants["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    assert "kms:CreateGrant" not in by_sid["AllowKeyUse"]["Action"]


def test_controller_policy_is_upstream_v1_8_1_plus_our_key_use(plans):
    """Every statement of Karpenter's own CloudFormation template at the pinned release (recorded in
    tests/facts with its source) is in the policy unchanged; the only additions are the KMS ones our
    customer keys need."""
    facts = json.loads((FACTS / "karpenter-v1.8.1-controller-policy.json").read_text())
    result = plans["prod"]
    policy = json.loads(result.plan.named("llmops-prod-gpu-controller-policy")["inputs"]["policy"])
    ours = {s["Sid"]: s for s in policy["Statement"]}
    values = {
        "Partition": "aws",
        "Region": "me-central-1",
        "AccountId": "111122223333",
        "ClusterName": "llmops-prod",
    }
    for statement in facts["document"]["Statement"]:
        expected = json.loads(_substitute(json.dumps(statement), values))
        sid = expected["Sid"]
        assert sid in ours, f"upstream statement {sid} is missing"
        mine = dict(ours[sid])
        for key in ("Action", "Resource"):  # one-element lists and strings mean the same
            mine[key], expected[key] = sorted(_as_list(mine[key])), sorted(_as_list(expected[key]))
        if sid == "AllowPassingInstanceRole":  # ours names the role; upstream's its CFN reference
            mine.pop("Resource"), expected.pop("Resource")
            expected["Condition"]["StringEquals"]["iam:PassedToService"].remove("ec2.amazonaws.com.cn")
        if sid == "AllowInterruptionQueueActions":
            mine.pop("Resource"), expected.pop("Resource")
        assert mine == expected, sid
    assert set(ours) - {s["Sid"] for s in facts["document"]["Statement"]} == {
        "AllowKeyUse",
        "AllowKeyGrantsForAWSResources",
    }


def _as_list(value):
    return value if isinstance(value, list) else [value]


def _substitute(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("${AWS::" + key + "}", value).replace("${" + key + "}", value)
    return text


def test_node_class_is_imdsv2_only_with_encrypted_volumes_and_tags(plans):
    for name, result in plans.items():
        (node_class,) = inputs_of(result, "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")
        spec = node_class["spec"]
        assert spec["metadataOptions"]["httpTokens"] == "required", name
        assert spec["metadataOptions"]["httpPutResponseHopLimit"] == 1, name
        assert all(
            d["ebs"]["encrypted"] and d["ebs"]["kmsKeyID"].startswith("arn:aws:kms:")
            for d in spec["blockDeviceMappings"]
        )
        family = result.settings.gpu_nodes.ami_family
        (term,) = spec["amiSelectorTerms"]
        problems = ami_alias_problems(term.get("alias", ""), family, kubernetes_version(result))
        assert set(term) == {"alias"} and not problems, (name, term, problems)
        assert "latest" not in spec["amiSelectorTerms"][0]["alias"]
        assert spec["tags"]["data-classification"] == result.settings.data_classification


def test_one_node_pool_per_configured_pool(plans):
    for name, result in plans.items():
        pools = {
            p["metadata"]["name"]: p["spec"] for p in inputs_of(result, "kubernetes:karpenter.sh/v1:NodePool")
        }
        assert sorted(pools) == sorted(p.name for p in result.settings.gpu_pools), name
        for pool in result.settings.gpu_pools:
            spec = pools[pool.name]
            assert spec["limits"] == {"nvidia.com/gpu": pool.max_gpus}
            template = spec["template"]
            assert template["spec"]["taints"] == [
                {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
            ]
            assert template["metadata"]["labels"]["llmops.io/gpu-pool"] == pool.name
            requirements = {r["key"]: r["values"] for r in template["spec"]["requirements"]}
            assert requirements["karpenter.sh/capacity-type"] == pool.capacity_types
            shape = (
                requirements.get("node.kubernetes.io/instance-type")
                or requirements["karpenter.k8s.aws/instance-family"]
            )
            assert shape == (pool.instance_types or pool.instance_families)
            assert spec["disruption"]["consolidationPolicy"] == pool.consolidation


def test_prod_mixes_on_demand_and_spot_and_dev_is_spot_only(plans):
    capacity = {
        name: {c for p in r.settings.gpu_pools for c in p.capacity_types} for name, r in plans.items()
    }
    assert capacity["dev"] == {"spot"}
    assert capacity["prod"] == {"spot", "on-demand"}
    assert capacity["staging"] == {"spot", "on-demand"}


def test_device_plugin_only_where_the_os_lacks_it(plans):
    for name, result in plans.items():
        charts = [c["chart"] for c in inputs_of(result, "kubernetes:helm.sh/v4:Chart")]
        wanted = result.settings.gpu_nodes.ami_family == "AL2023"
        assert ("nvidia-device-plugin" in charts) is wanted, name
    plugin = next(
        c
        for c in inputs_of(plans["dev"], "kubernetes:helm.sh/v4:Chart")
        if c["chart"] == "nvidia-device-plugin"
    )
    problems = chart_problems(plugin, kubernetes_version(plans["dev"]))  # version, repository, kubeVersion
    assert not problems, problems


def test_reserved_capacity_gets_its_own_node_class(tmp_path, plan_stack_file):
    result = plan_stack_file(
        tmp_path,
        "reserved",
        """\
config:
  aws:region: us-east-1
  llmops:environment: reserved
  llmops:dataClassification: internal
  llmops:gpuPools:
    - name: h100
      instanceTypes: [p5.48xlarge]
      capacityTypes: [reserved, on-demand]
      capacityReservationIds: [cr-0abc]
      maxGpus: 8
    - {name: l4, instanceFamilies: [g6], capacityTypes: [spot], maxGpus: 2}
""",
    )
    classes = {
        c["metadata"]["name"]: c["spec"]
        for c in inputs_of(result, "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")
    }
    assert classes["gpu-h100"]["capacityReservationSelectorTerms"] == [{"id": "cr-0abc"}]
    assert "capacityReservationSelectorTerms" not in classes["gpu"]
    pools = {
        p["metadata"]["name"]: p["spec"] for p in inputs_of(result, "kubernetes:karpenter.sh/v1:NodePool")
    }
    assert pools["h100"]["template"]["spec"]["nodeClassRef"]["name"] == "gpu-h100"
    assert pools["l4"]["template"]["spec"]["nodeClassRef"]["name"] == "gpu"
