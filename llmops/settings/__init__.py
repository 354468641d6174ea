"""Typed settings of a stack, and their loading from a stack file or from Pulumi config.

Every problem is reported at once, each with its path (`llmops:gpuPools[1].maxGpus: ...`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from llmops.errors import EXIT_USAGE, LlmopsError
from llmops.inputs import load_yaml
from llmops.settings.stack import StackSettings
from llmops.settings.team import TeamGateway, TeamPrompts, TeamQuota, TeamSettings, load_teams

NAMESPACE = "llmops"
REGION_KEY = "aws:region"

__all__ = [
    "NAMESPACE",
    "SettingsError",
    "StackSettings",
    "TeamGateway",
    "TeamPrompts",
    "TeamQuota",
    "TeamSettings",
    "from_config",
    "load_stack_file",
    "load_teams",
    "read_stack_file",
]


class SettingsError(LlmopsError):
    def __init__(self, source: str, problems: list[str], what: str = "the stack settings"):
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s) in {what}:\n{lines}", EXIT_USAGE)


def _path(loc: tuple, namespace: str = NAMESPACE) -> str:
    """A validation error's location as the config key a user writes (`llmops:gpuPools[1].maxGpus`)."""
    if not loc:
        return f"{namespace}:"
    if loc[0] == "region":
        return REGION_KEY
    out = f"{namespace}:{loc[0]}"
    for part in loc[1:]:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _message(err: dict) -> str:
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return "unknown setting (check the spelling against the README's settings table)"
    if err["type"] == "missing":
        return "required setting is missing"
    if err["type"] not in ("value_error",) and "input" in err and not isinstance(err["input"], dict | list):
        msg += f" (got {err['input']!r})"
    return msg


def from_config(config: dict[str, Any], source: str = "stack config") -> StackSettings:
    """Validate a flat Pulumi config map (`llmops:<key>` and `aws:region`) into settings."""
    data: dict[str, Any] = {}
    for key, value in config.items():
        namespace, _, name = key.partition(":")
        if namespace == NAMESPACE:
            data[name] = _decode(value)
        elif key == REGION_KEY:
            data["region"] = value
    try:
        return StackSettings.model_validate(data)
    except ValidationError as err:
        problems = [f"{_path(e['loc'])}: {_message(e)}" for e in err.errors()]
        raise SettingsError(source, problems) from None


def _decode(value: Any) -> Any:
    """Pulumi passes structured config values as JSON strings to the program."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def read_stack_file(path: Path) -> dict[str, Any]:
    """The `config:` map of a Pulumi stack file, with clear errors for unreadable files
    (llmops/inputs.py: missing, a directory, binary, not UTF-8, not YAML)."""
    doc = load_yaml(path, "stack file")
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
        raise LlmopsError(f"{path}: a stack file needs a top-level `config:` mapping")
    for key, value in doc["config"].items():
        if not isinstance(key, str):
            raise LlmopsError(
                f"{path}: config key {key!r} is not a string; keys look like llmops:environment"
            )
        if isinstance(value, dict) and "secure" in value:
            raise LlmopsError(f"{path}: {key} is an encrypted secret; the offline plan needs it unset")
    return doc["config"]


def load_stack_file(path: Path) -> StackSettings:
    return from_config(read_stack_file(path), source=str(path))
