"""The cluster component: private by default, encrypted, audited, pinned."""

from __future__ import annotations

import copy
import json
import re

import botocore.session
import pytest
from conftest import inputs_of, only
from upstream_facts import addon_problems

from llmops.verify import verify_plan


def test_prod_endpoint_is_private_only(plans):
    vpc = only(plans["prod"], "aws:eks/cluster:Cluster")["vpcConfig"]
    assert vpc["endpointPublicAccess"] is False
    assert vpc["endpointPrivateAccess"] is True
    assert not vpc.get("publicAccessCidrs")


def test_dev_endpoint_is_public_only_for_its_allowlist(plans):
    vpc = only(plans["dev"], "aws:eks/cluster:Cluster")["vpcConfig"]
    assert vpc["endpointPublicAccess"] is True
    assert vpc["publicAccessCidrs"] == ["203.0.113.0/24"]


def test_every_cluster_encrypts_secrets_logs_everything_and_uses_access_entries(plans):
    for name, result in plans.items():
        cluster = only(result, "aws:eks/cluster:Cluster")
        assert cluster["version"] == result.settings.cluster.kubernetes_version, name
        assert cluster["encryptionConfig"]["resources"] == ["secrets"], name
        assert cluster["encryptionConfig"]["provider"]["keyArn"].startswith("arn:aws:kms:"), name
        assert set(cluster["enabledClusterLogTypes"]) == {
            "api",
            "audit",
            "authenticator",
            "controllerManager",
            "scheduler",
        }
        assert cluster["accessConfig"] == {
            "authenticationMode": "API",
            "bootstrapClusterCreatorAdminPermissions": False,
        }
        assert cluster["deletionProtection"] is result.settings.deletion_protection, name
        log_group = result.plan.named(f"llmops-{name}-cluster-control-plane-logs")["inputs"]
        assert log_group["name"] == f"/aws/eks/{cluster['name']}/cluster"
        assert log_group["kmsKeyId"].startswith("arn:aws:kms:")


def test_addons_are_the_pinned_versions(plans):
    for name, result in plans.items():
        addons = {
            r["inputs"]["addonName"]: r["inputs"]["addonVersion"]
            for r in result.plan.of_type("aws:eks/addon:Addon")
            if r["parent"] == f"llmops-{name}-cluster"
        }
        # Checked against upstream facts (tests/facts/upstream.yaml), not against llmops/versions.py.
        assert set(addons) == {
            "vpc-cni",
            "coredns",
            "kube-proxy",
            "eks-pod-identity-agent",
            "aws-ebs-csi-driver",
        }
        kubernetes = only(result, "aws:eks/cluster:Cluster")["version"]
        problems = [
            p for addon, version in sorted(addons.items()) for p in addon_problems(addon, version, kubernetes)
        ]
        assert not problems, (name, problems)
    ebs = next(
        a for a in inputs_of(plans["prod"], "aws:eks/addon:Addon") if a["addonName"] == "aws-ebs-csi-driver"
    )
    assert ebs["podIdentityAssociations"][0]["serviceAccount"] == "ebs-csi-controller-sa"


def test_deployer_is_admin_through_an_access_entry(plans):
    # The cluster's own entries (team owners get namespace-scoped ones: tests/test_teams.py).
    own = [r for r in plans["prod"].plan.resources if r["parent"] == "llmops-prod-cluster"]
    entries = [r["inputs"] for r in own if r["type"] == "aws:eks/accessEntry:AccessEntry"]
    standard = [e for e in entries if e["type"] == "STANDARD"]
    assert [e["principalArn"] for e in standard] == ["arn:aws:iam::111122223333:role/llmops-deploy"]
    (association,) = [
        r["inputs"] for r in own if r["type"] == "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"
    ]
    assert association["policyArn"].endswith("cluster-access-policy/AmazonEKSClusterAdminPolicy")


def test_system_nodes_use_imdsv2_and_encrypted_volumes(plans):
    for name, result in plans.items():
        template = only(result, "aws:ec2/launchTemplate:LaunchTemplate")
        assert template["metadataOptions"]["httpTokens"] == "required", name
        assert template["metadataOptions"]["httpPutResponseHopLimit"] == 1, name
        ebs = template["blockDeviceMappings"][0]["ebs"]
        assert ebs["encrypted"] == "true" and ebs["kmsKeyId"].startswith("arn:aws:kms:"), name
        group = only(result, "aws:eks/nodeGroup:NodeGroup")
        assert group["capacityType"] == "ON_DEMAND"
        nodes = result.settings.cluster.system_nodes
        assert group["scalingConfig"] == {
            "minSize": nodes.min_size,
            "desiredSize": nodes.min_size,
            "maxSize": nodes.max_size,
        }


def test_default_storage_class_is_encrypted_gp3_and_retains_volumes(plans):
    sc = only(plans["prod"], "kubernetes:storage.k8s.io/v1:StorageClass")
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert sc["parameters"]["type"] == "gp3" and sc["parameters"]["encrypted"] == "true"
    assert sc["parameters"]["kmsKeyId"].startswith("arn:aws:kms:")
    assert sc["reclaimPolicy"] == "Retain"


def test_trust_policies_are_conditioned(plans):
    """Every role trusted by an AWS service names this account (confused-deputy protection),
    except EC2 node roles, whose instances carry no source account."""
    for name, result in plans.items():
        for role in inputs_of(result, "aws:iam/role:Role"):
            (statement,) = json.loads(role["assumeRolePolicy"])["Statement"]
            if "Federated" in statement["Principal"]:  # GitHub OIDC: pinned to audience and repositories
                condition, host = statement["Condition"], "token.actions.githubusercontent.com"
                assert condition["StringEquals"][f"{host}:aud"] == "sts.amazonaws.com", (name, role)
                assert condition["StringLike"][f"{host}:sub"], (name, role)
                continue
            if statement["Principal"]["Service"] == "ec2.amazonaws.com":
                continue
            assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == "111122223333", (name, role)


def test_kms_keys_rotate_and_stateful_keys_keep_a_deletion_window(plans):
    for name, result in plans.items():
        for key in inputs_of(result, "aws:kms/key:Key"):
            assert key["enableKeyRotation"] is True, name
            assert key["deletionWindowInDays"] == 30, name
            assert key["multiRegion"] is False, name


def test_kubeconfig_is_a_secret_everywhere(plans):
    for result in plans.values():
        assert result.plan.outputs["kubeconfig"] == "[secret]"
        assert only(result, "pulumi:providers:kubernetes")["kubeconfig"] == "[secret]"


def test_security_groups_for_pods_are_enabled(plans):
    """The gateway's database admits only the gateway pods' security group: that needs pod ENIs
    from the VPC CNI and the VPC resource controller policy on the cluster role."""
    for name, result in plans.items():
        cni = result.plan.named(f"llmops-{name}-cluster-vpc-cni")["inputs"]
        assert json.loads(cni["configurationValues"])["env"]["ENABLE_POD_ENI"] == "true", name
        attached = {
            r["inputs"]["policyArn"].rsplit("/", 1)[-1]
            for r in result.plan.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
            if r["name"].startswith(f"llmops-{name}-cluster-role-")
        }
        assert attached == {"AmazonEKSClusterPolicy", "AmazonEKSVPCResourceController"}, name


# -- the cheap dev profile: Graviton system nodes, one KMS key where classification allows -----

# The EKS API's AMI types (botocore's service model of EKS), and the architecture AWS documents for
# the shipped stacks' system node types (Graviton m7g is arm64, m7i is x86_64: EC2 instance types).
EKS_AMI_TYPES = set(
    botocore.session.get_session().get_service_model("eks").shape_for("AMITypes").enum  # type: ignore[attr-defined]
)
DOCUMENTED_ARCH = {
    "m7g.large": "ARM_64",
    "m7i.large": "x86_64",
    "m7i.xlarge": "x86_64",
    "t4g.medium": "ARM_64",
    "t4g.large": "ARM_64",
}


def test_system_node_ami_type_matches_the_instance_architecture(plans):
    for name, result in plans.items():
        group = only(result, "aws:eks/nodeGroup:NodeGroup")
        (instance_type,) = group["instanceTypes"]
        assert group["amiType"] in EKS_AMI_TYPES, name
        assert group["amiType"] == f"AL2023_{DOCUMENTED_ARCH[instance_type]}_STANDARD", name


def test_dev_runs_one_graviton_node_with_a_small_root_volume(plans):
    group = only(plans["dev"], "aws:eks/nodeGroup:NodeGroup")
    assert group["scalingConfig"]["minSize"] == 1
    assert group["amiType"] == "AL2023_ARM_64_STANDARD"
    ebs = only(plans["dev"], "aws:ec2/launchTemplate:LaunchTemplate")["blockDeviceMappings"][0]["ebs"]
    assert ebs["volumeSize"] == 20
    # Karpenter's chart keeps one replica per node (required anti-affinity): one on one node.
    karpenter = plans["dev"].plan.named("llmops-dev-gpu-karpenter")["inputs"]["values"]
    assert karpenter["replicas"] == 1


def test_an_unknown_system_node_type_is_refused_naming_the_setting():
    from pydantic import ValidationError

    from llmops.settings.infra import SystemNodeSettings

    with pytest.raises(ValidationError) as err:
        SystemNodeSettings(instance_type="m9z.large")
    assert "m9z.large" in str(err.value) and "llmops/nodes.py" in str(err.value)


def _key_refs(result) -> set[str]:
    """Every KMS key ARN the plan's resources name in their inputs."""
    text = json.dumps([r["inputs"] for r in result.plan.resources if r["type"] != "aws:kms/key:Key"])
    return set(re.findall(r"arn:aws:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]+", text))


def _key_arns(result) -> dict[str, str]:
    return {r["outputs"]["arn"]: r["name"] for r in result.plan.of_type("aws:kms/key:Key")}


def _admitted(policy: str) -> set[str]:
    """Services a key policy lets use the key: service principals and kms:ViaService values."""
    found: set[str] = set()
    for statement in json.loads(policy)["Statement"]:
        found |= (
            set(statement["Principal"].get("Service") or [])
            if isinstance(statement["Principal"], dict)
            else set()
        )
        via = ((statement.get("Condition") or {}).get("StringEquals") or {}).get("kms:ViaService") or []
        found |= {f"via:{v}" for v in via}
    return found


def test_internal_dev_encrypts_everything_with_one_key(plans):
    result = plans["dev"]
    assert result.settings.data_classification == "internal"
    keys = _key_arns(result)
    assert list(keys.values()) == ["llmops-dev-stack-key"]
    assert _key_refs(result) == set(keys), "every encrypted resource names the stack's key"


def test_confidential_and_regulated_stacks_keep_one_key_per_purpose(plans):
    for name in ("staging", "prod"):
        result = plans[name]
        assert result.settings.data_classification in ("confidential", "regulated"), name
        keys = _key_arns(result)
        assert len(keys) >= 10 and f"llmops-{name}-stack-key" not in keys.values(), name
        assert _key_refs(result) <= set(keys), name


def test_the_shared_key_admits_every_service_the_separate_keys_admit(plans):
    """Prod's separate keys, read from its plan, name the services each use needs; dev's one key
    must admit all of them (in dev's region)."""
    prod_region, dev_region = plans["prod"].settings.region, plans["dev"].settings.region
    needed = set()
    for key in inputs_of(plans["prod"], "aws:kms/key:Key"):
        needed |= {s.replace(prod_region, dev_region) for s in _admitted(key["policy"])}
    (shared,) = inputs_of(plans["dev"], "aws:kms/key:Key")
    assert needed and needed <= _admitted(shared["policy"]), needed - _admitted(shared["policy"])


def test_a_use_the_shared_key_does_not_admit_fails_naming_the_fix():
    from components import kms

    with pytest.raises(ValueError, match=r"sns\.amazonaws\.com.*components/kms\.py"):
        kms.check_shared_use("llmops-dev-new-key", ["sns.amazonaws.com"], [])


# -- capacity-system-nodes: the system pods fit the system nodes at their minimum size ---------


def _dev_broken(plans, *changes, stack: str = "dev") -> list:
    doc = copy.deepcopy(plans[stack].plan.to_dict())
    for name, change in changes:
        (resource,) = [r for r in doc["resources"] if r["name"] == name]
        change(resource)
    return [f for f in verify_plan(doc) if f.contract == "capacity-system-nodes"]


def test_shipped_system_nodes_fit_their_pods(plans):
    for name, result in plans.items():
        findings = [f for f in verify_plan(result.plan.to_dict()) if f.contract == "capacity-system-nodes"]
        assert findings == [], (name, [f.message for f in findings])


def test_capacity_flags_a_workload_requesting_more_memory_than_the_nodes_offer(plans):
    def bigger(resource):
        container = resource["inputs"]["spec"]["template"]["spec"]["containers"][0]
        container["resources"]["requests"]["memory"] = "6Gi"
        container["resources"]["limits"]["memory"] = "6Gi"

    findings = _dev_broken(plans, ("llmops-dev-vectordb-statefulset", bigger))
    # t4g.medium: 4 GiB, less 7.5% the kubelet never sees, 442 MiB kube-reserved for 17 pods, 100
    # MiB eviction threshold (EKS AMI formulas): about 3.2 GiB for pods, on one node.
    assert any("of memory" in f.message and f.resource == "llmops-dev-cluster-system" for f in findings), (
        findings
    )


def test_capacity_flags_replicas_kept_one_per_node_beyond_the_node_count(plans):
    def two(resource):
        resource["inputs"]["values"]["replicas"] = 2

    findings = _dev_broken(plans, ("llmops-dev-gpu-karpenter", two))
    assert any(f.resource == "llmops-dev-gpu-karpenter" and "Pending" in f.message for f in findings), (
        findings
    )


def test_capacity_flags_pod_security_groups_on_a_t_family_node(plans):
    def burstable(resource):
        resource["inputs"]["instanceTypes"] = ["t4g.large"]

    # staging's gateway reaches RDS through its pods' own security group (dev's database is in-cluster).
    findings = _dev_broken(plans, ("llmops-staging-cluster-system", burstable), stack="staging")
    # EKS user guide: no instance types in the t family support security groups for pods.
    assert any("security groups" in f.message and "t4g.large" in f.message for f in findings), findings


def no_prefixes(vpc_cni: dict) -> None:
    """Turn prefix delegation off in a plan's vpc-cni add-on."""
    config = json.loads(vpc_cni["inputs"]["configurationValues"])
    config["env"]["ENABLE_PREFIX_DELEGATION"] = "false"
    vpc_cni["inputs"]["configurationValues"] = json.dumps(config)


def test_capacity_flags_more_pods_than_a_node_has_addresses_for(plans):
    def medium(resource):
        resource["inputs"]["instanceTypes"] = ["m7g.medium"]

    findings = _dev_broken(
        plans, ("llmops-dev-cluster-system", medium), ("llmops-dev-cluster-vpc-cni", no_prefixes)
    )
    # m7g.medium: 2 ENIs of 4 addresses (vpc-resource-controller limits.go): 2 x 3 + 2 = 8 pods.
    assert any("pod slots" in f.message and "offer 8" in f.message for f in findings), findings


def test_a_controller_memory_limit_below_its_request_is_refused():
    from pydantic import ValidationError

    from llmops.settings.infra import ControllerRequests

    with pytest.raises(ValidationError) as err:
        ControllerRequests(cpu="100m", memory_mib=512, memory_limit_mib=256)
    assert "memoryLimitMib (256) is below memoryMib (512)" in str(err.value)


# -- VPC CNI prefix delegation -----------------------------------------------------------------


def _vpc_cni(result) -> dict:
    addon = next(a for a in inputs_of(result, "aws:eks/addon:Addon") if a["addonName"] == "vpc-cni")
    return json.loads(addon["configurationValues"])


def test_prefix_delegation_is_on_only_where_the_stack_sets_it(plans):
    for name, result in plans.items():
        env = _vpc_cni(result)["env"]
        assert ("ENABLE_PREFIX_DELEGATION" in env) == result.settings.cluster.prefix_delegation, name
    assert plans["dev"].settings.cluster.prefix_delegation, "dev's t4g.medium needs it (below)"


def test_prefix_delegation_sets_the_vpc_cni_and_leaves_max_pods_to_the_node_group(plans):
    result = plans["dev"]
    env = _vpc_cni(result)["env"]
    # amazon-vpc-cni-k8s README: ENABLE_PREFIX_DELEGATION, WARM_PREFIX_TARGET; security groups for
    # pods and network policies stay on.
    assert env["ENABLE_PREFIX_DELEGATION"] == "true" and env["WARM_PREFIX_TARGET"] == "1"
    assert env["ENABLE_POD_ENI"] == "true" and _vpc_cni(result)["enableNetworkPolicy"] == "true"
    # EKS user guide (cni-increase-ip-addresses-procedure): a managed node group whose launch
    # template names no AMI calculates maxPods itself; so the template names none and sets no user data.
    template = only(result, "aws:ec2/launchTemplate:LaunchTemplate")
    assert not template.get("imageId") and not template.get("userData")


def test_capacity_counts_pod_slots_by_eni_without_prefix_delegation(plans):
    assert plans["dev"].settings.cluster.system_nodes.instance_type == "t4g.medium"
    findings = _dev_broken(plans, ("llmops-dev-cluster-vpc-cni", no_prefixes))
    # t4g.medium: 3 ENIs of 6 IPv4 addresses (EC2 user guide, available IP addresses per ENI):
    # 3 x (6 - 1) + 2 = 17 pods, and 3 x 5 = 15 pod addresses.
    assert any("pod slots" in f.message and "offer 17" in f.message for f in findings), findings
    assert any("prefixDelegation" in f.fix for f in findings if "pod slots" in f.message)
    assert any("ENIs give 15" in f.message for f in findings), findings


def test_capacity_counts_kube_reserved_memory_by_eni_even_with_prefix_delegation(plans):
    def more_memory(resource):
        container = resource["inputs"]["spec"]["template"]["spec"]["containers"][0]
        container["resources"]["requests"]["memory"] = "768Mi"
        container["resources"]["limits"]["memory"] = "768Mi"

    # max-pods-calculator.sh --cni-prefix-delegation-enabled: 3 x ((6 - 1) x 16) + 2 = 242, capped
    # at 110 for 2 vCPUs: no pod-slot or address shortage, and dev's pods fit...
    assert _dev_broken(plans) == []
    # ...but kube-reserved still counts the ENI formula's 17 pods (nodeadm): 4096 MiB less 7.5%,
    # 11 x 17 + 255 MiB and 100 MiB eviction: 3246 MiB, which the gateway at its old 768 MiB exceeds.
    findings = _dev_broken(plans, ("llmops-dev-gateway-deployment", more_memory))
    assert not any("pod slots" in f.message or "VPC address" in f.message for f in findings), findings
    assert any("of memory" in f.message and "offer 3246 MiB" in f.message for f in findings), findings


# metrics-server's README (kubernetes-sigs/metrics-server, tag metrics-server-helm-chart-3.13.1):
# "1 mili core of CPU and 2 MB of memory for each node in a cluster", and the chart's default
# requests (100m, 200Mi) "should guarantee good performance for most cluster configurations up to
# 100 nodes".
METRICS_SERVER_PER_NODE = (1, 2)  # mCPU, MiB
METRICS_SERVER_AT_100_NODES = (100, 200)


def test_metrics_server_requests_cover_the_readme_s_per_node_figures(plans):
    from components.observability import metrics_server_requests
    from llmops.verify.capacity import cpu_millis, memory_mib

    for name, result in plans.items():
        values = result.plan.named(f"llmops-{name}-observability-metrics-server")["inputs"]["values"]
        requests = values["resources"]["requests"]
        settings = result.settings
        nodes = settings.cluster.system_nodes.max_size + sum(p.max_gpus for p in settings.gpu_pools)
        assert cpu_millis(requests["cpu"]) >= METRICS_SERVER_PER_NODE[0] * nodes, name
        assert memory_mib(requests["memory"]) >= METRICS_SERVER_PER_NODE[1] * nodes, name
    at_100 = metrics_server_requests(100)["requests"]
    assert cpu_millis(at_100["cpu"]) >= METRICS_SERVER_AT_100_NODES[0]
    assert memory_mib(at_100["memory"]) >= METRICS_SERVER_AT_100_NODES[1]
    # dev, at most 2 system nodes and 4 single-GPU nodes, does not hold the 100-node default.
    dev = plans["dev"].plan.named("llmops-dev-observability-metrics-server")["inputs"]["values"]
    assert memory_mib(dev["resources"]["requests"]["memory"]) < METRICS_SERVER_AT_100_NODES[1]
