"""The prompt registry on S3: immutable numbered versions, movable aliases, eval records.

The key layout is in `llmops.prompts.layout`; alias moves and the audit are in
`llmops.prompts.aliases`.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmops.errors import LlmopsError
from llmops.prompts.aliases import AliasMoves
from llmops.prompts.format import PromptFile, content_hash, to_yaml
from llmops.prompts.layout import (
    CONFIG_KEY,
    DEFAULT_PROTECTED_ALIASES,
    ROOT,
    alias_key,
    check_alias,
    check_name,
    check_version,
    now,
    version_key,
)
from llmops.prompts.s3 import Bucket, PromptConflict, PromptNotFound, Stored, _Conflict, caller_arn, encode

REF = re.compile(r"^(?P<name>[^@:]+)(?:@(?P<alias>[^@:]+)|:(?P<version>[^@:]+))?$")
# A push that keeps losing the race for the next number gives up after this many tries
# (each loss means someone else created a version, so this only trips under a push storm).
MAX_PUSH_ATTEMPTS = 20
EVAL_RECORD = re.compile(r"\d{8}T\d{12}Z-[0-9a-f]{8}\.json")


class PromptRegistry(AliasMoves):
    """Library behind `llmops prompts`. Methods return JSON-ready dicts."""

    def __init__(self, bucket: str, s3: Any, sts: Any, protected_aliases: list[str] | None = None):
        self.bucket = Bucket(bucket, s3)
        self._sts = sts
        self._identity: str | None = None
        self._protected = protected_aliases

    # -- identity and configuration ---------------------------------------------------------

    def identity(self) -> str:
        if self._identity is None:
            self._identity = caller_arn(self._sts)
        return self._identity

    def protected_aliases(self) -> list[str]:
        """From the bucket's config object (written by the stack), else `production`."""
        if self._protected is None:
            stored = self.bucket.get(CONFIG_KEY)
            value = (stored.data if stored else {}).get("protected_aliases", DEFAULT_PROTECTED_ALIASES)
            self._protected = list(value)
        return self._protected

    # -- versions ---------------------------------------------------------------------------

    def version_numbers(self, name: str) -> list[int]:
        prefix = f"{ROOT}{check_name(name)}/versions/"
        keys = self.bucket.keys(prefix)
        names = [k[len(prefix) :] for k in keys]
        return sorted(int(n[:-5]) for n in names if re.fullmatch(r"\d{6}\.json", n))

    def get_version(self, name: str, version: int) -> dict[str, Any]:
        stored = self.bucket.get(version_key(name, version))
        if stored is None:
            known = self.version_numbers(name)
            hint = f"it has versions 1..{known[-1]}" if known else "no such prompt"
            raise PromptNotFound(f"prompt {name} has no version {version} ({hint})")
        record = stored.require(
            "name", "version", "content_hash", "prompt", "message", "author", "created_at"
        )
        if content_hash(record["prompt"]) != record["content_hash"]:
            raise LlmopsError(
                f"{name}:{version}: content does not match its recorded hash; the object was altered "
                f"outside the registry (inspect the versions of s3://{self.bucket.name}/"
                f"{version_key(name, version)})"
            )
        return record

    def push(self, prompt: PromptFile, message: str = "") -> dict[str, Any]:
        """Store a new version unless the content equals the latest one. Safe under races."""
        digest = prompt.content_hash()
        author = self.identity()
        for _ in range(MAX_PUSH_ATTEMPTS):
            numbers = self.version_numbers(prompt.name)
            latest = numbers[-1] if numbers else 0
            if latest:
                current = self.get_version(prompt.name, latest)
                if current["content_hash"] == digest:
                    return {**current, "created": False}
            record = {
                "kind": "prompt-version",
                "name": prompt.name,
                "version": latest + 1,
                "content_hash": digest,
                "message": message,
                "author": author,
                "created_at": now(),
                "prompt": prompt.canonical(),
            }
            try:
                self.bucket.put(version_key(prompt.name, latest + 1), encode(record), if_none_match=True)
            except _Conflict:
                continue  # someone took this number first: look again and take the next one
            return {**record, "created": True}
        raise PromptConflict(f"{prompt.name}: gave up after {MAX_PUSH_ATTEMPTS} concurrent pushes; retry")

    # -- references -------------------------------------------------------------------------

    def alias_record(self, name: str, alias: str) -> Stored | None:
        stored = self.bucket.get(alias_key(check_name(name), check_alias(alias)))
        if stored is not None:
            stored.require("version")
        return stored

    def aliases(self, name: str) -> dict[str, int]:
        prefix = f"{ROOT}{name}/aliases/"
        out = {}
        for key in self.bucket.keys(prefix):
            stored = self.bucket.get(key)
            if stored is not None:
                out[key[len(prefix) : -5]] = stored.require("version")["version"]
        return dict(sorted(out.items()))

    def resolve(self, name: str, spec: str | int | None) -> tuple[int, str | None]:
        """A version number, an alias name, or None (the latest) -> (version, alias)."""
        if spec is None:
            numbers = self.version_numbers(name)
            if not numbers:
                raise PromptNotFound(f"no prompt named {name} in s3://{self.bucket.name}")
            return numbers[-1], None
        if isinstance(spec, int) or str(spec).isdigit():
            return check_version(spec), None
        stored = self.alias_record(name, str(spec))
        if stored is None:
            known = ", ".join(self.aliases(name)) or "none"
            raise PromptNotFound(f"prompt {name} has no alias {spec} (aliases: {known})")
        return stored.data["version"], str(spec)

    def get(self, ref: str) -> dict[str, Any]:
        """`NAME`, `NAME@ALIAS` or `NAME:VERSION` -> the version record (with `alias` if any)."""
        match = REF.match(ref)
        if not match:
            raise LlmopsError(f"{ref!r} is not NAME, NAME@ALIAS or NAME:VERSION")
        name = match["name"]
        spec = match["alias"] or (check_version(match["version"]) if match["version"] else None)
        version, alias = self.resolve(name, spec)
        return {**self.get_version(name, version), "alias": alias}

    # -- listings ---------------------------------------------------------------------------

    def list(self) -> list[dict[str, Any]]:
        out = []
        for name in self.bucket.folders(ROOT):
            numbers = self.version_numbers(name)
            if numbers:
                out.append({"name": name, "latest_version": numbers[-1], "aliases": self.aliases(name)})
        return out

    def history(self, name: str) -> dict[str, Any]:
        numbers = self.version_numbers(name)
        if not numbers:
            raise PromptNotFound(f"no prompt named {name} in s3://{self.bucket.name}")
        aliases = self.aliases(name)
        versions = []
        for number in numbers:
            record = self.get_version(name, number)
            versions.append(
                {
                    "version": number,
                    "content_hash": record["content_hash"],
                    "message": record["message"],
                    "author": record["author"],
                    "created_at": record["created_at"],
                    "aliases": [a for a, v in aliases.items() if v == number],
                }
            )
        return {"name": name, "versions": versions, "aliases": aliases}

    def diff(self, name: str, a: str, b: str) -> dict[str, Any]:
        sides = []
        for spec in (a, b):
            version, alias = self.resolve(name, spec)
            record = self.get_version(name, version)
            label = f"{name}:{version}" + (f" ({alias})" if alias else "")
            sides.append((version, label, to_yaml(PromptFile.model_validate(record["prompt"]))))
        (va, la, ta), (vb, lb, tb) = sides
        lines = difflib.unified_diff(ta.splitlines(True), tb.splitlines(True), fromfile=la, tofile=lb)
        return {"name": name, "from_version": va, "to_version": vb, "diff": "".join(lines)}

    # -- evals ------------------------------------------------------------------------------

    def record_eval(
        self, name: str, version: int, score: float, threshold: float, report: Path | None = None
    ) -> dict[str, Any]:
        for label, value in (("score", score), ("threshold", threshold)):
            if not math.isfinite(value):
                raise LlmopsError(f"--{label} must be a finite number, got {value}")
        target = self.get_version(name, version)
        eval_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + uuid.uuid4().hex[:8]
        prefix = f"{ROOT}{name}/evals/{version:06d}/{eval_id}"
        report_ref = None
        if report is not None:
            try:
                body = Path(report).read_bytes()
            except OSError as err:
                raise LlmopsError(f"{report}: cannot read the eval report ({err.strerror})") from None
            key = f"{prefix}.report{Path(report).suffix}"
            self.bucket.put(key, body, if_none_match=True, content_type="application/octet-stream")
            report_ref = {"key": key, "sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}
        record = {
            "kind": "prompt-eval",
            "id": eval_id,
            "name": name,
            "version": version,
            "content_hash": target["content_hash"],
            "eval_set": target["prompt"].get("eval_set"),
            "score": score,
            "threshold": threshold,
            "passed": score >= threshold,
            "report": report_ref,
            "recorded_by": self.identity(),
            "recorded_at": now(),
        }
        try:
            self.bucket.put(f"{prefix}.json", encode(record), if_none_match=True)
        except _Conflict:
            raise PromptConflict(f"eval record {eval_id} already exists; retry") from None
        return record

    def latest_eval(self, name: str, version: int) -> dict[str, Any] | None:
        prefix = f"{ROOT}{name}/evals/{version:06d}/"
        # Only the records themselves (a report file may also end in .json).
        records = [k for k in self.bucket.keys(prefix) if EVAL_RECORD.fullmatch(k[len(prefix) :])]
        if not records:
            return None
        stored = self.bucket.get(max(records))  # ids start with a UTC timestamp
        return (
            stored.require("passed", "score", "threshold", "recorded_at", "recorded_by") if stored else None
        )
