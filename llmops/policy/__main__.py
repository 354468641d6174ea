"""`python -m llmops.policy check|catalogue|configs`: the `llmops policy` commands on their own
(no other command module is imported, so this works in a checkout with only the policy pack)."""

import sys

from llmops.policy.cli import main

sys.exit(main(sys.argv[1:]))
