"""`llmops`: the operator CLI. Each subcommand is a thin parser over a typed function.

Subcommand modules expose `add_parser(subparsers)`, which registers the parser and sets
`func` to a callable taking the parsed namespace and returning an exit code. Files named on
the command line are read through llmops/inputs.py (bad files are LlmopsErrors, exit 2).

`main` is the one error boundary of every command; nothing else prints a traceback:
- LlmopsError: `error: <message>` on stderr, exit with its code (2 for bad input).
- Usage errors (argparse): the usage line and `llmops ...: error: <message>`, exit 2.
- A closed stdout (`llmops policy catalogue | head -1`): the reader has what it wanted, so
  exit 0 quietly; stdout is pointed at /dev/null so nothing fails again at exit (as
  https://docs.python.org/3/library/signal.html#note-on-sigpipe recommends). Any
  BrokenPipeError is taken to mean that: the commands' own connections go through boto3 and
  urllib, which raise their own errors.
- Ctrl-C: exit 130, no traceback.
- Anything else is a bug, never bad input: one line, `error: internal error (<Type>):
  <message>; rerun with LLMOPS_DEBUG=1 for the traceback`, exit 70 (EX_SOFTWARE). With
  LLMOPS_DEBUG=1 the traceback is printed before that line.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import traceback

from llmops.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, LlmopsError

DEBUG_ENV = "LLMOPS_DEBUG"

# One line per command area; each module owns its parsers.
COMMAND_MODULES = [
    "llmops.plan",
    "llmops.policy",
    "llmops.cost",
    "llmops.prompts.cli",
    "llmops.evals.cli",
    "llmops.preflight",
    "llmops.verify",
    "llmops.diff",
    "llmops.rag.cli",
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors exit 2 with one line, as documented
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="llmops", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs one command behind the error boundary (see the module docstring): its exit code."""
    try:
        code = _run(argv)
    except SystemExit:  # argparse: usage errors (2), --help (0)
        _flush_stdout()
        raise
    _flush_stdout()  # a closed pipe shows up here, inside the boundary, not at interpreter exit
    return code


def _run(argv: list[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except BrokenPipeError:
        _detach_stdout()
        return EXIT_OK
    except LlmopsError as err:
        _print_error(f"error: {err}")
        return err.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as err:  # the boundary: a bug gets one line, the traceback on request
        kind = type(err).__qualname__
        if type(err).__module__ not in ("builtins", "__main__"):
            kind = f"{type(err).__module__}.{kind}"
        message = " ".join(str(err).split())[:500]
        line = f"error: internal error ({kind}){': ' + message if message else ''}"
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            traceback.print_exc()
            _print_error(line)
        else:
            _print_error(f"{line}; rerun with {DEBUG_ENV}=1 for the traceback")
        return EXIT_INTERNAL


def _print_error(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # stderr closed too: nothing left to tell
        print(line, file=sys.stderr)


def _flush_stdout() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _detach_stdout()
    except (OSError, ValueError):  # stdout closed or gone
        pass


def _detach_stdout() -> None:
    """Points stdout's file descriptor at /dev/null: output still buffered is dropped at exit
    instead of failing again ("Exception ignored ... BrokenPipeError")."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (captured by a test)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
