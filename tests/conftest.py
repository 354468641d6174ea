"""Shared fixtures: the offline plan of every shipped stack, computed once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from stack_plans import SHIPPED_STACKS, stack_plan

import llmops.cli
from llmops.plan import PlanResult, run
from llmops.settings import SettingsError, from_config

# Importing litellm fetches its model price map from GitHub unless told to use its bundled copy:
# tests send traffic to loopback only.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture(scope="session")
def plans() -> dict[str, PlanResult]:
    return {stack: stack_plan(stack) for stack in SHIPPED_STACKS}


@pytest.fixture(scope="session")
def plan_stack_file():
    """A function: stack file text -> plan, for edge-case settings written by a test."""

    def plan_of(tmp_path: Path, name: str, text: str) -> PlanResult:
        """Plan of a stack file written by a test (edge-case settings)."""
        path = tmp_path / f"Pulumi.{name}.yaml"
        path.write_text(text)
        return run(str(path), tmp_path / "build")

    return plan_of


def inputs_of(plan, type_: str) -> list[dict]:
    return [r["inputs"] for r in plan.plan.resources if r["type"] == type_]


def only(plan, type_: str) -> dict:
    found = inputs_of(plan, type_)
    assert len(found) == 1, f"expected one {type_}, found {len(found)}"
    return found[0]


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """`llmops ARGV` in-process: its exit code (argparse's SystemExit too), stdout and stderr."""
    try:
        code = llmops.cli.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def config_problems(config: dict) -> list[str]:
    """What the settings checks report for a stack config that must be refused."""
    with pytest.raises(SettingsError) as err:
        from_config(config, source="test")
    return err.value.problems
