"""The rule catalogue (a Markdown table in policies/README.md) and the per-environment pack configs
(policies/config.<env>.json), both generated from the rules so they cannot drift from the code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmops.policy.engine import POLICIES_DIR, pack

README = POLICIES_DIR / "README.md"
START, END = "<!-- catalogue:start -->", "<!-- catalogue:end -->"

# environment -> (data classification, allowed regions, per-policy overrides). Mirrors stacks/.
ENVIRONMENTS: dict[str, tuple[str, list[str], dict[str, dict[str, Any]]]] = {
    "dev": ("internal", ["eu-west-1"], {}),
    "staging": ("confidential", ["eu-west-1"], {}),
    # Regulated data stays in the UAE: external model APIs are outside it, in-region Bedrock is not.
    "prod": (
        "regulated",
        ["me-central-1"],
        {
            "gateway-providers-allowlisted": {"allowedProviders": ["hosted_vllm", "bedrock"]},
        },
    ),
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def catalogue_table() -> str:
    mod = pack()
    classes = mod._rule.CLASSIFICATIONS
    head = ["ID", "Name", "What it checks", *classes, "Severity", "Stack setting", "Anchors"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rule in mod.rules():
        what = rule.description.removeprefix("Checks whether ")
        cells = [
            rule.id,
            f"`{rule.name}`",
            what[0].upper() + what[1:],
            *(rule.levels[c] for c in classes),
            rule.severity,
            ", ".join(f"`{k}`" for k in rule.setting),
            "; ".join(str(a) for a in rule.anchors),
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def readme_with_catalogue(text: str) -> str:
    """The README text with the table between the markers replaced by the generated one."""
    if START not in text or END not in text:
        raise ValueError(f"{README} lacks the {START} / {END} markers")
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    return f"{before}{START}\n{catalogue_table()}\n{END}{after}"


def config_document(env: str) -> str:
    classification, regions, overrides = ENVIRONMENTS[env]
    return json.dumps(pack().pack_config(classification, regions, overrides), indent=2) + "\n"


def config_path(env: str) -> Path:
    return POLICIES_DIR / f"config.{env}.json"


def write_all() -> list[Path]:
    """Regenerates the README table and every config file; returns what it wrote."""
    README.write_text(readme_with_catalogue(README.read_text(encoding="utf-8")), encoding="utf-8")
    written = [README]
    for env in ENVIRONMENTS:
        config_path(env).write_text(config_document(env), encoding="utf-8")
        written.append(config_path(env))
    return written


def stale() -> list[Path]:
    """Generated files that differ from what the rules produce now."""
    out = []
    if README.read_text(encoding="utf-8") != readme_with_catalogue(README.read_text(encoding="utf-8")):
        out.append(README)
    for env in ENVIRONMENTS:
        path = config_path(env)
        if not path.exists() or path.read_text(encoding="utf-8") != config_document(env):
            out.append(path)
    return out
