"""`llmops rag freshness` and `llmops rag erase`: the retrieval index, measured and erased.

Both open one store: `--url URL` (a Qdrant server; the API key from $QDRANT_API_KEY) or
`--path DIR` (a qdrant-client local store, which one process at a time may open).

Exit codes (docs/retrieval.md):
  freshness: 0 every collection within its objective (or without one); 1 a collection breaches
             it (the summary on stderr names only those); 2 bad arguments, store unusable.
  erase:     0 the source's points deleted and none left; 1 no collection held the source;
             2 bad arguments, store unusable; 3 points remained after the delete.
qdrant-client is imported when a command runs, so other `llmops` commands do not pay for it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import sys
import warnings
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from llmops.errors import EXIT_CONFLICT, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, LlmopsError

API_KEY_ENV = "QDRANT_API_KEY"
EXIT_BREACHED = EXIT_NOT_FOUND  # freshness: an objective is breached
EXIT_UNVERIFIED = EXIT_CONFLICT  # erase: points remained after the delete
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([mhd])")
_HOURS_PER_UNIT = {"m": 1 / 60, "h": 1.0, "d": 24.0}
LOCAL_META = "meta.json"  # what qdrant-client's local mode writes at the top of a store


def duration_hours(text: str) -> float:
    """`90m`, `24h`, `7d`, `1.5h` -> hours (argparse type: a bad value is a usage error)."""
    match = _DURATION.fullmatch(text.strip())
    hours = float(match[1]) * _HOURS_PER_UNIT[match[2]] if match else 0.0
    if hours <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive duration; write a number and a unit: 90m, 24h or 7d"
        )
    return hours


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    rag = subparsers.add_parser("rag", help="retrieval index: freshness and erasure (docs/retrieval.md)")
    sub = rag.add_subparsers(dest="rag_command", required=True, parser_class=type(rag))

    fresh = sub.add_parser(
        "freshness",
        help="index age, stale share and embedding-model drift per collection",
        description=(
            "Per collection: points, index age (now minus the newest indexed_at), the share of points "
            "older than the objective, points whose embedding_model differs from the collection's, and "
            "the objective used (the collection's max_age_hours metadata, else --max-age). Exits 1 when "
            "a collection breaches its objective, naming those on stderr; the table then lists only "
            "those (--all lists every collection)."
        ),
    )
    _add_store(fresh)
    fresh.add_argument(
        "--max-age",
        type=duration_hours,
        metavar="DURATION",
        help="objective for collections without max_age_hours metadata (90m, 24h, 7d)",
    )
    fresh.add_argument("--all", action="store_true", help="list every collection even when some breach")
    fresh.add_argument("--json", action="store_true", help="print one JSON document (every collection)")
    fresh.set_defaults(func=_freshness)

    erase = sub.add_parser(
        "erase",
        help="delete a source's points from every collection and print a receipt",
        description=(
            "Deletes the points whose payload source_id is ID from every collection, counts again and "
            "prints a receipt: collections, points deleted per collection, time, the source id. Exits 0 "
            "when erased and verified, 1 when no collection held the source, 3 when points remained."
        ),
    )
    erase.add_argument("--source-id", required=True, metavar="ID", help="the payload source_id to erase")
    _add_store(erase)
    erase.add_argument("--json", action="store_true", help="print the receipt as JSON")
    erase.set_defaults(func=_erase)


def _add_store(parser: argparse.ArgumentParser) -> None:
    store = parser.add_mutually_exclusive_group(required=True)
    store.add_argument("--url", help=f"Qdrant server URL (API key from ${API_KEY_ENV})")
    store.add_argument("--path", type=Path, metavar="DIR", help="a qdrant-client local store")


@contextmanager
def open_store(args: argparse.Namespace):
    """(client, store description); every Qdrant failure inside becomes an LlmopsError (exit 2)."""
    from qdrant_client import QdrantClient
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    if args.path is not None:
        path: Path = args.path
        if not path.is_dir():
            what = "not a directory" if path.exists() else "no such directory"
            raise LlmopsError(f"--path {path}: {what}; give the directory of a qdrant-client local store")
        if not (path / LOCAL_META).is_file():
            raise LlmopsError(f"--path {path}: not a qdrant-client local store (no {LOCAL_META})")
        try:
            client = QdrantClient(path=str(path))
        except RuntimeError as err:
            if "already accessed" not in str(err):
                raise
            raise LlmopsError(
                f"--path {path}: the local store is open in another process (qdrant-client local mode "
                "allows one client at a time: it locks .lock); close that client or use a Qdrant server"
            ) from None
        except (KeyError, ValueError, OSError, sqlite3.DatabaseError) as err:  # ValueError: bad meta.json
            detail = " ".join(str(err).split())[:300]
            raise LlmopsError(
                f"--path {path}: cannot open the local store ({type(err).__name__}: {detail})"
            ) from None
        store = f"path:{path}"
    else:
        if not re.match(r"https?://", args.url):
            raise LlmopsError(f"--url {args.url!r}: expected http:// or https://")
        api_key = os.environ.get(API_KEY_ENV) or None
        if api_key and args.url.startswith("http://"):
            print(f"warning: ${API_KEY_ENV} is sent to {args.url} without TLS", file=sys.stderr)
        with warnings.catch_warnings():  # qdrant-client's own warning of the same, said above in one line
            warnings.filterwarnings("ignore", message="Api key is used with an insecure connection")
            client = QdrantClient(url=args.url, api_key=api_key, check_compatibility=False)
        store = args.url
    try:
        yield client, store
    except UnexpectedResponse as err:
        hint = f"; check ${API_KEY_ENV}" if err.status_code in (401, 403) else ""
        raise LlmopsError(f"Qdrant at {store} answered {err.status_code} {err.reason_phrase}{hint}") from None
    except ResponseHandlingException as err:
        raise LlmopsError(f"cannot reach Qdrant at {store}: {err.source or err}") from None
    finally:
        client.close()


def freshness_report(client, store: str, now: datetime, max_age_hours: float | None) -> dict:
    """The JSON document `llmops rag freshness --json` prints."""
    from llmops.rag.freshness import FROM_DEFAULT, measure, rfc3339

    rows = []
    for result in measure(client, now, max_age_hours):
        row = result.to_json()
        if row["objective_source"] == FROM_DEFAULT:
            row["objective_source"] = "--max-age"
        rows.append(row)
    return {
        "store": store,
        "measured_at": rfc3339(now),
        "default_max_age_hours": max_age_hours,
        "collections": rows,
        "breached": [r["name"] for r in rows if r["breached"]],
    }


def _freshness(args: argparse.Namespace) -> int:
    with open_store(args) as (client, store):
        report = freshness_report(client, store, datetime.now(UTC), args.max_age)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(_freshness_text(report, every=args.all))
    breached = [r for r in report["collections"] if r["breached"]]
    if breached:
        reasons = ", ".join(f"{r['name']} ({_why(r)})" for r in breached)
        raise LlmopsError(
            f"{len(breached)} of {len(report['collections'])} collection(s) breach their freshness "
            f"objective: {reasons}",
            EXIT_BREACHED,
        )
    return EXIT_OK


def _why(row: dict) -> str:
    objective = _hours(row["max_age_hours"])
    if row["index_age_seconds"] is None:
        return (
            f"no point has an indexed_at; objective {objective}"
            if row["points"]
            else f"empty; objective {objective}"
        )
    return f"index age {_age(row['index_age_seconds'])} > {objective}"


def _age(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _hours(hours: float) -> str:
    return f"{hours:g}h"


def _freshness_text(report: dict, every: bool = False) -> str:
    """The table; when a collection breaches, only the breaching ones (what needs action) unless
    `every`, with a count of the others."""
    header = ("collection", "points", "index age", "objective", "stale", "model drift", "embedding model", "")
    lines = [header]
    shown = report["collections"]
    if report["breached"] and not every:
        shown = [r for r in shown if r["breached"]]
    for r in shown:
        objective = (
            "none"
            if r["max_age_hours"] is None
            else f"{_hours(r['max_age_hours'])} ({r['objective_source']})"
        )
        model = r["embedding_model"] or "-"
        if r["embedding_model_source"] not in (None, "metadata"):
            model += f" ({r['embedding_model_source']})"
        lines.append(
            (
                r["name"],
                str(r["points"]),
                "-" if r["index_age_seconds"] is None else _age(r["index_age_seconds"]),
                objective,
                f"{r['stale_points']} ({r['stale_share']:.0%})" if r["max_age_hours"] is not None else "-",
                str(r["model_drift_points"]),
                model,
                "BREACHED" if r["breached"] else "",
            )
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    out = [f"{report['store']} at {report['measured_at']}"]
    out += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in lines]
    if not report["collections"]:
        out.append("(no collections)")
    hidden = len(report["collections"]) - len(shown)
    if hidden:
        out.append(f"{hidden} other collection(s) not breaching (--all lists them)")
    without = [r["name"] for r in shown if r["max_age_hours"] is None]
    if without:
        out.append(f"no objective (not judged): {', '.join(without)}; set max_age_hours or pass --max-age")
    return "\n".join(out)


def _erase(args: argparse.Namespace) -> int:
    from llmops.rag.erase import erase_source

    if not args.source_id.strip():
        raise LlmopsError("--source-id must not be empty", EXIT_USAGE)
    with open_store(args) as (client, store):
        receipt = erase_source(client, args.source_id, store)
    if args.json:
        print(json.dumps(receipt, indent=2))
    else:
        print(f"erasure receipt: source_id {receipt['source_id']!r} in {receipt['store']}")
        print(f"  {receipt['started_at']} .. {receipt['finished_at']}")
        for row in receipt["collections"]:
            print(
                f"  {row['collection']}: {row['points_deleted']} deleted "
                f"({row['points_before']} before, {row['points_after']} after)"
            )
        print(f"  total deleted: {receipt['points_deleted']}; remaining: {receipt['points_remaining']}")
        print(f"  not covered: {receipt['not_covered']}")
    if not receipt["verified"]:
        raise LlmopsError(
            f"{receipt['points_remaining']} point(s) with source_id {args.source_id!r} remain "
            "after the delete",
            EXIT_UNVERIFIED,
        )
    if not receipt["points_deleted"]:
        raise LlmopsError(
            f"no point with source_id {args.source_id!r} in any of "
            f"{len(receipt['collections'])} collection(s)",
            EXIT_NOT_FOUND,
        )
    return EXIT_OK
