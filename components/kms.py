"""Customer-managed KMS keys: rotation on, a key policy naming who may use the key."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws


def key_policy(
    account_id: str, partition: str, region: str, services: list[str], via_services: list[str] | None = None
) -> str:
    """The account's administrators manage the key; the named AWS services may use it.

    Logs and SNS/SQS/EventBridge use the key on the account's behalf, so they are named as
    principals, limited to this account by aws:SourceAccount. `via_services` (e.g.
    `ec2.{region}.amazonaws.com`) lets any principal of the account use the key through that service
    only, as the AWS-managed aws/ebs key does: EC2 Auto Scaling's and EC2 Fleet's service-linked roles
    launch nodes with encrypted volumes and get no KMS rights from IAM, and naming a role that does
    not exist yet (a new account has no AWSServiceRoleForAutoScaling) would fail the key's creation
    (docs.aws.amazon.com/autoscaling/ec2/userguide/key-policy-requirements-EBS-encryption.html).
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
    if via_services:
        through = {
            "kms:CallerAccount": account_id,
            "kms:ViaService": [s.replace("{region}", region) for s in via_services],
        }
        statements.append(
            {
                "Sid": "UseThroughService",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": [
                    "kms:Encrypt",
                    "kms:Decrypt",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:DescribeKey",
                ],
                "Resource": "*",
                "Condition": {"StringEquals": through},
            }
        )
        statements.append(
            {
                "Sid": "GrantsThroughService",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": "kms:CreateGrant",
                "Resource": "*",
                "Condition": {"StringEquals": through, "Bool": {"kms:GrantIsForAWSResource": "true"}},
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


# The stack's one key (public and internal stacks, components/context.py) serves every use, so
# its policy admits the union of what the separate keys admit: CloudWatch Logs (log groups), SNS
# and SQS deliveries (CloudWatch alarms, Budgets, Cost Anomaly Detection, S3 events, EventBridge)
# and EC2 for the nodes' volumes. A use naming anything else fails the program (check_shared_use).
SHARED_KEY_SERVICES = [
    "logs.{region}.amazonaws.com",
    "cloudwatch.amazonaws.com",
    "budgets.amazonaws.com",
    "costalerts.amazonaws.com",
    "s3.amazonaws.com",
    "events.amazonaws.com",
    "sqs.amazonaws.com",
]
SHARED_KEY_VIA_SERVICES = ["ec2.{region}.amazonaws.com"]


def check_shared_use(name: str, services: list[str], via_services: list[str]) -> None:
    """A use of the stack's one key must not need a service its policy leaves out."""
    missing = [s for s in services if s not in SHARED_KEY_SERVICES]
    missing += [s for s in via_services if s not in SHARED_KEY_VIA_SERVICES]
    if missing:
        raise ValueError(
            f"{name}: the stack's shared KMS key does not admit {', '.join(missing)}; add them to "
            "SHARED_KEY_SERVICES / SHARED_KEY_VIA_SERVICES in components/kms.py"
        )


def new_key(
    name: str,
    description: str,
    *,
    parent: pulumi.Resource | None,
    identity: aws.GetCallerIdentityResult,
    partition: str,
    region: str,
    protect: bool,
    services: list[str] | None = None,
    via_services: list[str] | None = None,
    provider: pulumi.ProviderResource | None = None,
) -> aws.kms.Key:
    """A symmetric key with yearly rotation and a 30-day deletion window (the maximum)."""
    return aws.kms.Key(
        name,
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=30,
        multi_region=False,
        policy=key_policy(identity.account_id, partition, region, services or [], via_services),
        opts=pulumi.ResourceOptions(parent=parent, provider=provider, protect=protect),
    )
