"""How long the offline plan takes per stack, beside the cost of importing the SDKs alone.

The SDK modules a plan really loads (pulumi_aws loads its service modules lazily) are listed
by one plan run; "import SDKs only" imports exactly those in a fresh interpreter. Each figure
is the median of --runs fresh interpreters. Run: `make bench` or
`.venv/bin/python bench/plan.py --runs 5`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SDKS = ("pulumi", "pulumi_aws", "pulumi_kubernetes", "pulumi_random", "pydantic", "yaml", "grpc")
LIST_MODULES = f"""
import json, sys
from llmops.cli import main
main(["plan", sys.argv[1], "--build-dir", sys.argv[2]])
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {SDKS!r})))
"""


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def sdk_modules(stack: str, build: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", LIST_MODULES, stack, build],
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stacks", nargs="+", default=["dev", "staging", "prod"])
    args = parser.parse_args()

    print(
        f"{'stack':<10}{'plan s':>9}{'imports s':>11}{'plan/imports':>14}{'SDK modules':>13}"
        f"   (median of {args.runs} fresh interpreters)"
    )
    with tempfile.TemporaryDirectory() as build:
        for stack in args.stacks:
            modules = sdk_modules(stack, build)
            imports = statistics.median(
                timed([sys.executable, "-c", "import " + ", ".join(modules)]) for _ in range(args.runs)
            )
            plan = statistics.median(
                timed([sys.executable, "-m", "llmops", "plan", stack, "--build-dir", build])
                for _ in range(args.runs)
            )
            print(f"{stack:<10}{plan:>9.2f}{imports:>11.2f}{plan / imports:>14.2f}{len(modules):>13}")


if __name__ == "__main__":
    main()
