"""Reading the files `llmops` commands are given: one helper, one set of messages.

Every file a command reads from its arguments (stack files, plan.json, policy configs, prompt
files, eval reports, spend logs) is opened here, so a wrong path, a directory, a file without
read permission, or binary or non-UTF-8 content where text is expected becomes an `InputError`
(an `LlmopsError`, exit 2) whose one-line message names the path, what is wrong and the fix,
never a traceback:

    open_binary(path, what) -> IO[bytes]   content that need not be text (gzip spend logs)
    read_bytes(path, what) -> bytes
    read_text(path, what) -> str           UTF-8 (a BOM is accepted), no NUL bytes
    load_yaml(path, what) -> Any           read_text + yaml.safe_load, syntax errors on one line

`what` names the input in messages ("stack file", "plan.json", "prompt file", ...); `hint`
replaces the fix given for a missing file.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import yaml

from llmops.errors import EXIT_USAGE, LlmopsError

PathLike = str | Path


class InputError(LlmopsError):
    """A file argument that cannot be used. `reason` is one of: missing, directory, permission,
    unreadable, binary, encoding, syntax (callers may map a reason to another exit code)."""

    def __init__(self, path: PathLike, reason: str, message: str):
        super().__init__(message, EXIT_USAGE)
        self.path = str(path)
        self.reason = reason


def open_binary(path: PathLike, what: str, hint: str | None = None) -> IO[bytes]:
    """`path` opened for reading bytes; the caller closes it."""
    try:
        return open(path, "rb")
    except OSError as err:
        raise _os_error(path, what, err, hint) from None


def read_bytes(path: PathLike, what: str, hint: str | None = None) -> bytes:
    with open_binary(path, what, hint) as stream:
        try:
            return stream.read()
        except OSError as err:  # e.g. EISDIR on systems that open a directory, EIO
            raise _os_error(path, what, err, hint) from None


def read_text(path: PathLike, what: str, hint: str | None = None) -> str:
    """The file as UTF-8 text; binary content (NUL bytes) and other encodings are refused."""
    data = read_bytes(path, what, hint)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(path, "encoding", f"{path}: UTF-16 text; save the {what} as UTF-8")
    if b"\x00" in data:
        raise InputError(
            path, "binary", f"{path}: a binary file, not a {what} (it contains NUL bytes); pass the {what}"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(
            path,
            "encoding",
            f"{path}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); "
            f"save the {what} as UTF-8",
        ) from None


def load_yaml(path: PathLike, what: str, hint: str | None = None) -> Any:
    """The file's one YAML document (None when it is empty)."""
    text = read_text(path, what, hint)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InputError(
            path, "syntax", f"{path}: not valid YAML: {yaml_problem(err)}; fix the {what}"
        ) from None
    except RecursionError:
        raise InputError(path, "syntax", f"{path}: YAML nested too deeply to read; fix the {what}") from None


def yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error on one line: `line L, column C: problem (context from line L, column C)`."""
    if isinstance(err, yaml.reader.ReaderError) and isinstance(err.character, int):
        return f"character {err.position}: unacceptable character #x{err.character:04x} ({err.reason})"
    mark, problem = getattr(err, "problem_mark", None), getattr(err, "problem", None)
    if mark is None or not problem:
        return " ".join(str(err).split())
    out = f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    context, where = getattr(err, "context", None), getattr(err, "context_mark", None)
    if context:
        out += f" ({context}" + (f" from line {where.line + 1}, column {where.column + 1})" if where else ")")
    return out


def _os_error(path: PathLike, what: str, err: OSError, hint: str | None) -> InputError:
    if isinstance(err, FileNotFoundError):
        return InputError(
            path, "missing", f"{path}: no such file; {hint or f'pass the path of an existing {what}'}"
        )
    if isinstance(err, IsADirectoryError):
        return InputError(path, "directory", f"{path}: is a directory; pass the {what} itself")
    if isinstance(err, NotADirectoryError):
        return InputError(
            path, "missing", f"{path}: no such file (a parent in the path is a file); check the path"
        )
    if isinstance(err, PermissionError):
        return InputError(
            path, "permission", f"{path}: permission denied; make the {what} readable (chmod u+r)"
        )
    reason = err.strerror or str(err)
    return InputError(path, "unreadable", f"{path}: cannot read the {what} ({reason}); check the path")


__all__ = ["InputError", "load_yaml", "open_binary", "read_bytes", "read_text", "yaml_problem"]
