"""Alias moves (promote, rollback) and the audit trail read back from S3 object versions.

An alias record is one small JSON object per alias. Every move writes a new record with
`If-Match: <etag of the record we read>`, so of two concurrent moves exactly one lands and
the other gets PromptConflict (exit 3). The bucket is versioned (and Object-Locked in
regulated stacks), so every record ever written stays readable: that is the audit trail.
Each record also carries a sequence number and the sha256 of the record it replaced, so a
version removed or rewritten behind the registry's back shows up as a broken chain.
"""

from __future__ import annotations

from typing import Any

from llmops.errors import LlmopsError
from llmops.prompts.gate import MANUAL, SHA256_HEX, eval_summary, gate_refusals
from llmops.prompts.layout import ROOT, alias_key, check_alias, check_name, now
from llmops.prompts.s3 import PromptConflict, PromptNotFound, Stored, _Conflict, encode

# Every alias record carries, per version the alias was ever rolled back away from, when that
# last happened: the gate needs it on every promote and rollback, and reading it from the record
# in hand keeps rollback fast. Records written before it existed are read from their history.
ROLLED_BACK_FROM = "rolled_back_from"


def _reason(reason: str) -> str:
    if not reason or not reason.strip():
        raise LlmopsError("--reason must say why the alias moves (it is kept in the audit trail)")
    return reason.strip()


def _with_rollback(rollbacks: dict[str, str], data: dict[str, Any]) -> dict[str, str]:
    """`rollbacks` updated with the move in `data`, if that move rolled the alias back."""
    away = data.get("previous_version")
    if data.get("action") != "rollback" or away is None:
        return rollbacks
    at = str(data.get("moved_at") or "")
    return {**rollbacks, str(away): max(rollbacks.get(str(away), ""), at)}


class AliasMoves:
    """Mixed into PromptRegistry, which provides bucket, identity(), config() and the version reads."""

    def promote(
        self, name: str, version: int, alias: str, reason: str, eval_set_sha256: str | None = None
    ) -> dict[str, Any]:
        """Move the alias to the version. Protected aliases pass the gate (llmops.prompts.gate);
        with `eval_set_sha256` any alias does, and the eval must have run on that eval set."""
        check_alias(alias)
        reason = _reason(reason)
        if eval_set_sha256 is not None and not SHA256_HEX.match(eval_set_sha256):
            raise LlmopsError(f"eval set digest {eval_set_sha256!r} is not a sha256 hex digest")
        self.identity()  # fail early, before reading the alias, if we cannot say who moves it
        target = self.get_version(name, version)
        current = self.alias_record(name, alias)
        if current is not None and current.data["version"] == version:
            return {**current.data, "moved": False}
        evaluation = self.latest_eval(name, version)
        if alias in self.protected_aliases() or eval_set_sha256 is not None:
            rolled_back_at = self.rolled_back_at(name, version)
            self._gate(name, alias, target, evaluation, "promote", rolled_back_at, eval_set_sha256)
        return self._move(name, alias, target, current, reason, "promote", evaluation)

    def rollback(self, name: str, alias: str, reason: str) -> dict[str, Any]:
        """Point the alias back where it pointed before its last move. Not eval-gated (the target
        already served, and recovery must take seconds) unless the alias is protected and the
        target is a version some alias was rolled back away from: a withdrawn version returns
        only through a fresh passing eval. The audit marks the move a rollback."""
        check_alias(alias)
        reason = _reason(reason)
        self.identity()
        current = self.alias_record(name, alias)
        if current is None:
            raise PromptNotFound(f"prompt {name} has no alias {alias}")
        previous = current.data.get("previous_version")
        if previous is None:
            raise PromptNotFound(
                f"{name}@{alias} has never moved, so there is no earlier version to roll back to"
            )
        target = self.get_version(name, previous)
        evaluation = self.latest_eval(name, previous)
        if alias in self.protected_aliases():
            rolled_back_at = self.rolled_back_at(name, previous)
            if rolled_back_at is not None:
                self._gate(name, alias, target, evaluation, "roll back", rolled_back_at)
        return self._move(name, alias, target, current, reason, "rollback", evaluation)

    def rolled_back_at(self, name: str, version: int) -> str | None:
        """When an alias of the prompt was last rolled back away from the version (None: never)."""
        prefix = f"{ROOT}{name}/aliases/"
        times = []
        for key in self.bucket.keys(prefix):
            stored = self.bucket.get(key)
            if stored is not None:
                alias = key[len(prefix) : -len(".json")]
                times.append(self._rollbacks(name, alias, stored).get(str(version)))
        return max((t for t in times if t), default=None)

    def _rollbacks(self, name: str, alias: str, stored: Stored) -> dict[str, str]:
        """Version (as text) -> when the alias was last rolled back away from it."""
        carried = stored.data.get(ROLLED_BACK_FROM)
        if isinstance(carried, dict) and all(isinstance(at, str) for at in carried.values()):
            return carried
        key = alias_key(name, alias)  # written before the field existed: read the alias's history
        rollbacks: dict[str, str] = {}
        for meta in self.bucket.versions(key)[0]:
            if meta["Key"] != key:
                continue
            try:
                older = self.bucket.get(key, meta["VersionId"])
            except LlmopsError:
                continue  # garbage written around the registry: the audit reports it
            if older is not None:
                rollbacks = _with_rollback(rollbacks, older.data)
        return rollbacks

    def _gate(
        self,
        name: str,
        alias: str,
        target: dict[str, Any],
        evaluation: dict[str, Any] | None,
        action: str,
        rolled_back_at: str | None,
        eval_set_sha256: str | None = None,
    ) -> None:
        version = target["version"]
        refusals = gate_refusals(
            evaluation,
            name=name,
            version=version,
            content_hash=target["content_hash"],
            min_pass_rate=self.config().min_pass_rate,
            eval_set_sha256=eval_set_sha256,
            rolled_back_at=rolled_back_at,
        )
        if refusals:
            why = "is protected" if alias in self.protected_aliases() else "needs an eval on the given set"
            raise PromptConflict(
                f"{name}@{alias} {why}: the eval gate refused to {action} to version {version}: "
                + "; ".join(refusals)
                + ". Nothing was written"
            )

    def _move(
        self,
        name: str,
        alias: str,
        target: dict[str, Any],
        current: Stored | None,
        reason: str,
        action: str,
        evaluation: dict[str, Any] | None,
    ) -> dict[str, Any]:
        moved_at = now()
        rollbacks = self._rollbacks(name, alias, current) if current else {}
        record = {
            "kind": "prompt-alias",
            "name": name,
            "alias": alias,
            "version": target["version"],
            "content_hash": target["content_hash"],
            "previous_version": current.data["version"] if current else None,
            "sequence": current.data.get("sequence", 0) + 1 if current else 1,
            "previous_record_sha256": current.sha256 if current else None,
            "action": action,
            "reason": reason,
            "moved_by": self.identity(),
            "moved_at": moved_at,
            "eval": eval_summary(evaluation),
        }
        record[ROLLED_BACK_FROM] = _with_rollback(rollbacks, record)
        key = alias_key(name, alias)
        try:
            if current is None:
                self.bucket.put(key, encode(record), if_none_match=True)
            else:
                self.bucket.put(key, encode(record), if_match=current.etag)
        except _Conflict:
            latest = self.alias_record(name, alias)
            where = f"it now points to version {latest.data['version']}" if latest else "it was deleted"
            raise PromptConflict(
                f"{name}@{alias} was moved by someone else during this {action} ({where}); nothing was "
                f"written. Check `llmops prompts history {name}` and retry if the move is still wanted"
            ) from None
        return {**record, "moved": True}

    def audit(self, name: str) -> dict[str, Any]:
        """Every alias move ever made, oldest first, with the integrity of each alias's chain and
        whether the bucket keeps the versions the trail is made of."""
        if not self.version_numbers(check_name(name)):
            raise PromptNotFound(f"no prompt named {name} in s3://{self.bucket.name}")
        versioning = self.bucket.versioning()
        problems: list[str] = []
        if versioning != "Enabled":
            problems.append(
                f"bucket versioning is {versioning.lower()}: an alias move overwrites the record before it, "
                f"so the trail is incomplete from here on; re-enable versioning on s3://{self.bucket.name}"
            )
        prefix = f"{ROOT}{name}/aliases/"
        versions, markers = self.bucket.versions(prefix)
        by_alias: dict[str, list[tuple[Stored, dict]]] = {}
        for meta in versions:
            alias = meta["Key"][len(prefix) : -len(".json")]
            try:
                stored = self.bucket.get(meta["Key"], meta["VersionId"])
            except LlmopsError as err:  # garbage written around the registry is a finding, not a crash
                problems.append(f"{alias}: object version {meta['VersionId']}: {err}")
                continue
            if stored is None:
                problems.append(f"{alias}: object version {meta['VersionId']} is listed but cannot be read")
                continue
            by_alias.setdefault(alias, []).append((stored, meta))
        protected = self.protected_aliases()
        moves = []
        for alias, items in sorted(by_alias.items()):
            items.sort(key=lambda item: (item[0].data.get("sequence", 0), item[1]["LastModified"]))
            previous: Stored | None = None
            rollbacks: dict[str, str] = {}
            for position, (stored, meta) in enumerate(items, start=1):
                data = stored.data
                problems += _chain_problems(alias, position, data, previous)
                rollbacks = _with_rollback(rollbacks, data)
                if ROLLED_BACK_FROM in data and data[ROLLED_BACK_FROM] != rollbacks:
                    problems.append(
                        f"{alias}: move {position} does not carry the rollbacks before it "
                        f"({ROLLED_BACK_FROM} differs from the history): a withdrawn version could return"
                    )
                if alias in protected and data.get("action") == "promote":
                    problems += _gate_problems(alias, position, data)
                moves.append(
                    {
                        "alias": alias,
                        "sequence": data.get("sequence"),
                        "action": data.get("action"),
                        "from_version": data.get("previous_version"),
                        "to_version": data.get("version"),
                        "reason": data.get("reason"),
                        "moved_by": data.get("moved_by"),
                        "moved_at": data.get("moved_at"),
                        "eval": data.get("eval"),
                        "s3_version_id": meta["VersionId"],
                    }
                )
                previous = stored
        for marker in markers:
            alias = marker["Key"][len(prefix) : -len(".json")]
            problems.append(f"{alias}: the alias record was deleted (delete marker {marker['VersionId']})")
        moves.sort(key=lambda m: (m["moved_at"] or "", m["alias"], m["sequence"] or 0))
        return {
            "name": name,
            "moves": moves,
            "intact": not problems,
            "problems": problems,
            "versioning": versioning,
        }


def _gate_problems(alias: str, position: int, data: dict[str, Any]) -> list[str]:
    """A promotion of a protected alias the gate would not have let through (written around it)."""
    gate = data.get("eval") or {}
    where = f"{alias}: move {position} to version {data.get('version')}"
    if not gate.get("passed"):
        return [f"{where} has no passing eval"]
    if gate.get("kind") == MANUAL:  # moves made before manual evals stopped opening the gate carry no kind
        return [f"{where} was opened by a manual eval (eval-record), which cannot open the gate"]
    return []


def _chain_problems(alias: str, position: int, data: dict[str, Any], previous: Stored | None) -> list[str]:
    out = []
    if data.get("sequence") != position:
        out.append(
            f"{alias}: move {position} carries sequence {data.get('sequence')}: "
            "a move is missing or was rewritten"
        )
    expected_sha = previous.sha256 if previous else None
    if data.get("previous_record_sha256") != expected_sha:
        out.append(f"{alias}: move {position} does not chain to the record before it (sha256 mismatch)")
    expected_from = previous.data.get("version") if previous else None
    if data.get("previous_version") != expected_from:
        out.append(
            f"{alias}: move {position} says it came from version {data.get('previous_version')}, "
            f"but the record before it points to {expected_from}"
        )
    return out
