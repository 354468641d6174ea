"""`llmops cost aggregate`: replay LiteLLM spend-log files through the aggregator's core.

The Lambda's core is imported, not copied: `lambdas/` is a package of Lambda folders and
`lambdas.spend_aggregator.aggregate` needs only the standard library and msgspec, so this
command prints exactly the EMF records the Lambda would emit for the same objects (one
record per (team, model, route) group per file), for backfills and checks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zlib
from pathlib import Path

from lambdas.spend_aggregator.aggregate import Aggregator
from llmops import instances
from llmops.errors import EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, LlmopsError
from llmops.inputs import InputError, open_binary

SPEND_LOG = "spend-log file"


def gpu_price_environment(region: str) -> dict[str, str]:
    """The gpu_idle Lambda's price variables: the On-Demand prices of the GPU types offered in the
    stack's region (llmops/pricing/<region>.yaml), with their source; none in an unpriced region."""
    prices = {}
    for name, instance in sorted(instances.GPU_INSTANCE_TYPES.items()):
        price = instance.usd_per_hour(region)
        if price is not None:
            prices[name] = price
    return {
        "HOURLY_PRICES_USD": json.dumps(prices, separators=(",", ":")),
        "PRICE_SOURCE": f"AWS EC2 On-Demand list prices, {region}, Linux ({instances.price_source(region)})",
    }


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    cost = subparsers.add_parser("cost", help="token-cost attribution from gateway spend logs")
    sub = cost.add_subparsers(dest="cost_command", required=True, parser_class=type(cost))
    agg = sub.add_parser(
        "aggregate",
        help="print the EMF records the spend aggregator would emit for local spend-log files",
        description=(
            "Reads LiteLLM spend-log files (.json: one record; .jsonl: one per line; gzip of either) "
            "and prints one CloudWatch EMF record per (team, model, route) per file, one JSON per line. "
            "Malformed lines are reported on stderr as FILE:LINE: reason and skipped; the exit code "
            "is then 2."
        ),
    )
    agg.add_argument("files", nargs="+", metavar="FILE", type=Path, help="spend-log file(s)")
    agg.add_argument(
        "--environment",
        default=os.environ.get("LLMOPS_ENVIRONMENT", "dev"),
        help="value of the Environment dimension (default: $LLMOPS_ENVIRONMENT or dev)",
    )
    agg.set_defaults(func=lambda args: aggregate_files(args.files, args.environment))


def aggregate_files(files: list[Path], environment: str, out=None, err=None) -> int:
    """Prints EMF records for each file; returns 0, or 2 when any line was malformed."""
    out = out or sys.stdout
    err = err or sys.stderr
    check_spend_logs(files)  # every file opens before any record is printed
    if not environment.strip():
        raise LlmopsError("--environment must not be empty", EXIT_USAGE)
    malformed = 0
    for path in files:
        aggregator = Aggregator()
        if not read_spend_log(path, aggregator, err):
            malformed += 1
            continue
        for record in aggregator.emf_records(environment, source=str(path)):
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
        malformed += aggregator.malformed
    if malformed:
        print(f"{malformed} malformed line(s) skipped", file=err)
        return EXIT_USAGE
    return EXIT_OK


def check_spend_logs(files: list[Path]) -> None:
    """Every file opens before any is read, as `llmops cost aggregate` checks them: files that do
    not exist are "not found" (exit 1), a directory or an unreadable file is bad input (2)."""
    unusable = []
    for path in files:
        try:
            open_binary(path, SPEND_LOG).close()
        except InputError as problem:
            unusable.append(problem)
    if unusable:
        code = EXIT_NOT_FOUND if all(p.reason == "missing" for p in unusable) else EXIT_USAGE
        raise LlmopsError("; ".join(str(p) for p in unusable), code)


def read_spend_log(path: Path, aggregator: Aggregator, err) -> bool:
    """Adds one file to the aggregator, reporting malformed lines on `err` as FILE:LINE: reason;
    False when the file cannot be read to the end (truncated or corrupt gzip, I/O error)."""

    def report(line_no: int, reason: str) -> None:
        print(f"{path}:{line_no}: {reason}", file=err)

    aggregator.on_malformed = report
    try:
        with open_binary(path, SPEND_LOG) as stream:
            aggregator.add_stream(stream, path.name)
    except (OSError, EOFError, zlib.error) as exc:
        print(f"{path}: cannot read: {exc}", file=err)
        return False
    return True
