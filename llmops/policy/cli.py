"""`llmops policy check|catalogue|configs`: thin parsers over the engine and the catalogue."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from llmops.errors import EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, LlmopsError
from llmops.policy.planfile import load_plan


def main(argv: list[str]) -> int:
    """`python -m llmops.policy ARGS`: the policy commands alone, with the CLI's error boundary."""
    from llmops.cli import _Parser

    parser = _Parser(prog="python -m llmops")
    add_parser(parser.add_subparsers(dest="command", required=True, parser_class=_Parser))
    args = parser.parse_args(["policy", *argv])
    try:
        return args.func(args)
    except LlmopsError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("policy", help="evaluate the CrossGuard policy pack offline")
    sub = parser.add_subparsers(dest="policy_command", required=True)

    check = sub.add_parser("check", help="evaluate the pack on a plan.json (exit 1 on a mandatory violation)")
    check.add_argument("plan", help="plan.json as written by `llmops plan` (build/STACK/plan.json)")
    check.add_argument("--json", action="store_true", help='print {"violations": [...]} instead of text')
    check.add_argument(
        "--config",
        help="a --policy-pack-config file (policies/config.<env>.json); default: the plan's settings "
        "(dataClassification, allowedRegions) with policies/config.<stack>.json's overrides when it is "
        "for the same classification; plans without settings: the AWS provider's default tags",
    )
    check.set_defaults(func=run_check)

    cat = sub.add_parser("catalogue", help="print the rule catalogue (Markdown table)")
    cat.set_defaults(func=run_catalogue)

    gen = sub.add_parser("configs", help="regenerate policies/README.md's table and policies/config.*.json")
    gen.add_argument(
        "--check", action="store_true", help="exit 1 if a generated file is stale, write nothing"
    )
    gen.set_defaults(func=run_configs)


def load_config(path: str) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise LlmopsError(f"{path}: cannot read policy config ({err.strerror or err})", EXIT_USAGE) from err
    except ValueError as err:
        raise LlmopsError(f"{path}: not JSON ({err})", EXIT_USAGE) from err
    if not isinstance(doc, dict):
        raise LlmopsError(f"{path}: must be an object keyed by policy name", EXIT_USAGE)
    from llmops.policy.engine import pack

    names = {r.name for r in pack().rules()} | {"all"}
    unknown = sorted(set(doc) - names)
    if unknown:
        raise LlmopsError(f"{path}: unknown policy name(s): {', '.join(unknown)}", EXIT_USAGE)
    return doc


def run_check(args: argparse.Namespace) -> int:
    from llmops.policy.engine import config_mismatch, describe, evaluate_plan, format_violations, infer_config

    plan = load_plan(args.plan)
    if args.config:
        config = load_config(args.config)
        source = describe(config, args.config)
        # The file is what was asked for; say so when it is not the plan's own stack settings.
        for problem in config_mismatch(config, plan):
            print(f"warning: {args.config}: {problem}", file=sys.stderr)
    else:
        config, source = infer_config(plan)
    violations = evaluate_plan(plan, config)
    if args.json:
        print(json.dumps({"violations": [v.to_dict() for v in violations], "config": source}, indent=2))
    else:
        print(format_violations(violations, source))
    return EXIT_NOT_FOUND if any(v.level == "mandatory" for v in violations) else EXIT_OK


def run_catalogue(args: argparse.Namespace) -> int:
    from llmops.policy import catalogue

    print(catalogue.catalogue_table())
    return EXIT_OK


def run_configs(args: argparse.Namespace) -> int:
    from llmops.policy import catalogue

    if args.check:
        stale = catalogue.stale()
        for path in stale:
            print(f"stale: {path} (run `python -m llmops.policy configs`)", file=sys.stderr)
        return EXIT_NOT_FOUND if stale else EXIT_OK
    for path in catalogue.write_all():
        print(f"wrote {path}")
    return EXIT_OK
