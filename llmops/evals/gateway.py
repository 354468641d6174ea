"""The eval runner's client of the OpenAI-compatible gateway (the stack's LiteLLM proxy).

Configured from the environment:
    LLMOPS_GATEWAY_URL      base URL (the stack's `gatewayUrl`); /v1/chat/completions is appended
    LLMOPS_GATEWAY_KEY      a gateway key, sent as `Authorization: Bearer`
    LLMOPS_GATEWAY_CA_CERT  optional: the CA to trust for TLS (the stack's `gatewayCaCertificate`),
                            as a PEM file path or the PEM text itself; else the system's CAs

Retries: 429, 5xx and connection errors, at most MAX_ATTEMPTS attempts, waiting Retry-After when
the answer carries one, else exponential backoff with full jitter. Any other answer (a bad key, an
unknown model) is final. The cost of a call is the proxy's `x-litellm-response-cost` header
(litellm 1.100.5 `proxy/common_request_processing.py`, `get_custom_headers`), absent when the
proxy could not price it.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import os
import random
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from llmops.errors import EXIT_USAGE, LlmopsError
from llmops.inputs import read_text

URL_ENV = "LLMOPS_GATEWAY_URL"
KEY_ENV = "LLMOPS_GATEWAY_KEY"
CA_ENV = "LLMOPS_GATEWAY_CA_CERT"
CHAT_PATH = "/v1/chat/completions"
COST_HEADER = "x-litellm-response-cost"
MAX_ATTEMPTS = 5
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 20.0
RETRY_AFTER_MAX_S = 120.0  # a gateway asking for longer is treated as asking for this long
TIMEOUT_S = 120.0


class GatewayError(LlmopsError):
    """The gateway cannot be used or gave a final error: the eval cannot run (exit 2)."""

    def __init__(self, message: str):
        super().__init__(message, EXIT_USAGE)


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None
    latency_ms: float


class Gateway:
    def __init__(
        self,
        base_url: str,
        key: str,
        ca_pem: str | None = None,
        *,
        max_attempts: int = MAX_ATTEMPTS,
        backoff_base_s: float = BACKOFF_BASE_S,
        timeout_s: float = TIMEOUT_S,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ):
        self.url = chat_url(base_url)
        self._key = key
        self._context = ssl.create_default_context(cadata=ca_pem) if ca_pem else None
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.timeout_s = timeout_s
        self._sleep = sleep
        self._jitter = jitter

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Gateway:
        url = environ.get(URL_ENV, "").strip()
        if not url:
            raise GatewayError(
                f"{URL_ENV} is not set: set it to the gateway's base URL (the stack's gatewayUrl "
                f"output, e.g. https://gateway.dev.llmops.internal); {CHAT_PATH} is appended"
            )
        key = environ.get(KEY_ENV, "").strip()
        if not key:
            raise GatewayError(f"{KEY_ENV} is not set: set it to a gateway key (sent as a Bearer token)")
        ca = environ.get(CA_ENV, "").strip()
        pem = ca if ca.startswith("-----BEGIN") else (read_text(ca, "gateway CA certificate") if ca else None)
        try:
            return cls(url, key, pem)
        except ssl.SSLError as err:
            source = "its PEM text" if pem is ca else ca
            raise GatewayError(f"{CA_ENV}: {source} holds no usable PEM certificate ({err.reason})") from None

    def chat(self, body: dict[str, Any]) -> Completion:
        """One chat completion, retried on 429 / 5xx / connection errors."""
        data = json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self._key}", "Content-Type": "application/json"}
        failure = ""
        for attempt in range(1, self.max_attempts + 1):
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            started = time.monotonic()
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s, context=self._context) as resp:
                    raw = resp.read()
                    cost = resp.headers.get(COST_HEADER)
                return self._completion(raw, cost, (time.monotonic() - started) * 1000)
            except urllib.error.HTTPError as err:
                detail = _error_detail(err)
                if err.code != 429 and err.code < 500:
                    hint = f"; check {KEY_ENV}" if err.code in (401, 403) else ""
                    raise GatewayError(f"{self.url}: HTTP {err.code}: {detail}{hint}") from None
                failure = f"HTTP {err.code}: {detail}"
                delay = retry_after(err.headers.get("Retry-After"))
            except urllib.error.URLError as err:
                if isinstance(err.reason, ssl.SSLError):  # a wrong CA does not heal by retrying
                    raise GatewayError(
                        f"{self.url}: TLS failed ({err.reason}); set {CA_ENV} to the stack's "
                        "gatewayCaCertificate"
                    ) from None
                failure, delay = f"cannot connect ({err.reason})", None
            except (ConnectionError, TimeoutError, http.client.HTTPException) as err:
                failure, delay = f"connection failed ({type(err).__name__}: {err})", None
            if attempt < self.max_attempts:
                self._sleep(delay if delay is not None else self._backoff(attempt))
        raise GatewayError(f"{self.url}: gave up after {self.max_attempts} attempts: {failure}")

    def _backoff(self, attempt: int) -> float:
        """Full jitter (uniform in [0, base * 2^(attempt-1)], capped): retries from several
        workers spread out instead of arriving together."""
        return self._jitter() * min(BACKOFF_MAX_S, self.backoff_base_s * 2 ** (attempt - 1))

    def _completion(self, raw: bytes, cost: str | None, latency_ms: float) -> Completion:
        try:
            answer = json.loads(raw)
            message = answer["choices"][0]["message"]
            usage = answer.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError):
            raise GatewayError(f"{self.url}: not a chat completion: {raw[:300]!r}") from None
        try:
            cost_usd = float(cost) if cost is not None else None
        except ValueError:
            cost_usd = None
        return Completion(
            text=message.get("content") or "",
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            cost_usd=cost_usd,
            latency_ms=round(latency_ms, 1),
        )


def chat_url(base_url: str) -> str:
    """The chat endpoint under a base URL; a base that already ends in /v1 is not doubled."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GatewayError(f"{URL_ENV}={base_url!r}: not an http(s) URL; set the gateway's base URL")
    base = base_url.rstrip("/").removesuffix("/v1")
    return base + CHAT_PATH


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), bounded."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # "-0000": UTC without a claim about the local zone (RFC 5322)
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), RETRY_AFTER_MAX_S)


def _error_detail(err: urllib.error.HTTPError) -> str:
    try:
        raw = err.read()
    except OSError:
        return err.reason or ""
    try:
        message = json.loads(raw)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = raw.decode(errors="replace")
    return " ".join(str(message).split())[:300]
