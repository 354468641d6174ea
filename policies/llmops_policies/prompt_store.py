"""Prompt store: the S3 bucket(s) declared inside the prompt-store component (type
llmops:prompts:PromptStore) keep every version, lock them in regulated stacks, and never expire history."""

from __future__ import annotations

from collections.abc import Iterator

from . import _aws
from ._rule import A, Ctx, D, M, Res, Stack, anchors, as_list, get, levels, skip_unknown, stack_rule, truthy

RECORDS = anchors(
    "ISO 27001:2022:A.5.33",
    "ISO 27001:2022:A.8.32",
    "PCI DSS 4.0:10.3.3",
    "HIPAA:164.312(c)(1)",
    "UAE:CBUAE model risk management (reviewable model and prompt changes)",
)


@stack_rule(
    id="LLMOPS-PS-001",
    name="prompt-store-versioning",
    description="Checks whether the prompt-store bucket has versioning enabled, so every prompt version and "
    "alias "
    "move stays retrievable.",
    severity="high",
    remediation="Declare an aws.s3.BucketVersioning for the bucket with versioning_configuration.status "
    "'Enabled'.",
    anchors=(*anchors("Checkov:CKV_AWS_21"), *RECORDS),
    levels=levels(A, M, M, M),
)
def versioning(stack: Stack, ctx: Ctx) -> Iterator[tuple[Res, str]]:
    index = _aws.BucketIndex(stack)
    wanted = {b.urn for b in index.prompt_store_buckets()}
    for bucket, configs in index.missing(*_aws.VERSIONING):
        with skip_unknown:  # an unknown value (preview) skips this one only
            if bucket.urn not in wanted:
                continue
            if not any(c.get("versioningConfiguration.status") == "Enabled" for c in configs):
                yield bucket, f"Prompt-store bucket {bucket.name} must have versioning Enabled."


@stack_rule(
    id="LLMOPS-PS-002",
    name="prompt-store-object-lock",
    setting=("llmops:dataClassification", "llmops:promptStore.objectLockRetentionDays"),
    description="Checks whether the prompt-store bucket has Object Lock on, with a default retention in "
    "GOVERNANCE or COMPLIANCE mode, so prompt history cannot be rewritten without a trace.",
    severity="high",
    remediation="Create the bucket with object_lock_enabled=True and declare an "
    "aws.s3.BucketObjectLockConfiguration with rule.default_retention (mode GOVERNANCE, days from settings).",
    anchors=RECORDS,
    levels=levels(D, D, A, M),
)
def object_lock(stack: Stack, ctx: Ctx) -> Iterator[tuple[Res, str]]:
    index = _aws.BucketIndex(stack)
    wanted = {b.urn for b in index.prompt_store_buckets()}
    for bucket, configs in index.missing(*_aws.OBJECT_LOCK):
        with skip_unknown:  # an unknown value (preview) skips this one only
            if bucket.urn not in wanted:
                continue
            if not truthy(bucket.get("objectLockEnabled", False)) and not any(
                c.get("objectLockEnabled") == "Enabled" for c in configs
            ):
                yield (
                    bucket,
                    f"Prompt-store bucket {bucket.name} must be created with objectLockEnabled true.",
                )
            modes = [c.get("rule.defaultRetention.mode") for c in configs]
            if not any(m in ("GOVERNANCE", "COMPLIANCE") for m in modes):
                yield bucket, f"Prompt-store bucket {bucket.name} must have an Object Lock default retention."


@stack_rule(
    id="LLMOPS-PS-003",
    name="prompt-store-keeps-history",
    setting="llmops:promptStore.noncurrentVersionExpirationDays",
    description="Checks whether the prompt-store lifecycle never expires current prompt objects and keeps "
    "noncurrent versions (forever in regulated stacks, minNoncurrentDays otherwise).",
    severity="high",
    remediation="Remove expiration rules from the prompt-store lifecycle; in regulated stacks remove "
    "noncurrent_version_expiration, elsewhere keep it at minNoncurrentDays or more.",
    anchors=RECORDS,
    levels=levels(A, M, M, M),
    config={"minNoncurrentDays": {"type": "integer", "minimum": 1, "default": 365}},
)
def keeps_history(stack: Stack, ctx: Ctx) -> Iterator[tuple[Res, str]]:
    index = _aws.BucketIndex(stack)
    wanted = {b.urn for b in index.prompt_store_buckets()}
    found, _ = index.configs(*_aws.LIFECYCLE)
    for urn in wanted:
        for lifecycle in found.get(urn, []):
            with skip_unknown:  # an unknown value (preview) skips this one only
                bucket = next(b for b in index.buckets if b.urn == urn)
                for rule in as_list(lifecycle.get("rules")):
                    if get(rule, "status") != "Enabled":
                        continue
                    rid = get(rule, "id", "?")
                    if get(rule, "expiration.days") or get(rule, "expiration.date"):
                        yield (
                            lifecycle,
                            f"Prompt-store bucket {bucket.name} must not expire current prompts (rule "
                            f"{rid}).",
                        )
                    days = get(rule, "noncurrentVersionExpiration.noncurrentDays")
                    if days is None:
                        continue
                    if ctx.classification == "regulated":
                        yield (
                            lifecycle,
                            f"Prompt-store bucket {bucket.name} must keep noncurrent versions (rule {rid} "
                            f"expires them).",
                        )
                    elif int(days) < int(ctx.cfg("minNoncurrentDays")):
                        yield (
                            lifecycle,
                            (
                                f"Prompt-store bucket {bucket.name} must keep noncurrent versions at least "
                                f"{ctx.cfg('minNoncurrentDays')} days (rule {rid}: {days})."
                            ),
                        )
