"""Where the registry keeps things in the bucket, and the checks on names used in keys.

    _registry/config.json                        protected aliases, gateway routes, min pass rate
                                                  (written by the stack)
    prompts/<name>/versions/000001.json           immutable version (If-None-Match: *)
    prompts/<name>/aliases/<alias>.json           alias record, moved with If-Match: <etag>;
                                                  its S3 object versions are the audit trail
    prompts/<name>/evals/000001/<id>.json         eval record of a version, kind harness or manual
                                                  (If-None-Match: *)
    prompts/<name>/evals/000001/<id>.report.<ext> the eval report file, if one was given

Version numbers are zero-padded so that S3's lexicographic listing is numeric order.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from llmops.errors import LlmopsError
from llmops.prompts.format import NAME

ROOT = "prompts/"
CONFIG_KEY = "_registry/config.json"
DEFAULT_PROTECTED_ALIASES = ("production",)
ALIAS = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def version_key(name: str, version: int) -> str:
    return f"{ROOT}{name}/versions/{version:06d}.json"


def alias_key(name: str, alias: str) -> str:
    return f"{ROOT}{name}/aliases/{alias}.json"


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise LlmopsError(f"prompt name {name!r}: use lower-case letters, digits and '-' (at most 64)")
    return name


def check_alias(alias: str) -> str:
    if not ALIAS.match(alias):
        raise LlmopsError(f"alias {alias!r}: use lower-case letters, digits and '-', starting with a letter")
    return alias


def check_version(text: str | int) -> int:
    try:
        version = int(text)
    except (TypeError, ValueError):
        raise LlmopsError(f"version {text!r} must be a positive whole number") from None
    if version < 1:
        raise LlmopsError(f"version {text!r} must be a positive whole number")
    return version
