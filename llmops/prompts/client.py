"""`PromptClient`: what an application uses to fetch and render a prompt at inference time.

    client = PromptClient("llmops-prod-prompts")
    prompt = client.get("retail-banking-support")          # alias "production"
    messages = prompt.render({"customer_name": "Layla", "question": "..."})
    metadata = prompt.metadata    # put in the gateway request: which version answered

Reads go memory cache (fresh for `ttl_seconds`) -> S3 -> on error, the last-known-good copy
(in memory, else on disk, which survives restarts). `fail_closed=True` raises instead of
serving a copy that may be out of date. "Not found" from S3 is an answer, not an error: it is
raised, never papered over with a cached copy of something that was deleted.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from llmops.errors import LlmopsError
from llmops.prompts.format import PromptFile, content_hash
from llmops.prompts.layout import alias_key, check_alias, check_name, version_key
from llmops.prompts.s3 import Bucket, PromptNotFound, StoreUnavailable

log = logging.getLogger(__name__)
CACHE_DIR_ENV = "LLMOPS_PROMPT_CACHE_DIR"


class PromptUnavailable(LlmopsError):
    """S3 could not be read and no usable copy exists (or the client is fail-closed)."""


@dataclass(frozen=True)
class ServedPrompt:
    name: str
    alias: str
    version: int
    content_hash: str
    prompt: PromptFile
    source: str
    """Where this answer came from: "s3", "memory", or "disk" (last-known-good)."""
    stale: bool = False
    """True when S3 could not be reached and a last-known-good copy was served."""
    fetched_at: float = field(default=0.0, compare=False)

    def render(self, variables: dict[str, Any]) -> str | list[dict[str, str]]:
        """The filled template (a string, or chat messages). Refuses missing or unknown variables."""
        return self.prompt.render(variables)

    @property
    def metadata(self) -> dict[str, str]:
        """For the gateway request's metadata, so the spend and request logs name the version."""
        return {
            "prompt_name": self.name,
            "prompt_alias": self.alias,
            "prompt_version": str(self.version),
            "prompt_hash": self.content_hash,
        }


class PromptClient:
    def __init__(
        self,
        bucket: str,
        *,
        s3: Any = None,
        ttl_seconds: float = 60.0,
        cache_dir: Path | str | None = None,
        fail_closed: bool = False,
        clock: Any = time.monotonic,
    ):
        """`ttl_seconds`: how long a fetched prompt is served from memory before S3 is asked
        again (a promotion or rollback reaches the app within this time). `cache_dir`: where
        last-known-good copies are kept; defaults to $LLMOPS_PROMPT_CACHE_DIR, else
        ~/.cache/llmops/prompts. `fail_closed`: raise PromptUnavailable instead of serving a
        last-known-good copy when S3 fails (for prompts where a stale version is worse than none)."""
        if s3 is None:
            from llmops.prompts.s3 import make_clients

            # Short timeouts: on the request path, a slow S3 should fall back to the cache quickly.
            s3 = make_clients(connect_timeout=2, read_timeout=5, max_attempts=2)[0]
        self._bucket = Bucket(bucket, s3)
        self.ttl_seconds = ttl_seconds
        default_dir = os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "llmops" / "prompts"
        self.cache_dir = Path(cache_dir or default_dir) / bucket
        self.fail_closed = fail_closed
        self._clock = clock
        self._memory: dict[tuple[str, str], ServedPrompt] = {}
        self._lock = threading.Lock()

    def get(self, name: str, alias: str = "production") -> ServedPrompt:
        key = (check_name(name), check_alias(alias))
        with self._lock:
            cached = self._memory.get(key)
        if cached and self._clock() - cached.fetched_at < self.ttl_seconds:
            return replace(cached, source="memory")
        try:
            served = self._fetch(name, alias, cached)
        except StoreUnavailable as err:
            return self._fallback(key, cached, err)
        with self._lock:
            self._memory[key] = served
        self._save(served)
        return served

    def _fetch(self, name: str, alias: str, cached: ServedPrompt | None) -> ServedPrompt:
        pointer = self._bucket.get(alias_key(name, alias))
        if pointer is None:
            raise PromptNotFound(f"prompt {name} has no alias {alias} in s3://{self._bucket.name}")
        version = pointer.require("version")["version"]
        if cached and cached.version == version:  # alias unchanged: one small GET per TTL
            return replace(cached, source="s3", stale=False, fetched_at=self._clock())
        stored = self._bucket.get(version_key(name, version))
        if stored is None:
            raise PromptNotFound(f"{name}@{alias} points to version {version}, which does not exist")
        record = stored.require("name", "version", "content_hash", "prompt")
        return self._served(record, alias, "s3", stale=False)

    def _served(self, record: dict[str, Any], alias: str, source: str, stale: bool) -> ServedPrompt:
        if content_hash(record["prompt"]) != record["content_hash"]:
            raise PromptUnavailable(f"{record['name']}:{record['version']} does not match its content hash")
        return ServedPrompt(
            name=record["name"],
            alias=alias,
            version=record["version"],
            content_hash=record["content_hash"],
            prompt=PromptFile.model_validate(record["prompt"]),
            source=source,
            stale=stale,
            fetched_at=self._clock(),
        )

    def _fallback(self, key: tuple[str, str], cached: ServedPrompt | None, err: LlmopsError) -> ServedPrompt:
        name, alias = key
        if self.fail_closed:
            raise PromptUnavailable(f"{name}@{alias}: {err} (fail-closed: no cached copy served)") from None
        if cached is not None:
            served = replace(cached, source="memory", stale=True)
        else:
            record = self._load(name, alias)
            if record is None:
                raise PromptUnavailable(
                    f"{name}@{alias}: {err}; and no last-known-good copy in {self.cache_dir}"
                )
            try:
                served = self._served(record, alias, "disk", stale=True)
            except (KeyError, TypeError, ValueError):  # ValueError covers pydantic's ValidationError
                raise PromptUnavailable(
                    f"{name}@{alias}: {err}; and the last-known-good copy in {self.cache_dir} is unreadable"
                ) from None
        log.warning(
            "serving last-known-good %s@%s v%s (%s): %s", name, alias, served.version, served.source, err
        )
        # Serve the copy for another TTL before asking S3 again, so an outage does not add an
        # S3 timeout to every request.
        with self._lock:
            self._memory[key] = replace(served, fetched_at=self._clock())
        return served

    def _path(self, name: str, alias: str) -> Path:
        return self.cache_dir / f"{name}@{alias}.json"

    def _save(self, served: ServedPrompt) -> None:
        """Atomic replace, so a crash mid-write never leaves a half-written last-known-good."""
        record = {
            "name": served.name,
            "version": served.version,
            "content_hash": served.content_hash,
            "prompt": served.prompt.canonical(),
        }
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.cache_dir, prefix=".tmp-")
            with os.fdopen(fd, "w") as handle:
                json.dump(record, handle)
            os.replace(tmp, self._path(served.name, served.alias))
        except OSError as err:  # a read-only filesystem must not break serving
            log.warning("cannot write last-known-good copy to %s: %s", self.cache_dir, err)

    def _load(self, name: str, alias: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._path(name, alias).read_text())
        except (OSError, ValueError):
            return None
