"""`llmops prompts ...` through the real entry point, against moto: output and exit codes."""

from __future__ import annotations

import threading
from pathlib import Path

import boto3
import pytest

import llmops.cli
import llmops.prompts.cli as prompts_cli
from llmops.prompts import PromptRegistry
from llmops.prompts.s3 import make_clients
from prompt_registry.helpers import RaceGate, make_prompt, pass_eval, write_prompt_file

NAME = "retail-banking-support"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "prompts" / f"{NAME}.yaml"


def test_full_lifecycle_with_json_output(cli, bucket, tmp_path):
    code, pushed, _ = cli("push", EXAMPLE, "--message", "first draft")
    assert code == 0 and pushed["created"] and pushed["version"] == 1
    assert pushed["content_hash"].startswith("sha256:") and pushed["author"].startswith("arn:aws:")
    code, again, _ = cli("push", EXAMPLE)
    assert code == 0 and again["created"] is False and again["version"] == 1

    v2 = make_prompt(name=NAME, text="Shorter: {{ customer }}")
    assert cli("push", write_prompt_file(tmp_path / "v2.yaml", v2), "-m", "shorter")[1]["version"] == 2

    code, refused, err = cli("promote", NAME, "2", "--alias", "production", "--reason", "go")
    assert code == 3 and refused["error"]["exit_code"] == 3 and "no recorded eval" in err
    report = tmp_path / "report.md"
    report.write_text("# eval\naccuracy 0.93\n")
    code, ev, _ = cli("eval-record", NAME, "1", "--score", "0.93", "--threshold", "0.9", "--report", report)
    assert code == 0 and ev["passed"] and ev["report"]["bytes"] == report.stat().st_size
    assert ev["kind"] == "manual"
    code, _, err = cli("promote", NAME, "1", "--alias", "production", "--reason", "launch")
    assert code == 3 and "recorded by hand" in err, "a manual eval annotates; it cannot open the gate"
    library = PromptRegistry(bucket, boto3.client("s3"), boto3.client("sts"))
    pass_eval(library, NAME, 1)  # what `llmops eval run NAME:1 --record` stores
    pass_eval(library, NAME, 2)
    code, moved, _ = cli("promote", NAME, "1", "--alias", "production", "--reason", "launch")
    assert code == 0 and moved["moved"] and moved["version"] == 1
    assert cli("promote", NAME, "2", "--alias", "production", "--reason", "v2")[0] == 0

    code, got, _ = cli("get", NAME + "@production")
    assert code == 0 and got["version"] == 2 and got["alias"] == "production"
    assert got["content_hash"] == cli("get", NAME + ":2")[1]["content_hash"]

    code, listing, _ = cli("list")
    assert listing == {"prompts": [{"name": NAME, "latest_version": 2, "aliases": {"production": 2}}]}
    code, hist, _ = cli("history", NAME)
    assert [(v["version"], v["message"], v["aliases"]) for v in hist["versions"]] == [
        (1, "first draft", []),
        (2, "shorter", ["production"]),
    ]
    assert [v["latest_eval"]["kind"] for v in hist["versions"]] == ["harness", "harness"]
    code, diff, _ = cli("diff", NAME, "1", "production")
    assert code == 0 and diff["from_version"] == 1 and diff["to_version"] == 2
    assert diff["diff"].startswith("--- retail-banking-support:1\n+++ retail-banking-support:2 (production)")

    code, back, _ = cli("rollback", NAME, "--alias", "production", "--reason", "incident")
    assert code == 0 and (back["previous_version"], back["version"]) == (2, 1)
    code, audit, _ = cli("audit", NAME)
    assert code == 0 and audit["intact"]
    assert [(m["action"], m["from_version"], m["to_version"]) for m in audit["moves"]] == [
        ("promote", None, 1),
        ("promote", 1, 2),
        ("rollback", 2, 1),
    ]


def test_text_output_of_get_prints_the_template(cli):
    cli("push", EXAMPLE)
    code, out, _ = cli("get", NAME + ":1", as_json=False)
    assert code == 0 and out.startswith("[system]\nYou are the virtual assistant")
    assert "[user]\n{{ question }}" in out


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["get", "nope"], 1, "no prompt named nope"),
        (["get", NAME + ":9"], 1, "has no version 9"),
        (["get", NAME + "@gold"], 1, "has no alias gold"),
        (["history", "nope"], 1, "no prompt named nope"),
        (["audit", "nope"], 1, "no prompt named nope"),
        (["rollback", NAME, "--alias", "production", "--reason", "x"], 1, "no alias production"),
        (["promote", NAME, "0", "--alias", "x", "--reason", "y"], 2, "positive whole number"),
        (["promote", NAME, "1", "--alias", "Prod!", "--reason", "y"], 2, "alias 'Prod!'"),
        (["promote", NAME, "1", "--alias", "canary", "--reason", " "], 2, "--reason must say"),
        (["get", "Bad/Name"], 2, "prompt name 'Bad/Name'"),
        (["eval-record", NAME, "1", "--score", "nan", "--threshold", "1"], 2, "finite"),
    ],
)
def test_exit_codes(cli, argv, code, message):
    cli("push", EXAMPLE)
    got, out, err = cli(*argv)
    assert got == code, err
    assert message in err and out["error"]["exit_code"] == code


def test_invalid_prompt_file_exits_2_with_every_problem(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntemplate: 'Hi {{ who }}'\nvariables: [whom]\nmodel: m\nowner: o\n")
    code, _, err = cli("push", bad)
    assert code == 2
    assert "classification: required field is missing" in err
    bad.write_text(bad.read_text() + "classification: internal\n")
    code, _, err = cli("push", bad)
    assert code == 2 and "uses undeclared variable 'who'" in err
    assert "'whom' is declared but the template never uses it" in err
    assert "Traceback" not in err


def test_missing_bucket_and_usage_errors_exit_2(cli, monkeypatch, capsys):
    monkeypatch.delenv("LLMOPS_PROMPT_BUCKET")
    code, _, err = cli("list")
    assert code == 2 and "pass --bucket or set LLMOPS_PROMPT_BUCKET" in err
    code, listing, _ = cli("list", "--bucket", "llmops-test-prompts")
    assert code == 0 and listing == {"prompts": []}
    with pytest.raises(SystemExit) as info:
        cli("promote", "x", "1")  # --alias and --reason are required
    assert info.value.code == 2


def test_unknown_bucket_exits_1(cli):
    code, _, err = cli("list", "--bucket", "no-such-bucket-here")
    assert code == 1 and "no bucket no-such-bucket-here" in err


def test_racing_promotions_loser_exits_3(cli, monkeypatch):
    cli("push", EXAMPLE)
    gate = RaceGate(2, "/aliases/")
    racer_clients = lambda: (gate.client(boto3.client("s3")), make_clients()[1])  # noqa: E731
    monkeypatch.setattr(prompts_cli, "make_clients", racer_clients)
    codes = []

    def promote(reason):
        argv = ["prompts", "promote", NAME, "1", "--alias", "canary", "--reason", reason]
        codes.append(llmops.cli.main(argv))

    threads = [threading.Thread(target=promote, args=(r,)) for r in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [0, 3]
