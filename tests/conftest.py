"""Shared fixtures: the offline plan of every shipped stack, computed once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops import PROJECT_DIR
from llmops.plan import PlanResult, run

SHIPPED_STACKS = sorted(
    p.stem.removeprefix("Pulumi.") for p in (PROJECT_DIR / "stacks").glob("Pulumi.*.yaml")
)


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("build")


@pytest.fixture(scope="session")
def plans(build_dir) -> dict[str, PlanResult]:
    return {stack: run(stack, build_dir) for stack in SHIPPED_STACKS}


@pytest.fixture(scope="session")
def stack_plan(plans):
    """A function: stack file text -> plan, for edge-case settings written by a test."""

    def plan_of(tmp_path: Path, name: str, text: str) -> PlanResult:
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
