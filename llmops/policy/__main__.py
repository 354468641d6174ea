"""`python -m llmops.policy check|catalogue|configs`: the `llmops policy` commands on their own
(no other command module is imported, so this works in a checkout with only the policy pack)."""

import sys

from llmops.cli import _Parser
from llmops.errors import LlmopsError
from llmops.policy.cli import add_parser


def main(argv: list[str]) -> int:
    parser = _Parser(prog="python -m llmops")
    add_parser(parser.add_subparsers(dest="command", required=True, parser_class=_Parser))
    args = parser.parse_args(["policy", *argv])
    try:
        return args.func(args)
    except LlmopsError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


sys.exit(main(sys.argv[1:]))
