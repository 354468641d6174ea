"""GitHub workflows: valid against the workflow schema and free of zizmor findings (offline)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llmops import PROJECT_DIR

WORKFLOWS = sorted((PROJECT_DIR / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent


def run(tool: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / tool), *map(str, args)], capture_output=True, text=True)


def test_workflows_exist():
    assert {p.name for p in WORKFLOWS} == {"checks.yml", "preview.yml", "deploy.yml", "prompt-evals.yml"}


def test_workflows_match_the_schema():
    proc = run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *WORKFLOWS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflows_have_no_zizmor_findings():
    proc = run("zizmor", "--offline", "--no-progress", *WORKFLOWS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("tool", "mutate"),
    [
        ("check-jsonschema", lambda text: text.replace("runs-on:", "runs_on:")),
        # A template expansion of attacker-controlled input inside a run: block.
        ("zizmor", lambda text: text.replace('"$PULUMI_BACKEND_URL"', "${{ github.head_ref }}")),
    ],
)
def test_checks_catch_a_broken_workflow(tmp_path, tool, mutate):
    broken = tmp_path / "preview.yml"
    shutil.copy(PROJECT_DIR / ".github" / "workflows" / "preview.yml", broken)
    broken.write_text(mutate(broken.read_text()))
    schema = ["--builtin-schema", "vendor.github-workflows"]
    args = [*schema, broken] if tool == "check-jsonschema" else ["--offline", broken]
    assert run(tool, *args).returncode != 0


def test_previews_of_forks_get_no_credentials_and_write_nothing():
    jobs = yaml.safe_load((PROJECT_DIR / ".github" / "workflows" / "preview.yml").read_text())["jobs"]
    same_repo = "github.event.pull_request.head.repo.full_name == github.repository"
    offline = jobs["offline"]
    # The offline diff runs for every pull request: no OIDC token, no secrets, no write scope.
    assert "permissions" not in offline and "if" not in offline
    assert "secrets." not in str(offline) and "id-token" not in str(offline)
    steps = " ".join(s.get("run", "") for s in offline["steps"])
    assert "llmops plan" in steps and "llmops diff" in steps and "--markdown" in steps
    # Writing the comment and assuming the preview role happen for this repository's branches only.
    assert same_repo in jobs["comment"]["if"] and jobs["comment"]["permissions"] == {"pull-requests": "write"}
    assert jobs["preview"]["if"] == same_repo and jobs["preview"]["permissions"]["id-token"] == "write"
    # A job in an environment is issued the subject ...:environment:NAME (GitHub's OIDC docs), which
    # the preview role bootstrap declares does not trust: it trusts ...:pull_request only.
    assert "environment" not in jobs["preview"]
    assert "<!-- llmops-diff -->" in str(jobs["comment"])  # the marker `llmops diff --markdown` writes
