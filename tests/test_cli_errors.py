"""No traceback, anywhere: every `llmops` command fed bad files exits 2 with one line.

Subcommands are discovered from `llmops.cli.build_parser()`. FILE_COMMANDS says how each
command that reads files is given a bad one (`{bad}` where the file goes); NO_FILE_COMMANDS
lists the commands that read none. A subcommand in neither (a new one) still gets bad files,
through an argv derived from its parser (positionals named stack, plan, file, ...; Path-typed
arguments), and `test_every_subcommand_is_in_a_table` fails until someone lists it.

Most runs are in-process (`llmops.cli.main` with capsys); a handful go through the real entry
point (`python -m llmops`) as subprocesses, with real pipes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import run_cli

import llmops.cli
from llmops.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE
from llmops.offline import RecordedPlan
from llmops.plan import resolve_stack

ROOT = Path(__file__).resolve().parent.parent

# The bad inputs: a name -> how to make it at a path (None: leave the path absent).
BAD_INPUTS = {
    "missing": None,
    "directory": "dir",
    "binary": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
    "not-utf8": "model: caf\xe9\nname: \xfcber\n".encode("latin-1"),
    "empty": b"",
    "invalid-syntax": b"{unclosed: [1, 2\n",  # neither YAML nor JSON
}
PATH_CASES = ("missing", "directory")  # the only ones for files whose content is not parsed


@dataclass(frozen=True)
class Row:
    """How a command is given a bad file: argv with {bad} (the bad file), {plan} (a valid
    plan.json) and {tmp} (a scratch directory); what the outcomes are where not the default
    (exit 2, one line `error: ...` naming the file)."""

    argv: tuple[str, ...]
    suffix: str = ".yaml"
    parsed: bool = True  # False: the command does not parse the content (any bytes are fine)
    outcomes: dict[str, tuple[str, int]] = field(default_factory=dict)

    def cases(self) -> tuple[str, ...]:
        return tuple(BAD_INPUTS) if self.parsed else PATH_CASES

    def id(self, words: tuple[str, ...]) -> str:
        where = self.argv[self.argv.index("{bad}") - 1]
        return "-".join(words) + (where if where.startswith("--") else "")


# A spend log that is not JSON is reported line by line (`FILE:LINE: reason`, docs/cost.md) and
# the good lines are still aggregated; a spend log that does not exist is "not found" (exit 1).
COST_OUTCOMES = {
    "missing": ("error", EXIT_NOT_FOUND),
    "binary": ("malformed", EXIT_USAGE),
    "not-utf8": ("malformed", EXIT_USAGE),
    "invalid-syntax": ("malformed", EXIT_USAGE),
    "empty": ("ok", EXIT_OK),  # an empty spend log holds no records
}
EVAL = ("prompts", "eval-record", "p", "1", "--score", "1", "--threshold", "1")
FILE_COMMANDS: dict[tuple[str, ...], list[Row]] = {
    ("plan",): [Row(("plan", "{bad}", "--build-dir", "{tmp}/build"))],
    ("preflight",): [Row(("preflight", "{bad}"))],
    ("policy", "check"): [
        Row(("policy", "check", "{bad}"), suffix=".json"),
        Row(("policy", "check", "{plan}", "--config", "{bad}"), suffix=".json"),
    ],
    ("cost", "aggregate"): [Row(("cost", "aggregate", "{bad}"), suffix=".jsonl", outcomes=COST_OUTCOMES)],
    ("prompts", "push"): [Row(("prompts", "push", "{bad}"))],
    ("prompts", "eval-record"): [Row((*EVAL, "--report", "{bad}"), suffix=".md", parsed=False)],
    ("verify",): [  # TARGET is a plan.json when it ends in .json, else a stack
        Row(("verify", "{bad}", "--build-dir", "{tmp}/build"), suffix=".json"),
        Row(("verify", "{bad}", "--build-dir", "{tmp}/build")),
    ],
    ("diff",): [
        Row(("diff", "{bad}", "{plan}"), suffix=".json"),
        Row(("diff", "{plan}", "{bad}"), suffix=".json"),
    ],
    ("eval", "run"): [
        Row(("eval", "run", "p", "--eval-set", "{bad}")),
        # --report is written, not read: the same bad file is the eval set too, so the first
        # error names it either way.
        Row(("eval", "run", "p", "--eval-set", "{bad}", "--report", "{bad}"), parsed=False),
    ],
    ("eval", "coverage"): [Row(("eval", "coverage", "{bad}"), suffix=".jsonl", outcomes=COST_OUTCOMES)],
    ("prompts", "promote"): [
        Row(("prompts", "promote", "p", "1", "--alias", "production", "--reason", "r", "--eval-set", "{bad}"))
    ],
    # --path is a qdrant-client local store: a directory, never read as a file.
    ("rag", "freshness"): [Row(("rag", "freshness", "--path", "{bad}"), parsed=False)],
    ("rag", "erase"): [Row(("rag", "erase", "--source-id", "s", "--path", "{bad}"), parsed=False)],
}
NO_FILE_COMMANDS = {
    ("policy", "catalogue"),
    ("policy", "configs"),
    *(("prompts", c) for c in ("get", "list", "history", "diff", "rollback", "audit")),
}
FILE_DESTS = {"stack", "stacks", "plan", "target", "file", "files", "path", "paths", "config", "report"}


def leaf_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> dict:
    """Every runnable subcommand (its words) -> its parser."""
    out: dict[tuple[str, ...], argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.update(leaf_parsers(sub, (*path, name)))
    return out or {path: parser}


def file_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The arguments that name a file to read, as far as the parser tells."""
    return [
        a
        for a in parser._actions
        if a.type is Path or isinstance(a.type, argparse.FileType) or a.dest in FILE_DESTS
    ]


def derived_rows(words: tuple[str, ...], parser: argparse.ArgumentParser) -> list[Row]:
    """For a command in no table: one argv per file argument, other required ones made up."""

    def dummy(action: argparse.Action) -> str:
        if action.choices:
            return str(next(iter(action.choices)))
        return "1" if action.type in (int, float) else "x"

    files = file_actions(parser)
    rows = []
    for target in files:
        argv = list(words)
        for action in parser._actions:
            value = "{bad}" if action is target or (action in files and not action.option_strings) else None
            if not action.option_strings:  # positional
                if action.nargs not in ("?", "*") or action is target:
                    argv.append(value or dummy(action))
            elif action is target or (action.required and action.nargs != 0):
                argv += [action.option_strings[0], value or dummy(action)]
        rows.append(Row(tuple(argv)))
    return rows


LEAVES = leaf_parsers(llmops.cli.build_parser())
ROWS = [
    (words, row)
    for words, parser in LEAVES.items()
    if words not in NO_FILE_COMMANDS
    for row in FILE_COMMANDS.get(words) or derived_rows(words, parser)
]


def make_bad(tmp_path: Path, case: str, suffix: str) -> Path:
    path = tmp_path / f"{case}{suffix}"
    content = BAD_INPUTS[case]
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    return path


@pytest.fixture(autouse=True)
def _no_outside_settings(monkeypatch):
    for name in ("LLMOPS_PROMPT_BUCKET", "LLMOPS_DEBUG"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("row", "case"),
    [pytest.param(row, case, id=f"{row.id(words)}-{case}") for words, row in ROWS for case in row.cases()],
)
def test_bad_file_exits_with_one_line(row, case, tmp_path, capsys):
    bad = make_bad(tmp_path, case, row.suffix)
    plan = tmp_path / "good-plan.json"
    plan.write_text(json.dumps({"resources": []}))
    argv = [a.format(bad=bad, plan=plan, tmp=tmp_path) for a in row.argv]
    code, out, err = run_cli(argv, capsys)
    kind, expected = row.outcomes.get(case, ("error", EXIT_USAGE))
    assert "Traceback" not in err + out
    assert code == expected, f"{argv}: {err}"
    lines = err.splitlines()
    if kind == "error":
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert str(bad) in lines[0], f"the message names the file: {err}"
        assert "internal error" not in err
    elif kind == "malformed":
        assert lines[-1].endswith("malformed line(s) skipped")
        assert all(line.startswith(f"{bad}:") for line in lines[:-1]), err
    else:
        assert err == ""
    assert not (tmp_path / "build").exists(), "nothing is written for bad input"


def test_every_subcommand_is_in_a_table():
    listed = set(FILE_COMMANDS) | NO_FILE_COMMANDS
    unlisted = {words: derived_rows(words, parser) for words, parser in LEAVES.items() if words not in listed}
    assert not unlisted, (
        "add these subcommands to FILE_COMMANDS (how to give them a bad file) or to "
        f"NO_FILE_COMMANDS (they read no file); the rows derived meanwhile: {unlisted}"
    )  # rows of a command not registered (yet) in llmops.cli.COMMAND_MODULES do not run


def test_every_file_argument_has_a_row():
    for words, parser in LEAVES.items():
        if words in NO_FILE_COMMANDS:
            assert not file_actions(parser), (
                f"llmops {' '.join(words)} reads a file: move it to FILE_COMMANDS"
            )
            continue
        argvs = [row.argv for row in FILE_COMMANDS.get(words, [])]
        given = {argv[i - 1] for argv in argvs for i in range(1, len(argv)) if argv[i] == "{bad}"}
        for action in file_actions(parser) if words in FILE_COMMANDS else []:
            flags = action.option_strings
            covered = bool(given & set(flags)) if flags else any(not g.startswith("-") for g in given)
            assert covered, f"llmops {' '.join(words)} {flags or action.dest}: no row gives it a bad file"


# --- the real entry point --------------------------------------------------------------------


def llmops_cmd(*argv: str) -> list[str]:
    return [sys.executable, "-m", "llmops", *argv]


@pytest.mark.parametrize(
    ("argv", "content", "expected"),
    [
        (
            ["plan", "{bad}", "--build-dir", "{tmp}/build"],
            b"\x00\x01binary",
            "a binary file, not a stack file",
        ),
        (["policy", "check", "{bad}"], "dir", "is a directory"),
        (["prompts", "push", "{bad}"], "name: caf\xe9\n".encode("latin-1"), "not UTF-8 text (byte 0xe9"),
    ],
    ids=["plan-binary", "policy-check-directory", "prompts-push-latin1"],
)
def test_real_entry_point_exits_2_with_one_line(argv, content, expected, tmp_path):
    bad = tmp_path / "input.yaml"
    if content == "dir":
        bad.mkdir()
    else:
        bad.write_bytes(content)
    env = {k: v for k, v in os.environ.items() if k not in ("LLMOPS_DEBUG", "LLMOPS_PROMPT_BUCKET")}
    args = [a.format(bad=bad, tmp=tmp_path) for a in argv]
    proc = subprocess.run(llmops_cmd(*args), capture_output=True, text=True, cwd=ROOT, env=env)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert proc.stderr.splitlines() == [proc.stderr.strip()] and proc.stderr.startswith(f"error: {bad}: ")
    assert expected in proc.stderr and "Traceback" not in proc.stderr


def test_closed_pipe_exits_0_quietly():
    """stdout's reader is gone before the first write: every write fails with EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            llmops_cmd("policy", "catalogue"), stdout=write_end, stderr=subprocess.PIPE, cwd=ROOT
        )
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr.decode()) == (0, "")


def test_head_reads_one_line_and_closes():
    """`llmops policy catalogue | head -1`: read one line, then close the pipe."""
    proc = subprocess.Popen(
        llmops_cmd("policy", "catalogue"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
    )
    first = proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 0 and stderr == ""
    assert first.startswith(b"| ID |")


# --- the boundary, in-process ----------------------------------------------------------------


def _boom():
    raise RuntimeError("the catalogue\nbroke")


def test_a_bug_is_one_line_and_exit_70(monkeypatch, capsys):
    monkeypatch.setattr("llmops.policy.catalogue.catalogue_table", _boom)
    code, out, err = run_cli(["policy", "catalogue"], capsys)
    assert code == EXIT_INTERNAL and out == ""
    assert err == (
        "error: internal error (RuntimeError): the catalogue broke; "
        "rerun with LLMOPS_DEBUG=1 for the traceback\n"
    )


def test_llmops_debug_prints_the_traceback(monkeypatch, capsys):
    monkeypatch.setattr("llmops.policy.catalogue.catalogue_table", _boom)
    monkeypatch.setenv("LLMOPS_DEBUG", "1")
    code, _, err = run_cli(["policy", "catalogue"], capsys)
    assert code == EXIT_INTERNAL
    assert err.startswith("Traceback") and "in _boom" in err
    assert err.splitlines()[-1] == "error: internal error (RuntimeError): the catalogue broke"


class _ClosedPipe:
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_stdout_in_process_is_exit_0(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert llmops.cli.main(["policy", "catalogue"]) == EXIT_OK
    assert capsys.readouterr().err == ""


def test_ctrl_c_is_exit_130_without_a_traceback(monkeypatch, capsys):
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr("llmops.policy.catalogue.catalogue_table", interrupted)
    assert run_cli(["policy", "catalogue"], capsys)[::2] == (EXIT_INTERRUPTED, "")


def test_usage_errors_keep_the_usage_line(capsys):
    code, _, err = run_cli(["policy", "check"], capsys)
    assert code == EXIT_USAGE
    usage, message = err.splitlines()
    assert usage.startswith("usage: llmops policy check") and "required: plan" in message


# --- stack names and the build directory -----------------------------------------------------


def test_a_bare_stack_name_wins_over_a_directory_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dev").mkdir()  # e.g. running inside build/
    assert resolve_stack("dev") == ("dev", ROOT / "stacks" / "Pulumi.dev.yaml")


def test_a_stack_file_name_must_give_a_stack_name(tmp_path, capsys):
    path = tmp_path / "Pulumi....yaml"  # the name would be "..": BUILD_DIR/.. must never be replaced
    path.write_text("config: {}\n")
    code, _, err = run_cli(["plan", str(path), "--build-dir", str(tmp_path / "build")], capsys)
    assert code == EXIT_USAGE and "no stack name in the file name ('..')" in err


def test_an_unwritable_build_dir_is_bad_input(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("llmops.plan.run_program", lambda name, config, region, environ: RecordedPlan(name))
    not_a_dir = tmp_path / "build"
    not_a_dir.write_text("a file\n")
    code, _, err = run_cli(["plan", "dev", "--build-dir", str(not_a_dir)], capsys)
    assert code == EXIT_USAGE
    assert err.startswith(f"error: {not_a_dir}") and "pass a writable --build-dir" in err
    assert len(err.splitlines()) == 1
