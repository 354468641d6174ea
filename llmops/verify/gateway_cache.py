"""The wire between the gateway and its response cache (ElastiCache Serverless for Valkey).

When the generated LiteLLM config caches in Redis/Valkey (`litellm_settings.cache_params.type:
redis`, llmops/gateway/config.py), the plan must hold the serverless cache the config's host
variable names, the gateway pods must reach it on its port through both ends' security groups,
the connection must use TLS (a serverless cache refuses anything else) and the password must come
from the gateway's Secret.
"""

from __future__ import annotations

from collections.abc import Iterator

from llmops.gateway.config import CACHE_HOST_ENV, CACHE_PASSWORD_ENV, CACHE_PORT_ENV
from llmops.verify.contracts import Finding, contract
from llmops.verify.model import PlanView
from llmops.verify.network import Endpoint, Network, gateway_pods
from llmops.verify.permissions import _container_env

CONTRACT = "network-gateway-cache"
CACHE_TYPE = "aws:elasticache/serverlessCache:ServerlessCache"


def _secret_keys(plan: PlanView, namespace: str, names: list[str]) -> set[str]:
    keys: set[str] = set()
    for secret in plan.objects("Secret", namespace):
        meta = secret["inputs"].get("metadata") or {}
        if meta.get("name") in names:
            keys |= set(secret["inputs"].get("stringData") or {}) | set(secret["inputs"].get("data") or {})
    return keys


@contract(
    CONTRACT,
    "network",
    "Checks whether a gateway whose LiteLLM config caches in Valkey/Redis reaches the serverless cache its "
    "environment names, on that cache's port through both security groups, over TLS, with the password "
    "from its Secret.",
)
def gateway_cache(plan: PlanView) -> Iterator[Finding]:
    params = ((plan.gateway_config or {}).get("litellm_settings") or {}).get("cache_params") or {}
    if params.get("type") != "redis":
        return
    caches = {
        (ep.get("address"), int(ep.get("port", 0))): cache
        for cache in plan.of_type(CACHE_TYPE)
        for ep in (cache.get("outputs") or {}).get("endpoints") or []
    }
    net = Network(plan)
    for w in gateway_pods(plan):
        client = net.pod(w)
        for container in w.containers:
            env = _container_env(container)
            host, port = env.get(CACHE_HOST_ENV), env.get(CACHE_PORT_ENV)
            cache = caches.get((host, int(port))) if str(port or "").isdigit() else None
            if cache is None:
                yield Finding(
                    CONTRACT,
                    w.resource,
                    f"{host}:{port}",
                    f"{client.label} must name a serverless cache of the plan in {CACHE_HOST_ENV}/"
                    f"{CACHE_PORT_ENV} (its config caches in Valkey), but {host}:{port} is none of "
                    f"{sorted(f'{h}:{p}' for h, p in caches) or 'no cache'}.",
                    "Set the cache's endpoint address and port on the gateway container "
                    "(components/gateway_cache.py).",
                )
                continue
            inputs = cache["inputs"]
            server = Endpoint(
                f"cache {cache['name']}",
                cache["name"],
                set(inputs.get("securityGroupIds") or []),
                net._ranges(inputs.get("subnetIds") or []),
            )
            block = net.sg_block(client, server, int(port))
            if block:
                yield Finding(
                    CONTRACT,
                    w.resource,
                    cache["name"],
                    f"{client.label} must reach its response cache {cache['name']} on {port}, but {block}.",
                    "Admit the gateway pods' security group in the cache's security group.",
                )
            if params.get("ssl") is not True:
                yield Finding(
                    CONTRACT,
                    w.resource,
                    cache["name"],
                    f"{client.label} must connect to {cache['name']} over TLS (a serverless cache accepts "
                    "nothing else), but cache_params.ssl is not true.",
                    "Set litellm_settings.cache_params.ssl: true.",
                )
            secrets = [
                (s.get("secretRef") or {}).get("name")
                for s in container.get("envFrom") or []
                if s.get("secretRef")
            ]
            if CACHE_PASSWORD_ENV not in _secret_keys(plan, w.namespace, secrets):
                yield Finding(
                    CONTRACT,
                    w.resource,
                    cache["name"],
                    f"{client.label} must read {CACHE_PASSWORD_ENV} (the cache user's password) from its "
                    f"Secret, but none of {secrets} carries it.",
                    "Put the cache password into the gateway's env Secret.",
                )
