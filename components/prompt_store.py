"""The prompt store: the S3 bucket behind `llmops prompts` and `PromptClient`, and its roles.

Versioned, SSE-KMS with a customer key (bucket key on, so KMS is called per bucket and hour
rather than per object), public access blocked, owner-enforced, TLS-only, access-logged, and
in regulated stacks Object-Locked in governance mode with every old version kept: the
registry's audit trail is the bucket's version history, so nothing here may shorten it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import iam
from components.context import AwsContext
from llmops.prompts.layout import CONFIG_KEY, ROOT

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"


@dataclass
class PromptStoreArgs:
    context: AwsContext
    github_oidc_provider_arn: pulumi.Input[str]
    """The account's GitHub Actions OIDC provider; the prompt-writer role trusts it."""
    github_subjects: Sequence[str]
    """Workflow subjects (`repo:OWNER/NAME:ref:refs/heads/main`, ...) that may assume
    prompt-writer (promptStore.writerGithubSubjects). None: no prompt-writer role is created,
    rather than one that some other repository's workflows could assume."""


def github_trust(provider_arn: pulumi.Input[str], subjects: Sequence[str]) -> pulumi.Output[str]:
    """Web identity trust pinned to the STS audience and to named repositories' workflows."""
    return iam.document_output(
        {
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {f"{GITHUB_OIDC_HOST}:aud": "sts.amazonaws.com"},
                "StringLike": {f"{GITHUB_OIDC_HOST}:sub": list(subjects)},
            },
        }
    )


def secure_transport_statements(bucket_arn: str) -> list[dict]:
    """Deny plain HTTP and TLS older than 1.2 for everyone, on the bucket and its objects."""
    resources = [bucket_arn, f"{bucket_arn}/*"]
    return [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": resources,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Sid": "DenyOutdatedTls",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": resources,
            "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}},
        },
    ]


class PromptStore(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    key_arn: pulumi.Output[str]
    log_bucket_name: pulumi.Output[str]
    writer_role_arn: pulumi.Output[str] | None
    reader_role_arn: pulumi.Output[str]
    writer_role: aws.iam.Role | None
    reader_role: aws.iam.Role

    def __init__(self, name: str, args: PromptStoreArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:prompts:PromptStore", name, None, opts)
        ctx, cfg = args.context, args.context.settings.prompt_store
        self._base, self._protect = name, ctx.protect
        child = pulumi.ResourceOptions(parent=self)
        kept = pulumi.ResourceOptions(parent=self, protect=ctx.protect)
        prefix = ctx.settings.name_prefix
        # Bucket names are global: account and region make them unique and predictable.
        suffix = f"{ctx.account_id}-{ctx.region}"

        key = ctx.kms_key(f"{name}-key", f"{prefix} prompt store (S3 SSE-KMS)", parent=self)
        aws.kms.Alias(
            f"{name}-key-alias", name=f"alias/{prefix}-prompts", target_key_id=key.key_id, opts=child
        )

        logs = self._log_bucket(
            name, f"{prefix}-prompt-logs-{suffix}", ctx.account_id, cfg.access_log_retention_days
        )

        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket=f"{prefix}-prompts-{suffix}",
            # Object Lock must be enabled when the bucket is created; changing it replaces the bucket.
            object_lock_enabled=ctx.settings.regulated,
            force_destroy=False,
            opts=kept,
        )
        public_block = self._private(name, bucket)
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning", bucket=bucket.id, versioning_configuration={"status": "Enabled"}, opts=child
        )
        encryption = aws.s3.BucketServerSideEncryptionConfiguration(
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
            f"{name}-policy",
            bucket=bucket.id,
            policy=bucket.arn.apply(lambda arn: iam.document(*secure_transport_statements(arn))),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_block]),
        )
        aws.s3.BucketLogging(
            f"{name}-access-logging",
            bucket=bucket.id,
            target_bucket=logs.id,
            target_prefix="prompt-bucket/",
            target_object_key_format={"partitioned_prefix": {"partition_date_source": "EventTime"}},
            opts=child,
        )
        locked: list[pulumi.Resource] = [versioning, encryption]
        if ctx.settings.regulated:
            retention_days = cfg.object_lock_retention_days
            locked.append(
                aws.s3.BucketObjectLockConfiguration(
                    f"{name}-object-lock",
                    bucket=bucket.id,
                    object_lock_enabled="Enabled",
                    rule={"default_retention": {"mode": "GOVERNANCE", "days": retention_days}},
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
                )
            )
        rules: list[dict] = [
            {
                "id": "abort-incomplete-uploads",
                "status": "Enabled",
                "filter": {"prefix": ""},
                "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
            }
        ]
        # Old versions are the audit trail: kept forever unless a non-regulated stack opts out
        # (the settings refuse the option in regulated stacks).
        if expire_days := cfg.noncurrent_version_expiration_days:
            rules.append(
                {
                    "id": "expire-noncurrent-versions",
                    "status": "Enabled",
                    "filter": {"prefix": ""},
                    "noncurrent_version_expiration": {"noncurrent_days": expire_days},
                }
            )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=rules,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )
        # The registry's configuration lives in the bucket, outside the writer role's prefix,
        # so CI cannot loosen the eval gate it is subject to.
        aws.s3.BucketObjectv2(
            f"{name}-registry-config",
            bucket=bucket.id,
            key=CONFIG_KEY,
            content=json.dumps({"protected_aliases": cfg.protected_aliases}, indent=2),
            content_type="application/json",
            # Object Lock refuses uploads without a checksum.
            checksum_algorithm="SHA256",
            opts=pulumi.ResourceOptions(parent=self, depends_on=locked),
        )

        self.bucket_name, self.bucket_arn, self.key_arn = bucket.bucket, bucket.arn, key.arn
        self.log_bucket_name = logs.bucket

        self.writer_role = self.writer_role_arn = None
        if args.github_subjects:
            self.writer_role = aws.iam.Role(
                f"{name}-writer",
                name=f"{prefix}-prompt-writer",
                description="CI pushes, evaluates and promotes prompts (llmops prompts ...)",
                assume_role_policy=github_trust(args.github_oidc_provider_arn, args.github_subjects),
                max_session_duration=3600,
                opts=child,
            )
            self.grant_write(self.writer_role)
            self.writer_role_arn = self.writer_role.arn
        else:
            pulumi.log.warn(
                "no prompt-writer role: set llmops:promptStore.writerGithubSubjects to let CI push prompts",
                resource=self,
            )
        self.reader_role = aws.iam.Role(
            f"{name}-reader",
            name=f"{prefix}-prompt-reader",
            description="Applications read prompts through EKS Pod Identity (PromptClient)",
            assume_role_policy=iam.pod_identity_trust(ctx.account_id),
            opts=child,
        )
        self.grant_read(self.reader_role)
        self.reader_role_arn = self.reader_role.arn

        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "bucket_arn": self.bucket_arn,
                "key_arn": self.key_arn,
                "log_bucket_name": self.log_bucket_name,
                "writer_role_arn": self.writer_role_arn,
                "reader_role_arn": self.reader_role_arn,
            }
        )

    def _private(self, name: str, bucket: aws.s3.Bucket) -> aws.s3.BucketPublicAccessBlock:
        """No ACLs (the bucket owner owns every object) and no public access, ever."""
        child = pulumi.ResourceOptions(parent=self)
        rule = {"object_ownership": "BucketOwnerEnforced"}
        aws.s3.BucketOwnershipControls(f"{name}-ownership", bucket=bucket.id, rule=rule, opts=child)
        return aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )

    def _log_bucket(self, name: str, bucket_name: str, account: str, retention_days: int) -> aws.s3.Bucket:
        """Server access logs. SSE-S3, because S3 cannot deliver access logs to a bucket whose
        default encryption is SSE-KMS
        (https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html)."""
        child = pulumi.ResourceOptions(parent=self)
        kept = pulumi.ResourceOptions(parent=self, protect=self._protect)
        logs = aws.s3.Bucket(f"{name}-logs", bucket=bucket_name, force_destroy=False, opts=kept)
        public_block = self._private(f"{name}-logs", logs)
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-logs-encryption",
            bucket=logs.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=child,
        )
        aws.s3.BucketVersioning(
            f"{name}-logs-versioning",
            bucket=logs.id,
            versioning_configuration={"status": "Enabled"},
            opts=child,
        )

        def policy(arn: str) -> str:
            delivery = {
                "Sid": "S3ServerAccessLogDelivery",
                "Effect": "Allow",
                "Principal": {"Service": "logging.s3.amazonaws.com"},
                "Action": "s3:PutObject",
                "Resource": f"{arn}/prompt-bucket/*",
                "Condition": {"StringEquals": {"aws:SourceAccount": account}},
            }
            return iam.document(delivery, *secure_transport_statements(arn))

        aws.s3.BucketPolicy(
            f"{name}-logs-policy",
            bucket=logs.id,
            policy=logs.arn.apply(policy),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_block]),
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-logs-lifecycle",
            bucket=logs.id,
            rules=[
                {
                    "id": "expire-access-logs",
                    "status": "Enabled",
                    "filter": {"prefix": ""},
                    "expiration": {"days": retention_days},
                    "noncurrent_version_expiration": {"noncurrent_days": retention_days},
                }
            ],
            opts=child,
        )
        return logs

    # -- access by intent -------------------------------------------------------------------

    def grant_read(self, role: aws.iam.Role) -> aws.iam.RolePolicy:
        """Read prompts and the registry config, and decrypt them with the bucket's key."""
        return self._grant(role, "read", write=False)

    def grant_write(self, role: aws.iam.Role) -> aws.iam.RolePolicy:
        """Everything `llmops prompts` does: read, list versions (audit), and create objects
        under prompts/. No delete, no Object Lock bypass, no access to the registry config."""
        return self._grant(role, "write", write=True)

    def _grant(self, role: aws.iam.Role, verb: str, write: bool) -> aws.iam.RolePolicy:
        bucket, key = self.bucket_arn, self.key_arn
        prompts = bucket.apply(lambda a: f"{a}/{ROOT}*")
        statements = [
            # ListBucket also makes a missing key answer 404 rather than 403, which the client
            # needs to tell "no such alias" from "S3 is unavailable".
            iam.allow(["s3:ListBucket"], bucket),
            iam.allow(["s3:GetObject"], [prompts, bucket.apply(lambda a: f"{a}/{CONFIG_KEY}")]),
            iam.allow(["kms:Decrypt"], key),
        ]
        if write:
            statements += [
                iam.allow(["s3:ListBucketVersions"], bucket),
                iam.allow(["s3:GetObjectVersion", "s3:PutObject"], prompts),
                iam.allow(["kms:GenerateDataKey"], key),
            ]
        return aws.iam.RolePolicy(
            f"{self._base}-{verb}-{role.pulumi_resource_name}",
            role=role.id,
            policy=iam.document_output(*statements),
            opts=pulumi.ResourceOptions(parent=self),
        )
