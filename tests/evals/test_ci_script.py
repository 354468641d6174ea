"""The prompt-evals workflow's script (.ci/prompt-evals) in a git repository of its own, against
the real LiteLLM proxy in front of the model stub and a registry on moto: a merged prompt is
evaluated, recorded and promoted; a pull request that regresses it fails with its report in the
comment and is never promoted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from llmops import PROJECT_DIR

SCRIPT = PROJECT_DIR / ".ci" / "prompt-evals"
GOOD = "Classify the ticket. Answer with the queue only.\nTicket: {{ ticket }}"
STRICT = "STRICT MODE. " + GOOD  # the stub answers wrongly for tickets tagged #breaks


def classify(body: dict) -> str:
    text = body["messages"][-1]["content"]
    ticket = text.rsplit("Ticket:", 1)[-1]
    return "other" if "STRICT MODE" in text and "#breaks" in ticket else "network"


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    ).stdout


def write_prompt(repo: Path, template: str) -> None:
    doc = {
        "name": "ticket-classifier",
        "owner": "team-it",
        "classification": "internal",
        "model": "qwen-small",
        "parameters": {"temperature": 0, "max_tokens": 8},
        "variables": ["ticket"],
        "template": template,
    }
    (repo / "examples" / "prompts" / "ticket-classifier.yaml").write_text(yaml.safe_dump(doc))


def run_script(repo: Path, mode: str, base: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "REASON": "https://example.com/commit"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), mode, base, "reports"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
    )


def test_merge_promotes_and_a_regressing_pull_request_fails_without_promotion(
    tmp_path, eval_env, registry, stub
):
    stub.respond = classify
    repo = tmp_path / "repo"
    (repo / "examples" / "prompts").mkdir(parents=True)
    (repo / "evals").mkdir()
    cases = [
        {"id": f"t{i}", "vars": {"ticket": f"VPN {i}" + (" #breaks" if i < 5 else "")}, "assert": [
            {"type": "equals", "value": "network"}]}
        for i in range(10)
    ]  # fmt: skip
    evals = {"prompt": "ticket-classifier", "threshold": 0.8, "cases": cases}
    (repo / "evals" / "ticket-classifier.yaml").write_text(yaml.safe_dump(evals))
    write_prompt(repo, GOOD)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "first prompt")

    merged = run_script(repo, "promote", "0" * 40)  # a new branch's first push
    assert merged.returncode == 0, merged.stderr
    assert registry.aliases("ticket-classifier") == {"production": 1}
    record = registry.latest_eval("ticket-classifier", 1)
    assert record["kind"] == "harness" and record["passed"] is True

    base = git(repo, "rev-parse", "HEAD").strip()
    write_prompt(repo, STRICT)
    git(repo, "commit", "-qam", "stricter prompt")
    pull = run_script(repo, "candidates", base)
    assert pull.returncode == 3, pull.stderr  # 5 of 10 worsened: a significant regression
    comment = (repo / "reports" / "comment.md").read_text()
    assert comment.startswith("<!-- llmops-evals -->") and "`ticket-classifier`: exit 3" in comment
    assert "<!-- llmops-eval:ticket-classifier -->" in comment  # the run's own report is in it
    assert registry.aliases("ticket-classifier") == {"production": 1}

    refused = run_script(repo, "promote", base)  # merged anyway: evaluated, recorded, not promoted
    assert refused.returncode == 3
    assert registry.aliases("ticket-classifier") == {"production": 1}
