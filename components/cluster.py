"""EKS: pinned version, private endpoint, KMS secrets, audit logs, access entries, add-ons,
a small system node group, an encrypted default StorageClass, and the Kubernetes provider."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components import iam
from components.context import AwsContext
from llmops import nodes as nodes_catalogue
from llmops import versions

CONTROL_PLANE_LOG_TYPES = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
# Add-ons the nodes need to become Ready are created before the node group; the rest after.
ADDONS_BEFORE_NODES = ["vpc-cni", "kube-proxy", "eks-pod-identity-agent"]
# The VPC CNI (aws/amazon-vpc-cni-k8s v1.20.4 README; EKS user guide, cni-network-policy and
# security-groups-for-pods):
# - enableNetworkPolicy: the network policy agent enforces NetworkPolicies (off by default: they
#   would be inert);
# - ENABLE_POD_ENI: security groups for pods (the gateway's pods reach their database through
#   their own group);
# - POD_SECURITY_GROUP_ENFORCING_MODE standard: pods with their own groups still reach the Pod
#   Identity agent on their node's link-local address and answer kubelet probes (strict mode
#   needs DISABLE_TCP_EARLY_DEMUX for probes and drops traffic to the node itself); traffic leaving
#   the VPC uses the node's groups;
# - ENABLE_PREFIX_DELEGATION (cluster.prefixDelegation): /28 prefixes per ENI slot; the managed
#   node group, whose launch template names no AMI, then sets maxPods itself (EKS user guide,
#   cni-increase-ip-addresses-procedure: "Managed node groups automatically calculates the maximum
#   number of Pods"). WARM_PREFIX_TARGET 1 keeps one spare prefix, the documented default choice.
VPC_CNI_ENV = {"ENABLE_POD_ENI": "true", "POD_SECURITY_GROUP_ENFORCING_MODE": "standard"}
PREFIX_DELEGATION_ENV = {"ENABLE_PREFIX_DELEGATION": "true", "WARM_PREFIX_TARGET": "1"}


@dataclass
class ClusterArgs:
    context: AwsContext
    cluster_name: str
    vpc_id: pulumi.Input[str]
    subnet_ids: list[pulumi.Input[str]]


class Cluster(pulumi.ComponentResource):
    name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    security_group_id: pulumi.Output[str]
    ebs_key_arn: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    provider: k8s.Provider
    system_nodes: aws.eks.NodeGroup

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:cluster:Cluster", name, None, opts)
        ctx, cfg = args.context, args.context.settings.cluster
        child = pulumi.ResourceOptions(parent=self)
        self._ctx, self._name = ctx, name

        secrets_key = ctx.kms_key(f"{name}-secrets-key", "EKS secrets envelope encryption", self)
        logs_key = ctx.kms_key(
            f"{name}-logs-key", "EKS control-plane logs", self, ["logs.{region}.amazonaws.com"]
        )
        # EC2 launches (Auto Scaling for the system nodes, Fleet for Karpenter's) use the key through
        # EC2 with service-linked roles that IAM gives no rights on it (components/kms.py).
        self.ebs_key_arn = ctx.kms_key(
            f"{name}-ebs-key",
            "EBS volumes of nodes and PVCs",
            self,
            via_services=["ec2.{region}.amazonaws.com"],
        ).arn

        eks_trust = iam.document(
            {
                "Effect": "Allow",
                "Principal": {"Service": "eks.amazonaws.com"},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Condition": {"StringEquals": {"aws:SourceAccount": ctx.account_id}},
            }
        )
        # The VPC resource controller policy lets EKS attach branch ENIs: security groups for pods
        # (the gateway's pods reach its database through their own security group).
        role, role_policies = iam.role(
            f"{name}-role", eks_trust, ["AmazonEKSClusterPolicy", "AmazonEKSVPCResourceController"],
            ctx.partition, self,
        )  # fmt: skip
        secrets_use = aws.iam.RolePolicy(
            f"{name}-role-secrets-key",
            role=role.id,
            policy=iam.document_output(
                iam.allow(
                    ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey", "kms:CreateGrant"], secrets_key.arn
                )
            ),
            opts=child,
        )
        # EKS writes to this exact group name; creating it first sets retention and encryption.
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs",
            name=f"/aws/eks/{args.cluster_name}/cluster",
            retention_in_days=cfg.log_retention_days,
            kms_key_id=logs_key.arn,
            opts=child,
        )
        cluster = aws.eks.Cluster(
            f"{name}-eks",
            name=args.cluster_name,
            version=cfg.kubernetes_version,
            role_arn=role.arn,
            vpc_config={
                "subnet_ids": args.subnet_ids,
                "endpoint_private_access": True,
                "endpoint_public_access": cfg.endpoint_public_access,
                "public_access_cidrs": cfg.public_access_cidrs or None,
            },
            encryption_config={"provider": {"key_arn": secrets_key.arn}, "resources": ["secrets"]},
            enabled_cluster_log_types=CONTROL_PLANE_LOG_TYPES,
            access_config={
                "authentication_mode": "API",
                "bootstrap_cluster_creator_admin_permissions": False,
            },
            deletion_protection=ctx.settings.deletion_protection,
            upgrade_policy={"support_type": "STANDARD"},
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[log_group, secrets_use, *role_policies],
                protect=ctx.settings.deletion_protection,
            ),
        )
        self.name = cluster.name
        self.endpoint = cluster.endpoint
        self.security_group_id = cluster.vpc_config.cluster_security_group_id

        admins = self._access_entries(cluster, cfg.admin_principal_arns)
        early = [self._addon(cluster, a) for a in ADDONS_BEFORE_NODES]
        self.system_nodes = self._system_nodes(cluster, args.subnet_ids, depends_on=early)
        self._addon(cluster, "coredns", depends_on=[self.system_nodes])
        ebs_csi = self._addon(
            cluster,
            "aws-ebs-csi-driver",
            depends_on=[self.system_nodes],
            pod_identity=("ebs-csi-controller-sa", self._ebs_csi_role()),
        )

        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(cluster.name, cluster.endpoint, cluster.certificate_authority.data).apply(
                lambda v: kubeconfig(v[0], v[1], v[2], ctx.region)
            )
        )
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=admins),
        )
        self._storage_class(depends_on=[ebs_csi])
        self.register_outputs({"name": self.name, "endpoint": self.endpoint, "kubeconfig": self.kubeconfig})

    def _access_entries(self, cluster: aws.eks.Cluster, extra_admins: list[str]) -> list[pulumi.Resource]:
        """Cluster admins through access entries: the role running `pulumi up` (it must reach
        the API to declare Kubernetes objects) and the stack's adminPrincipalArns."""
        ctx = self._ctx
        caller = aws.iam.get_session_context(arn=ctx.identity.arn, opts=ctx.invoke_opts()).issuer_arn
        admins = list(dict.fromkeys([caller, *extra_admins]))
        created: list[pulumi.Resource] = []
        for index, arn in enumerate(admins):
            label = "deployer" if index == 0 else f"admin-{arn.rsplit('/', 1)[-1]}"
            entry = aws.eks.AccessEntry(
                f"{self._name}-{label}",
                cluster_name=cluster.name,
                principal_arn=arn,
                type="STANDARD",
                opts=pulumi.ResourceOptions(parent=self),
            )
            created.append(
                aws.eks.AccessPolicyAssociation(
                    f"{self._name}-{label}-admin",
                    cluster_name=cluster.name,
                    principal_arn=entry.principal_arn,
                    policy_arn=f"arn:{ctx.partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
                    access_scope={"type": "cluster"},
                    opts=pulumi.ResourceOptions(parent=self),
                )
            )
        return created

    def _addon(self, cluster, addon: str, depends_on=None, pod_identity=None) -> aws.eks.Addon:
        """An EKS add-on at its pinned version, with the configuration the platform needs."""
        version = versions.EKS_ADDONS[self._ctx.settings.cluster.kubernetes_version][addon]
        associations = None
        if pod_identity:
            service_account, role = pod_identity
            associations = [{"service_account": service_account, "role_arn": role.arn}]
        return aws.eks.Addon(
            f"{self._name}-{addon}",
            cluster_name=cluster.name,
            addon_name=addon,
            addon_version=version,
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            pod_identity_associations=associations,
            configuration_values=self._addon_configuration(addon),
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on or []),
        )

    def _addon_configuration(self, addon: str) -> str | None:
        cfg = self._ctx.settings.cluster
        # One CoreDNS replica and one EBS CSI controller on a one-node group: a second one adds no
        # availability there (aws-ebs-csi-driver chart values: controller.replicaCount, default 2).
        if addon == "coredns" and cfg.system_nodes.min_size == 1:
            return json.dumps({"replicaCount": 1})
        if addon == "aws-ebs-csi-driver" and cfg.system_nodes.min_size == 1:
            return json.dumps({"controller": {"replicaCount": 1}})
        if addon == "vpc-cni":
            env = {**VPC_CNI_ENV, **(PREFIX_DELEGATION_ENV if cfg.prefix_delegation else {})}
            return json.dumps({"enableNetworkPolicy": "true", "env": env})
        return None

    def _ebs_csi_role(self) -> aws.iam.Role:
        ctx = self._ctx
        child = pulumi.ResourceOptions(parent=self)
        role, _ = iam.role(
            f"{self._name}-ebs-csi-role",
            iam.pod_identity_trust(ctx.account_id),
            ["service-role/AmazonEBSCSIDriverPolicy"],
            ctx.partition,
            self,
        )
        # Encrypting PVCs with our key: the driver creates grants for the EC2 attachment.
        aws.iam.RolePolicy(
            f"{self._name}-ebs-csi-key",
            role=role.id,
            policy=iam.document_output(
                iam.allow(
                    ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
                    self.ebs_key_arn,
                    {"Bool": {"kms:GrantIsForAWSResource": "true"}},
                ),
                iam.allow(
                    [
                        "kms:Encrypt",
                        "kms:Decrypt",
                        "kms:ReEncrypt*",
                        "kms:GenerateDataKey*",
                        "kms:DescribeKey",
                    ],
                    self.ebs_key_arn,
                ),
            ),
            opts=child,
        )
        return role

    def _system_nodes(self, cluster, subnet_ids, depends_on) -> aws.eks.NodeGroup:
        ctx, nodes = self._ctx, self._ctx.settings.cluster.system_nodes
        child = pulumi.ResourceOptions(parent=self)
        role, role_policies = iam.role(
            f"{self._name}-system-node-role", iam.ec2_trust(), iam.NODE_MANAGED_POLICIES, ctx.partition, self
        )
        template = aws.ec2.LaunchTemplate(
            f"{self._name}-system-node-lt",
            # IMDSv2 only, one hop: pods cannot reach the node's credentials (they use Pod Identity).
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",
                "http_put_response_hop_limit": 1,
            },
            block_device_mappings=[
                {
                    "device_name": "/dev/xvda",
                    "ebs": {
                        "volume_size": nodes.root_volume_gib,
                        "volume_type": "gp3",
                        "encrypted": "true",
                        "kms_key_id": self.ebs_key_arn,
                        "delete_on_termination": "true",
                    },
                }
            ],
            opts=child,
        )
        return aws.eks.NodeGroup(
            f"{self._name}-system",
            cluster_name=cluster.name,
            node_role_arn=role.arn,
            subnet_ids=subnet_ids,
            # The AMI's architecture must match the instance type's (arm64 for Graviton).
            ami_type=nodes_catalogue.ami_type(nodes.instance_type),
            capacity_type="ON_DEMAND",
            instance_types=[nodes.instance_type],
            scaling_config={
                "min_size": nodes.min_size,
                "desired_size": nodes.min_size,
                "max_size": nodes.max_size,
            },
            update_config={"max_unavailable": 1},
            launch_template={"id": template.id, "version": template.latest_version.apply(str)},
            labels={"llmops.io/node-role": "system"},
            # Nodes join with the role's policies: the node group waits for the attachments.
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*depends_on, *role_policies],
                ignore_changes=["scalingConfig.desiredSize"],
            ),
        )

    def _storage_class(self, depends_on) -> None:
        k8s.storage.v1.StorageClass(
            f"{self._name}-gp3",
            metadata={
                "name": "gp3-encrypted",
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            provisioner="ebs.csi.aws.com",
            parameters={"type": "gp3", "encrypted": "true", "kmsKeyId": self.ebs_key_arn},
            # Volumes outlive their claims: deleting data takes a deliberate step.
            reclaim_policy="Retain",
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=depends_on),
        )


def kubeconfig(cluster_name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig that authenticates with `aws eks get-token` (the caller's AWS credentials)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": cluster_name, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}
            ],
            "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
            "current-context": cluster_name,
            "users": [
                {
                    "name": cluster_name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", region],
                        }
                    },
                }
            ],
        }
    )
