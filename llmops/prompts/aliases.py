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
from llmops.prompts.layout import ROOT, alias_key, check_alias, check_name, now
from llmops.prompts.s3 import PromptConflict, PromptNotFound, Stored, _Conflict, encode


def _reason(reason: str) -> str:
    if not reason or not reason.strip():
        raise LlmopsError("--reason must say why the alias moves (it is kept in the audit trail)")
    return reason.strip()


def _eval_summary(record: dict[str, Any] | None) -> dict[str, Any] | None:
    if record is None:
        return None
    keys = ("id", "score", "threshold", "passed", "recorded_by", "recorded_at", "content_hash")
    return {k: record.get(k) for k in keys}


class AliasMoves:
    """Mixed into PromptRegistry, which provides bucket, identity() and the version reads."""

    def promote(self, name: str, version: int, alias: str, reason: str) -> dict[str, Any]:
        check_alias(alias)
        reason = _reason(reason)
        self.identity()  # fail early, before reading the alias, if we cannot say who moves it
        target = self.get_version(name, version)
        current = self.alias_record(name, alias)
        if current is not None and current.data["version"] == version:
            return {**current.data, "moved": False}
        evaluation = self.latest_eval(name, version)
        if alias in self.protected_aliases():
            hint = f"record one with `llmops prompts eval-record {name} {version} --score S --threshold T`"
            if evaluation is None:
                raise PromptConflict(
                    f"{name}@{alias} is protected: version {version} has no recorded eval; {hint}"
                )
            if not evaluation["passed"]:
                raise PromptConflict(
                    f"{name}@{alias} is protected: the latest eval of version {version} failed "
                    f"(score {evaluation['score']} < threshold {evaluation['threshold']}, "
                    f"recorded {evaluation['recorded_at']} by {evaluation['recorded_by']}); {hint}"
                )
        return self._move(name, alias, target, current, reason, "promote", evaluation)

    def rollback(self, name: str, alias: str, reason: str) -> dict[str, Any]:
        """Point the alias back where it pointed before its last move. Not eval-gated: the
        target already served, and recovery must take seconds; the audit marks it a rollback."""
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
        return self._move(name, alias, target, current, reason, "rollback", self.latest_eval(name, previous))

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
            "moved_at": now(),
            "eval": _eval_summary(evaluation),
        }
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
        """Every alias move ever made, oldest first, with the integrity of each alias's chain."""
        if not self.version_numbers(check_name(name)):
            raise PromptNotFound(f"no prompt named {name} in s3://{self.bucket.name}")
        prefix = f"{ROOT}{name}/aliases/"
        versions, markers = self.bucket.versions(prefix)
        problems: list[str] = []
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
            for position, (stored, meta) in enumerate(items, start=1):
                data = stored.data
                problems += _chain_problems(alias, position, data, previous)
                gate = data.get("eval") or {}
                if alias in protected and data.get("action") == "promote" and not gate.get("passed"):
                    problems.append(
                        f"{alias}: move {position} to version {data.get('version')} has no passing eval"
                    )
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
        return {"name": name, "moves": moves, "intact": not problems, "problems": problems}


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
