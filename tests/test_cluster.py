"""The cluster component: private by default, encrypted, audited, pinned."""

from __future__ import annotations

import json

from conftest import inputs_of, only
from upstream_facts import addon_problems


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
