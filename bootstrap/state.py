"""The Pulumi state backend of the platform's stacks: an S3 bucket and the KMS key that encrypts it
and wraps every stack's secrets.

The bucket is the platform's own private bucket (components/s3.py: versioned, SSE-KMS with this
key and S3 bucket keys, public access blocked, ACLs off, TLS-only policy, noncurrent versions
expiring), logging to its own access-log bucket, and protected like the key. The key's alias is
the secrets provider of every stack (`pulumi stack init --secrets-provider awskms://alias/...`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.context import AwsContext
from components.s3 import private_bucket


@dataclass
class StateBackendArgs:
    context: AwsContext
    noncurrent_version_days: int | None


class StateBackend(pulumi.ComponentResource):
    bucket: aws.s3.Bucket
    key: aws.kms.Key
    alias: str
    backend_url: pulumi.Output[str]
    secrets_provider: str

    def __init__(self, name: str, args: StateBackendArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:bootstrap:StateBackend", name, None, opts)
        ctx = args.context
        prefix = ctx.settings.name_prefix
        self.key = ctx.kms_key(f"{name}-key", f"{prefix} Pulumi state (S3 SSE-KMS) and stack secrets", self)
        self.alias = f"alias/{prefix}-state"
        aws.kms.Alias(
            f"{name}-key-alias",
            name=self.alias,
            target_key_id=self.key.key_id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        store = private_bucket(
            f"{name}-bucket",
            parent=self,
            key=self.key,
            protect=ctx.protect,
            access_logs=ctx.access_logs,
            noncurrent_days=args.noncurrent_version_days,
            bucket_prefix=f"{prefix}-state-",
        )
        self.bucket = store.bucket
        self.backend_url = pulumi.Output.concat("s3://", store.bucket.bucket, f"?region={ctx.region}")
        self.secrets_provider = f"awskms://{self.alias}?region={ctx.region}"
        self.register_outputs(
            {
                "bucket": store.bucket.bucket,
                "backend_url": self.backend_url,
                "secrets_provider": self.secrets_provider,
            }
        )
