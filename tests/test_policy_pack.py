"""The pack as a whole: it imports without serving, its metadata is complete, its entry point builds
the PolicyPack, generated files match the code, and `llmops policy check` keeps its exit codes."""

from __future__ import annotations

import json
import re
import runpy
from pathlib import Path

import jsonschema
import pulumi_policy
import pytest

from llmops.errors import EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE
from llmops.policy import catalogue
from llmops.policy.cli import main
from llmops.policy.engine import POLICIES_DIR, pack
from tests.policy_fixture import compliant_plan, find

ID = re.compile(r"^LLMOPS-(ENC|PUB|LOG|NET|IAM|RES|TAG|K8S|GW|PS|COST)-\d{3}$")
KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
FRAMEWORKS = (
    "Checkov",
    "CIS",
    "PCI DSS",
    "ISO 27001",
    "HIPAA",
    "GDPR",
    "UAE",
    "AWS",
    "Kyverno",
    "OWASP",
    "Kubernetes",
)


def test_pack_lists_its_rules_without_starting_a_server():
    rules = pack().rules()
    assert len(rules) >= 40
    assert len({r.id for r in rules}) == len({r.name for r in rules}) == len(rules)
    areas = {r.area for r in rules}
    assert areas == {
        "encryption",
        "public_exposure",
        "logging_audit",
        "network",
        "identity",
        "residency",
        "tagging",
        "k8s_workloads",
        "gateway",
        "prompt_store",
        "cost",
    }
    for rule in rules:
        assert ID.match(rule.id) and KEBAB.match(rule.name), rule.id
        assert rule.description.startswith("Checks whether "), rule.id
        assert rule.remediation and rule.severity in ("low", "medium", "high", "critical"), rule.id
        assert rule.anchors and all(a.framework.startswith(FRAMEWORKS) for a in rule.anchors), rule.id
        assert set(rule.levels) == {"public", "internal", "confidential", "regulated"}, rule.id
        assert rule.levels["regulated"] in ("mandatory", "advisory"), rule.id
    policies = pack().policies()
    assert [p.name for p in policies] == [r.name for r in rules]
    assert all(isinstance(p, pulumi_policy.Policy) and p.config_schema for p in policies)


def test_entry_point_builds_the_pack_with_every_policy(monkeypatch):
    """policies/__main__.py, run with PolicyPack replaced (the real one serves gRPC forever)."""
    rules = pack().rules()  # puts policies/ on sys.path, as the Pulumi CLI runs from there
    built = {}
    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda **kw: built.update(kw))
    runpy.run_path(str(POLICIES_DIR / "__main__.py"), run_name="__main__")
    assert built["name"] == "llmops-policies"
    assert len(built["policies"]) == len(rules)
    assert built["enforcement_level"] == pulumi_policy.EnforcementLevel.MANDATORY


# Rules whose verdict a stack setting decides, with the keys (README's settings table) to change.
EXPECTED_SETTINGS = {
    "eks-endpoint-private": ("llmops:cluster.endpointPublicAccess",),
    "eks-endpoint-not-open-to-internet": (
        "llmops:cluster.endpointPublicAccess",
        "llmops:cluster.publicAccessCidrs",
    ),
    "gateway-pii-guardrail": ("llmops:gateway.piiGuardrail", "llmops:gateway.piiPatterns"),
    "gateway-message-logging-off": ("llmops:gateway.messageLogging",),
    "nodepool-gpu-limit": ("llmops:gpuPools[].maxGpus",),
    "resources-in-allowed-regions": ("aws:region", "llmops:allowedRegions"),
}


def settings_keys() -> set[str]:
    from llmops.settings.reference import rows
    from llmops.settings.stack import StackSettings

    return {row.split("`")[1] for row in rows(StackSettings, "llmops:")}


def test_rule_settings_name_real_stack_settings():
    keys = settings_keys()
    rules = {r.name: r for r in pack().rules()}
    for rule in rules.values():
        assert set(rule.setting) <= keys, f"{rule.id}: unknown setting {set(rule.setting) - keys}"
        assert len(set(rule.setting)) == len(rule.setting), rule.id
    for name, setting in EXPECTED_SETTINGS.items():
        assert rules[name].setting == setting, name
    assert sum(bool(r.setting) for r in rules.values()) >= 15


def test_catalogue_shows_each_rules_settings():
    table = catalogue.catalogue_table().splitlines()
    assert "| Stack setting |" in table[0]
    column = table[0].strip("|").split("|").index(" Stack setting ")
    for rule in pack().rules():
        row = next(line for line in table if line.startswith(f"| {rule.id} |"))
        assert row.strip("|").split(" | ")[column].strip() == ", ".join(f"`{k}`" for k in rule.setting)
    assert "`llmops:cluster.endpointPublicAccess`" in (POLICIES_DIR / "README.md").read_text()


def test_readme_catalogue_and_configs_match_the_rules():
    assert catalogue.stale() == [], "run `python -m llmops.policy configs` and commit the result"
    text = (POLICIES_DIR / "README.md").read_text()
    for rule in pack().rules():
        assert f"| {rule.id} | `{rule.name}` |" in text


@pytest.mark.parametrize("env", sorted(catalogue.ENVIRONMENTS))
def test_shipped_configs_validate_against_each_policy_schema(env: str):
    """What the Pulumi CLI checks (gojsonschema) before a preview: every entry fits its policy's schema."""
    config = json.loads(catalogue.config_path(env).read_text())
    classification, regions, _ = catalogue.ENVIRONMENTS[env]
    for policy in pack().policies():
        entry = dict(config[policy.name])
        assert entry.pop("enforcementLevel") in ("advisory", "mandatory", "disabled")
        assert entry["dataClassification"] == classification and entry["allowedRegions"] == regions
        schema = {"type": "object", "properties": policy.config_schema.properties}
        jsonschema.validate(entry, schema)


def test_policy_config_reaches_the_rules():
    """allowedRegions from the config file drives the residency rule (prod: me-central-1 only)."""
    plan = compliant_plan()
    find(plan, "aws")["inputs"]["region"] = "eu-west-1"
    prod = json.loads(catalogue.config_path("prod").read_text())
    dev = json.loads(catalogue.config_path("dev").read_text())
    from llmops.policy import evaluate_plan

    def provider_hits(config):
        return [
            v.level
            for v in evaluate_plan(plan, config)
            if v.policy == "resources-in-allowed-regions" and v.resource == "aws"
        ]

    assert provider_hits(prod) == ["mandatory"]
    assert provider_hits(dev) == []


# ---------------------------------------------------------------- the CLI


@pytest.fixture
def plan_file(tmp_path: Path):
    def write(plan) -> str:
        path = tmp_path / "plan.json"
        path.write_text(json.dumps(plan) if not isinstance(plan, str) else plan)
        return str(path)

    return write


def test_check_passes_a_compliant_plan(plan_file, capsys):
    assert main(["check", plan_file(compliant_plan())]) == EXIT_OK
    out = capsys.readouterr().out
    assert "0 mandatory" in out
    assert "regulated, allowed regions any (provider aws default tag data-classification)" in out


def test_check_fails_and_names_the_resource_as_json(plan_file, capsys):
    plan = compliant_plan()
    find(plan, "gateway-nlb")["inputs"]["internal"] = False
    code = main(["check", plan_file(plan), "--json", "--config", str(catalogue.config_path("prod"))])
    doc = json.loads(capsys.readouterr().out)
    assert code == EXIT_NOT_FOUND
    assert {
        "policy": "load-balancers-internal",
        "resource": "gateway-nlb",
        "type": "aws:lb/loadBalancer:LoadBalancer",
        "level": "mandatory",
    }.items() <= doc["violations"][0].items()
    assert set(doc["violations"][0]) >= {"policy", "resource", "type", "level", "message"}


def test_violations_carry_the_fix_and_the_setting_as_text_and_json(plan_file, capsys):
    plan = compliant_plan()
    find(plan, "cluster-eks")["inputs"]["vpcConfig"]["endpointPublicAccess"] = True
    rule = next(r for r in pack().rules() if r.name == "eks-endpoint-private")
    path = plan_file(plan)
    assert main(["check", path, "--json"]) == EXIT_NOT_FOUND
    doc = json.loads(capsys.readouterr().out)
    hit = next(v for v in doc["violations"] if v["policy"] == rule.name)
    assert hit["remediation"] == rule.remediation
    assert hit["setting"] == ["llmops:cluster.endpointPublicAccess"]
    assert all("remediation" in v and isinstance(v["setting"], list) for v in doc["violations"])
    assert main(["check", path]) == EXIT_NOT_FOUND
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if rule.id in line)
    assert lines[at + 2].strip() == f"fix: {rule.remediation}"
    assert lines[at + 3].strip() == "setting: llmops:cluster.endpointPublicAccess"


def test_advisory_only_violations_exit_zero(plan_file, capsys):
    plan = compliant_plan()
    find(plan, "vllm-llama")["inputs"]["spec"]["template"]["spec"]["containers"][0]["securityContext"][
        "readOnlyRootFilesystem"
    ] = False
    assert main(["check", plan_file(plan)]) == EXIT_OK
    assert "ADVISORY" in capsys.readouterr().out


@pytest.mark.parametrize(
    "content, expected",
    [
        ("not json", "not JSON"),
        ("[]", "must be a JSON object"),
        ('{"resources": {}}', "resources: must be a list"),
        ('{"resources": [{"type": "bucket", "name": "", "inputs": []}]}', "resources[0].type"),
    ],
)
def test_invalid_plan_exits_2_with_a_clear_message(plan_file, capsys, content, expected):
    assert main(["check", plan_file(content)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_every_problem_in_a_plan_is_listed(plan_file, capsys):
    bad = {
        "resources": [{"type": "x", "name": "a"}, {"type": "aws:s3/bucket:Bucket", "name": "b", "inputs": 3}]
    }
    assert main(["check", plan_file(bad)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "resources[0].type" in err and "resources[1].inputs" in err


def test_unknown_policy_in_config_is_refused(plan_file, tmp_path, capsys):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"no-such-policy": "mandatory"}))
    assert main(["check", plan_file(compliant_plan()), "--config", str(config)]) == EXIT_USAGE
    assert "no-such-policy" in capsys.readouterr().err
