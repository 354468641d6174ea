"""What a team file gives its team, on the recorded plans of the shipped stacks (the example
stacks/teams/fraud-analytics.yaml is in all three), compared with the file itself and with the
documented shapes of the services that consume it (LiteLLM's NewTeamRequest, EKS access
policies, Pod Identity and GitHub OIDC trust, Qdrant's JWT claims)."""

from __future__ import annotations

import json

import jwt
import pytest
import yaml
from conftest import inputs_of
from litellm.proxy._types import NewTeamRequest
from stack_plans import k8s_objects

import llmops.cli
from components.vector_db import hs256_token
from llmops import PROJECT_DIR
from llmops.errors import EXIT_USAGE

TEAM = "fraud-analytics"
NS = f"team-{TEAM}"
FILE = yaml.safe_load((PROJECT_DIR / "stacks" / "teams" / f"{TEAM}.yaml").read_text())


def in_env(env: str) -> dict:
    """The team file as the environment sees it (its override merged, by hand: an independent
    reading of the example)."""
    doc = json.loads(json.dumps(FILE))
    for key, value in (doc.pop("overrides", {}) or {}).get(env, {}).items():
        doc[key] = {**doc[key], **value} if isinstance(value, dict) else value
    return doc


def resource(plan, name: str) -> dict:
    [found] = [r for r in plan.plan.resources if r["name"] == name]
    return found


def resources_of(statement: dict) -> list[str]:
    found = statement["Resource"]
    return [found] if isinstance(found, str) else found


def statements(plan, role_resource: str) -> list[dict]:
    """Statements of every inline policy of a role (RolePolicy resources naming it)."""
    role_id = resource(plan, role_resource)["outputs"]["id"]
    out = []
    for policy in inputs_of(plan, "aws:iam/rolePolicy:RolePolicy"):
        if policy["role"] == role_id:
            out += json.loads(policy["policy"])["Statement"]
    return out


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_namespace_is_labelled_and_restricted(plans, env):
    ns = k8s_objects(env, "Namespace")[NS]
    labels = ns["metadata"]["labels"]
    assert labels["llmops.io/team"] == TEAM
    assert labels["data-classification"] == in_env(env)["classification"]
    # Pod Security Admission (kubernetes.io/docs/concepts/security/pod-security-admission).
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_quota_and_limits_come_from_the_file(plans, env):
    quota = in_env(env)["quota"]
    hard = k8s_objects(env, "ResourceQuota", NS)["team"]["spec"]["hard"]
    assert hard["requests.cpu"] == quota["cpu"]
    assert hard["requests.memory"] == quota["memory"]
    # GPUs are an extended resource: quota them with the requests. prefix (k8s resource quotas).
    assert hard["requests.nvidia.com/gpu"] == str(quota["gpus"])
    [limits] = k8s_objects(env, "LimitRange", NS)["team"]["spec"]["limits"]
    assert limits["type"] == "Container" and limits["max"]["memory"] == quota["memory"]
    assert set(limits["defaultRequest"]) == {"cpu", "memory"}  # a pod without requests still counts


def test_dev_has_no_team_gpus_and_prod_has_the_files(plans):
    assert k8s_objects("dev", "ResourceQuota", NS)["team"]["spec"]["hard"]["requests.nvidia.com/gpu"] == "0"
    assert k8s_objects("prod", "ResourceQuota", NS)["team"]["spec"]["hard"]["requests.nvidia.com/gpu"] == "2"


def egress_peers(policies: dict) -> list[dict]:
    return [peer for p in policies.values() for rule in p["spec"].get("egress", []) for peer in rule["to"]]


def test_network_policies_deny_by_default_and_admit_only_named_peers(plans):
    policies = k8s_objects("prod", "NetworkPolicy", NS)
    deny = policies["default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    for name, policy in policies.items():
        for rule in policy["spec"].get("egress", []) + policy["spec"].get("ingress", []):
            # A rule without peers admits everything (NetworkPolicy API: empty `to`/`from`).
            assert rule.get("to") or rule.get("from"), f"{name} admits every address"
    blocks = {p["ipBlock"]["cidr"] for p in egress_peers(policies) if "ipBlock" in p}
    vpc = inputs_of(plans["prod"], "aws:ec2/vpc:Vpc")[0]["cidrBlock"]
    [s3] = [r for r in plans["prod"].plan.resources if r["name"].endswith("-network-s3")]
    # The VPC (gateway NLB, endpoints), S3's own ranges and the Pod Identity agent: no internet.
    assert blocks == {vpc, *s3["outputs"]["cidrBlocks"], "169.254.170.23/32"}
    assert "0.0.0.0/0" not in blocks
    namespaces = {
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for p in egress_peers(policies)
        if "namespaceSelector" in p
    }
    assert namespaces == {"kube-system", "llmops-gateway", "vector-db"}
    ingress = [rule for p in policies.values() for rule in p["spec"].get("ingress", [])]
    assert ingress == [{"from": [{"podSelector": {}}]}]  # only the team's own pods


def test_owners_edit_their_namespace_only(plans):
    plan = plans["prod"]
    entries = inputs_of(plan, "aws:eks/accessEntry:AccessEntry")
    assert FILE["owners"][0] in [e["principalArn"] for e in entries]
    [assoc] = [
        a
        for a in inputs_of(plan, "aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
        if a["principalArn"] == FILE["owners"][0]
    ]
    # EKS access policies (docs.aws.amazon.com/eks/latest/userguide/access-policy-permissions.html).
    assert assoc["policyArn"] == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy"
    assert assoc["accessScope"] == {"type": "namespace", "namespaces": [NS]}


def test_workload_role_reads_only_the_teams_prompts_and_secrets(plans):
    plan = plans["prod"]
    role = resource(plan, f"llmops-prod-teams-{TEAM}-workload-role")
    trust = json.loads(role["inputs"]["assumeRolePolicy"])["Statement"]
    # EKS Pod Identity trust (docs.aws.amazon.com/eks/latest/userguide/pod-id-role.html).
    assert trust[0]["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert set(trust[0]["Action"]) == {"sts:AssumeRole", "sts:TagSession"}
    [assoc] = [
        a
        for a in inputs_of(plan, "aws:eks/podIdentityAssociation:PodIdentityAssociation")
        if a["namespace"] == NS
    ]
    assert assoc["serviceAccount"] == "workload" and assoc["roleArn"] == role["outputs"]["arn"]
    granted = statements(plan, f"llmops-prod-teams-{TEAM}-workload-role")
    objects = [r for s in granted if "s3:GetObject" in s["Action"] for r in resources_of(s)]
    assert [r for r in objects if "/prompts/" in r] == [
        r for r in objects if r.endswith(f"/prompts/{TEAM}--*")
    ], "only the team's prompts"
    assert not any("s3:PutObject" in s["Action"] for s in granted)
    secrets = {
        r["name"]: r["outputs"]["arn"]
        for r in plan.plan.resources
        if r["type"] == "aws:secretsmanager/secret:Secret"
    }
    readable = {
        res for s in granted if "secretsmanager:GetSecretValue" in s["Action"] for res in resources_of(s)
    }
    assert readable == {
        secrets[f"llmops-prod-teams-{TEAM}-gateway-key"],
        secrets[f"llmops-prod-teams-{TEAM}-qdrant-token"],
    }
    for s in granted:
        if "kms:Decrypt" in s["Action"] and "SecretARN" in json.dumps(s.get("Condition", {})):
            assert s["Condition"]["StringEquals"]["kms:EncryptionContext:SecretARN"] in readable


def test_prompt_writer_trusts_the_teams_ci_and_writes_its_prompts_only(plans):
    plan = plans["prod"]
    writer = resource(plan, f"llmops-prod-teams-{TEAM}-prompt-writer")
    [trust] = json.loads(writer["inputs"]["assumeRolePolicy"])["Statement"]
    # GitHub OIDC (docs.github.com/actions/.../configuring-openid-connect-in-amazon-web-services).
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert (
        trust["Condition"]["StringEquals"]["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    )
    assert (
        trust["Condition"]["StringLike"]["token.actions.githubusercontent.com:sub"]
        == FILE["prompts"]["githubSubjects"]
    )
    granted = statements(plan, f"llmops-prod-teams-{TEAM}-prompt-writer")
    puts = [r for s in granted if "s3:PutObject" in s["Action"] for r in resources_of(s)]
    assert puts and all(r.endswith(f"/prompts/{TEAM}--*") for r in puts)
    listing = [s for s in granted if "s3:ListBucket" in s["Action"]]
    assert listing[0]["Condition"]["StringLike"]["s3:prefix"] == [f"prompts/{TEAM}--*"]
    assert not any("s3:DeleteObject" in a for s in granted for a in s["Action"])


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_alarms_at_80_and_100_percent_of_the_daily_share(plans, env):
    plan = plans[env]
    monthly = in_env(env)["gateway"]["monthlyBudgetUsd"]
    alarms = {a["name"]: a for a in inputs_of(plan, "aws:cloudwatch/metricAlarm:MetricAlarm")}
    warn, block = (
        alarms[f"llmops-{env}-team-{TEAM}-budget-80"],
        alarms[f"llmops-{env}-team-{TEAM}-budget-100"],
    )
    for alarm in (warn, block):
        # The aggregator's dimension set [Environment, Team] (lambdas/spend_aggregator/aggregate.py).
        assert alarm["dimensions"] == {"Environment": env, "Team": TEAM}
        assert alarm["namespace"] == "LLMOps" and alarm["metricName"] == "CostUSD"
        assert alarm["period"] == 86400 and alarm["statistic"] == "Sum"
    assert warn["threshold"] == pytest.approx(0.8 * monthly / 30, abs=0.01)
    assert block["threshold"] == pytest.approx(monthly / 30, abs=0.01)
    topics = {
        r["name"]: r["outputs"]["arn"] for r in plan.plan.resources if r["type"] == "aws:sns/topic:Topic"
    }
    guard = topics[f"llmops-{env}-cost-guard"]
    assert guard in block["alarmActions"] and guard in block["okActions"]  # OK lifts the block
    assert guard not in warn["alarmActions"]


@pytest.fixture(scope="module")
def dev_with_an_email_team(tmp_path_factory, plan_stack_file):
    root = tmp_path_factory.mktemp("email-team")
    (root / "teams").mkdir()
    doc = {**in_env("dev"), "name": "risk-scoring", "contact": "risk-oncall@example.com"}
    doc.pop("vectorCollections")
    (root / "teams" / "risk-scoring.yaml").write_text(yaml.safe_dump({**doc, "environments": ["dev"]}))
    return plan_stack_file(root, "dev", (PROJECT_DIR / "stacks" / "Pulumi.dev.yaml").read_text())


def test_an_email_contact_gets_a_topic_of_its_own_that_its_alarms_publish_to(dev_with_an_email_team):
    plan = dev_with_an_email_team
    [subscription] = [
        s for s in inputs_of(plan, "aws:sns/topicSubscription:TopicSubscription") if s["protocol"] == "email"
    ]
    assert subscription["endpoint"] == "risk-oncall@example.com"
    alarms = {a["name"]: a for a in inputs_of(plan, "aws:cloudwatch/metricAlarm:MetricAlarm")}
    for suffix in ("budget-80", "budget-100", "cost-anomaly"):
        assert subscription["topic"] in alarms[f"llmops-dev-team-risk-scoring-{suffix}"]["alarmActions"], (
            suffix
        )
    [policy] = [
        json.loads(p["policy"])
        for p in inputs_of(plan, "aws:sns/topicPolicy:TopicPolicy")
        if p["arn"] == subscription["topic"]
    ]
    assert policy["Statement"][0]["Principal"] == {"Service": "cloudwatch.amazonaws.com"}


def test_the_notifier_knows_each_teams_contact(plans):
    [notifier] = [
        f
        for f in inputs_of(plans["prod"], "aws:lambda/function:Function")
        if f["name"] == "llmops-prod-cost-notifier"
    ]
    contacts = json.loads(notifier["environment"]["variables"]["TEAM_CONTACTS"])
    assert contacts[TEAM] == FILE["contact"]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_desired_gateway_state_is_what_litellm_team_new_takes(plans, env):
    doc = json.loads((plans[env].out_dir / "teams" / f"{TEAM}.json").read_text())
    gateway = in_env(env)["gateway"]
    # Every field is one of LiteLLM 1.100.5's NewTeamRequest fields, and it validates there.
    assert set(doc) <= set(NewTeamRequest.model_fields)
    request = NewTeamRequest(**doc)
    assert request.team_alias == TEAM and request.models == gateway["models"]
    assert request.max_budget == gateway["monthlyBudgetUsd"] and request.budget_duration == "30d"
    assert (request.tpm_limit, request.rpm_limit) == (gateway["tpmLimit"], gateway["rpmLimit"])
    assert request.metadata == {
        "cost_center": FILE["costCenter"],
        "classification": in_env(env)["classification"],
        "contact": FILE["contact"],
        "managed_by": f"llmops-{env}",
        # The team's prompt-size budget for the gateway's guardrail; null: the file sets none.
        "llmops_max_input_tokens": gateway.get("maxInputTokens"),
    }


def test_the_reconciler_ships_the_same_desired_state_with_each_teams_key_secret(plans):
    plan = plans["prod"]
    [function] = [r for r in plan.plan.resources if r["name"] == "llmops-prod-teams-reconciler"]
    shipped = json.loads(
        function["inputs"]["code"]["archive"]["team_reconciler/desired.json"]["StringAsset"]["text"]
    )
    assert shipped["environment"] == "prod" and shipped["managed_by"] == "llmops-prod"
    [entry] = shipped["teams"]
    assert entry["team"] == json.loads((plan.out_dir / "teams" / f"{TEAM}.json").read_text())
    secret = resource(plan, f"llmops-prod-teams-{TEAM}-gateway-key")["outputs"]["arn"]
    assert entry["key"] == {"key_alias": f"{TEAM}-prod", "secret_id": secret}
    variables = function["inputs"]["environment"]["variables"]
    assert (
        variables["GATEWAY_URL"].startswith("https://")
        and "BEGIN CERTIFICATE" in variables["GATEWAY_CA_CERT"]
    )
    # It runs on every change of the desired state and after the gateway is up.
    [invocation] = inputs_of(plan, "aws:lambda/invocation:Invocation")
    assert invocation["functionName"] == "llmops-prod-team-reconciler"
    [run] = [r for r in plan.plan.resources if r["type"] == "aws:lambda/invocation:Invocation"]
    assert "llmops-prod-gateway-deployment" in run["dependsOn"]


def test_team_token_is_a_qdrant_jwt_for_its_collections_only():
    claims = {"access": [{"collection": "fraud-cases", "access": "rw"}]}
    token = hs256_token(claims, "a-qdrant-api-key-of-32-bytes-or-more")
    # PyJWT checks the signature and structure independently of our encoder.
    assert jwt.decode(token, "a-qdrant-api-key-of-32-bytes-or-more", algorithms=["HS256"]) == claims
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "another-qdrant-api-key-of-32-bytes-or-more", algorithms=["HS256"])


@pytest.fixture(scope="module")
def dev_without_teams(tmp_path_factory, plan_stack_file):
    text = (PROJECT_DIR / "stacks" / "Pulumi.dev.yaml").read_text()
    return plan_stack_file(tmp_path_factory.mktemp("no-teams"), "dev", text)  # no teams/ beside it


def test_a_stack_without_teams_declares_no_team_resources(dev_without_teams):
    assert not [r for r in dev_without_teams.plan.resources if r["type"].startswith("llmops:tenancy")]
    assert not list((dev_without_teams.out_dir / "teams").iterdir())


def test_a_team_costs_its_key_secrets_and_alarms(plans, dev_without_teams):
    added = plans["dev"].estimate.fixed - dev_without_teams.estimate.fixed
    # AWS list prices: a secret $0.40/month, an alarm $0.10 per metric it reads (an anomaly-
    # detection alarm reads three): the team's gateway key and Qdrant token, its 80% and 100%
    # alarms, its anomaly-band alarm and its collection's index-age alarm. No key of its own: dev
    # (internal) uses the stack's one key. Teams also bring the reconciler Lambda, whose logs are
    # priced at costAssumptions.lambdaLogGbPerMonth (0.05 GB) x eu-west-1's 0.57 USD per GB.
    assert added == pytest.approx(2 * 0.40 + (1 + 1 + 3 + 1) * 0.10 + 0.05 * 0.57, abs=0.01)  # cents


def test_the_pull_request_comment_names_the_namespace_and_the_cost_delta(plans, dev_without_teams, capsys):
    base = dev_without_teams.out_dir / "plan.json"
    head = plans["dev"].out_dir / "plan.json"
    assert llmops.cli.main(["diff", str(base), str(head), "--markdown"]) == 0
    comment = capsys.readouterr().out
    assert f"`llmops-dev-teams-{TEAM}-namespace` (`Namespace {NS}`)" in comment
    assert "+1" in comment.split("monthly cost at minimum scale")[1].splitlines()[0]


def test_llmops_plan_exits_2_naming_each_bad_key_of_a_team_file(tmp_path, capsys):
    (tmp_path / "teams").mkdir()
    bad = {
        **{k: v for k, v in FILE.items() if k != "overrides"},
        "classification": "regulated",  # above dev's internal
        "quota": {"cpu": "4", "memory": "16Gi", "gpus": 64},  # more than dev's pools hold
        "gateway": {"models": ["gpt-9"], "monthlyBudgetUsd": 0},
        "colour": "blue",
    }
    (tmp_path / "teams" / f"{TEAM}.yaml").write_text(yaml.safe_dump(bad))
    for env in ("dev", "staging", "prod"):  # the stacks the file names
        (tmp_path / f"Pulumi.{env}.yaml").write_text(
            (PROJECT_DIR / "stacks" / f"Pulumi.{env}.yaml").read_text()
        )
    stack = tmp_path / "Pulumi.dev.yaml"
    code = llmops.cli.main(["plan", str(stack), "--build-dir", str(tmp_path / "build")])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    where = f"{tmp_path / 'teams' / TEAM}.yaml"
    for key in ("classification", "quota.gpus", "gateway.models[0]", "gateway.monthlyBudgetUsd", "colour"):
        assert f"{where}: {key}: " in err, key
    assert not (tmp_path / "build" / "dev" / "plan.json").exists()  # nothing planned
