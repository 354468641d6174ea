"""Eval coverage: `llmops eval coverage` on spend-log files (the prompt registry on moto, records
written by the real PromptRegistry), end to end through the real LiteLLM proxy, and the stack's
pieces: the dashboard's metrics against what the aggregator emits, the aggregator's IAM grants."""

from __future__ import annotations

import gzip
import json
import re
import time
import uuid
from pathlib import Path

import boto3
import pytest
import yaml
from moto import mock_aws

import llmops.cli
from lambdas.spend_aggregator.aggregate import Aggregator
from llmops.evals.gateway import Gateway
from llmops.prompts import PromptClient
from llmops.prompts.format import PromptFile
from llmops.prompts.registry import PromptRegistry
from llmops.verify.iam import allows

ROOT = Path(__file__).parents[2]
SPEND_LOGS = ROOT / "tests" / "fixtures" / "spend_logs"
BUCKET = "llmops-test-coverage-prompts"
REGION = "us-east-1"
TEMPLATE = "Classify the ticket into a queue.\nTicket: {{ ticket }}"


def real_record() -> dict:
    """A spend-log object the real LiteLLM 1.100.5 proxy wrote (tests/fixtures/spend_logs)."""
    return json.loads((SPEND_LOGS / "self_hosted_success.json").read_text())


def spend_record(team: str, request_metadata: dict | None, n: int) -> dict:
    """That record for another request: LiteLLM logs the request's `metadata` under
    metadata.requester_metadata (checked against the real proxy in test_real_gateway_traffic_...)."""
    record = real_record()
    record["id"] = f"chatcmpl-coverage-{n}"
    record["metadata"]["spend_logs_metadata"] = {"team": team}
    record["metadata"]["requester_metadata"] = {
        "spend_logs_metadata": {"team": team},
        **(request_metadata or {}),
    }
    return record


def served(name: str, version: int, **more) -> dict:
    """ServedPrompt.metadata of that version (llmops/prompts/client.py)."""
    return {"prompt_name": name, "prompt_alias": "production", "prompt_version": str(version), **more}


def harness_record(version: dict, passed: bool) -> dict:
    """What `llmops eval run --record` stores (record_harness_eval checks the shape)."""
    name = version["name"]
    return {
        "kind": "harness",
        "prompt": name,
        "version": version["version"],
        "content_sha256": version["content_hash"],
        "eval_set": {
            "path": f"evals/{name}.yaml",
            "prompt": name,
            "sha256": "0" * 64,
            "threshold": 0.9,
            "repeat": 1,
            "cases": 1,
        },
        "threshold": 0.9,
        "pass_rate": 1.0 if passed else 0.0,
        "cases": [{"id": "case-1", "passed": passed, "runs": []}],
        "baseline": None,
        "passed": passed,
        "models": {"candidate": "qwen-small", "baseline": None, "judge": None},
        "judge": None,
        "run_id": str(uuid.uuid4()),
        "cost_usd": 0.0,
    }


@pytest.fixture
def prompt_registry(monkeypatch):
    """An in-process moto registry bucket, named by LLMOPS_PROMPT_BUCKET."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "LLMOPS_PROMPT_BUCKET": BUCKET,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield PromptRegistry(BUCKET, s3, boto3.client("sts", region_name=REGION))


def push(registry: PromptRegistry, name: str, count: int) -> list[dict]:
    doc = {"name": name, "owner": "team-it", "classification": "internal", "model": "qwen-small"}
    return [
        registry.push(
            PromptFile.model_validate({**doc, "variables": ["ticket"], "template": f"{TEMPLATE} #{i}"})
        )
        for i in range(1, count + 1)
    ]


@pytest.fixture
def coverage_cli(capsys):
    """coverage_cli(*argv) -> (exit code, stdout, stderr) of `llmops eval coverage` in-process."""

    def run(*argv):
        code = llmops.cli.main(["eval", "coverage", *map(str, argv)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def write_objects(directory: Path, records: list[dict]) -> list[Path]:
    """One `.json` object per record, as LiteLLM's s3_v2 logger writes them."""
    directory.mkdir(exist_ok=True)
    paths = []
    for i, record in enumerate(records):
        path = directory / f"time-{i:03d}_{record['id']}.json"
        path.write_text(json.dumps(record))
        paths.append(path)
    return paths


# -- the command -------------------------------------------------------------------------------


def test_share_per_team_with_the_uncovered_prompt_versions(prompt_registry, coverage_cli, tmp_path):
    v1, v2, *_ = push(prompt_registry, "ticket-classifier", 4)
    prompt_registry.record_harness_eval("ticket-classifier", 1, harness_record(v1, passed=True))
    prompt_registry.record_harness_eval("ticket-classifier", 2, harness_record(v2, passed=False))
    prompt_registry.record_eval("ticket-classifier", 3, score=1.0, threshold=0.5)  # manual: never covers
    # v4 has no eval record. (team, metadata, requests)
    traffic = [
        ("payments", served("ticket-classifier", 1), 5),
        ("payments", served("ticket-classifier", 2), 2),
        ("payments", None, 1),
        ("search", served("ticket-classifier", 3), 3),
        ("search", served("ticket-classifier", 4), 1),
        ("search", served("ticket-classifier", 1), 1),
        ("search", served("ticket-classifier", 1, llmops_eval=True, eval_run_id="r1"), 4),  # eval traffic
    ]
    records = [
        spend_record(team, meta, 100 * i + j) for i, (team, meta, n) in enumerate(traffic) for j in range(n)
    ]
    files = write_objects(tmp_path / "logs", records[:6])
    batch = tmp_path / "batch.jsonl.gz"  # the rest as one gzipped JSON Lines file
    batch.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in records[6:]).encode()))

    code, out, err = coverage_cli(*files, batch, "--json")
    assert code == 0, err
    report = json.loads(out)
    teams = {t["team"]: t for t in report["teams"]}
    assert (teams["payments"]["requests"], teams["payments"]["covered"]) == (8, 5)
    assert (teams["search"]["requests"], teams["search"]["covered"]) == (5, 1)
    assert teams["payments"]["share"] == pytest.approx(5 / 8) and teams["search"]["share"] == pytest.approx(
        1 / 5
    )
    assert teams["payments"]["uncovered"] == [
        {"prompt": "ticket-classifier", "version": 2, "requests": 2},
        {"prompt": None, "version": None, "requests": 1},
    ]
    assert teams["search"]["uncovered"] == [
        {"prompt": "ticket-classifier", "version": 3, "requests": 3},
        {"prompt": "ticket-classifier", "version": 4, "requests": 1},
    ]
    assert report["total"] == {"requests": 13, "covered": 6, "share": pytest.approx(6 / 13)}
    assert report["eval_requests"] == 4 and report["malformed_lines"] == 0

    code, out, _ = coverage_cli(*files, batch)
    assert code == 0
    lines = out.splitlines()
    assert re.fullmatch(r"payments\s+8\s+5\s+62\.5%", lines[1])
    assert re.fullmatch(r"all teams\s+13\s+6\s+46\.2%", lines[3])
    assert re.fullmatch(r"\s+ticket-classifier:3\s+3", out.split("uncovered, search:\n")[1].splitlines()[0])
    assert "(no prompt metadata)" in out and "eval traffic not counted: 4 request(s)" in out


def test_each_prompt_version_is_looked_up_once(prompt_registry, coverage_cli, tmp_path, monkeypatch):
    (v1,) = push(prompt_registry, "ticket-classifier", 1)
    prompt_registry.record_harness_eval("ticket-classifier", 1, harness_record(v1, passed=True))
    listings = []

    def clients():
        s3, sts = boto3.client("s3", region_name=REGION), boto3.client("sts", region_name=REGION)
        s3.meta.events.register(
            "provide-client-params.s3.ListObjectsV2", lambda params, **_: listings.append(params["Prefix"])
        )
        return s3, sts

    monkeypatch.setattr("llmops.prompts.cli.make_clients", clients)
    records = [
        spend_record("payments", served("ticket-classifier", v), n) for n, v in enumerate([1, 1, 1, 2, 2])
    ]
    code, out, _ = coverage_cli(*write_objects(tmp_path / "logs", records), "--json")
    assert code == 0 and json.loads(out)["total"]["covered"] == 3
    assert sorted(listings) == [
        "prompts/ticket-classifier/evals/000001/",
        "prompts/ticket-classifier/evals/000002/",
    ]


def test_traffic_without_prompt_metadata_needs_no_registry(coverage_cli, tmp_path, monkeypatch):
    monkeypatch.delenv("LLMOPS_PROMPT_BUCKET", raising=False)
    code, out, err = coverage_cli(*sorted(SPEND_LOGS.glob("*_success*.json")), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["total"]["covered"] == 0 and report["total"]["requests"] == 5  # the five success objects


def test_prompt_versions_without_a_bucket_is_one_line_exit_2(coverage_cli, tmp_path, monkeypatch):
    monkeypatch.delenv("LLMOPS_PROMPT_BUCKET", raising=False)
    files = write_objects(tmp_path / "logs", [spend_record("payments", served("ticket-classifier", 1), 0)])
    code, out, err = coverage_cli(*files)
    assert code == 2 and out == ""
    assert err == "error: no prompt bucket: pass --bucket or set LLMOPS_PROMPT_BUCKET\n"


def test_malformed_lines_name_file_and_line_and_exit_2(prompt_registry, coverage_cli, tmp_path):
    path = tmp_path / "batch.jsonl"
    good = json.dumps(spend_record("payments", None, 0))
    path.write_text(f'{good}\n{{"response_cost": 0.1\n{good}\n')
    code, out, err = coverage_cli(path, "--json")
    assert code == 2
    report = json.loads(out)  # the good lines are still counted
    assert report["total"]["requests"] == 2 and report["malformed_lines"] == 1
    first, last = err.splitlines()
    assert first.startswith(f"{path}:2: not valid JSON (") and last == "1 malformed line(s) skipped"


def test_missing_file_exits_1_and_a_directory_2(coverage_cli, tmp_path):
    code, out, err = coverage_cli(tmp_path / "nope.json")
    assert (
        (code, out) == (1, "")
        and err
        == f"error: {tmp_path / 'nope.json'}: no such file; pass the path of an existing spend-log file\n"
    )
    code, out, err = coverage_cli(tmp_path, "--json")
    assert code == 2 and json.loads(out)["error"]["exit_code"] == 2
    assert err == f"error: {tmp_path}: is a directory; pass the spend-log file itself\n"


# -- end to end: the real proxy, PromptClient, `llmops eval run --record` ---------------------


def wait_for_objects(s3, bucket: str, wanted, count: int, timeout_s: float = 60) -> list[bytes]:
    """Bodies of the spend-log objects `wanted(record)` selects, once there are `count` of them."""
    deadline = time.monotonic() + timeout_s
    while True:
        keys = [
            o["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])
        ]
        bodies = [s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys]
        mine = [b for b in bodies if wanted(json.loads(b))]
        if len(mine) >= count or time.monotonic() > deadline:
            return mine
        time.sleep(0.5)


@pytest.mark.slow
def test_real_gateway_traffic_is_covered_by_its_recorded_eval(
    eval_env, registry, push, write_eval_set, eval_cli, stub, moto_url, coverage_cli, tmp_path
):
    """Version 1 evaluated with `llmops eval run --record` and promoted, version 2 never evaluated;
    an app asks the real proxy with PromptClient's metadata, once without; the proxy's spend-log
    objects, byte for byte, give 2 of 4 requests covered, and the eval's own calls are not counted."""
    from tests.evals.conftest import LOGS_BUCKET

    stub.respond = lambda body: "network"
    name, team = f"coverage-{uuid.uuid4().hex[:8]}", f"team-{uuid.uuid4().hex[:8]}"
    push(f"{TEMPLATE} (v1)", name=name)
    cases = [
        {"id": f"c{i}", "vars": {"ticket": f"VPN {i}"}, "assert": [{"type": "equals", "value": "network"}]}
        for i in range(3)
    ]
    path = write_eval_set(cases, prompt=name, threshold=0.9)
    code, doc, err = eval_cli(f"{name}:1", "--eval-set", path, "--record")
    assert code == 0 and doc["recorded"]["kind"] == "harness", err
    push(f"{TEMPLATE} (v2)", name=name)  # never evaluated
    registry.promote(name, 1, "production", "evaluated")
    registry.promote(name, 2, "canary", "not evaluated")

    client = PromptClient(eval_env, cache_dir=tmp_path / "prompt-cache")
    gw = Gateway.from_env()
    labels = {"spend_logs_metadata": {"team": team}}
    for alias, calls in (("production", 2), ("canary", 1)):
        prompt = client.get(name, alias=alias)
        for i in range(calls):
            messages = [{"role": "user", "content": prompt.render({"ticket": f"printer {i}"})}]
            gw.chat(
                {
                    "model": prompt.prompt.model,
                    "messages": messages,
                    "metadata": {**prompt.metadata, **labels},
                }
            )
    gw.chat({"model": "qwen-small", "messages": [{"role": "user", "content": "hi"}], "metadata": labels})

    s3 = boto3.client("s3", endpoint_url=moto_url, region_name=REGION)

    def wanted(record: dict) -> bool:
        requester = (record.get("metadata") or {}).get("requester_metadata") or {}
        return (
            requester.get("prompt_name") == name
            or (requester.get("spend_logs_metadata") or {}).get("team") == team
        )

    bodies = wait_for_objects(s3, LOGS_BUCKET, wanted, count=3 + 4)  # the eval's 3 calls, the app's 4
    assert len(bodies) == 7
    files = []
    for i, body in enumerate(bodies):  # byte for byte, as the proxy wrote them
        files.append(tmp_path / f"object-{i}.json")
        files[-1].write_bytes(body)

    code, out, err = coverage_cli(*files, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["eval_requests"] == 3
    (mine,) = [t for t in report["teams"] if t["team"] == team]
    assert (mine["requests"], mine["covered"]) == (4, 2)
    assert mine["uncovered"] == [  # a tie: requests naming no prompt first
        {"prompt": None, "version": None, "requests": 1},
        {"prompt": name, "version": 2, "requests": 1},
    ]


# -- the stack: dashboard and IAM ---------------------------------------------------------------


def aggregator_output() -> tuple[set[tuple[str, str, frozenset]], set[str]]:
    """(namespace, metric, dimension set) of everything the aggregator emits, and the keys of its
    coverage records, from the aggregator run on real spend-log records."""
    aggregator = Aggregator()
    for path in sorted(SPEND_LOGS.glob("*.json")):
        if path.name != "objects.json":
            aggregator.add_document(path.read_bytes())
    aggregator.add_document(json.dumps(spend_record("payments", served("ticket-classifier", 1), 0)).encode())
    records = aggregator.emf_records("x") + aggregator.coverage_records("x", lambda name, version: True)
    produced = set()
    for record in records:
        for directive in record["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                produced |= {
                    (directive["Namespace"], metric["Name"], frozenset(d)) for d in directive["Dimensions"]
                }
    coverage_keys = {k for r in records if "EvalCoveredRequests" in r for k in r}
    return produced, coverage_keys


def of_type(plan, type_: str) -> list[dict]:
    return [r for r in plan.plan.resources if r["type"] == type_]


def aggregator_function(plan) -> dict:
    (function,) = [
        f
        for f in of_type(plan, "aws:lambda/function:Function")
        if f["inputs"]["name"].endswith("-spend-aggregator")
    ]
    return function


SEARCH = re.compile(
    r"SEARCH\('\{(?P<schema>[^}]*)\} MetricName=\"(?P<metric>[^\"]+)\" "
    r"Environment=\"(?P<env>[^\"]+)\"', 'Sum', \d+\)"
)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_the_dashboard_graphs_what_the_aggregator_emits(plans, stack):
    plan = plans[stack]
    function = aggregator_function(plan)
    environment = function["inputs"]["environment"]["variables"]["ENVIRONMENT"]
    prefix = function["inputs"]["name"].removesuffix("-spend-aggregator")
    (dashboard,) = [
        d
        for d in of_type(plan, "aws:cloudwatch/dashboard:Dashboard")
        if d["inputs"]["dashboardName"] == f"{prefix}-llm-usage"
    ]
    body = json.loads(dashboard["inputs"]["dashboardBody"])
    produced, coverage_keys = aggregator_output()
    graphed, searched, ratios = set(), set(), []
    for widget in body["widgets"]:
        props = widget["properties"]
        if widget["type"] == "log":
            assert props["query"].startswith(f"SOURCE '{function['inputs']['loggingConfig']['logGroup']}' |")
            fields = {"Environment", "UncoveredRequests", "Team", "Prompt", "PromptVersion"}
            assert all(f in props["query"] for f in fields) and fields <= coverage_keys
            continue
        ids = set()
        for entry in props["metrics"]:
            options = entry[-1] if isinstance(entry[-1], dict) else {}
            ids.add(options.get("id"))
            if isinstance(entry[0], str):  # [namespace, metric, name, value, ..., {options}]
                names, values = entry[2:-1:2], entry[3:-1:2]
                assert dict(zip(names, values, strict=True))["Environment"] == environment
                graphed.add((entry[0], entry[1], frozenset(names)))
            elif match := SEARCH.fullmatch(options["expression"]):
                namespace, *dimensions = match["schema"].split(",")
                assert match["env"] == environment
                searched.add((namespace, match["metric"], frozenset(dimensions)))
            else:
                ratios.append(options["expression"])
                referenced = set(re.findall(r"[a-z][a-zA-Z0-9_]*", options["expression"]))
                assert referenced <= ids, options["expression"]  # ids defined before use
    assert graphed and searched and graphed | searched <= produced
    assert {m for _, m, _ in graphed} == {"EvalCoveredRequests", "CoverageRequests"}
    assert {m for _, m, _ in searched} == {"EvalCoveredRequests", "CoverageRequests", "CostUSD"}
    assert "100*SUM(call)/SUM(rall)" in ratios and any(re.fullmatch(r"100\*c\d+/r\d+", r) for r in ratios)


def test_the_dashboard_has_a_coverage_ratio_per_declared_team(plans):
    """The teams of the prod stack file's teamBudgets and of the team files for prod, and unassigned."""
    stack = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())["config"]
    declared = {b["team"] for b in stack["llmops:costAlarms"]["teamBudgets"]}
    for path in (ROOT / "stacks" / "teams").glob("*.yaml"):
        team = yaml.safe_load(path.read_text())
        if "prod" in team["environments"]:
            declared.add(team["name"])
    (dashboard,) = [
        d
        for d in of_type(plans["prod"], "aws:cloudwatch/dashboard:Dashboard")
        if d["inputs"]["dashboardName"].endswith("-llm-usage")
    ]
    body = json.loads(dashboard["inputs"]["dashboardBody"])
    labels = {
        e[0]["label"]
        for w in body["widgets"]
        if w["type"] == "metric"
        for e in w["properties"]["metrics"]
        if isinstance(e[0], dict) and re.fullmatch(r"100\*c\d+/r\d+", e[0]["expression"])
    }
    assert labels == declared | {"unassigned"}


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_the_aggregator_may_read_eval_records_and_nothing_else_of_the_registry(plans, stack):
    plan = plans[stack]
    function = aggregator_function(plan)
    (bucket,) = [b for b in of_type(plan, "aws:s3/bucket:Bucket") if b["name"].endswith("-prompts-bucket")]
    # The prompt store's own key, or the stack's one key where the classification allows it.
    (key,) = [
        k for k in of_type(plan, "aws:kms/key:Key") if k["name"].endswith(("-prompts-key", "-stack-key"))
    ]
    assert function["inputs"]["environment"]["variables"]["PROMPT_BUCKET"] == bucket["outputs"]["bucket"]
    (role,) = [
        r for r in of_type(plan, "aws:iam/role:Role") if r["outputs"]["arn"] == function["inputs"]["role"]
    ]
    statements = [
        s
        for p in of_type(plan, "aws:iam/rolePolicy:RolePolicy")
        if p["inputs"]["role"] == role["id"]
        for s in json.loads(p["inputs"]["policy"])["Statement"]
    ]
    arn, key_arn = bucket["outputs"]["arn"], key["outputs"]["arn"]
    record = f"{arn}/prompts/ticket-classifier/evals/000002/20261123T110231349433Z-0a1b2c3d.json"
    assert allows(statements, "s3:GetObject", record)
    assert allows(statements, "s3:ListBucket", arn)
    assert allows(statements, "kms:Decrypt", key_arn)
    for other in (
        "prompts/ticket-classifier/versions/000002.json",
        "prompts/x/aliases/production.json",
        "_registry/config.json",
    ):
        assert not allows(statements, "s3:GetObject", f"{arn}/{other}"), other
    # With the stack's one key (dev) the aggregator encrypts its own data with it: S3 still refuses.
    shared = key["name"].endswith("-stack-key")
    for action in ("s3:PutObject", "s3:DeleteObject", *(() if shared else ("kms:GenerateDataKey",))):
        assert not any(allows(statements, action, r) for r in (record, key_arn)), action
    (listing,) = [s for s in statements if "s3:ListBucket" in s["Action"] and s["Resource"] == arn]
    prefixes = listing["Condition"]["StringLike"]["s3:prefix"]
    assert prefixes and all(p.startswith("prompts/") for p in prefixes)
