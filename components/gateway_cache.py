"""The gateway's response cache: ElastiCache Serverless for Valkey in the VPC.

Only when a route opts into caching with the valkey backend (`llmops:gateway.responseCache`).
Encrypted at rest with its own KMS key and in transit (a serverless cache accepts TLS only);
reachable on 6379 (and 6380, its read-from-replica port) from the gateway pods' security group
only; one RBAC user (engine VALKEY, password authentication: serverless caches take RBAC and
nothing else) whose password reaches the pods through the gateway's Secret. LiteLLM keys every
entry under the caller's team (llmops/gateway/hooks.py `CacheScope`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.context import AwsContext
from llmops import versions
from llmops.gateway.config import CACHE_USER

CACHE_PORTS = (6379, 6380)


@dataclass
class ResponseCache:
    host: pulumi.Output[str]
    port: pulumi.Output[str]
    password: pulumi.Output[str]
    security_group: aws.ec2.SecurityGroup
    cache: aws.elasticache.ServerlessCache


def response_cache(
    name: str,
    ctx: AwsContext,
    parent: pulumi.Resource,
    vpc_id: pulumi.Input[str],
    subnet_ids: list[pulumi.Input[str]],
    client_security_group: aws.ec2.SecurityGroup,
) -> ResponseCache:
    settings = ctx.settings.gateway.response_cache
    child = pulumi.ResourceOptions(parent=parent)
    key = ctx.kms_key(f"{name}-cache-key", "Gateway response cache", parent)
    sg = aws.ec2.SecurityGroup(
        f"{name}-cache-sg",
        description="Gateway response cache: Valkey over TLS from the gateway pods only",
        vpc_id=vpc_id,
        ingress=[
            {"protocol": "tcp", "from_port": port, "to_port": port,
             "security_groups": [client_security_group.id], "description": "gateway pods"}
            for port in CACHE_PORTS
        ],
        opts=child,
    )  # fmt: skip
    password = random.RandomPassword(f"{name}-cache-password", length=40, special=False, opts=child)
    user = aws.elasticache.User(
        f"{name}-cache-user",
        user_id=f"{ctx.settings.name_prefix}-gateway",
        user_name=CACHE_USER,
        engine="valkey",
        # Every key, no administrative or dangerous commands (FLUSHALL, CONFIG, KEYS, ...).
        access_string="on ~* +@all -@dangerous -@admin",
        # Secret as a whole: the engine does not keep the password's secrecy inside the nested list.
        authentication_mode=pulumi.Output.secret({"type": "password", "passwords": [password.result]}),
        opts=child,
    )
    group = aws.elasticache.UserGroup(
        f"{name}-cache-users",
        user_group_id=f"{ctx.settings.name_prefix}-gateway",
        engine="valkey",
        user_ids=[user.user_id],
        opts=child,
    )
    cache = aws.elasticache.ServerlessCache(
        f"{name}-cache",
        name=f"{ctx.settings.name_prefix}-gateway",
        engine="valkey",
        major_engine_version=versions.GATEWAY_VALKEY_MAJOR_VERSION,
        description="LiteLLM response cache (per-team keys)",
        kms_key_id=key.arn,
        security_group_ids=[sg.id],
        subnet_ids=subnet_ids,
        user_group_id=group.user_group_id,
        cache_usage_limits={
            "data_storage": {"maximum": settings.max_data_gb, "unit": "GB"},
            "ecpu_per_seconds": [{"maximum": settings.max_ecpu_per_second}],
        },
        opts=child,
    )
    endpoint = cache.endpoints.apply(lambda e: e[0])
    return ResponseCache(
        host=endpoint.apply(lambda e: e.address),
        port=endpoint.apply(lambda e: str(e.port)),
        password=pulumi.Output.secret(password.result),
        security_group=sg,
        cache=cache,
    )
