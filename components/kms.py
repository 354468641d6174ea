"""Customer-managed KMS keys: rotation on, a key policy naming who may use the key."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws


def key_policy(
    account_id: str, partition: str, region: str, services: list[str], grant_users: list[str] | None = None
) -> str:
    """The account's administrators manage the key; the named AWS services may use it.

    Logs and SNS/SQS/EventBridge use the key on the account's behalf, so they are named as
    principals, limited to this account by aws:SourceAccount.
    """
    statements = [
        {
            "Sid": "AccountAdministration",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
    ]
    if services:
        statements.append(
            {
                "Sid": "ServiceUse",
                "Effect": "Allow",
                "Principal": {"Service": [s.replace("{region}", region) for s in services]},
                "Action": [
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            }
        )
    if grant_users:
        # Service-linked roles (e.g. EC2 Auto Scaling launching nodes with encrypted volumes)
        # get no KMS rights from IAM; the key policy must name them.
        statements.append(
            {
                "Sid": "ServiceLinkedRoleUse",
                "Effect": "Allow",
                "Principal": {"AWS": grant_users},
                "Action": [
                    "kms:Encrypt",
                    "kms:Decrypt",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:DescribeKey",
                ],
                "Resource": "*",
            }
        )
        statements.append(
            {
                "Sid": "ServiceLinkedRoleGrants",
                "Effect": "Allow",
                "Principal": {"AWS": grant_users},
                "Action": "kms:CreateGrant",
                "Resource": "*",
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def new_key(
    name: str,
    description: str,
    *,
    parent: pulumi.Resource,
    identity: aws.GetCallerIdentityResult,
    partition: str,
    region: str,
    protect: bool,
    services: list[str] | None = None,
    grant_users: list[str] | None = None,
) -> aws.kms.Key:
    """A symmetric key with yearly rotation and a 30-day deletion window (the maximum)."""
    return aws.kms.Key(
        name,
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=30,
        multi_region=False,
        policy=key_policy(identity.account_id, partition, region, services or [], grant_users),
        opts=pulumi.ResourceOptions(parent=parent, protect=protect),
    )
