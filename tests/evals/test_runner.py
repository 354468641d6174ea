"""The runner: against the real LiteLLM proxy and the model stub (conftest.py) for what the gateway
does (cost, metadata in the spend logs, concurrency, repeats, the cache, the judge), and against the
stub alone for the client's retry rules, where the sleeps can be recorded instead of slept."""

from __future__ import annotations

import json
import threading
import time

import boto3
import pytest

from llmops.evals.evalset import parse_eval_set
from llmops.evals.gateway import Gateway, GatewayError, chat_url, retry_after
from llmops.evals.report import MARKER, MAX_BYTES, markdown
from llmops.evals.runner import (
    JUDGE_INSTRUCTIONS,
    Outcome,
    ResponseCache,
    Runner,
    RunResult,
    Target,
    build_record,
    parse_verdict,
)
from llmops.prompts.format import PromptFile
from tests.evals.conftest import LOGS_BUCKET, PRICES, REGION, expected_cost, free_port

TEMPLATE = (
    "Classify the ticket into network, hardware or access. Answer with the queue only.\nTicket: {{ ticket }}"
)
KEYWORDS = {
    "vpn": "network",
    "wifi": "network",
    "laptop": "hardware",
    "screen": "hardware",
    "password": "access",
}
TICKETS = {
    "vpn-drops": ("VPN drops every five minutes", "network"),
    "wifi-slow": ("Office wifi is slow today", "network"),
    "laptop-dead": ("My laptop will not boot", "hardware"),
    "screen-flicker": ("Second screen flickers", "hardware"),
    "password-reset": ("Forgot my password again", "access"),
}


def classify(body: dict) -> str:
    ticket = body["messages"][-1]["content"].rsplit("Ticket:", 1)[-1].lower()
    return next((queue for word, queue in KEYWORDS.items() if word in ticket), "other")


def target(template: str = TEMPLATE, role: str = "candidate", version: int = 1, **fields) -> Target:
    doc = {
        "name": "ticket-classifier",
        "owner": "team-it",
        "classification": "internal",
        "model": "qwen-small",
        "parameters": {"temperature": 0, "max_tokens": 8},
        "variables": ["ticket"],
        "template": template,
        **fields,
    }
    prompt = PromptFile.model_validate(doc)
    return Target(role, prompt.name, version, prompt.content_hash(), prompt)


def eval_set(tickets: dict = TICKETS, **fields):
    cases = [
        {"id": case_id, "vars": {"ticket": text}, "assert": [{"type": "equals", "value": queue}]}
        for case_id, (text, queue) in tickets.items()
    ]
    return parse_eval_set(
        {"prompt": "ticket-classifier", "threshold": 0.8, **fields, "cases": cases}, "test.yaml"
    )


@pytest.fixture
def live(eval_env):
    """A Gateway configured from the environment `llmops eval run` reads."""
    return Gateway.from_env()


# -- through the real proxy -----------------------------------------------------------------


@pytest.mark.slow
def test_each_case_is_priced_by_the_gateway(live, stub):
    stub.respond = classify
    outcome = Runner(live).run(eval_set(), target())
    runs = [run for runs in outcome.results["candidate"].values() for run in runs]
    assert len(runs) == len(TICKETS) and all(r.passed and not r.cached for r in runs)
    for run in runs:
        # The stub counts words: the prompt's, and the one-word answer.
        assert run.tokens["completion"] == 1 and run.tokens["prompt"] > 10
        assert run.cost_usd == pytest.approx(expected_cost("qwen-small", run.tokens), rel=1e-9)
    assert outcome.spent_usd == pytest.approx(sum(r.cost_usd for r in runs), rel=1e-9)
    sent = stub.chat_requests()
    assert {r["temperature"] for r in sent} == {0} and {r["max_tokens"] for r in sent} == {8}
    assert all(r["messages"][0]["role"] == "user" for r in sent), "completion style is one user message"


@pytest.mark.slow
def test_spend_logs_attribute_the_calls_to_the_eval_run(live, stub, moto_url):
    """What LiteLLM 1.100.5 writes for the request metadata: the whole of it as
    `metadata.requester_metadata`, and our `spend_logs_metadata` as `metadata.spend_logs_metadata`,
    the field the spend aggregator reads."""
    stub.respond = classify
    s3 = boto3.client("s3", endpoint_url=moto_url, region_name=REGION)

    def keys() -> set[str]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=LOGS_BUCKET, Prefix="spend-logs/")
        return {o["Key"] for page in pages for o in page.get("Contents", [])}

    before = keys()
    runner = Runner(live)
    outcome = runner.run(eval_set({"vpn-drops": TICKETS["vpn-drops"]}), target())
    (run,) = outcome.results["candidate"]["vpn-drops"]
    deadline, mine, read = time.monotonic() + 30, [], set(before)
    while time.monotonic() < deadline and not mine:
        for key in sorted(keys() - read):
            read.add(key)
            record = json.loads(s3.get_object(Bucket=LOGS_BUCKET, Key=key)["Body"].read())
            labels = record["metadata"].get("spend_logs_metadata") or {}
            if labels.get("eval_run_id") == runner.run_id:
                mine.append(record)
        time.sleep(0.2)
    (record,) = mine
    prompt = target()
    expected = {
        "prompt_name": "ticket-classifier",
        "prompt_version": "1",
        "prompt_hash": prompt.content_hash,
        "eval_run_id": runner.run_id,
        "eval_role": "candidate",
        "llmops_eval": True,
    }
    assert record["metadata"]["spend_logs_metadata"] == expected
    assert expected.items() <= record["metadata"]["requester_metadata"].items()
    assert record["response_cost"] == pytest.approx(run.cost_usd, rel=1e-9)
    assert record["model_group"] == "qwen-small"


@pytest.mark.slow
def test_concurrency_is_bounded(live, stub):
    stub.respond = classify
    stub.delay_s = 0.3
    many = {f"case-{i}": ("VPN down", "network") for i in range(8)}
    Runner(live, concurrency=2).run(eval_set(many), target())
    assert stub.max_in_flight == 2
    stub.max_in_flight = 0
    Runner(live, concurrency=4).run(eval_set(many), target())
    assert stub.max_in_flight == 4


@pytest.mark.slow
def test_repeats_pass_on_a_strict_majority_and_are_never_cached(live, stub, tmp_path):
    """Each ticket is answered right on some of its calls: `steady` every time, `majority` on 2 of
    3, `minority` on 1 of 3. Then the same run again with the cache: only first repeats reuse it."""
    right = {"steady": 3, "majority": 2, "minority": 1}
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def sometimes(body: dict) -> str:
        case = body["messages"][-1]["content"].rsplit(" ", 1)[-1]
        with lock:
            seen[case] = seen.get(case, 0) + 1
            return "network" if seen[case] <= right[case] else "wrong"

    stub.respond = sometimes
    tickets = {case: (f"VPN ticket {case}", "network") for case in right}
    cache = ResponseCache(tmp_path / "cache")
    outcome = Runner(live, cache=cache).run(eval_set(tickets, repeat=3), target())
    record = build_record(eval_set(tickets, repeat=3), tmp_path / "x.yaml", target(), None, outcome)
    passed = {c["id"]: (c["passed"], sum(r["passed"] for r in c["runs"])) for c in record["cases"]}
    assert passed == {"steady": (True, 3), "majority": (True, 2), "minority": (False, 1)}
    assert len(stub.chat_requests()) == 9 and outcome.cached_calls == 0

    seen.clear()
    right.update(steady=0, majority=0, minority=0)  # every fresh answer is now wrong
    before = len(stub.chat_requests())
    again = Runner(live, cache=cache).run(eval_set(tickets, repeat=3), target())
    assert len(stub.chat_requests()) - before == 6, "repeats 2 and 3 of each case ask the gateway"
    for case, runs in again.results["candidate"].items():
        assert [r.cached for r in runs] == [True, False, False]
        assert runs[0].output == outcome.results["candidate"][case][0].output
        assert [r.passed for r in runs[1:]] == [False, False]
    assert again.cached_calls == 3


@pytest.mark.slow
def test_the_cache_answers_a_second_run_without_the_model(live, stub, tmp_path):
    stub.respond = classify
    cache = ResponseCache(tmp_path / "cache")
    first = Runner(live, cache=cache).run(eval_set(), target())
    before = len(stub.chat_requests())
    second = Runner(live, cache=cache).run(eval_set(), target())
    assert len(stub.chat_requests()) == before, "no model call on the second run"
    assert second.spent_usd == 0 and second.cached_calls == len(TICKETS) and second.calls == 0
    for case, runs in second.results["candidate"].items():
        (old,), (new,) = first.results["candidate"][case], runs
        assert new.cached and (new.output, new.cost_usd, new.passed) == (old.output, old.cost_usd, old.passed)
    # Another model, other messages or other parameters are other keys.
    changed = target(parameters={"temperature": 0, "max_tokens": 9})
    Runner(live, cache=cache).run(eval_set(), changed)
    assert len(stub.chat_requests()) == before + len(TICKETS)


@pytest.mark.slow
def test_the_cost_cap_stops_before_it_is_exceeded(live, stub):
    stub.respond = classify
    same = {f"case-{i:02d}": ("VPN drops again", "network") for i in range(12)}
    one = Runner(live).run(eval_set({"case-00": same["case-00"]}), target()).spent_usd
    cap = 3.5 * one
    outcome = Runner(live, concurrency=4, max_cost=cap).run(eval_set(same), target())
    assert outcome.spent_usd <= cap
    assert outcome.spent_usd + one > cap, "it stopped only when one more call would have exceeded the cap"
    assert len(outcome.results["candidate"]) == 3 and outcome.not_run == sorted(same)[3:]
    assert len(stub.chat_requests()) == 1 + 3


@pytest.mark.slow
def test_judge_grades_rubrics_through_the_gateway(live, stub, tmp_path):
    """The judge is asked at temperature 0 on its own route, its cost counts, and a verdict that is
    not the JSON asked for fails the assertion, saying why."""

    def answer(body: dict) -> str:
        system = body["messages"][0]
        if system["role"] == "system" and system["content"] == JUDGE_INSTRUCTIONS:
            graded = body["messages"][1]["content"].split("<output>", 1)[1]
            if "garbled" in graded:
                return "I think it is fine"
            verdict = "polite" in graded
            return f'```json\n{{"pass": {json.dumps(verdict)}, "reason": "checked politeness"}}\n```'
        return body["messages"][-1]["content"].rsplit("Ticket:", 1)[-1].strip()

    stub.respond = answer
    rubric = [{"type": "llm-rubric", "value": "The reply is polite."}]
    cases = [
        {"id": "polite", "vars": {"ticket": "a polite reply"}, "assert": rubric},
        {"id": "rude", "vars": {"ticket": "a rude reply"}, "assert": rubric},
        {"id": "garbled", "vars": {"ticket": "a garbled reply"}, "assert": rubric},
    ]
    judged = parse_eval_set(
        {"prompt": "ticket-classifier", "threshold": 0.3, "judge": {"model": "judge-large"}, "cases": cases},
        "judged.yaml",
    )
    outcome = Runner(live).run(judged, target())
    results = {case: runs[0].assertions[0] for case, runs in outcome.results["candidate"].items()}
    assert results["polite"].passed and "checked politeness" in results["polite"].detail
    assert not results["rude"].passed
    assert not results["garbled"].passed and "unparsable verdict" in results["garbled"].detail
    judge_calls = [r for r in stub.chat_requests() if r["messages"][0]["role"] == "system"]
    assert len(judge_calls) == 3 and {r["temperature"] for r in judge_calls} == {0}
    assert {r["model"] for r in judge_calls} == {"stub-judge-large"}
    prompt_cost = sum(runs[0].cost_usd for runs in outcome.results["candidate"].values())
    assert outcome.spent_usd > prompt_cost, "the judge's calls are spent too"
    judge_cost = outcome.spent_usd - prompt_cost
    price_in, price_out = PRICES["judge-large"]
    assert judge_cost > 3 * (price_in * 20 + price_out)  # three judge calls of 20+ words in, 1+ out
    record = build_record(judged, tmp_path / "judged.yaml", target(), None, outcome)
    assert record["models"]["judge"] == "judge-large"
    assert record["judge"] == {"model": "judge-large", "params": {"temperature": 0}}


@pytest.mark.slow
def test_judge_calls_count_towards_the_cost_cap(live, stub):
    def answer(body: dict) -> str:
        return '{"pass": true, "reason": "ok"}' if body["messages"][0]["role"] == "system" else "fine"

    stub.respond = answer
    rubric = [{"type": "llm-rubric", "value": "The reply is fine."}]
    cases = [{"id": f"c{i}", "vars": {"ticket": "same ticket"}, "assert": rubric} for i in range(6)]
    judged = {"prompt": "ticket-classifier", "threshold": 0.5, "judge": {"model": "judge-large"}}
    one = Runner(live).run(parse_eval_set({**judged, "cases": cases[:1]}, "one.yaml"), target())
    prompt_cost = one.results["candidate"]["c0"][0].cost_usd
    assert one.spent_usd > 2 * prompt_cost, "the judge's route is the pricier one"
    cap = 2.5 * one.spent_usd
    outcome = Runner(live, max_cost=cap).run(parse_eval_set({**judged, "cases": cases}, "six.yaml"), target())
    assert outcome.spent_usd <= cap and len(outcome.results["candidate"]) == 2
    assert outcome.spent_usd == pytest.approx(2 * one.spent_usd, rel=1e-9)


@pytest.mark.slow
def test_an_untrusted_gateway_certificate_is_a_clear_error(eval_env, monkeypatch, gateway, stub):
    monkeypatch.setenv("LLMOPS_GATEWAY_CA_CERT", str(gateway["ca_path"]))
    assert Gateway.from_env().chat({"model": "qwen-small", "messages": [{"role": "user", "content": "hi"}]})
    monkeypatch.delenv("LLMOPS_GATEWAY_CA_CERT")  # the system's CAs do not know the stack's CA
    with pytest.raises(GatewayError, match=r"TLS failed.*LLMOPS_GATEWAY_CA_CERT"):
        Gateway.from_env().chat({"model": "qwen-small", "messages": [{"role": "user", "content": "hi"}]})


# -- the client's retries, against the stub directly --------------------------------------------


def direct(stub, sleeps: list[float], **kwargs) -> Gateway:
    return Gateway(stub.url, "stub-key", sleep=sleeps.append, jitter=lambda: 1.0, **kwargs)


BODY = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}


def test_retries_server_errors_with_growing_backoff(stub):
    sleeps: list[float] = []
    stub.fail_next(3, 500)
    answer = direct(stub, sleeps).chat(BODY)
    assert answer.text == "hello" and len(stub.chat_requests()) == 4
    assert sleeps == [0.5, 1.0, 2.0]


def test_backoff_is_jittered(stub):
    sleeps: list[float] = []
    stub.fail_next(2, 502)
    Gateway(stub.url, "k", sleep=sleeps.append, jitter=iter([0.25, 0.5]).__next__).chat(BODY)
    assert sleeps == [0.125, 0.5]


def test_honours_retry_after(stub):
    sleeps: list[float] = []
    stub.fail_next(1, 429, retry_after="3")
    direct(stub, sleeps).chat(BODY)
    assert sleeps == [3.0]
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: now
    assert retry_after("100000") == 120.0  # bounded
    assert retry_after("soon") is None


def test_gives_up_after_bounded_attempts(stub):
    sleeps: list[float] = []
    stub.fail_next(10, 503)
    with pytest.raises(GatewayError, match="gave up after 5 attempts: HTTP 503"):
        direct(stub, sleeps).chat(BODY)
    assert len(stub.chat_requests()) == 5 and len(sleeps) == 4


@pytest.mark.parametrize(("status", "hint"), [(400, ""), (401, "check LLMOPS_GATEWAY_KEY"), (404, "")])
def test_client_errors_are_final(stub, status, hint):
    sleeps: list[float] = []
    stub.fail_next(1, status)
    with pytest.raises(GatewayError, match=f"HTTP {status}: stub failure {status}.*{hint}"):
        direct(stub, sleeps).chat(BODY)
    assert len(stub.chat_requests()) == 1 and sleeps == []


def test_connection_errors_are_retried():
    sleeps: list[float] = []
    gateway = Gateway(f"http://127.0.0.1:{free_port()}", "k", sleep=sleeps.append, jitter=lambda: 1.0)
    with pytest.raises(GatewayError, match="gave up after 5 attempts: cannot connect"):
        gateway.chat(BODY)
    assert len(sleeps) == 4


def test_the_chat_path_is_appended_once():
    assert chat_url("https://gw.example:4000") == "https://gw.example:4000/v1/chat/completions"
    assert chat_url("https://gw.example:4000/") == "https://gw.example:4000/v1/chat/completions"
    assert chat_url("https://gw.example/v1") == "https://gw.example/v1/chat/completions"
    with pytest.raises(GatewayError, match="not an http"):
        chat_url("gw.example:4000")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "LLMOPS_GATEWAY_URL is not set"),
        ({"LLMOPS_GATEWAY_URL": "https://gw"}, "LLMOPS_GATEWAY_KEY is not set"),
        (
            {
                "LLMOPS_GATEWAY_URL": "https://gw",
                "LLMOPS_GATEWAY_KEY": "k",
                "LLMOPS_GATEWAY_CA_CERT": "-----BEGIN x",
            },
            "LLMOPS_GATEWAY_CA_CERT: its PEM text holds no usable PEM certificate",
        ),
        (
            {
                "LLMOPS_GATEWAY_URL": "https://gw",
                "LLMOPS_GATEWAY_KEY": "k",
                "LLMOPS_GATEWAY_CA_CERT": "/no/ca.pem",
            },
            "/no/ca.pem: no such file",
        ),
    ],
)
def test_gateway_settings_errors(env, message):
    with pytest.raises(Exception, match=message) as raised:
        Gateway.from_env(env)
    assert raised.value.exit_code == 2


# -- verdicts and the report -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ('{"pass": true, "reason": "fine"}', (True, "fine")),
        ('Sure.\n```json\n{"pass": false, "reason": "rude"}\n```', (False, "rude")),
        ('{"pass": true}', (True, "")),
    ],
)
def test_verdicts(text, verdict):
    assert parse_verdict(text) == verdict


@pytest.mark.parametrize(
    "text", ["yes", '{"pass": "yes", "reason": "x"}', '{"reason": "x"}', "{not json}", ""]
)
def test_unparsable_verdicts_fail(text):
    passed, reason = parse_verdict(text)
    assert not passed and reason.startswith("unparsable verdict")


def test_the_markdown_report_stays_under_the_limit_and_keeps_its_summary(tmp_path):
    """2,000 failing cases with long outputs: rows are dropped, the summary never is."""
    tickets = {f"case-{i:04d}": ("VPN down", "network") for i in range(2000)}
    big = eval_set(tickets)
    long = "<script>alert(1)</script> | `code` " + "x" * 5000
    runs = {
        case: [RunResult(False, long, 10.0, 1e-5, {"prompt": 10, "completion": 1}, False, [])]
        for case in tickets
    }
    baseline_runs = {case: [RunResult(True, "network", 10.0, 1e-5, {}, False, [])] for case in tickets}
    outcome = Outcome("run-1", {"candidate": runs, "baseline": baseline_runs}, [], 0.04, 4000, 0)
    record = build_record(big, tmp_path / "big.yaml", target(), target(role="baseline", version=2), outcome)
    text = markdown(record)
    assert len(text.encode()) < MAX_BYTES
    assert text.startswith(MARKER.format(name="ticket-classifier") + "\n")
    summary = text.split("| case |")[0]
    assert "0/2000 (0.0%)" in summary and "threshold 80.0%" in summary
    assert "2000 worsened, 0 improved" in summary and "significant regression" in summary
    assert "cost $0.04" in summary
    assert "more case(s) not shown" in text
    assert "<script>" not in text and "&lt;script&gt;" in text


def test_a_small_report_shows_every_case_with_its_delta(tmp_path):
    few = eval_set({"a": ("VPN", "network"), "b": ("wifi", "network")})
    runs = {
        "a": [RunResult(False, "other", 5.0, 1e-6, {}, False, [])],
        "b": [RunResult(True, "network", 5.0, 1e-6, {}, False, [])],
    }
    base = {"a": [RunResult(True, "network", 5.0, 1e-6, {}, False, [])], "b": runs["b"]}
    outcome = Outcome("run-2", {"candidate": runs, "baseline": base}, [], 4e-6, 4, 0)
    text = markdown(
        build_record(few, tmp_path / "few.yaml", target(), target(role="baseline", version=2), outcome)
    )
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert rows[0].startswith("| `a` | ❌ 0/1 | ✅ 1/1 | worsened |")
    assert rows[1].startswith("| `b` | ✅ 1/1 | ✅ 1/1 |  |")
    assert "more case(s) not shown" not in text
