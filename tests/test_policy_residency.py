"""Data residency on the real prod plan, and the pack config a plan is checked with by default.

Each negative case changes one property of the plan `llmops plan prod` records (built once per
module), writes it out and runs `llmops policy check` on it as a user would.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from llmops.errors import EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE
from llmops.policy import infer_config
from llmops.policy.catalogue import config_path
from llmops.policy.cli import main
from llmops.policy.engine import pack
from tests.policy_fixture import compliant_plan

RES = "resources-in-allowed-regions"
AWS = "pulumi:providers:aws"
BUCKET = "aws:s3/bucket:Bucket"
PROD_CONFIG = str(config_path("prod"))


@pytest.fixture(scope="module")
def prod_plan(plans) -> dict[str, Any]:
    """The prod plan as plan.json holds it (JSON types only)."""
    return json.loads(json.dumps(plans["prod"].plan.to_dict()))


@pytest.fixture
def prod(prod_plan) -> dict[str, Any]:
    return copy.deepcopy(prod_plan)


@pytest.fixture
def check(tmp_path: Path, capsys):
    """check(plan, *args) -> (exit code, {"violations", "config"}, stderr): the CLI with --json."""

    def run(plan: dict[str, Any], *args: str) -> tuple[int, dict[str, Any], str]:
        path = tmp_path / "plan.json"
        path.write_text(json.dumps(plan))
        code = main(["check", str(path), "--json", *args])
        out = capsys.readouterr()
        return code, json.loads(out.out) if out.out.strip() else {}, out.err

    return run


def first(plan: dict[str, Any], rtype: str) -> dict[str, Any]:
    return next(r for r in plan["resources"] if r["type"] == rtype)


def residency(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in doc["violations"] if v["policy"] == RES]


# ---------------------------------------------------------------- the shipped plan passes


def test_prod_plan_passes_with_its_own_settings(prod, check):
    code, doc, _ = check(prod)
    assert code == EXIT_OK and residency(doc) == []
    assert "me-central-1" in doc["config"] and "the plan's settings" in doc["config"]


# ---------------------------------------------------------------- per-resource region


def test_resource_region_override_is_caught_without_config(prod, check, tmp_path, capsys):
    """pulumi-aws v7: any regional resource may set its own region. Outside allowedRegions it is a
    mandatory violation, found from the plan's settings alone, and reported once."""
    bucket = first(prod, BUCKET)
    bucket["inputs"]["region"] = "eu-west-1"
    code, doc, _ = check(prod)
    assert code == EXIT_NOT_FOUND
    hits = residency(doc)
    assert [(v["resource"], v["level"], v["id"]) for v in hits] == [
        (bucket["name"], "mandatory", "LLMOPS-RES-001")
    ]
    assert hits[0]["message"].count("eu-west-1") == 1
    assert "region input is eu-west-1" in hits[0]["message"]
    # The same through the text report, with no argument but the plan.
    path = tmp_path / "plan.json"
    assert main(["check", str(path)]) == EXIT_NOT_FOUND
    text = capsys.readouterr().out
    assert text.count(f"LLMOPS-RES-001 {RES}") == 1 and bucket["name"] in text


def test_resource_region_inside_the_allowed_regions_overrides_its_provider(prod, check):
    """A resource with its own allowed region is not where its provider is."""
    first(prod, AWS)["inputs"]["region"] = "eu-west-1"
    bucket = first(prod, BUCKET)
    bucket["inputs"]["region"] = "me-central-1"
    _, doc, _ = check(prod)
    flagged = {v["resource"] for v in residency(doc)}
    assert first(prod, AWS)["name"] in flagged
    assert bucket["name"] not in flagged


# ---------------------------------------------------------------- global resources, ARNs


def test_global_resources_are_not_outside_a_region(prod, check):
    """The provider moved out of the allowed regions: the provider and every regional resource are
    reported, once each; IAM, Budgets and Cost Explorer resources, which live in no region, are not."""
    provider = first(prod, AWS)
    provider["inputs"]["region"] = "eu-west-1"
    code, doc, _ = check(prod, "--config", PROD_CONFIG)
    assert code == EXIT_NOT_FOUND
    hits = residency(doc)
    names = [v["resource"] for v in hits]
    assert provider["name"] in names and len(names) == len(set(names))
    is_global = pack()._aws.is_global_type
    global_resources = [r for r in prod["resources"] if is_global(r["type"])]
    assert {r["type"].split("/")[0] for r in global_resources} >= {
        "aws:iam",
        "aws:budgets",
        "aws:costexplorer",
    }
    assert not [v for v in hits if is_global(v["type"])], "global resources reported"
    regional = [r for r in prod["resources"] if r["type"].startswith("aws:") and not is_global(r["type"])]
    assert len(hits) == len(regional) + 1


def test_regional_arn_in_an_iam_policy_is_still_caught(prod, check):
    """An IAM policy is global, but a statement naming a key in another region is a real
    cross-region reference."""
    policy = next(
        r
        for r in prod["resources"]
        if r["type"] == "aws:iam/rolePolicy:RolePolicy"
        and "arn:aws:kms:me-central-1" in r["inputs"]["policy"]
    )
    policy["inputs"]["policy"] = policy["inputs"]["policy"].replace(
        "arn:aws:kms:me-central-1", "arn:aws:kms:eu-west-1"
    )
    code, doc, _ = check(prod, "--config", PROD_CONFIG)
    assert code == EXIT_NOT_FOUND
    hits = residency(doc)
    assert [v["resource"] for v in hits] == [policy["name"]]
    assert "policy.Statement." in hits[0]["message"] and "eu-west-1" in hits[0]["message"]


def test_fake_output_arns_are_not_violations(prod, check):
    """plan.json records the mocks' computed outputs; resource rules read inputs, as under the
    Pulumi engine, so output ARNs (here all moved to another region) decide nothing."""
    for res in prod["resources"]:
        for key, value in (res.get("outputs") or {}).items():
            if isinstance(value, str) and value.startswith("arn:aws:"):
                res["outputs"][key] = value.replace("me-central-1", "eu-west-1")
    code, doc, _ = check(prod, "--config", PROD_CONFIG)
    assert code == EXIT_OK and residency(doc) == []


def test_global_service_arns_have_no_region(prod, check):
    """The mock gives Cost Explorer monitors a regional ARN (arn:aws:costexplorer:<region>:...);
    the subscription referencing it is not thereby outside the allowed regions."""
    sub = first(prod, "aws:costexplorer/anomalySubscription:AnomalySubscription")
    sub["inputs"]["monitorArnLists"] = [
        a.replace("me-central-1", "us-east-1") for a in sub["inputs"]["monitorArnLists"]
    ]
    _, doc, _ = check(prod, "--config", PROD_CONFIG)
    assert residency(doc) == []


@pytest.mark.parametrize(
    "arn, region",
    [
        ("arn:aws:iam::111122223333:role/x", None),
        ("arn:aws:s3:::bucket/key", None),
        ("arn:aws:budgets::111122223333:budget/gpu", None),
        ("arn:aws:budgets:me-central-1:111122223333:budget/gpu", None),  # the mock's fake
        ("arn:aws:ce::111122223333:anomalymonitor/x", None),
        ("arn:aws:costexplorer:eu-west-1:111122223333:anomalymonitor/x", None),  # the mock's fake
        ("arn:aws:wafv2:us-east-1:111122223333:global/webacl/edge/abc", None),  # CloudFront scope
        ("arn:aws:wafv2:eu-west-1:111122223333:regional/webacl/alb/abc", "eu-west-1"),
        ("arn:aws:sqs:eu-west-1:111122223333:queue", "eu-west-1"),
        ("arn:aws:ec2:me-central-1::image/*", "me-central-1"),
        ("arn:aws:s3:us-east-1:111122223333:accesspoint/ap", "us-east-1"),
    ],
)
def test_region_of_arn(arn: str, region: str | None):
    assert pack()._aws.region_of_arn(arn) == region


@pytest.mark.parametrize(
    "rtype, is_global",
    [
        ("aws:iam/role:Role", True),
        ("aws:route53/zone:Zone", True),
        ("aws:route53/record:Record", True),
        ("aws:route53/resolverEndpoint:ResolverEndpoint", False),
        ("aws:cloudfront/distribution:Distribution", True),
        ("aws:budgets/budget:Budget", True),
        ("aws:costexplorer/anomalyMonitor:AnomalyMonitor", True),
        ("aws:organizations/policy:Policy", True),
        ("aws:s3/bucket:Bucket", False),
        ("aws:wafv2/webAcl:WebAcl", False),
        ("kubernetes:core/v1:Namespace", False),
    ],
)
def test_global_types(rtype: str, is_global: bool):
    assert pack()._aws.is_global_type(rtype) is is_global


# ---------------------------------------------------------------- which config, by default


def with_settings(**settings: Any) -> dict[str, Any]:
    plan = compliant_plan()  # stack prod, provider in me-central-1 tagged regulated
    plan["settings"] = {"environment": "prod", "region": "me-central-1", **settings}
    return plan


def regions_of(config: dict[str, Any]) -> set[tuple[str, ...]]:
    return {tuple(v["allowedRegions"]) for v in config.values()}


def test_plan_settings_choose_the_stack_config_file():
    """Settings matching policies/config.prod.json: the file, with its per-environment overrides."""
    config, source = infer_config(
        with_settings(dataClassification="regulated", allowedRegions=["me-central-1"])
    )
    assert config == json.loads(config_path("prod").read_text())
    assert "policies/config.prod.json" in source and "the plan's settings" in source


def test_plan_settings_win_over_a_stale_config_file(check):
    """The stack now allows another region than the file: the plan's allowedRegions are used (the
    provider in me-central-1 is then outside them), the file's other overrides are kept."""
    plan = with_settings(dataClassification="regulated", allowedRegions=["me-south-1"])
    config, source = infer_config(plan)
    assert regions_of(config) == {("me-south-1",)} and "with the plan's allowedRegions" in source
    assert config["gateway-providers-allowlisted"]["allowedProviders"] == ["hosted_vllm", "bedrock"]
    code, doc, _ = check(plan)
    assert code == EXIT_NOT_FOUND and "aws" in {v["resource"] for v in residency(doc)}


def test_a_config_file_for_another_classification_is_not_used():
    config, source = infer_config(
        with_settings(dataClassification="confidential", allowedRegions=["me-central-1"])
    )
    assert {v["dataClassification"] for v in config.values()} == {"confidential"}
    assert "allowedProviders" not in config["gateway-providers-allowlisted"]
    assert "generated" in source and "is not for confidential" in source


def test_empty_allowed_regions_in_the_stack_keep_the_files_restriction():
    """allowedRegions [] is the setting's default (any region): it does not lift the file's."""
    plan = with_settings(dataClassification="internal", allowedRegions=[])
    plan["stack"] = "dev"
    config, source = infer_config(plan)
    assert regions_of(config) == {("eu-west-1",)} and "the stack sets no allowedRegions" in source


def test_settings_without_a_config_file_generate_one():
    plan = with_settings(dataClassification="regulated", allowedRegions=["me-central-1"])
    plan["stack"] = "../../etc/passwd"  # never a path
    config, source = infer_config(plan)
    assert regions_of(config) == {("me-central-1",)} and "generated" in source


def test_plans_without_settings_read_the_provider_tags():
    config, source = infer_config(compliant_plan())
    assert regions_of(config) == {()} and "provider aws default tag data-classification" in source


@pytest.mark.parametrize(
    "settings, expected",
    [
        ("prod", "settings: must be an object"),
        ({"dataClassification": "secret"}, "settings.dataClassification"),
        ({"dataClassification": "regulated", "allowedRegions": "me-central-1"}, "settings.allowedRegions"),
    ],
)
def test_malformed_settings_exit_2(check, settings, expected):
    plan = compliant_plan()
    plan["settings"] = settings
    code, _, err = check(plan)
    assert code == EXIT_USAGE and expected in err


def test_a_config_that_disagrees_with_the_plan_is_used_with_a_warning(prod, check):
    code, doc, err = check(prod, "--config", str(config_path("dev")))
    assert "internal, allowed regions eu-west-1" in doc["config"]
    assert "warning:" in err and "dataClassification internal" in err and "allowedRegions eu-west-1" in err
    code, _, err = check(prod, "--config", PROD_CONFIG)
    assert code == EXIT_OK and err == ""
