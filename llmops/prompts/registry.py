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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmops.errors import LlmopsError
from llmops.prompts.aliases import AliasMoves
from llmops.prompts.format import PromptFile, content_hash, parameter_problems, to_yaml
from llmops.prompts.gate import MANUAL, eval_summary, harness_problems
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
REPORT_EXT = re.compile(r"^[a-z0-9]{1,10}$")


@dataclass(frozen=True)
class RegistryConfig:
    """`_registry/config.json`, written by the stack (components/prompt_store.py); CI cannot write it."""

    protected_aliases: tuple[str, ...] = DEFAULT_PROTECTED_ALIASES
    models: tuple[str, ...] | None = None
    """The gateway's routes; None (key absent or null): a prompt's model is not checked."""
    min_pass_rate: float | None = None
    """A floor the gate applies on top of each eval set's threshold."""

    @classmethod
    def parse(cls, data: dict[str, Any], where: str) -> RegistryConfig:
        aliases = data.get("protected_aliases", list(DEFAULT_PROTECTED_ALIASES))
        models = data.get("models")
        floor = data.get("min_pass_rate")
        problems = []
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            problems.append("protected_aliases: must be a list of alias names")
        if models is not None and (
            not isinstance(models, list) or not all(isinstance(m, str) for m in models)
        ):
            problems.append("models: must be a list of gateway routes, or null")
        if floor is not None and not (
            isinstance(floor, int | float) and not isinstance(floor, bool) and 0 < floor <= 1
        ):
            problems.append("min_pass_rate: must be a number above 0 and at most 1, or null")
        if problems:
            raise LlmopsError(f"{where}: {'; '.join(problems)} (the stack writes this object: redeploy it)")
        return cls(tuple(aliases), None if models is None else tuple(models), floor)


class PromptRegistry(AliasMoves):
    """Library behind `llmops prompts`. Methods return JSON-ready dicts."""

    def __init__(self, bucket: str, s3: Any, sts: Any, protected_aliases: list[str] | None = None):
        self.bucket = Bucket(bucket, s3)
        self._sts = sts
        self._identity: str | None = None
        self._protected = protected_aliases
        self._config: RegistryConfig | None = None

    # -- identity and configuration ---------------------------------------------------------

    def identity(self) -> str:
        if self._identity is None:
            self._identity = caller_arn(self._sts)
        return self._identity

    def config(self) -> RegistryConfig:
        """The bucket's config object (written by the stack); defaults when it is absent."""
        if self._config is None:
            stored = self.bucket.get(CONFIG_KEY)
            where = f"s3://{self.bucket.name}/{CONFIG_KEY}"
            self._config = RegistryConfig.parse(stored.data if stored else {}, where)
        return self._config

    def protected_aliases(self) -> list[str]:
        """From the bucket's config object, else `production`."""
        if self._protected is None:
            self._protected = list(self.config().protected_aliases)
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

    def check_servable(self, prompt: PromptFile, source: str | None = None) -> None:
        """Refuse parameter names LiteLLM and vLLM do not take, and a model the gateway does not serve."""
        where = source or prompt.name
        problems = parameter_problems(prompt.parameters)
        models = self.config().models
        if models is not None and prompt.model not in models:
            near = difflib.get_close_matches(prompt.model, models, n=1)
            problems.append(
                f"model: {prompt.model!r} is not a route this stack's gateway serves "
                f"(it serves: {', '.join(models) or 'nothing'})"
                + (f"; did you mean {near[0]}?" if near else "")
            )
        if problems:
            lines = "\n".join(f"  {p}" for p in problems)
            raise LlmopsError(f"{where}: {len(problems)} problem(s) in the prompt file:\n{lines}")

    def push(self, prompt: PromptFile, message: str = "", source: str | None = None) -> dict[str, Any]:
        """Store a new version unless the content equals the latest one. Safe under races.
        `source` (the file's path) names where a refused prompt came from."""
        self.check_servable(prompt, source)
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
        evals = self._latest_eval_keys(name)
        versions = []
        for number in numbers:
            record = self.get_version(name, number)
            stored = self.bucket.get(evals[number]) if number in evals else None
            versions.append(
                {
                    "version": number,
                    "content_hash": record["content_hash"],
                    "message": record["message"],
                    "author": record["author"],
                    "created_at": record["created_at"],
                    "aliases": [a for a, v in aliases.items() if v == number],
                    "latest_eval": eval_summary(stored.data) if stored else None,
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
        """A manual eval record: it annotates the version (history, audit) but cannot open a
        protected alias, since whoever types the score also types the threshold."""
        for label, value in (("score", score), ("threshold", threshold)):
            if not math.isfinite(value):
                raise LlmopsError(f"--{label} must be a finite number, got {value}")
        target = self.get_version(name, version)
        body = ext = None
        if report is not None:
            try:
                body = Path(report).read_bytes()
            except OSError as err:
                raise LlmopsError(f"{report}: cannot read the eval report ({err.strerror})") from None
            ext = Path(report).suffix
        record = {
            "kind": MANUAL,
            "name": name,
            "version": version,
            "content_hash": target["content_hash"],
            "eval_set": target["prompt"].get("eval_set"),
            "score": score,
            "threshold": threshold,
            "passed": score >= threshold,
        }
        return self._store_eval(name, version, record, body, ext)

    def record_harness_eval(
        self,
        name: str,
        version: int,
        record: dict[str, Any],
        report: bytes | None = None,
        report_ext: str = "md",
    ) -> dict[str, Any]:
        """Store what `llmops eval run --record` measured as the version's eval record (the only
        kind that opens a protected alias), with `report` next to it and its sha256."""
        check_name(name)
        version = check_version(version)
        where = f"eval record for {name}:{version}"
        problems = harness_problems(record)
        if problems:
            lines = "\n".join(f"  {p}" for p in problems)
            raise LlmopsError(f"{where}: {len(problems)} problem(s):\n{lines}")
        if not REPORT_EXT.match(report_ext):
            raise LlmopsError(f"{where}: report_ext {report_ext!r} must be lower-case letters and digits")
        target = self.get_version(name, version)
        mismatches = []
        if (record["prompt"], record["version"]) != (name, version):
            mismatches.append(f"it is for {record['prompt']}:{record['version']}")
        if record["content_sha256"] != target["content_hash"]:
            mismatches.append(
                f"content_sha256 {record['content_sha256']} is not the version's ({target['content_hash']})"
            )
        if record["eval_set"]["prompt"] != name:
            mismatches.append(f"eval_set.prompt is {record['eval_set']['prompt']!r}, not {name!r}")
        if mismatches:
            raise LlmopsError(f"{where}: {'; '.join(mismatches)}; nothing was recorded")
        return self._store_eval(name, version, dict(record), report, f".{report_ext}")

    def _store_eval(
        self, name: str, version: int, record: dict[str, Any], report: bytes | None, ext: str | None
    ) -> dict[str, Any]:
        """Both kinds: the report first (If-None-Match), then the record naming it, with who and when."""
        eval_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + uuid.uuid4().hex[:8]
        prefix = f"{ROOT}{name}/evals/{version:06d}/{eval_id}"
        report_ref = None
        if report is not None:
            key = f"{prefix}.report{ext or ''}"
            self.bucket.put(key, report, if_none_match=True, content_type="application/octet-stream")
            report_ref = {"key": key, "sha256": hashlib.sha256(report).hexdigest(), "bytes": len(report)}
        record.update(id=eval_id, report=report_ref, recorded_by=self.identity(), recorded_at=now())
        try:
            self.bucket.put(f"{prefix}.json", encode(record), if_none_match=True)
        except _Conflict:
            raise PromptConflict(f"eval record {eval_id} already exists; retry") from None
        return record

    def _eval_keys(self, prefix: str) -> list[str]:
        # Only the records themselves (a report file may also end in .json).
        return [k for k in self.bucket.keys(prefix) if EVAL_RECORD.fullmatch(k.rsplit("/", 1)[-1])]

    def _latest_eval_keys(self, name: str) -> dict[int, str]:
        """Version -> key of its latest eval record, from one listing."""
        prefix = f"{ROOT}{name}/evals/"
        out: dict[int, str] = {}
        for key in self._eval_keys(prefix):
            folder = key[len(prefix) :].split("/", 1)[0]
            if folder.isdigit():
                out[int(folder)] = max(out.get(int(folder), ""), key)  # ids start with a UTC timestamp
        return out

    def latest_eval(self, name: str, version: int) -> dict[str, Any] | None:
        """The version's latest eval record, of either kind (the gate decides what it is worth)."""
        records = self._eval_keys(f"{ROOT}{name}/evals/{version:06d}/")
        if not records:
            return None
        stored = self.bucket.get(max(records))  # ids start with a UTC timestamp
        return stored.require("kind", "passed", "recorded_at", "recorded_by") if stored else None
