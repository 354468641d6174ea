"""The platform's S3 server access-log bucket: every other bucket logs its requests here.

SSE-S3 (AES256), not SSE-KMS: S3 cannot deliver server access logs to a bucket whose default
encryption is SSE-KMS (docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html),
which is why the policy pack exempts access-log targets from its customer-key rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import iam
from components.context import AwsContext


@dataclass
class AccessLogsArgs:
    context: AwsContext
    retention_days: int
    """Log objects expire after this; versions are kept as long (a deleted log leaves a trace)."""


class AccessLogs(pulumi.ComponentResource):
    bucket: aws.s3.Bucket

    def __init__(self, name: str, args: AccessLogsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:audit:AccessLogs", name, None, opts)
        ctx = args.context
        child = pulumi.ResourceOptions(parent=self)
        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket_prefix=f"{ctx.settings.name_prefix}-access-logs-",
            force_destroy=not ctx.protect,
            opts=pulumi.ResourceOptions(parent=self, protect=ctx.protect),
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=child,
        )
        block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access", bucket=bucket.id, block_public_acls=True, block_public_policy=True,
            ignore_public_acls=True, restrict_public_buckets=True, opts=child,
        )  # fmt: skip
        aws.s3.BucketVersioning(
            f"{name}-versioning", bucket=bucket.id, versioning_configuration={"status": "Enabled"}, opts=child
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=child,
        )
        aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=bucket.id,
            policy=bucket.arn.apply(lambda arn: log_bucket_policy(arn, ctx.account_id)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[block]),
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=[
                {
                    "id": "expire-access-logs",
                    "status": "Enabled",
                    "filter": {"prefix": ""},
                    "expiration": {"days": args.retention_days},
                    "noncurrent_version_expiration": {"noncurrent_days": args.retention_days},
                }
            ],
            opts=child,
        )
        self.bucket = bucket
        self.register_outputs({"bucket": bucket.bucket})


def log_bucket_policy(arn: str, account_id: str) -> str:
    """S3's logging service may write (for this account's buckets only); nothing without TLS."""
    return iam.document(
        {
            "Sid": "S3ServerAccessLogs",
            "Effect": "Allow",
            "Principal": {"Service": "logging.s3.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": f"{arn}/*",
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
        },
        iam.deny_insecure_transport("s3:*", [arn, f"{arn}/*"]),
    )
