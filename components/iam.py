"""IAM documents as Python dicts serialised with json.dumps (no policy-document invokes)."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws


def document(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(actions: list[str], resources: list[str] | str, condition: dict | None = None) -> dict[str, Any]:
    statement = {"Effect": "Allow", "Action": actions, "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


def deny_insecure_transport(action: str, resources: list | str) -> dict[str, Any]:
    """Refuse every request to `resources` not sent over TLS (S3 buckets, SQS queues)."""
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": action,
        "Resource": resources,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def service_trust(service: str, account_id: str) -> str:
    """Trust an AWS service, only on behalf of this account (confused-deputy protection)."""
    return document(
        {
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
        }
    )


def pod_identity_trust(account_id: str) -> str:
    """EKS Pod Identity: the agent assumes the role and tags the session with the pod's
    cluster, namespace and service account, which the association pins."""
    return document(
        {
            "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
        }
    )


def ec2_trust() -> str:
    """EC2 instances (nodes) assume their node role; instances have no source-account key."""
    return document(
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
    )


def document_output(*statements: dict[str, Any]) -> pulumi.Output[str]:
    """Like document(), for statements holding Outputs (ARNs of resources being created)."""
    return pulumi.Output.from_input(list(statements)).apply(lambda s: document(*s))


# What every EKS node needs: join the cluster, run the VPC CNI, pull images from ECR.
NODE_MANAGED_POLICIES = [
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryPullOnly",
]


def role(
    name: str, trust: str, managed_policies: list[str], partition: str, parent: pulumi.Resource
) -> tuple[aws.iam.Role, list[aws.iam.RolePolicyAttachment]]:
    """A role with AWS-managed policies attached (names relative to arn:...:policy/), and the
    attachments: whatever a service starts using the role for at creation must wait for them."""
    opts = pulumi.ResourceOptions(parent=parent)
    created = aws.iam.Role(name, assume_role_policy=trust, opts=opts)
    attachments = [
        aws.iam.RolePolicyAttachment(
            f"{name}-{policy.rsplit('/', 1)[-1]}",
            role=created.name,
            policy_arn=f"arn:{partition}:iam::aws:policy/{policy}",
            opts=opts,
        )
        for policy in managed_policies
    ]
    return created, attachments


def pod_identity_role(
    base: str,
    *,
    account_id: str,
    cluster_name: pulumi.Input[str],
    namespace: str,
    service_account: str,
    parent: pulumi.Resource,
) -> tuple[aws.iam.Role, aws.eks.PodIdentityAssociation]:
    """`base-role`, assumable only by pods of `namespace/service_account` in the cluster
    (`base-identity`); the caller attaches what the role may do."""
    opts = pulumi.ResourceOptions(parent=parent)
    created = aws.iam.Role(f"{base}-role", assume_role_policy=pod_identity_trust(account_id), opts=opts)
    association = aws.eks.PodIdentityAssociation(
        f"{base}-identity",
        cluster_name=cluster_name,
        namespace=namespace,
        service_account=service_account,
        role_arn=created.arn,
        opts=opts,
    )
    return created, association
