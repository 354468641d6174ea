"""Secrets the platform generates and keeps in Secrets Manager, encrypted with a customer key."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.context import AwsContext


def stored_secret(
    name: str,
    secret_name: str,
    key: aws.kms.Key,
    value: pulumi.Input[str],
    ctx: AwsContext,
    parent: pulumi.Resource,
) -> aws.secretsmanager.Secret:
    """`value` stored as `secret_name`; deleting it waits out a 30-day recovery window unless the
    stack is a throw-away one (deletionProtection off)."""
    secret = aws.secretsmanager.Secret(
        name,
        name_prefix=f"{secret_name}-",  # a recreated secret must not wait out the old one's recovery
        kms_key_id=key.arn,
        recovery_window_in_days=30 if ctx.protect else 0,
        opts=pulumi.ResourceOptions(parent=parent, protect=ctx.protect),
    )
    aws.secretsmanager.SecretVersion(
        f"{name}-value",
        secret_id=secret.id,
        secret_string=pulumi.Output.secret(value),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return secret


def generated_secret(
    name: str, secret_name: str, key: aws.kms.Key, ctx: AwsContext, parent: pulumi.Resource, length: int = 48
) -> tuple[pulumi.Output[str], aws.secretsmanager.Secret]:
    """A random alphanumeric value (safe in URLs and headers), stored as `secret_name`."""
    value = random.RandomPassword(
        f"{name}-random", length=length, special=False, opts=pulumi.ResourceOptions(parent=parent)
    )
    result = pulumi.Output.secret(value.result)
    return result, stored_secret(name, secret_name, key, result, ctx, parent)
