"""The bootstrap project (bootstrap/): its offline plan, as `llmops plan bootstrap` records it.

The shipped stack file is the first run (no platform VPC exists yet, so the in-VPC runners are
pending); `runner_plan` is the same account once staging's and prod's VPCs are filled in.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bootstrap import policies
from bootstrap.runners import runs_on_label
from components.prompt_store import GITHUB_OIDC_HOST
from llmops import PROJECT_DIR, fakes, policy
from llmops import plan as plan_cmd
from llmops.settings import SettingsError
from llmops.settings.bootstrap import from_config, reference_table

STACK_FILE = PROJECT_DIR / "bootstrap" / "Pulumi.bootstrap.yaml"
REPO = "acme/llmops-platform"
OIDC_ARN = f"arn:aws:iam::{fakes.ACCOUNT_ID}:oidc-provider/{GITHUB_OIDC_HOST}"
VPCS = {
    "staging": {
        "vpcId": "vpc-0a1b2c3d4e5f60718",
        "subnetIds": ["subnet-0a1b2c3d4e5f60711", "subnet-0a1b2c3d4e5f60712", "subnet-0a1b2c3d4e5f60713"],
        "clusterSecurityGroupId": "sg-0a1b2c3d4e5f60719",
    },
    "prod": {
        "vpcId": "vpc-0f1e2d3c4b5a69788",
        "subnetIds": ["subnet-0f1e2d3c4b5a69781", "subnet-0f1e2d3c4b5a69782", "subnet-0f1e2d3c4b5a69783"],
        "clusterSecurityGroupId": "sg-0f1e2d3c4b5a69789",
    },
}


def shipped_config() -> dict:
    return yaml.safe_load(STACK_FILE.read_text())


def write_stack(tmp: Path, config: dict) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "Pulumi.bootstrap.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def with_vpcs(doc: dict) -> dict:
    doc = copy.deepcopy(doc)
    for env in doc["config"]["llmops-bootstrap:environments"]:
        if env["name"] in VPCS:
            env["vpc"] = VPCS[env["name"]]
    return doc


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    return plan_cmd.run("bootstrap", tmp_path_factory.mktemp("bootstrap-build"))


@pytest.fixture(scope="module")
def runner_plan(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bootstrap-runners")
    return plan_cmd.run(str(write_stack(tmp, with_vpcs(shipped_config()))), tmp / "build")


def named(result, name: str) -> dict:
    return result.plan.named(name)


def of_type(result, type_: str) -> list[dict]:
    return result.plan.of_type(type_)


def document(resource: dict, key: str) -> dict:
    return json.loads(resource["inputs"][key])


def trust_condition(role: dict) -> dict:
    (st,) = document(role, "assumeRolePolicy")["Statement"]
    assert st["Principal"] == {"Federated": OIDC_ARN}
    assert st["Action"] == "sts:AssumeRoleWithWebIdentity"
    return st["Condition"]


def statements(result, policy_name: str) -> dict[str, dict]:
    return {st["Sid"]: st for st in document(named(result, policy_name), "policy")["Statement"]}


# --- llmops plan bootstrap ---------------------------------------------------------------------


def test_plan_bootstrap_resolves_the_bootstrap_project_and_writes_its_plan(shipped):
    name, path = plan_cmd.resolve_stack("bootstrap")
    assert (name, path) == ("bootstrap", STACK_FILE)
    doc = json.loads((shipped.out_dir / "plan.json").read_text())
    assert shipped.out_dir.name == "bootstrap" and doc["stack"] == "bootstrap"
    assert doc["settings"] == {
        "environment": "bootstrap",
        "region": "me-central-1",
        "dataClassification": "regulated",
        "allowedRegions": ["me-central-1", "eu-west-1"],
    }
    # The bootstrap program ran as its own Pulumi project.
    assert all("::llmops-bootstrap::" in r["urn"] for r in doc["resources"])
    assert not any(r["type"].startswith("aws:eks/") for r in doc["resources"])


def test_cli_plans_bootstrap_with_the_output_and_exit_code_of_any_stack(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "llmops", "plan", "bootstrap", "--build-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Stack bootstrap: me-central-1, data classification regulated")
    assert "policy: 0 mandatory" in proc.stdout
    assert "verify: 0 broken contract(s)" in proc.stdout
    assert (tmp_path / "bootstrap" / "plan.json").is_file()


def test_policy_pack_and_verify_pass_on_both_runs(shipped, runner_plan):
    for result in (shipped, runner_plan):
        assert result.mandatory_violations == [], policy.format_violations(result.violations, "regulated")
        assert result.violations == []
        assert result.findings == []


def test_policy_pack_reads_the_bootstrap_roles(runner_plan):
    """The clean verdict is not vacuous: the same plan with an administrator deploy role or a
    whole-service grant is refused."""
    doc = copy.deepcopy(runner_plan.plan.to_dict())
    by_name = {r["name"]: r for r in doc["resources"]}
    attachment = by_name["llmops-bootstrap-ci-preview-read-only"]["inputs"]
    attachment["policyArn"] = "arn:aws:iam::aws:policy/AdministratorAccess"
    deploy = by_name["llmops-bootstrap-ci-deploy-prod-platform"]["inputs"]
    grant = json.loads(deploy["policy"])
    grant["Statement"][0]["Action"] = ["ec2:*"]
    deploy["policy"] = json.dumps(grant)
    config = policy.stack_config("bootstrap", "regulated", ["me-central-1", "eu-west-1"])
    found = {v.policy for v in policy.evaluate_plan(doc, config) if v.level == "mandatory"}
    assert {"iam-no-admin-attachments", "iam-no-wildcard-actions"} <= found


# --- the GitHub OIDC provider and the platform's trust in it ------------------------------------


def test_oidc_provider_is_githubs_with_the_sts_audience(shipped):
    (provider,) = of_type(shipped, "aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert provider["inputs"]["url"] == "https://token.actions.githubusercontent.com"
    assert provider["inputs"]["clientIdLists"] == ["sts.amazonaws.com"]
    assert "thumbprintLists" not in provider["inputs"]  # IAM trusts GitHub's CA itself
    assert provider["outputs"]["arn"] == OIDC_ARN == shipped.plan.outputs["githubOidcProviderArn"]


def test_platform_prompt_writer_trusts_the_provider_bootstrap_creates(shipped, plans):
    writer = plans["prod"].plan.named("llmops-prod-prompts-writer")
    (st,) = document(writer, "assumeRolePolicy")["Statement"]
    assert st["Principal"]["Federated"] == shipped.plan.outputs["githubOidcProviderArn"]


# --- the preview role -----------------------------------------------------------------------------


def test_preview_role_trusts_pull_requests_of_one_repository_only(shipped):
    role = named(shipped, "llmops-bootstrap-ci-preview")
    assert trust_condition(role) == {
        "StringEquals": {
            f"{GITHUB_OIDC_HOST}:aud": "sts.amazonaws.com",
            f"{GITHUB_OIDC_HOST}:sub": f"repo:{REPO}:pull_request",
        }
    }
    assert "*" not in role["inputs"]["assumeRolePolicy"]
    assert role["inputs"]["maxSessionDuration"] == 3600
    assert shipped.plan.outputs["previewRoleArn"].endswith(":role/llmops-bootstrap-preview")


def test_preview_role_reads_state_but_no_secret_values_or_data(shipped):
    attachment = named(shipped, "llmops-bootstrap-ci-preview-read-only")["inputs"]
    assert attachment["policyArn"] == "arn:aws:iam::aws:policy/ReadOnlyAccess"
    sts = statements(shipped, "llmops-bootstrap-ci-preview-state")
    bucket = named(shipped, "llmops-bootstrap-state-bucket")["outputs"]["arn"]
    key = named(shipped, "llmops-bootstrap-state-key")["outputs"]["arn"]
    assert sts["ReadPlatformState"]["Resource"] == [
        f"{bucket}/.pulumi/meta.yaml",
        f"{bucket}/.pulumi/stacks/llmops/*",
    ]
    assert sts["DecryptState"]["Resource"] == key
    assert {"secretsmanager:GetSecretValue", "ssm:GetParameter"} <= set(sts["NoSecretValues"]["Action"])
    assert sts["NoDataKeysButState"]["NotResource"] == [key]
    assert sts["NoObjectsButState"]["NotResource"] == sts["ReadPlatformState"]["Resource"]
    assert "dynamodb:Scan" in sts["NoData"]["Action"]
    allowed = [a for st in sts.values() if st["Effect"] == "Allow" for a in st["Action"]]
    assert not [a for a in allowed if a.split(":")[1].startswith(("Put", "Delete", "Create", "Update"))]


# --- the deploy roles ---------------------------------------------------------------------------


def test_prod_deploy_role_is_bound_to_the_prod_environment_only(shipped):
    role = named(shipped, "llmops-bootstrap-ci-deploy-prod")
    assert trust_condition(role) == {
        "StringEquals": {
            f"{GITHUB_OIDC_HOST}:aud": "sts.amazonaws.com",
            f"{GITHUB_OIDC_HOST}:sub": f"repo:{REPO}:environment:prod",
        }
    }
    assert "*" not in role["inputs"]["assumeRolePolicy"]
    assert role["inputs"]["maxSessionDuration"] == 3600


def test_each_environment_has_its_own_deploy_role(shipped):
    subjects = {}
    for env in ("dev", "staging", "prod"):
        condition = trust_condition(named(shipped, f"llmops-bootstrap-ci-deploy-{env}"))
        subjects[env] = condition["StringEquals"][f"{GITHUB_OIDC_HOST}:sub"]
    assert subjects == {env: f"repo:{REPO}:environment:{env}" for env in subjects}
    assert set(shipped.plan.outputs["deployRoleArns"]) == {"dev", "staging", "prod"}


def test_prod_deploy_policy_is_limited_to_prods_region_names_and_state(shipped):
    sts = statements(shipped, "llmops-bootstrap-ci-deploy-prod-platform")
    assert sts["PlatformServicesInRegion"]["Condition"] == {
        "StringEquals": {"aws:RequestedRegion": ["me-central-1"]}
    }
    assert all(r.endswith(("role/llmops-prod-*", "policy/llmops-prod-*", "instance-profile/llmops-prod-*"))
               for r in sts["PlatformRoles"]["Resource"])  # fmt: skip
    assert sts["PlatformBuckets"]["Resource"] == [
        "arn:aws:s3:::llmops-prod-*",
        "arn:aws:s3:::llmops-prod-*/*",
    ]
    bucket = named(shipped, "llmops-bootstrap-state-bucket")["outputs"]["arn"]
    assert all("/llmops/prod" in p for p in sts["OwnState"]["Resource"])
    assert sts["OwnState"]["Resource"][0] == f"{bucket}/.pulumi/stacks/llmops/prod.json*"
    managed = sts["PlatformManagedPolicies"]["Condition"]["ArnEquals"]["iam:PolicyARN"]
    assert not any(p.endswith(("AdministratorAccess", "PowerUserAccess", "IAMFullAccess")) for p in managed)
    for sid in ("KeepBootstrapKeys", "KeepBootstrapNetwork", "KeepBootstrapLogs", "NoAdministrators"):
        assert sts[sid]["Effect"] == "Deny"
    # No managed policy at all on the deploy roles.
    attached = {
        r["inputs"]["role"] for r in of_type(shipped, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    }
    assert not any("deploy" in str(role) for role in attached)


def test_deploy_policy_grants_every_service_the_platform_declares(plans):
    """A new resource type in the platform fails here before it fails a real deploy."""
    doc = policies.deploy_policy(environment="prod", region="me-central-1", account_id="111122223333",
                                 partition="aws", state_bucket_arn="arn:aws:s3:::b",
                                 state_key_arn="arn:aws:kms:me-central-1:111122223333:key/k")  # fmt: skip
    granted = {a.split(":")[0] for st in doc["Statement"] if st["Effect"] == "Allow" for a in st["Action"]}
    attached = set()
    for result in plans.values():
        for resource in result.plan.resources:
            if not resource["type"].startswith("aws:"):
                continue
            module = resource["type"].split(":")[1].split("/")[0]
            assert module in policies.MODULE_SERVICES, f"{resource['type']}: add its IAM services"
            assert set(policies.MODULE_SERVICES[module]) <= granted, module
            if resource["type"] == "aws:iam/rolePolicyAttachment:RolePolicyAttachment":
                attached.add(resource["inputs"]["policyArn"].split(":policy/", 1)[1])
    assert attached <= set(policies.PLATFORM_MANAGED_POLICIES)


def test_role_policies_fit_iams_inline_size_limit(runner_plan):
    for policy_resource in of_type(runner_plan, "aws:iam/rolePolicy:RolePolicy"):
        compact = json.dumps(json.loads(policy_resource["inputs"]["policy"]), separators=(",", ":"))
        assert len(compact) < 10_240, policy_resource["name"]  # IAM: inline policies of a role


# --- the state backend --------------------------------------------------------------------------


def bucket_settings(result, bucket: str) -> dict[str, dict]:
    return {
        r["type"].split(":")[-1]: r["inputs"]
        for r in result.plan.resources
        if r["parent"] == "llmops-bootstrap-state" and r["name"].startswith(f"{bucket}-")
    }


def test_state_bucket_is_versioned_kms_encrypted_tls_only_private_logged_and_protected(shipped):
    bucket = named(shipped, "llmops-bootstrap-state-bucket")
    key = named(shipped, "llmops-bootstrap-state-key")
    parts = bucket_settings(shipped, "llmops-bootstrap-state-bucket")
    assert parts["BucketVersioning"]["versioningConfiguration"] == {"status": "Enabled"}
    (rule,) = parts["BucketServerSideEncryptionConfiguration"]["rules"]
    assert rule["applyServerSideEncryptionByDefault"] == {
        "sseAlgorithm": "aws:kms",
        "kmsMasterKeyId": key["outputs"]["arn"],
    }
    assert rule["bucketKeyEnabled"] is True
    (tls,) = json.loads(parts["BucketPolicy"]["policy"])["Statement"]
    assert tls["Effect"] == "Deny" and tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    block = parts["BucketPublicAccessBlock"]
    assert all(
        block[k]
        for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    logs = named(shipped, "llmops-bootstrap-access-logs-bucket")
    assert parts["BucketLogging"]["targetBucket"] == logs["id"]
    assert bucket["protect"] and key["protect"] and logs["protect"]
    assert bucket["inputs"]["forceDestroy"] is False
    assert key["inputs"]["enableKeyRotation"] is True
    assert (
        named(shipped, "llmops-bootstrap-state-key-alias")["inputs"]["name"] == "alias/llmops-bootstrap-state"
    )


def test_state_outputs_are_the_login_url_and_secrets_provider(shipped):
    bucket = named(shipped, "llmops-bootstrap-state-bucket")["id"]
    assert shipped.plan.outputs["backendUrl"] == f"s3://{bucket}?region=me-central-1"
    assert (
        shipped.plan.outputs["secretsProvider"] == "awskms://alias/llmops-bootstrap-state?region=me-central-1"
    )


# --- the in-VPC runners -------------------------------------------------------------------------


def test_first_run_declares_no_runner_until_the_vpcs_exist(shipped):
    assert of_type(shipped, "aws:codebuild/project:Project") == []
    assert shipped.plan.outputs["pendingRunners"] == ["staging", "prod"]
    assert shipped.plan.outputs["runnerLabels"] == {}
    # The connections exist from the first run: their handshake must be done before a webhook.
    assert set(shipped.plan.outputs["githubConnections"]) == {"eu-west-1", "me-central-1"}


def test_runners_live_in_their_environments_vpc_and_region(runner_plan):
    for env, region in (("staging", "eu-west-1"), ("prod", "me-central-1")):
        project = named(runner_plan, f"llmops-bootstrap-runner-{env}-project")
        inputs, vpc = project["inputs"], VPCS[env]
        assert inputs["name"] == f"llmops-bootstrap-runner-{env}"
        assert project["outputs"]["arn"].startswith(f"arn:aws:codebuild:{region}:")
        sg = named(runner_plan, f"llmops-bootstrap-runner-{env}-sg")
        assert inputs["vpcConfig"] == {
            "vpcId": vpc["vpcId"],
            "subnets": vpc["subnetIds"],
            "securityGroupIds": [sg["id"]],
        }
        assert inputs["source"] == {
            "type": "GITHUB",
            "location": f"https://github.com/{REPO}.git",
            "auth": {
                "type": "CODECONNECTIONS",
                "resource": named(runner_plan, f"llmops-bootstrap-github-{region}")["id"],
            },
        }
        assert inputs["environment"]["privilegedMode"] is False
        assert inputs["buildTimeout"] > 90  # the deploy job's own timeout-minutes
        assert f"llmops-bootstrap-runner-{env}-role-policy" in project["dependsOn"]
        assert sg["inputs"]["ingress"] == []
        assert [r["fromPort"] for r in sg["inputs"]["egress"]] == [443]
        rule = named(runner_plan, f"llmops-bootstrap-runner-{env}-to-cluster")["inputs"]
        expected = {"securityGroupId": vpc["clusterSecurityGroupId"], "referencedSecurityGroupId": sg["id"],
                    "fromPort": 443, "toPort": 443, "ipProtocol": "tcp"}  # fmt: skip
        assert {k: rule.get(k) for k in expected} == expected
        provider = named(runner_plan, project["provider"])
        assert provider["inputs"]["region"] == region


def test_runner_webhooks_start_runners_for_the_deploy_workflows_jobs_only(runner_plan):
    for env in ("staging", "prod"):
        webhook = named(runner_plan, f"llmops-bootstrap-runner-{env}-webhook")["inputs"]
        assert webhook["projectName"] == f"llmops-bootstrap-runner-{env}"
        assert webhook["filterGroups"] == [
            {"filters": [{"type": "EVENT", "pattern": "WORKFLOW_JOB_QUEUED"},
                         {"type": "WORKFLOW_NAME", "pattern": "^deploy$"}]}
        ]  # fmt: skip


def test_runner_role_gets_no_deploy_permissions(runner_plan):
    for env in ("staging", "prod"):
        role = named(runner_plan, f"llmops-bootstrap-runner-{env}-role")
        (st,) = document(role, "assumeRolePolicy")["Statement"]
        assert st["Principal"] == {"Service": "codebuild.amazonaws.com"}
        actions = {a for s in statements(runner_plan, f"llmops-bootstrap-runner-{env}-role-policy").values()
                   for a in s["Action"]}  # fmt: skip
        assert {a.split(":")[0] for a in actions} == {"logs", "ec2", "codeconnections"}
        assert not [a for a in actions if a.startswith("ec2:") and "NetworkInterface" not in a
                    and not a.startswith("ec2:Describe")]  # fmt: skip


def test_deploy_workflow_runs_staging_and_prod_on_their_runners(runner_plan):
    workflow = yaml.safe_load((PROJECT_DIR / ".github" / "workflows" / "deploy.yml").read_text())
    job = workflow["jobs"]["deploy"]
    assert job["runs-on"] == "${{ matrix.runner }}"
    runner = {entry["stack"]: entry["runner"] for entry in job["strategy"]["matrix"]["include"]}
    labels = runner_plan.plan.outputs["runnerLabels"]
    assert labels == {env: runs_on_label(env) for env in ("staging", "prod")}
    assert runner == {"dev": "ubuntu-24.04", **labels}
    assert workflow["name"] == "deploy"  # the runners' webhook filters on this name


# --- settings -----------------------------------------------------------------------------------


def problems_of(config: dict) -> list[str]:
    with pytest.raises(SettingsError) as err:
        from_config(config, source="test")
    return err.value.problems


def test_bad_bootstrap_config_exits_2_naming_each_key(tmp_path):
    doc = shipped_config()
    cfg = doc["config"]
    cfg["llmops-bootstrap:github"] = {"repository": "not a repository"}
    cfg["llmops-bootstrap:environments"][1]["inVpcRuner"] = True
    cfg["llmops:environment"] = "staging"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmops",
            "plan",
            str(write_stack(tmp_path, doc)),
            "--build-dir",
            str(tmp_path / "b"),
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "3 problem(s) in the bootstrap settings" in proc.stderr
    assert "llmops-bootstrap:github.repository: 'not a repository' must be OWNER/NAME" in proc.stderr
    assert "llmops-bootstrap:environments[1].inVpcRuner: unknown setting" in proc.stderr
    assert "llmops:environment: a platform setting" in proc.stderr
    assert not (tmp_path / "b").exists()


def test_environment_names_cannot_reach_each_others_or_bootstraps_resources():
    cfg = shipped_config()["config"]
    cfg["llmops-bootstrap:environments"] += [
        {"name": "prod-eu", "region": "eu-west-1"},
        {"name": "bootstrap", "region": "eu-west-1"},
        {"name": "dev", "region": "us-east-1"},
    ]
    (problem,) = problems_of(cfg)
    assert problem.startswith("llmops-bootstrap:environments: names must be unique; repeated: dev")
    assert "'bootstrap' is reserved" in problem
    assert "'prod' would let its deploy role manage prod-eu's resources" in problem
    assert "regions us-east-1 are outside allowedRegions" in problem


def test_a_vpc_needs_an_in_vpc_runner_and_real_ids():
    cfg = with_vpcs(shipped_config())["config"]
    cfg["llmops-bootstrap:environments"][1]["inVpcRunner"] = False
    cfg["llmops-bootstrap:environments"][2]["vpc"]["subnetIds"] = ["subnet-nope"]
    problems = problems_of(cfg)
    assert any(
        p.startswith("llmops-bootstrap:environments[1]: vpc is set but inVpcRunner is false")
        for p in problems
    )
    subnet = "llmops-bootstrap:environments[2].vpc.subnetIds[0]: 'subnet-nope' is not a subnet id"
    assert any(p.startswith(subnet) for p in problems)


def test_docs_ci_settings_table_matches_the_model():
    text = (PROJECT_DIR / "docs" / "ci.md").read_text()
    begin, end = (
        text.index("<!-- bootstrap-reference:begin -->"),
        text.index("<!-- bootstrap-reference:end -->"),
    )
    assert text[begin : end + len("<!-- bootstrap-reference:end -->")] == reference_table(), (
        "run: python -c 'from llmops.settings.bootstrap import reference_table; print(reference_table())'"
    )
