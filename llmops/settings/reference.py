"""The settings reference tables, generated from the models' docstrings: the stack settings in
the README, the team file's keys in docs/teams.md.

`python -m llmops.settings.reference` prints the stack table (`--teams`: the team table),
`... --write README.md docs/teams.md` replaces every table between its markers in those files;
tests keep the files in step.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from llmops.settings.stack import StackSettings
from llmops.settings.team import TeamSettings

BEGIN, END = "<!-- settings-reference:begin -->", "<!-- settings-reference:end -->"
TEAM_BEGIN, TEAM_END = "<!-- team-reference:begin -->", "<!-- team-reference:end -->"
HEADER = ["| setting | type | default | meaning |", "|---|---|---|---|"]


def _model_of(annotation) -> type[BaseModel] | None:
    for arg in (annotation, *typing.get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _type_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(str(a) for a in typing.get_args(annotation))
    if origin in (list, dict):
        return f"{origin.__name__} of " + ", ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation) if a is not type(None))
    model = _model_of(annotation)
    if model:
        return "object"
    return getattr(annotation, "__name__", str(annotation))


def _default(field) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.default_factory() if field.default_factory else field.default
    if isinstance(value, BaseModel):
        return "see below"
    return "`" + json.dumps(value, default=_plain) + "`"


def _plain(value):
    """List defaults may hold models (e.g. gateway.piiPatterns): show them as a file would."""
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True, exclude_defaults=True)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def rows(model: type[BaseModel], prefix: str) -> list[str]:
    out, nested = [], []
    for name, field in model.model_fields.items():
        key = field.alias or name
        path = "aws:region" if name == "region" and model is StackSettings else f"{prefix}{key}"
        doc = " ".join((field.description or "").split())
        out.append(f"| `{path}` | {_type_name(field.annotation)} | {_default(field)} | {doc} |")
        sub = _model_of(field.annotation)
        if sub:
            item = "[]" if typing.get_origin(field.annotation) is list else ""
            nested.append((sub, f"{path}{item}."))
    for sub, sub_prefix in nested:
        out += rows(sub, sub_prefix)
    return out


def table() -> str:
    return "\n".join([BEGIN, *HEADER, *rows(StackSettings, "llmops:"), END])


def team_table() -> str:
    """Every key of a team file (stacks/teams/<name>.yaml), for docs/teams.md."""
    return "\n".join([TEAM_BEGIN, *HEADER, *rows(TeamSettings, ""), TEAM_END])


TABLES = ((BEGIN, END, table), (TEAM_BEGIN, TEAM_END, team_table))


def write_into(path: Path) -> None:
    """Replaces each table whose markers `path` holds (a file without markers is an error)."""
    text = path.read_text()
    found = [(begin, end, make) for begin, end, make in TABLES if begin in text]
    if not found:
        raise SystemExit(f"{path}: no reference-table markers")
    for begin, end, make in found:
        start, stop = text.index(begin), text.index(end) + len(end)
        text = text[:start] + make() + text[stop:]
    path.write_text(text)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        for name in sys.argv[2:]:
            write_into(Path(name))
    else:
        print(team_table() if sys.argv[1:2] == ["--teams"] else table())
