"""Push, inspect, promote and roll back prompts in the S3 prompt registry (`llmops prompts`).

Every subcommand takes `--bucket` (default $LLMOPS_PROMPT_BUCKET) and `--json` (one JSON
document on stdout, also for errors). boto3's standard settings apply: credentials chain,
AWS_REGION, and AWS_ENDPOINT_URL for any S3-compatible endpoint.
Exit codes: 0 ok, 1 not found, 2 invalid input, 3 conflict or gate refused, 4 audit found the
history chain broken or bucket versioning off.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmops.errors import EXIT_AUDIT_FAILED, EXIT_OK, LlmopsError
from llmops.inputs import open_binary
from llmops.prompts.format import load_prompt_file
from llmops.prompts.gate import HARNESS
from llmops.prompts.layout import check_version
from llmops.prompts.registry import PromptRegistry
from llmops.prompts.s3 import make_clients

BUCKET_ENV = "LLMOPS_PROMPT_BUCKET"


def registry(args: argparse.Namespace) -> PromptRegistry:
    bucket = args.bucket or os.environ.get(BUCKET_ENV)
    if not bucket:
        raise LlmopsError(f"no prompt bucket: pass --bucket or set {BUCKET_ENV}")
    return PromptRegistry(bucket, *make_clients())


def _command(fn: Callable[[argparse.Namespace], tuple]) -> Callable[[argparse.Namespace], int]:
    """Print the result as JSON or text. With --json an error is a JSON document too; it is
    re-raised so the entry point prints the one-line message and returns the exit code.
    A command may return (data, text, finding): the result is printed, then the finding (an
    LlmopsError, e.g. a broken audit) is raised for its message and exit code."""

    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        try:
            data, text, *finding = fn(args)
        except LlmopsError as err:
            if args.json:
                print(json.dumps({"error": {"message": str(err), "exit_code": err.exit_code}}, indent=2))
            raise
        print(json.dumps(data, indent=2, ensure_ascii=False) if args.json else text)
        if finding and finding[0] is not None:
            raise finding[0]
        return EXIT_OK

    return run


@_command
def push(args):
    """Validate FILE and store it as the next version, unless it equals the latest version."""
    prompt = load_prompt_file(args.file)  # a bad file is reported before S3 is contacted
    record = registry(args).push(prompt, args.message, source=str(args.file))
    ref = f"{record['name']}:{record['version']}"
    if record["created"]:
        return record, f"created {ref} ({record['content_hash']})"
    return record, f"unchanged: the content equals {ref}; nothing created"


def _template_text(template: str | list[dict]) -> str:
    if isinstance(template, str):
        return template.rstrip("\n")
    return "\n\n".join(f"[{m['role']}]\n{m['content'].rstrip()}" for m in template)


@_command
def get(args):
    """Print the template of NAME (latest), NAME@ALIAS or NAME:VERSION."""
    record = registry(args).get(args.ref)
    return record, _template_text(record["prompt"]["template"])


@_command
def list_(args):
    """Every prompt with its latest version and aliases."""
    prompts = registry(args).list()
    lines = [
        f"{p['name']:40} v{p['latest_version']:<5} " + " ".join(f"{a}={v}" for a, v in p["aliases"].items())
        for p in prompts
    ]
    return {"prompts": prompts}, "\n".join(lines) or "no prompts"


def _eval_text(summary: Any) -> str:
    if not isinstance(summary, dict):
        return "no eval"
    verdict = "pass" if summary.get("passed") else "FAIL"
    if summary.get("kind") == HARNESS:
        regressed = ", regressed" if summary.get("regressed") else ""
        return f"eval run {summary.get('pass_rate')}/{summary.get('threshold')} {verdict}{regressed}"
    return f"manual eval {summary.get('score')}/{summary.get('threshold')} {verdict} (cannot open the gate)"


@_command
def history(args):
    """Versions of NAME with message, author, latest eval and the aliases pointing at each."""
    data = registry(args).history(args.name)
    lines = []
    for v in data["versions"]:
        tags = f" [{', '.join(v['aliases'])}]" if v["aliases"] else ""
        lines.append(
            f"v{v['version']:<4} {v['created_at']}  {v['content_hash'][:19]}  {v['author']}{tags}\n"
            f"      {v['message'] or '(no message)'}  ({_eval_text(v['latest_eval'])})"
        )
    return data, "\n".join(lines)


@_command
def diff(args):
    """Unified diff between two versions of NAME, each a number or an alias."""
    data = registry(args).diff(args.name, args.a, args.b)
    return data, data["diff"].rstrip("\n") or "no differences"


def _eval_set_sha256(path: Path | None) -> str | None:
    if path is None:
        return None
    from llmops.evals.evalset import load_eval_set  # the eval harness, only when asked for

    return load_eval_set(path).content_hash


@_command
def promote(args):
    """Move ALIAS to VERSION (conditional write). Protected aliases need a passing eval run."""
    version = check_version(args.version)
    eval_set = _eval_set_sha256(args.eval_set)  # a bad file is reported before S3 is contacted
    record = registry(args).promote(args.name, version, args.alias, args.reason, eval_set_sha256=eval_set)
    ref = f"{args.name}@{args.alias}"
    if not record["moved"]:
        return record, f"{ref} already points to version {record['version']}; nothing written"
    return record, f"moved {ref}: {record['previous_version'] or '(new)'} -> {record['version']}"


@_command
def eval_record(args):
    """Record a manual eval result (and its report file) for VERSION of NAME."""
    version = check_version(args.version)
    if args.report is not None:  # the registry reads it; a bad path is reported before S3 is contacted
        open_binary(args.report, "eval report").close()
    record = registry(args).record_eval(args.name, version, args.score, args.threshold, args.report)
    verdict = "passed" if record["passed"] else "failed"
    op = ">=" if record["passed"] else "<"
    return record, (
        f"recorded manual eval {record['id']} for {args.name}:{record['version']}: "
        f"score {record['score']} {op} threshold {record['threshold']}: {verdict}. It annotates the "
        f"version; only `llmops eval run {args.name}:{version} --record` opens a protected alias"
    )


@_command
def rollback(args):
    """Move ALIAS back to the version it pointed to before its last move."""
    record = registry(args).rollback(args.name, args.alias, args.reason)
    ref = f"{args.name}@{args.alias}"
    return record, f"rolled back {ref}: {record['previous_version']} -> {record['version']}"


@_command
def audit(args):
    """Every alias move of NAME, oldest first, from the S3 versions of the alias records; exits 4
    when the chain is broken or the bucket's versioning is off."""
    data = registry(args).audit(args.name)
    lines = [
        f"{m['moved_at']}  {m['alias']}  {m['action']:8} {m['from_version'] or '-'} -> "
        f"{m['to_version']}  by {m['moved_by']}  ({_eval_text(m['eval'])})  {m['reason']}"
        for m in data["moves"]
    ]
    lines += [f"PROBLEM: {p}" for p in data["problems"]]
    if data["intact"]:
        lines.append("history chain intact; bucket versioning enabled")
        return data, "\n".join(lines)
    lines.append(f"audit FAILED: {len(data['problems'])} problem(s) above")
    what = "bucket versioning is off" if data["versioning"] != "Enabled" else "the history chain is broken"
    finding = LlmopsError(
        f"audit of {args.name}: {what} ({len(data['problems'])} problem(s); see the output)",
        EXIT_AUDIT_FAILED,
    )
    return data, "\n".join(lines), finding


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("prompts", help="the prompt registry", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="prompts_command", required=True, parser_class=type(parser))
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bucket", help=f"the prompt bucket (default: ${BUCKET_ENV})")
    common.add_argument("--json", action="store_true", help="print one JSON document on stdout")

    def command(name: str, fn: Callable, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(func=fn)
        return p

    p = command("push", push, "validate a prompt file and store it as a new immutable version")
    p.add_argument("file", type=Path)
    p.add_argument("--message", "-m", default="", help="why this version exists (kept with it)")
    p = command("get", get, "print a prompt's template (NAME, NAME@ALIAS or NAME:VERSION)")
    p.add_argument("ref", metavar="NAME[@ALIAS|:VERSION]")
    command("list", list_, "list prompts with their latest version and aliases")
    p = command("history", history, "versions of a prompt, with messages, authors and aliases")
    p.add_argument("name")
    p = command("diff", diff, "unified diff of two versions (numbers or aliases)")
    p.add_argument("name")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p = command("promote", promote, "point an alias at a version (protected aliases need a passing eval run)")
    p.add_argument("name")
    p.add_argument("version")
    p.add_argument("--alias", required=True)
    p.add_argument("--reason", required=True, help="why, for the audit trail")
    p.add_argument(
        "--eval-set",
        type=Path,
        metavar="FILE",
        help="require the version's eval run to have used exactly this eval set (any alias is then gated)",
    )
    p = command("eval-record", eval_record, "record a manual eval result (annotates; cannot open the gate)")
    p.add_argument("name")
    p.add_argument("version")
    p.add_argument("--score", type=float, required=True)
    p.add_argument("--threshold", type=float, required=True, help="the score passes when score >= threshold")
    p.add_argument("--report", type=Path, help="the eval report file, stored next to the record")
    p = command("rollback", rollback, "move an alias back to where it pointed before its last move")
    p.add_argument("name")
    p.add_argument("--alias", required=True)
    p.add_argument("--reason", required=True, help="why, for the audit trail")
    p = command("audit", audit, "every alias move of a prompt, oldest first, and the chain's integrity")
    p.add_argument("name")
