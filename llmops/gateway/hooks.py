"""The gateway's own pre-call guardrails, loaded by the LiteLLM proxy from its config directory.

The gateway's ConfigMap projects this file to llmops/gateway/hooks.py under the config directory;
LiteLLM 1.100.5 loads `guardrail: llmops.gateway.hooks.<Class>` from there (else imports it:
litellm/proxy/types_utils/utils.py `get_instance_fn`) and passes the guardrail's extra
`litellm_params` to the constructor (proxy/guardrails/guardrail_registry.py
`initialize_custom_guardrail`). It runs inside the LiteLLM image, so it imports only the standard
library, litellm and fastapi (a litellm dependency), never the llmops package.

- `PromptBudget` refuses a prompt over its route's (or its team's) input-token limit with HTTP 413
  naming the limit, before routing: no model is called.
- `CacheScope` decides, per request, whether the response cache is used (only for the routes that
  opted in) and pins the cache namespace to the caller's team (or key when it has no team), so a
  cached answer never crosses teams whatever the request asks for.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from fastapi import HTTPException
from litellm.integrations.custom_guardrail import CustomGuardrail

OTEL_LOGGER_MODULE = "litellm.integrations.otel.logger"


def remember_failed_otel_import() -> bool:
    """Make a failed import of LiteLLM's OpenTelemetry logger fail once, not on every guardrail run.

    After each guardrail run LiteLLM 1.100.5 imports `emit_guardrail_span` from
    litellm.integrations.otel.logger inside a try/except (integrations/custom_guardrail.py,
    `add_standard_logging_guardrail_information_to_request_data`). Where that module cannot
    import (it needs opentelemetry-api's `_events`, which 1.28, pinned by the image's
    proxy-runtime extra, has and later releases dropped), the failure is not cached: every
    guardrail run re-executes the otel modules up to the failure, about 1-4 ms of CPU each, three
    times a request with PII masking in and out and injection screening. LiteLLM memoizes the same
    failure for its auth spans (integrations/otel/runtime.py `_otel_runtime`, "CPython never
    caches a failed import"); this does it for the guardrail path: once that memo holds the
    failure, a stand-in module whose `emit_guardrail_span` does nothing keeps what the failure
    meant (no otel logger, no span), and `from ... import OpenTelemetryV2` still fails as before.
    Where the module imports, nothing changes. Returns whether the stand-in was registered.
    """
    from litellm.integrations.otel import runtime

    if runtime._otel_runtime() is not None:  # the logger imports: nothing to remember
        return False
    stand_in = types.ModuleType(OTEL_LOGGER_MODULE, "stand-in: the otel logger could not be imported")
    stand_in.emit_guardrail_span = lambda entry: None
    sys.modules[OTEL_LOGGER_MODULE] = stand_in
    return True


remember_failed_otel_import()

# Cache controls a caller may still send for a cached route (opting out or asking for fresher
# entries); everything else in `cache` (namespace, ttl, ...) is the gateway's.
CALLER_CACHE_CONTROLS = ("no-cache", "no-store", "s-maxage")


def prompt_text(data: dict) -> str:
    """The text a request sends to the model: message contents (strings and text parts), or the
    `prompt` / `input` of completion and embedding calls."""
    parts: list[str] = []
    for message in data.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    for key in ("prompt", "input"):
        value = data.get(key)
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            parts += [v for v in value if isinstance(v, str)]
    return "\n".join(parts)


def count_tokens(text: str, limit: int) -> int:
    """Tokens of `text` as LiteLLM counts them for a model without a tokenizer of its own
    (tiktoken's cl100k_base), or its UTF-8 size when that is within `limit`: a byte-level BPE
    token covers at least one byte, so such text is within the limit without running the
    tokenizer, and the common case costs one encode."""
    size = len(text.encode())
    if size <= limit:
        return size
    import litellm  # imported here: the proxy has it loaded, tests of the byte path do not need it

    return litellm.token_counter(text=text)


class PromptBudget(CustomGuardrail):
    def __init__(
        self,
        route_max_input_tokens: dict[str, int] | None = None,
        default_max_input_tokens: int | None = None,
        team_limit_key: str | None = None,
        **kwargs: Any,
    ):
        self.route_limits = dict(route_max_input_tokens or {})
        self.default_limit = default_max_input_tokens
        self.team_limit_key = team_limit_key  # the team metadata key the team reconciler sets
        super().__init__(**kwargs)

    def limit_for(self, route: str, user_api_key_dict) -> tuple[int | None, str]:
        """The tightest limit that applies and the setting it comes from."""
        candidates = []
        route_limit = self.route_limits.get(route, self.default_limit)
        if route_limit is not None:
            candidates.append((int(route_limit), f"route {route} (llmops:gateway.inputBudget)"))
        team_metadata = getattr(user_api_key_dict, "team_metadata", None) or {}
        team_limit = team_metadata.get(self.team_limit_key) if self.team_limit_key else None
        if isinstance(team_limit, int) and team_limit > 0:
            team = getattr(user_api_key_dict, "team_id", None)
            candidates.append((team_limit, f"team {team} (gateway.maxInputTokens in its team file)"))
        return min(candidates) if candidates else (None, "")

    async def async_pre_call_hook(self, user_api_key_dict, cache, data: dict, call_type):
        route = str(data.get("model") or "")
        limit, source = self.limit_for(route, user_api_key_dict)
        if limit is None:
            return data
        tokens = count_tokens(prompt_text(data), limit)
        if tokens > limit:
            raise HTTPException(
                status_code=413,
                detail={
                    "error": (
                        f"Prompt refused: about {tokens} input tokens, over the limit of {limit} "
                        f"input tokens set for {source}; shorten the prompt or the retrieved context"
                    ),
                    "limit": limit,
                    "limit_source": source,
                    "input_tokens": tokens,
                },
            )
        return data


class CacheScope(CustomGuardrail):
    def __init__(self, routes: list[str] | None = None, **kwargs: Any):
        self.routes = frozenset(routes or ())
        super().__init__(**kwargs)

    @staticmethod
    def namespace(user_api_key_dict) -> str:
        """The team's id, else the caller's hashed key: both set by the proxy's authentication,
        never by the request."""
        team = getattr(user_api_key_dict, "team_id", None)
        if team:
            return f"llmops:team:{team}"
        return f"llmops:key:{getattr(user_api_key_dict, 'token', None) or 'anonymous'}"

    async def async_pre_call_hook(self, user_api_key_dict, cache, data: dict, call_type):
        # A caller-chosen cache key or namespace could read another team's entries.
        data.pop("cache_key", None)
        for meta in (data.get("metadata"), data.get("litellm_metadata")):
            if isinstance(meta, dict):
                meta.pop("redis_namespace", None)
        asked = data.get("cache") if isinstance(data.get("cache"), dict) else {}
        if str(data.get("model") or "") not in self.routes:
            # The cache runs in default_off mode: without use-cache it is neither read nor written.
            data["cache"] = {}
            return data
        controls: dict[str, Any] = {k: asked[k] for k in CALLER_CACHE_CONTROLS if k in asked}
        controls.update({"use-cache": True, "namespace": self.namespace(user_api_key_dict)})
        data["cache"] = controls
        return data
