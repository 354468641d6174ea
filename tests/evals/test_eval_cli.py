"""`llmops eval run` end to end: the prompt registry on a moto server, the real LiteLLM proxy over
TLS, the deterministic model stub (conftest.py). Exit codes, the record the gate reads, the
Markdown report, and every way the input can be wrong."""

from __future__ import annotations

import json
import re
import uuid

import boto3
import pytest
import yaml

import llmops.cli
from llmops import PROJECT_DIR
from llmops.evals.evalset import eval_set_path, load_eval_set
from llmops.evals.report import MARKER
from llmops.prompts.format import load_prompt_file
from tests.evals.conftest import REGION, expected_cost, free_port

pytestmark = pytest.mark.slow

TEMPLATE = (
    "Classify the ticket into network, hardware or access. Answer with the queue only.\nTicket: {{ ticket }}"
)
STRICT = "STRICT MODE. " + TEMPLATE  # the candidate that breaks every ticket tagged #breaks
KEYWORDS = {"vpn": "network", "wifi": "network", "laptop": "hardware", "printer": "hardware"}


def classify(body: dict) -> str:
    text = body["messages"][-1]["content"]
    ticket = text.rsplit("Ticket:", 1)[-1].lower()
    if "STRICT MODE" in text and "#breaks" in ticket:
        return "other"
    return next((queue for word, queue in KEYWORDS.items() if word in ticket), "other")


def cases(total: int, breaking: int = 0) -> list[dict]:
    """`total` VPN tickets; the first `breaking` are tagged #breaks."""
    return [
        {
            "id": f"ticket-{i:02d}",
            "vars": {"ticket": f"VPN ticket {i}" + (" #breaks" if i < breaking else "")},
            "assert": [{"type": "equals", "value": "network"}],
        }
        for i in range(total)
    ]


@pytest.fixture
def prompts(capsys):
    """prompts(*argv) runs `llmops prompts ...` through the real entry point (the gate lives
    there): (exit code, stderr)."""

    def run(*argv: str) -> tuple[int, str]:
        code = llmops.cli.main(["prompts", *argv])
        return code, capsys.readouterr().err

    return run


def eval_records(bucket: str, name: str, version: int) -> list[dict]:
    s3 = boto3.client("s3", region_name=REGION)
    prefix = f"prompts/{name}/evals/{version:06d}/"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    return [json.loads(s3.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in keys if "report" not in k]


@pytest.fixture(autouse=True)
def _classifier(stub):
    stub.respond = classify


def test_a_good_candidate_passes(push, write_eval_set, eval_cli, stub):
    push(TEMPLATE)
    path = write_eval_set(cases(6), threshold=0.9)
    code, doc, _ = eval_cli("ticket-classifier", "--eval-set", path)
    assert code == 0 and doc["passed"] and doc["pass_rate"] == 1.0
    assert doc["baseline"] is None, "no production alias yet"
    runs = [run for case in doc["cases"] for run in case["runs"]]
    assert len(runs) == 6 == len(stub.chat_requests())
    for run in runs:
        assert run["cost_usd"] == pytest.approx(expected_cost("qwen-small", run["tokens"]), rel=1e-9)
    assert doc["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in runs), rel=1e-9)
    code, text, _ = eval_cli("ticket-classifier:1", "--eval-set", path, "--no-cache", as_json=False)
    assert code == 0 and text.splitlines()[0].startswith("ticket-classifier:1: 6/6 cases passed (100.0%)")
    assert text.rstrip().endswith("result: PASSED")


def test_a_candidate_that_breaks_cases_is_caught_and_cannot_be_promoted(
    push, write_eval_set, eval_cli, prompts
):
    """The hidden scenario: v1 evaluated with --record and promoted; v2 regresses on 5 of 10 cases
    (pass rate 0.5 meets the threshold 0.5, but 5 worsened / 0 improved gives p = 1/32): eval run
    exits 3, promote exits 3, and a manual eval-record does not change that."""
    path = write_eval_set(cases(10, breaking=5), threshold=0.5)
    push(TEMPLATE)
    code, doc, _ = eval_cli("ticket-classifier:1", "--eval-set", path, "--record")
    assert code == 0 and doc["recorded"]["kind"] == "harness"
    assert prompts("promote", "ticket-classifier", "1", "--alias", "production", "--reason", "first")[0] == 0
    push(STRICT)
    code, doc, _ = eval_cli("ticket-classifier:2", "--eval-set", path, "--record")
    assert code == 3 and not doc["passed"] and doc["pass_rate"] == 0.5
    baseline = doc["baseline"]
    assert (baseline["version"], baseline["alias"], baseline["pass_rate"]) == (1, "production", 1.0)
    assert baseline["worsened"] == [f"ticket-{i:02d}" for i in range(5)] and baseline["improved"] == []
    assert baseline["p_value"] == pytest.approx(0.03125) and baseline["regressed"]
    code, err = prompts("promote", "ticket-classifier", "2", "--alias", "production", "--reason", "try")
    assert code == 3 and "regressed against ticket-classifier:1" in err
    assert prompts("eval-record", "ticket-classifier", "2", "--score", "1", "--threshold", "0")[0] == 0
    code, err = prompts("promote", "ticket-classifier", "2", "--alias", "production", "--reason", "again")
    assert code == 3 and "recorded by hand" in err


def test_below_the_threshold_is_exit_3_and_says_why(push, write_eval_set, eval_cli):
    push(STRICT)
    path = write_eval_set(cases(4, breaking=1), threshold=0.8)
    code, text, _ = eval_cli("ticket-classifier", "--eval-set", path, as_json=False)
    assert code == 3
    assert "ticket-00 (0/1 runs passed): equals: expected 'network', got 'other'" in text
    assert "result: FAILED: pass rate 75.0% is below the threshold 80.0%" in text


def test_four_worsened_cases_are_not_a_significant_regression(push, write_eval_set, eval_cli, registry):
    push(TEMPLATE)
    registry.promote("ticket-classifier", 1, "staging", "baseline for the test")
    push(STRICT)
    path = write_eval_set(cases(10, breaking=4), threshold=0.5)
    code, doc, _ = eval_cli(
        "ticket-classifier:2", "--baseline", "ticket-classifier@staging", "--eval-set", path
    )
    assert code == 0 and doc["passed"]
    assert len(doc["baseline"]["worsened"]) == 4 and doc["baseline"]["p_value"] == pytest.approx(0.0625)
    assert not doc["baseline"]["regressed"]


def test_the_record_is_what_the_contract_says(push, write_eval_set, eval_cli, eval_env, registry):
    version = push(TEMPLATE)
    path = write_eval_set(cases(3), threshold=0.9, repeat=1)
    code, doc, _ = eval_cli("ticket-classifier", "--eval-set", path, "--record")
    assert code == 0
    (stored,) = eval_records(eval_env, "ticket-classifier", 1)
    assert stored == doc["recorded"]
    assert stored["kind"] == "harness"
    assert (stored["prompt"], stored["version"]) == ("ticket-classifier", 1)
    assert stored["content_sha256"] == version["content_hash"]
    assert stored["eval_set"] == {
        "path": stored["eval_set"]["path"],
        "prompt": "ticket-classifier",
        "sha256": load_eval_set(path).content_hash,
        "threshold": 0.9,
        "repeat": 1,
        "cases": 3,
    }
    assert stored["eval_set"]["path"].endswith("evals/ticket-classifier.yaml")
    assert stored["threshold"] == 0.9 and stored["pass_rate"] == 1.0 and stored["passed"] is True
    assert stored["baseline"] is None and stored["judge"] is None
    assert stored["models"] == {"candidate": "qwen-small", "baseline": None, "judge": None}
    assert uuid.UUID(stored["run_id"]) and stored["cost_usd"] > 0
    assert stored["recorded_by"].startswith("arn:aws:") and stored["recorded_at"]
    (run,) = stored["cases"][0]["runs"]
    assert set(run) == {"passed", "output", "latency_ms", "cost_usd", "tokens", "cached", "assertions"}
    assert run["output"] == "network" and run["latency_ms"] > 0 and run["cached"] is False
    assert set(run["tokens"]) == {"prompt", "completion"}
    assert run["assertions"] == [{"type": "equals", "passed": True, "detail": "output is 'network'"}]
    report = boto3.client("s3", region_name=REGION).get_object(Bucket=eval_env, Key=stored["report"]["key"])
    body = report["Body"].read()
    assert stored["report"]["key"].endswith(".report.md")
    assert body.decode().startswith(MARKER.format(name="ticket-classifier"))
    assert registry.latest_eval("ticket-classifier", 1)["id"] == stored["id"]


def test_repeat_runs_each_case_and_passes_on_a_majority(push, write_eval_set, eval_cli, stub):
    push(TEMPLATE)
    path = write_eval_set(cases(2), repeat=3)
    code, doc, _ = eval_cli("ticket-classifier", "--eval-set", path)
    assert code == 0 and len(stub.chat_requests()) == 6
    assert [len(c["runs"]) for c in doc["cases"]] == [3, 3]
    assert [[r["cached"] for r in c["runs"]] for c in doc["cases"]] == [[False] * 3] * 2


def test_the_cost_cap_stops_the_run_and_nothing_is_recorded(push, write_eval_set, eval_cli, eval_env, stub):
    push(TEMPLATE)
    path = write_eval_set(cases(12))
    code, doc, _ = eval_cli("ticket-classifier", "--eval-set", path, "--no-cache", "--concurrency", "1")
    one = doc["cases"][0]["runs"][0]["cost_usd"]
    cap = 4.5 * one
    stub.reset(classify)
    code, doc, _ = eval_cli(
        "ticket-classifier", "--eval-set", path, "--max-cost", cap, "--record", "--no-cache"
    )
    assert code == 3 and not doc["passed"] and not doc["complete"]
    assert doc["cost_usd"] <= cap and len(stub.chat_requests()) == 4
    assert sum(r["cost_usd"] for c in doc["cases"] for r in c["runs"]) <= cap
    assert doc["not_run"] == [f"ticket-{i:02d}" for i in range(4, 12)]
    assert doc["pass_rate"] == pytest.approx(4 / 12), "cases not run count as not passed"
    assert doc["recorded"] is None and eval_records(eval_env, "ticket-classifier", 1) == []
    code, text, _ = eval_cli(
        "ticket-classifier", "--eval-set", path, "--max-cost", cap, "--record", as_json=False
    )
    assert code == 3 and "not recorded: the run is incomplete" in text
    assert "incomplete: the cost cap" in text


def test_a_second_run_is_answered_from_the_cache(push, write_eval_set, eval_cli, stub):
    push(TEMPLATE)
    path = write_eval_set(cases(5))
    code, first, _ = eval_cli("ticket-classifier", "--eval-set", path)
    assert code == 0 and len(stub.chat_requests()) == 5
    code, second, _ = eval_cli("ticket-classifier", "--eval-set", path)
    assert code == 0 and len(stub.chat_requests()) == 5, "the second run made no model call"
    assert second["calls"] == {"gateway": 0, "cached": 5} and second["cost_usd"] == 0
    assert all(c["runs"][0]["cached"] for c in second["cases"])
    assert [c["runs"][0]["cost_usd"] for c in second["cases"]] == [
        c["runs"][0]["cost_usd"] for c in first["cases"]
    ]
    code, third, _ = eval_cli("ticket-classifier", "--eval-set", path, "--no-cache")
    assert len(stub.chat_requests()) == 10 and third["calls"]["cached"] == 0


def test_gateway_failures_are_retried(push, write_eval_set, eval_cli, stub):
    push(TEMPLATE)
    path = write_eval_set(cases(1))
    stub.fail_next(1, 500)
    stub.fail_next(1, 429)
    code, doc, _ = eval_cli("ticket-classifier", "--eval-set", path)
    assert code == 0 and doc["passed"] and len(stub.chat_requests()) == 3


def test_chat_templates_are_sent_as_their_messages(push, write_eval_set, eval_cli, stub):
    push([{"role": "system", "content": "You route IT tickets."}, {"role": "user", "content": TEMPLATE}])
    path = write_eval_set(cases(1))
    assert eval_cli("ticket-classifier", "--eval-set", path)[0] == 0
    (sent,) = stub.chat_requests()
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert sent["messages"][1]["content"].endswith("Ticket: VPN ticket 0")


def test_a_candidate_may_add_a_variable_the_baseline_does_not_use(
    push, write_eval_set, eval_cli, registry, stub
):
    push(TEMPLATE)
    registry.promote("ticket-classifier", 1, "staging", "baseline")
    push(TEMPLATE + " (urgency {{ urgency }})", variables=["ticket", "urgency"])
    with_urgency = [{**c, "vars": {**c["vars"], "urgency": "high"}} for c in cases(2)]
    path = write_eval_set(with_urgency)
    code, doc, _ = eval_cli(
        "ticket-classifier:2", "--baseline", "ticket-classifier@staging", "--eval-set", path
    )
    assert code == 0 and doc["baseline"]["pass_rate"] == 1.0
    baseline_prompts = [r["messages"][0]["content"] for r in stub.chat_requests() if "urgency" not in str(r)]
    assert len(baseline_prompts) == 2


def test_the_markdown_report(push, write_eval_set, eval_cli, prompts, tmp_path):
    path = write_eval_set(cases(6, breaking=6), threshold=0.5)
    push(TEMPLATE)
    assert eval_cli("ticket-classifier:1", "--eval-set", path, "--record")[0] == 0
    assert (
        prompts("promote", "ticket-classifier", "1", "--alias", "production", "--reason", "baseline")[0] == 0
    )
    push(STRICT)
    out = tmp_path / "report.md"
    code, _, _ = eval_cli("ticket-classifier:2", "--eval-set", path, "--report", out)
    assert code == 3
    text = out.read_text()
    lines = text.splitlines()
    assert lines[0] == "<!-- llmops-eval:ticket-classifier -->"
    assert lines[1] == "### ❌ failed: eval of `ticket-classifier:2`"
    summary = text.split("| case |")[0]
    assert "pass rate **0/6 (0.0%)**, threshold 50.0%" in summary
    assert "baseline `ticket-classifier:1 (production)`: 100.0%; 6 worsened, 0 improved" in summary
    assert "p = 0.01562: significant regression" in summary
    # The baseline's answers were cached when version 1 was recorded.
    assert re.search(r"cost \$[0-9.e-]+ \(6 gateway call\(s\), 6 answer\(s\) from the cache\)", summary)
    rows = [line for line in lines if line.startswith("| `ticket-")]
    assert len(rows) == 6 and all("| ❌ 0/1 | ✅ 1/1 | worsened |" in row for row in rows)


@pytest.mark.parametrize("name", ["ticket-classifier", "retail-banking-support", "clinical-notes-summary"])
def test_the_shipped_eval_sets_run_against_the_example_prompts(registry, eval_cli, stub, monkeypatch, name):
    """Each example prompt with its eval set from evals/ (the default path), answered by the echoing
    stub: the sets fit the prompts and run to the end; whether the echo passes does not matter."""
    monkeypatch.chdir(PROJECT_DIR)
    registry.push(load_prompt_file(PROJECT_DIR / "examples" / "prompts" / f"{name}.yaml"))
    code, doc, err = eval_cli(name)
    assert code in (0, 3), err
    shipped = load_eval_set(eval_set_path(name))
    assert doc["complete"] and len(doc["cases"]) == len(shipped.cases)
    assert (
        doc["eval_set"]["path"] == f"evals/{name}.yaml" and doc["eval_set"]["sha256"] == shipped.content_hash
    )
    assert len(stub.chat_requests()) >= len(shipped.cases) * shipped.repeat


# -- bad input: exit 2 (1 for what does not exist), before any model call -------------------------


def test_an_invalid_eval_set_lists_every_problem(push, write_eval_set, eval_cli, stub):
    push(TEMPLATE)
    bad = cases(2)
    bad[0]["assert"] = [{"type": "equal", "value": "network"}]
    bad[1]["vars"] = {"tickt": "VPN"}
    path = write_eval_set(bad, threshold=2)
    code, doc, err = eval_cli("ticket-classifier", "--eval-set", path)
    assert code == 2 and doc["error"]["exit_code"] == 2
    assert f"{path}: threshold: must be a number greater than 0 and at most 1" in err
    assert f"{path}: cases[0].assert[0].type: unknown assertion type 'equal'" in err
    assert stub.chat_requests() == []


def test_vars_that_do_not_fit_the_prompt(push, write_eval_set, eval_cli, stub):
    push(TEMPLATE)
    bad = cases(2)
    bad[1]["vars"] = {"tickt": "VPN"}
    path = write_eval_set(bad)
    code, _, err = eval_cli("ticket-classifier", "--eval-set", path)
    assert code == 2
    assert f"{path}: cases[1].vars: missing ticket; unknown tickt (did you mean ticket?)" in err
    assert stub.chat_requests() == []


def test_the_baseline_needs_its_variables(push, write_eval_set, eval_cli, registry, stub):
    push(TEMPLATE + " for {{ team }}", variables=["ticket", "team"])
    registry.promote("ticket-classifier", 1, "staging", "baseline")
    push(TEMPLATE)
    path = write_eval_set(cases(1))
    code, _, err = eval_cli(
        "ticket-classifier:2", "--baseline", "ticket-classifier@staging", "--eval-set", path
    )
    assert code == 2 and "cases[0].vars: missing team, which the baseline ticket-classifier:1 declares" in err
    assert stub.chat_requests() == []


def test_an_eval_set_of_another_prompt(push, write_eval_set, eval_cli):
    push(TEMPLATE)
    push(TEMPLATE, name="other-prompt")
    path = write_eval_set(cases(1))
    code, _, err = eval_cli("other-prompt", "--eval-set", path)
    assert (
        code == 2
        and "prompt: the eval set is for 'ticket-classifier', but the prompt is 'other-prompt'" in err
    )


def test_a_missing_default_eval_set(push, eval_cli):
    push(TEMPLATE, name="no-eval-set-here")
    code, _, err = eval_cli("no-eval-set-here")
    assert code == 2 and "evals/no-eval-set-here.yaml: no eval set for prompt no-eval-set-here" in err


@pytest.mark.parametrize("unset", ["LLMOPS_GATEWAY_URL", "LLMOPS_GATEWAY_KEY"])
def test_gateway_settings_are_required(push, write_eval_set, eval_cli, monkeypatch, stub, unset):
    push(TEMPLATE)
    path = write_eval_set(cases(1))
    monkeypatch.delenv(unset)
    code, _, err = eval_cli("ticket-classifier", "--eval-set", path)
    assert code == 2 and f"error: {unset} is not set" in err and stub.chat_requests() == []


def test_the_registry_unreachable_is_exit_2(eval_env, write_eval_set, eval_cli, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    code, _, err = eval_cli("ticket-classifier", "--eval-set", write_eval_set(cases(1)))
    assert code == 2 and "cannot reach S3" in err


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("nobody-here", "no prompt named nobody-here"),
        ("ticket-classifier:7", "prompt ticket-classifier has no version 7"),
        ("ticket-classifier@canary", "prompt ticket-classifier has no alias canary"),
    ],
)
def test_what_does_not_exist_is_exit_1(push, write_eval_set, eval_cli, ref, message):
    push(TEMPLATE)
    path = write_eval_set(cases(1))
    code, _, err = eval_cli(ref, "--eval-set", path)
    assert code == 1 and message in err
    code, _, err = eval_cli("ticket-classifier", "--baseline", ref, "--eval-set", path)
    assert code == 1 and message in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-cost", "0"], "--max-cost must be a positive number"),
        (["--max-cost", "nan"], "--max-cost must be a positive number"),
        (["--concurrency", "0"], "--concurrency must be from 1 to 32"),
        (["--report", "{tmp}/no/such/dir/r.md"], "no such directory"),
        (["--report", "{tmp}"], "is a directory"),
        (["--baseline", "ticket-classifier:1"], "is the candidate itself"),
    ],
)
def test_bad_arguments(push, write_eval_set, eval_cli, tmp_path, stub, argv, message):
    push(TEMPLATE)
    path = write_eval_set(cases(1))
    code, _, err = eval_cli("ticket-classifier", "--eval-set", path, *[a.format(tmp=tmp_path) for a in argv])
    assert code == 2 and message in err and stub.chat_requests() == []


def test_a_bad_reference_is_exit_2(eval_cli):
    code, _, err = eval_cli("Ticket Classifier", "--eval-set", "x.yaml")
    assert code == 2 and "prompt name 'Ticket Classifier'" in err


def test_the_eval_set_file_is_read_through_the_inputs_module(eval_cli, tmp_path):
    path = tmp_path / "ticket-classifier.yaml"
    path.write_text(yaml.safe_dump([1, 2]))
    code, _, err = eval_cli("ticket-classifier", "--eval-set", path)
    assert code == 2 and f"{path}: an eval set is a YAML mapping" in err
    code, _, err = eval_cli("ticket-classifier", "--eval-set", tmp_path / "absent.yaml")
    assert code == 2 and "no such file" in err
