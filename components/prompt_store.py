"""The prompt store: the S3 bucket behind `llmops prompts` and `PromptClient`, and its roles.

A private bucket (components/s3.py: versioned, SSE-KMS with its own customer key and S3 bucket
keys, public access blocked, owner-enforced, TLS-only, logging to the platform's access-log
bucket) that keeps every old version, Object-Locked in governance mode in regulated stacks:
the registry's audit trail is the bucket's version history, so nothing here may shorten it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import iam
from components.context import AwsContext
from components.s3 import private_bucket
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
    gateway_routes: Sequence[str] | None = None
    """The model names the stack's gateway serves (self-hosted and external): `push` refuses a
    prompt written for any other. None: prompts' models are not checked."""


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


class PromptStore(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    key_arn: pulumi.Output[str]
    writer_role_arn: pulumi.Output[str] | None
    reader_role_arn: pulumi.Output[str]
    writer_role: aws.iam.Role | None
    reader_role: aws.iam.Role

    def __init__(self, name: str, args: PromptStoreArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:prompts:PromptStore", name, None, opts)
        ctx, cfg = args.context, args.context.settings.prompt_store
        self._base = name
        child = pulumi.ResourceOptions(parent=self)
        prefix = ctx.settings.name_prefix

        key = ctx.kms_key(f"{name}-key", f"{prefix} prompt store (S3 SSE-KMS)", parent=self)
        aws.kms.Alias(
            f"{name}-key-alias", name=f"alias/{prefix}-prompts", target_key_id=key.key_id, opts=child
        )
        store = private_bucket(
            f"{name}-bucket",
            parent=self,
            key=key,
            protect=ctx.protect,
            access_logs=ctx.access_logs,
            bucket_prefix=f"{prefix}-prompts-",
            # Replaced versions are the audit trail: kept unless a non-regulated stack opts out
            # (the settings refuse the option in regulated stacks).
            noncurrent_days=cfg.noncurrent_version_expiration_days,
            object_lock_days=cfg.object_lock_retention_days if ctx.settings.regulated else None,
        )
        bucket = store.bucket
        # The registry's configuration lives in the bucket, outside the writer role's prefix,
        # so CI cannot loosen the eval gate it is subject to. Encrypted explicitly: the bucket's
        # default-encryption resource may not be in place yet when this object is first written.
        registry_config = {
            "protected_aliases": cfg.protected_aliases,
            "models": None if args.gateway_routes is None else list(args.gateway_routes),
            "min_pass_rate": cfg.min_pass_rate,
        }
        aws.s3.BucketObjectv2(
            f"{name}-registry-config",
            bucket=bucket.id,
            key=CONFIG_KEY,
            content=json.dumps(registry_config, indent=2),
            content_type="application/json",
            server_side_encryption="aws:kms",
            kms_key_id=key.arn,
            bucket_key_enabled=True,
            checksum_algorithm="SHA256",  # Object Lock refuses uploads without a checksum
            opts=child,
        )
        self.bucket_name, self.bucket_arn, self.key_arn = bucket.bucket, bucket.arn, key.arn

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
                "writer_role_arn": self.writer_role_arn,
                "reader_role_arn": self.reader_role_arn,
            }
        )

    # -- access by intent -------------------------------------------------------------------

    def grant_read(self, role: aws.iam.Role, names: str = "") -> aws.iam.RolePolicy:
        """Read prompts (those whose names start with `names`, all by default) and the registry
        config, and decrypt them with the bucket's key."""
        return self._grant(role, "read", write=False, names=names)

    def grant_write(self, role: aws.iam.Role, names: str = "") -> aws.iam.RolePolicy:
        """Everything `llmops prompts` does on the prompts whose names start with `names` (all by
        default): read, list versions and check the bucket's versioning (audit), and create objects
        under their keys. No delete, no Object Lock bypass, no write to the registry config (so the
        eval gate still applies)."""
        return self._grant(role, "write", write=True, names=names)

    def _grant(self, role: aws.iam.Role, verb: str, write: bool, names: str) -> aws.iam.RolePolicy:
        bucket, key = self.bucket_arn, self.key_arn
        prompts = bucket.apply(lambda a: f"{a}/{ROOT}{names}*")
        # ListBucket also makes a missing key answer 404 rather than 403, which the client needs to
        # tell "no such alias" from "S3 is unavailable"; a name prefix limits what it lists.
        listing = {"StringLike": {"s3:prefix": [f"{ROOT}{names}*"]}} if names else None
        statements = [
            iam.allow(["s3:ListBucket"], bucket, listing),
            iam.allow(["s3:GetObject"], [prompts, bucket.apply(lambda a: f"{a}/{CONFIG_KEY}")]),
            iam.allow(["kms:Decrypt"], key),
        ]
        if write:
            statements += [
                iam.allow(["s3:ListBucketVersions"], bucket, listing),
                iam.allow(["s3:GetBucketVersioning"], bucket),
                iam.allow(["s3:GetObjectVersion", "s3:PutObject"], prompts),
                iam.allow(["kms:GenerateDataKey"], key),
            ]
        return aws.iam.RolePolicy(
            f"{self._base}-{verb}-{role.pulumi_resource_name}",
            role=role.id,
            policy=iam.document_output(*statements),
            opts=pulumi.ResourceOptions(parent=self),
        )
