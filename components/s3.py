"""Private S3 buckets the way pulumi-aws 7 declares them: one resource per bucket setting.

Versioned, SSE-KMS with a customer key and S3 bucket keys (fewer KMS calls), public access
blocked, ACLs off (bucket owner enforced), and a policy refusing any request not sent over TLS.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import iam


@dataclass
class PrivateBucket:
    bucket: aws.s3.Bucket
    key: aws.kms.Key

    @property
    def name(self) -> pulumi.Output[str]:
        return self.bucket.bucket

    @property
    def arn(self) -> pulumi.Output[str]:
        return self.bucket.arn

    def read_statements(self, prefix: str = "") -> pulumi.Output[list[dict]]:
        """List and get under `prefix` only, and decrypt with the bucket's key."""
        return pulumi.Output.all(self.bucket.arn, self.key.arn).apply(
            lambda v: [
                iam.allow(["s3:ListBucket"], v[0], {"StringLike": {"s3:prefix": [f"{prefix}*"]}}),
                iam.allow(["s3:GetObject"], f"{v[0]}/{prefix}*"),
                iam.allow(["kms:Decrypt", "kms:DescribeKey"], v[1]),
            ]
        )

    def write_statements(self, prefix: str = "") -> pulumi.Output[list[dict]]:
        """Put (and read back) under `prefix`, encrypting with the bucket's key."""
        return pulumi.Output.all(self.bucket.arn, self.key.arn).apply(
            lambda v: [
                iam.allow(["s3:ListBucket"], v[0], {"StringLike": {"s3:prefix": [f"{prefix}*"]}}),
                iam.allow(["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"], f"{v[0]}/{prefix}*"),
                iam.allow(["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"], v[1]),
            ]
        )


def private_bucket(
    name: str,
    *,
    parent: pulumi.Resource,
    key: aws.kms.Key,
    protect: bool,
    access_logs: aws.s3.Bucket | None,
    expire_after_days: int | None = None,
    expire_prefix: str = "",
    noncurrent_days: int | None = 30,
    object_lock_days: int | None = None,
    bucket_prefix: str | None = None,
) -> PrivateBucket:
    """A bucket named `name` with its settings as `name-<setting>` children of `parent`.

    access_logs: the platform's access-log bucket (None only for that bucket itself).
    expire_after_days: current objects under `expire_prefix` expire; None keeps them.
    noncurrent_days: older versions expire; None keeps every version (audit trails).
    object_lock_days: governance-mode Object Lock with this default retention; None: no lock.
    """
    child = pulumi.ResourceOptions(parent=parent)
    bucket = aws.s3.Bucket(
        name,
        bucket_prefix=bucket_prefix,
        object_lock_enabled=object_lock_days is not None or None,  # only settable at creation
        force_destroy=not protect,
        opts=pulumi.ResourceOptions(parent=parent, protect=protect),
    )
    aws.s3.BucketOwnershipControls(
        f"{name}-ownership", bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=child
    )
    block = aws.s3.BucketPublicAccessBlock(
        f"{name}-public-access",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=child,
    )
    aws.s3.BucketVersioning(
        f"{name}-versioning", bucket=bucket.id, versioning_configuration={"status": "Enabled"}, opts=child
    )
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-encryption",
        bucket=bucket.id,
        rules=[
            {
                "apply_server_side_encryption_by_default": {
                    "sse_algorithm": "aws:kms",
                    "kms_master_key_id": key.arn,
                },
                "bucket_key_enabled": True,
            }
        ],
        opts=child,
    )
    aws.s3.BucketPolicy(
        f"{name}-tls-only",
        bucket=bucket.id,
        policy=bucket.arn.apply(
            lambda arn: iam.document(iam.deny_insecure_transport("s3:*", [arn, f"{arn}/*"]))
        ),
        # S3 refuses a policy while the public access block is being written.
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[block]),
    )
    housekeeping = {"id": "housekeeping", "status": "Enabled", "filter": {"prefix": ""},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 7}}  # fmt: skip
    if noncurrent_days is not None:
        housekeeping["noncurrent_version_expiration"] = {"noncurrent_days": noncurrent_days}
    rules = [housekeeping]
    if expire_after_days:
        rules.append({"id": "expire-current", "status": "Enabled", "filter": {"prefix": expire_prefix},
                      "expiration": {"days": expire_after_days}})  # fmt: skip
    aws.s3.BucketLifecycleConfiguration(f"{name}-lifecycle", bucket=bucket.id, rules=rules, opts=child)
    if object_lock_days is not None:
        # Governance mode: objects cannot be altered or deleted before the retention ends, except
        # by a principal granted s3:BypassGovernanceRetention.
        aws.s3.BucketObjectLockConfiguration(
            f"{name}-object-lock",
            bucket=bucket.id,
            rule={"default_retention": {"mode": "GOVERNANCE", "days": object_lock_days}},
            opts=child,
        )
    if access_logs is not None:
        aws.s3.BucketLogging(
            f"{name}-access-logging",
            bucket=bucket.id,
            target_bucket=access_logs.id,
            target_prefix=pulumi.Output.concat(bucket.id, "/"),
            opts=child,
        )
    return PrivateBucket(bucket, key)
