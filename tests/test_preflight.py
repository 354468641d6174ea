"""`llmops preflight`: every check against an account that passes and one that fails, and the
command end to end. moto answers the calls it implements (IAM roles and OIDC providers, EC2
zones and offerings, STS); botocore's Stubber answers the rest (Lambda account settings, Service
Quotas for EC2, EKS add-ons, Cost Explorer, the IAM policy simulator). Nothing leaves the process.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from stack_plans import stack_plan

from llmops import PROJECT_DIR, cli, preflight
from llmops.errors import LlmopsError
from llmops.settings import from_config, read_stack_file

ACCOUNT = "123456789012"  # moto's account
GITHUB = "token.actions.githubusercontent.com"
ALL_ROLES = (preflight.EKS_ROLE, preflight.NODEGROUP_ROLE, preflight.AUTOSCALING_ROLE, preflight.SPOT_ROLE)


@pytest.fixture(autouse=True)
def fake_credentials(monkeypatch, tmp_path):
    """Fake keys and empty AWS config files: no test can reach a real account."""
    for var in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def aws():
    with mock_aws():
        yield


class StubbedSession(boto3.Session):
    """moto behind every client, except the services given a Stubber-backed client."""

    def __init__(self, stubbed: dict | None = None):
        super().__init__(region_name="eu-west-1")
        self.stubbed = stubbed or {}
        self.regions: dict[str, str | None] = {}

    def client(self, service_name, *args, **kwargs):
        self.regions[service_name] = kwargs.get("region_name")
        if service_name in self.stubbed:
            return self.stubbed[service_name]
        return super().client(service_name, *args, **kwargs)


@pytest.fixture
def stub():
    """stub(service) -> (client, Stubber); every queued answer must have been asked for."""
    made = []

    def make(service: str, region: str = "eu-west-1"):
        client = boto3.client(service, region_name=region)
        stubber = Stubber(client)
        stubber.activate()
        made.append(stubber)
        return client, stubber

    yield make
    for stubber in made:
        stubber.assert_no_pending_responses()


def stack_of(name: str, **changes) -> preflight.Stack:
    """A shipped stack with its offline plan; `changes` replace top-level llmops: settings."""
    target = preflight.load_stack(name, plan=stack_plan(name).plan)
    if changes:
        config = {**read_stack_file(target.path), **{f"llmops:{k}": v for k, v in changes.items()}}
        target = dataclasses.replace(target, settings=from_config(config))
    return target


def settings_only(name: str) -> preflight.Stack:
    """A shipped stack's settings without its plan (checks that read settings only)."""
    return preflight.load_stack(name, plan={"resources": []})


def account_of(session, region="eu-west-1", caller=f"arn:aws:sts::{ACCOUNT}:assumed-role/deployer/ci"):
    return preflight.Account(session, region, ACCOUNT, "aws", caller)


def by_subject(checks: list[preflight.Check]) -> dict[str, str]:
    return {c.subject: c.status for c in checks}


def create_linked_roles(*roles: preflight.LinkedRole) -> None:
    # moto's create_service_linked_role names some roles differently from AWS
    # (AWSServiceRoleForspot), so the roles are created with their real names and paths.
    iam = boto3.client("iam", region_name="us-east-1")
    for role in roles:
        trust = {"Statement": [{"Effect": "Allow", "Principal": {"Service": role.service}}]}
        iam.create_role(
            RoleName=role.name,
            Path=f"/aws-service-role/{role.service}/",
            AssumeRolePolicyDocument=json.dumps(trust),
        )


def create_github_provider(client_ids=("sts.amazonaws.com",)) -> None:
    boto3.client("iam", region_name="us-east-1").create_open_id_connect_provider(
        Url=f"https://{GITHUB}", ClientIDList=list(client_ids), ThumbprintList=["a" * 40]
    )


def role_response(name: str, path: str) -> dict:
    return {
        "Role": {
            "Path": path,
            "RoleName": name,
            "RoleId": "AROAEXAMPLEEXAMPLE01",
            "Arn": f"arn:aws:iam::{ACCOUNT}:role{path}{name}",
            "CreateDate": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        }
    }


def account_settings(total: int, unreserved: int) -> dict:
    return {"AccountLimit": {"ConcurrentExecutions": total, "UnreservedConcurrentExecutions": unreserved}}


def stub_addons(stubber, target, offered=None, schemas=None) -> None:
    """Queue EKS's answers for every planned add-on, in the order the check asks."""
    offered, schemas = offered or {}, schemas or {}
    addons = sorted(target.of_type("aws:eks/addon:Addon"), key=lambda r: r["inputs"]["addonName"])
    for addon in addons:
        name, pinned = addon["inputs"]["addonName"], addon["inputs"]["addonVersion"]
        versions = offered.get(name, [pinned])
        infos = [
            {"addonVersion": v, "compatibilities": [{"clusterVersion": "1.34", "defaultVersion": i == 0}]}
            for i, v in enumerate(versions)
        ]
        stubber.add_response(
            "describe_addon_versions",
            {"addons": [{"addonName": name, "addonVersions": infos}]},
            {"kubernetesVersion": "1.34", "addonName": name},
        )
        if pinned in versions and addon["inputs"].get("configurationValues"):
            schema = json.dumps(schemas.get(name, {"type": "object"}))
            stubber.add_response(
                "describe_addon_configuration",
                {"addonName": name, "addonVersion": pinned, "configurationSchema": schema},
                {"addonName": name, "addonVersion": pinned},
            )


def stub_quota(stubber, code: str, value: float) -> None:
    stubber.add_response(
        "get_service_quota",
        {"Quota": {"ServiceCode": "ec2", "QuotaCode": code, "Value": value}},
        {"ServiceCode": "ec2", "QuotaCode": code},
    )


def stub_tags(stubber, statuses: dict[str, str], keys=("karpenter.sh/nodepool",)) -> None:
    tags = [{"TagKey": k, "Type": "UserDefined", "Status": s} for k, s in statuses.items()]
    stubber.add_response("list_cost_allocation_tags", {"CostAllocationTags": tags}, {"TagKeys": list(keys)})


# --- 1. service-linked roles -------------------------------------------------------------------


def test_linked_roles_pass_when_the_account_has_them(aws):
    create_linked_roles(*ALL_ROLES)
    checks = preflight.check_linked_roles(preflight.connect(None, "eu-west-1"), stack_of("dev"))
    assert by_subject(checks) == {role.name: "pass" for role in ALL_ROLES}


def test_missing_spot_role_fails_with_the_command_that_creates_it(aws):
    create_linked_roles(preflight.EKS_ROLE, preflight.NODEGROUP_ROLE, preflight.AUTOSCALING_ROLE)
    checks = preflight.check_linked_roles(preflight.connect(None, "eu-west-1"), stack_of("dev"))
    (spot,) = [c for c in checks if c.subject == "AWSServiceRoleForEC2Spot"]
    assert spot.status == "fail"
    assert "Karpenter" in spot.message
    assert spot.fix == "aws iam create-service-linked-role --aws-service-name spot.amazonaws.com"


def test_no_shipped_key_policy_names_a_service_linked_role():
    """The EBS key lets EC2 use it for the account (kms:ViaService), so Auto Scaling may create its
    role on first use: nothing has to exist before the key."""
    for name in ("dev", "staging", "prod"):
        (autoscaling,) = [
            r
            for r in preflight.required_linked_roles(stack_of(name))
            if r.name == "AWSServiceRoleForAutoScaling"
        ]
        assert not autoscaling.must_exist, name


def test_missing_linked_role_a_key_policy_names_fails(aws):
    """KMS refuses a key policy naming a principal that does not exist, so a role a key policy names
    must exist before `pulumi up` creates the key (whatever creates it on first use)."""
    create_linked_roles(preflight.EKS_ROLE, preflight.NODEGROUP_ROLE, preflight.SPOT_ROLE)
    target = stack_of("dev")
    resources = copy.deepcopy(target.resources)
    key = next(r for r in resources if r["name"] == "llmops-dev-stack-key")
    policy = json.loads(key["inputs"]["policy"])
    role = (
        "arn:aws:iam::111122223333:role/aws-service-role/autoscaling.amazonaws.com/"
        + preflight.AUTOSCALING_ROLE.name
    )
    policy["Statement"].append(
        {"Effect": "Allow", "Principal": {"AWS": role}, "Action": "kms:Decrypt", "Resource": "*"}
    )
    key["inputs"]["policy"] = json.dumps(policy)
    checks = preflight.check_linked_roles(
        preflight.connect(None, "eu-west-1"), dataclasses.replace(target, resources=resources)
    )
    (autoscaling,) = [c for c in checks if c.subject == "AWSServiceRoleForAutoScaling"]
    assert autoscaling.status == "fail"
    assert "llmops-dev-stack-key" in autoscaling.message
    assert autoscaling.fix.endswith("--aws-service-name autoscaling.amazonaws.com")


def test_spot_role_is_required_only_with_a_spot_pool():
    on_demand = [
        {"name": "a10g-spot", "instanceFamilies": ["g5"], "capacityTypes": ["on-demand"], "maxGpus": 2}
    ]
    assert "AWSServiceRoleForEC2Spot" in [r.name for r in preflight.required_linked_roles(stack_of("dev"))]
    names = [r.name for r in preflight.required_linked_roles(stack_of("dev", gpuPools=on_demand))]
    assert names == [
        "AWSServiceRoleForAmazonEKS",
        "AWSServiceRoleForAmazonEKSNodegroup",
        "AWSServiceRoleForAutoScaling",
    ]


@pytest.mark.parametrize(("decision", "status"), [("allowed", "warn"), ("implicitDeny", "fail")])
def test_missing_eks_role_warns_only_when_the_caller_may_create_it(stub, decision, status):
    iam, stubber = stub("iam", "us-east-1")
    stubber.add_client_error("get_role", "NoSuchEntity", http_status_code=404)
    # The session's role is looked up for its path: the simulator needs the role's own ARN.
    stubber.add_response("get_role", role_response("deployer", "/ci/"), {"RoleName": "deployer"})
    stubber.add_response(
        "simulate_principal_policy",
        {"EvaluationResults": [{"EvalActionName": "iam:CreateServiceLinkedRole", "EvalDecision": decision}]},
        {
            "PolicySourceArn": f"arn:aws:iam::{ACCOUNT}:role/ci/deployer",
            "ActionNames": ["iam:CreateServiceLinkedRole"],
            "ResourceArns": [
                f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/eks.amazonaws.com/AWSServiceRoleForAmazonEKS"
            ],
            "ContextEntries": [
                {
                    "ContextKeyName": "iam:AWSServiceName",
                    "ContextKeyValues": ["eks.amazonaws.com"],
                    "ContextKeyType": "string",
                }
            ],
        },
    )
    for role in ALL_ROLES[1:]:
        stubber.add_response("get_role", role_response(role.name, f"/aws-service-role/{role.service}/"))
    checks = preflight.check_linked_roles(account_of(StubbedSession({"iam": iam})), stack_of("dev"))
    assert by_subject(checks)["AWSServiceRoleForAmazonEKS"] == status
    assert [c.status for c in checks[1:]] == ["pass", "pass", "pass"]


def test_missing_eks_role_fails_when_the_permission_cannot_be_simulated(stub):
    iam, stubber = stub("iam", "us-east-1")
    stubber.add_client_error("get_role", "NoSuchEntity", http_status_code=404)
    stubber.add_response("get_role", role_response("deployer", "/"))
    stubber.add_client_error("simulate_principal_policy", "AccessDenied", http_status_code=403)
    for role in ALL_ROLES[1:]:
        stubber.add_response("get_role", role_response(role.name, f"/aws-service-role/{role.service}/"))
    checks = preflight.check_linked_roles(account_of(StubbedSession({"iam": iam})), stack_of("dev"))
    assert checks[0].status == "fail"
    assert "unknown (AccessDenied" in checks[0].message


# --- 2. Lambda concurrency ---------------------------------------------------------------------


def test_the_stack_reserves_the_sum_of_its_functions_reserved_concurrency():
    functions = stack_of("dev").of_type("aws:lambda/function:Function")
    # aggregator 10, notifier 2, budget guard 1, idle-GPU detector 1, team reconciler 1
    assert sum(f["inputs"].get("reservedConcurrentExecutions") or 0 for f in functions) == 15


@pytest.mark.parametrize(
    ("total", "unreserved", "status", "desired"),
    [
        (1000, 1000, "pass", None),
        (1000, 115, "pass", None),  # 885 reserved elsewhere: 115 - 15 leaves exactly 100
        (1000, 114, "fail", 1001),  # one short: 886 + 15 + 100 needs a limit of 1001
        (10, 10, "fail", 1000),  # a new account's limit
    ],
)
def test_lambda_concurrency_keeps_100_unreserved(stub, total, unreserved, status, desired):
    client, stubber = stub("lambda")
    stubber.add_response("get_account_settings", account_settings(total, unreserved), {})
    (check,) = preflight.check_lambda_concurrency(
        account_of(StubbedSession({"lambda": client})), stack_of("dev")
    )
    assert check.status == status
    assert f"{unreserved - 15} would stay unreserved" in check.message
    if desired:
        assert f"--quota-code L-B99A9384 --desired-value {desired} --region eu-west-1" in check.fix


# --- 3. GPU instance offerings -----------------------------------------------------------------


def test_offerings_pass_where_every_pool_type_is_in_every_az(aws):
    checks = preflight.check_instance_offerings(preflight.connect(None, "eu-central-1"), settings_only("dev"))
    assert by_subject(checks) == {"gpu pool a10g-spot": "pass"}
    assert "eu-central-1a, eu-central-1b" in checks[0].message  # azCount 2: the first two AZs


def test_offerings_fail_a_pool_no_az_offers(aws):
    # moto's eu-south-1 offers no g5 at all.
    checks = preflight.check_instance_offerings(preflight.connect(None, "eu-south-1"), settings_only("dev"))
    assert by_subject(checks) == {"gpu pool a10g-spot": "fail"}
    assert "none of g5.xlarge, g5.2xlarge, g5.4xlarge, g5.8xlarge, g5.16xlarge" in checks[0].message


def test_offerings_warn_about_types_missing_in_some_azs(aws):
    # moto's me-central-1 offers g6 and g6e in its a and b AZs only, p5en in a and c.
    checks = preflight.check_instance_offerings(
        preflight.connect(None, "me-central-1"), settings_only("prod")
    )
    assert by_subject(checks) == {
        "gpu pool l40s-ondemand": "warn",
        "gpu pool h200-ondemand": "warn",
        "gpu pool l4-spot": "warn",
    }
    assert checks[0].message == "me-central-1c lacks g6e.12xlarge, g6e.48xlarge"


def test_offerings_fail_when_the_region_has_fewer_azs_than_the_network(stub):
    ec2, stubber = stub("ec2")
    zones = [
        {"ZoneName": f"eu-west-1{z}", "State": "available", "ZoneType": "availability-zone"} for z in "ab"
    ]
    stubber.add_response(
        "describe_availability_zones",
        {"AvailabilityZones": zones},
        {"Filters": [{"Name": "state", "Values": ["available"]}]},
    )
    (check,) = preflight.check_instance_offerings(
        account_of(StubbedSession({"ec2": ec2})), settings_only("prod")
    )
    assert check.status == "fail"
    assert "2 available AZs; network.azCount is 3" in check.message


# --- 4. GPU vCPU quotas ------------------------------------------------------------------------


def test_vcpu_needs_span_the_leanest_and_the_largest_sizes_within_max_gpus():
    # dev's a10g-spot: 4 GPUs of g5; g5.xlarge has 4 vCPUs per GPU, g5.16xlarge 64 (AWS G5 page;
    # g5.48xlarge's 8 GPUs do not fit under maxGpus 4).
    need = preflight.vcpu_needs(settings_only("dev").settings.gpu_pools)
    assert list(need) == [("G", "spot")]
    assert (need["G", "spot"].lean, need["G", "spot"].worst) == (16, 256)


@pytest.mark.parametrize(("value", "status"), [(256.0, "pass"), (32.0, "warn"), (8.0, "fail")])
def test_gpu_quota_against_the_pools_ceiling(stub, value, status):
    client, stubber = stub("service-quotas")
    stub_quota(stubber, "L-3819A6DF", value)  # All G and VT Spot Instance Requests
    (check,) = preflight.check_gpu_quotas(
        account_of(StubbedSession({"service-quotas": client})), settings_only("dev")
    )
    assert (check.subject, check.status) == ("All G and VT Spot Instance Requests (L-3819A6DF)", status)
    assert "need 16-256" in check.message
    if status != "pass":
        assert "--quota-code L-3819A6DF --desired-value 256 --region eu-west-1" in check.fix


def test_gpu_quotas_of_prod_per_class_and_market(stub):
    client, stubber = stub("service-quotas")
    stub_quota(stubber, "L-DB2E81BA", 384.0)  # l40s: 16 GPUs, up to 2 g6e.48xlarge
    stub_quota(stubber, "L-3819A6DF", 0.0)  # l4-spot: a new account's spot quota
    stub_quota(stubber, "L-417A185B", 192.0)  # h200: one p5en.48xlarge
    checks = preflight.check_gpu_quotas(
        account_of(StubbedSession({"service-quotas": client})), settings_only("prod")
    )
    assert [c.status for c in checks] == ["pass", "fail", "pass"]
    assert "cannot reach their maxGpus" in checks[1].message


def test_gpu_quota_falls_back_to_the_default_value(stub):
    client, stubber = stub("service-quotas")
    stubber.add_client_error("get_service_quota", "NoSuchResourceException", http_status_code=400)
    stubber.add_response(
        "get_aws_default_service_quota",
        {"Quota": {"QuotaCode": "L-3819A6DF", "Value": 256.0}},  # dev's worst case: 4 x g5.16xlarge
        {"ServiceCode": "ec2", "QuotaCode": "L-3819A6DF"},
    )
    (check,) = preflight.check_gpu_quotas(
        account_of(StubbedSession({"service-quotas": client})), settings_only("dev")
    )
    assert check.status == "pass"


# --- 5. EKS add-ons ----------------------------------------------------------------------------

VPC_CNI_SCHEMA = {  # the shape of the add-on's schema for the keys the platform sets
    "type": "object",
    "properties": {
        "enableNetworkPolicy": {"enum": ["true", "false"]},
        "env": {
            "type": "object",
            "properties": {
                "ENABLE_POD_ENI": {"enum": ["true", "false"]},
                "POD_SECURITY_GROUP_ENFORCING_MODE": {"enum": ["strict", "standard"]},
                # dev's prefix delegation (EKS user guide cni-increase-ip-addresses-procedure).
                "ENABLE_PREFIX_DELEGATION": {"enum": ["true", "false"]},
                "WARM_PREFIX_TARGET": {"type": "string"},
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}


def test_addons_pass_when_offered_and_configured_to_their_schema(stub):
    eks, stubber = stub("eks")
    target = stack_of("dev")
    stub_addons(stubber, target, schemas={"vpc-cni": VPC_CNI_SCHEMA})
    checks = preflight.check_eks_addons(account_of(StubbedSession({"eks": eks})), target)
    assert {c.subject.split()[0] for c in checks} == {
        "amazon-cloudwatch-observability",
        "aws-ebs-csi-driver",
        "coredns",
        "eks-pod-identity-agent",
        "kube-proxy",
        "vpc-cni",
    }
    assert {c.status for c in checks} == {"pass"}
    assert "configuration valid" in next(c.message for c in checks if c.subject.startswith("vpc-cni"))


def test_addons_fail_an_unoffered_version_and_an_invalid_configuration(stub):
    eks, stubber = stub("eks")
    target = stack_of("dev")
    strict = {
        **VPC_CNI_SCHEMA,
        "properties": {"env": {"properties": {"ENABLE_POD_ENI": {"enum": ["false"]}}}},
    }
    stub_addons(
        stubber,
        target,
        offered={"coredns": ["v1.12.3-eksbuild.1", "v1.12.10-eksbuild.2"]},
        schemas={"vpc-cni": strict},
    )
    checks = {
        c.subject.split()[0]: c
        for c in preflight.check_eks_addons(account_of(StubbedSession({"eks": eks})), target)
    }
    assert checks["coredns"].status == "fail"
    assert "not offered for Kubernetes 1.34" in checks["coredns"].message
    assert "default v1.12.3-eksbuild.1, newest v1.12.10-eksbuild.2" in checks["coredns"].fix
    assert checks["vpc-cni"].status == "fail"
    assert "$.env.ENABLE_POD_ENI: 'true' is not one of ['false']" in checks["vpc-cni"].message
    assert {c.status for name, c in checks.items() if name not in ("coredns", "vpc-cni")} == {"pass"}


# --- 6. cost-allocation tags -------------------------------------------------------------------


def test_budget_tag_keys_come_from_the_tag_key_value_filters():
    assert preflight.budget_tag_keys(stack_of("dev")) == ["karpenter.sh/nodepool"]


@pytest.mark.parametrize(
    ("statuses", "status"),
    [
        ({"karpenter.sh/nodepool": "Active"}, "pass"),
        ({"karpenter.sh/nodepool": "Inactive"}, "fail"),
        ({}, "warn"),
    ],
)
def test_cost_allocation_tag_must_be_active(stub, statuses, status):
    ce, stubber = stub("ce", "us-east-1")
    stub_tags(stubber, statuses)
    session = StubbedSession({"ce": ce})
    (check,) = preflight.check_cost_allocation_tags(account_of(session), stack_of("dev"))
    assert (check.subject, check.status) == ("karpenter.sh/nodepool", status)
    assert session.regions["ce"] == "us-east-1"  # Cost Explorer's one endpoint, whatever the stack's region
    if status != "pass":
        activate = "--cost-allocation-tags-status TagKey=karpenter.sh/nodepool,Status=Active"
        assert f"aws ce update-cost-allocation-tags-status {activate}" in check.fix


# --- 7. the GitHub OIDC provider ---------------------------------------------------------------

PROVIDER_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{GITHUB}"


def test_oidc_provider_passes_with_the_sts_audience(aws):
    create_github_provider()
    (check,) = preflight.check_oidc_providers(preflight.connect(None, "eu-west-1"), stack_of("dev"))
    # The plan trusts the offline fake account 111122223333; the check asks for the real one.
    assert (check.subject, check.status) == (PROVIDER_ARN, "pass")


def test_missing_oidc_provider_fails_with_the_command_that_creates_it(aws):
    (check,) = preflight.check_oidc_providers(preflight.connect(None, "eu-west-1"), stack_of("dev"))
    assert (check.subject, check.status) == (PROVIDER_ARN, "fail")
    assert "llmops-dev-prompt-writer" in check.message
    create = f"aws iam create-open-id-connect-provider --url https://{GITHUB}"
    assert check.fix == f"{create} --client-id-list sts.amazonaws.com"


def test_oidc_provider_without_the_sts_client_id_fails(aws):
    create_github_provider(client_ids=("https://github.com/acme",))
    (check,) = preflight.check_oidc_providers(preflight.connect(None, "eu-west-1"), stack_of("dev"))
    assert check.status == "fail"
    assert check.fix == (
        f"aws iam add-client-id-to-open-id-connect-provider --open-id-connect-provider-arn {PROVIDER_ARN} "
        "--client-id sts.amazonaws.com"
    )


def test_no_federated_role_without_writer_subjects():
    target = stack_of("dev")
    target = dataclasses.replace(
        target,
        resources=[
            r
            for r in target.resources
            if "prompts-writer" not in r["name"] and "prompt-writer" not in r["name"]
        ],
    )
    assert preflight.oidc_federations(target) == {}


# --- 8. documentation placeholders -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "placeholder"),
    [
        ("203.0.113.0/24", True),
        ("198.51.100.7/32", True),
        ("192.0.2.10", True),
        ("2001:db8::/48", True),
        ("ops@example.org", True),
        ("https://example.net/hook", True),
        ("repo:acme/llmops-prompts:ref:refs/heads/main", True),
        ("10.0.0.0/16", False),
        ("203.0.114.0/24", False),
        ("ops@example-corp.com", False),
        ("repo:acme-corp/prompts:environment:prod", False),
    ],
)
def test_placeholder_values(value, placeholder):
    assert (preflight.placeholder(value) is not None) is placeholder


def test_placeholders_of_the_shipped_stacks_are_named_by_setting_path():
    dev = preflight.check_placeholders(None, settings_only("dev"))
    assert by_subject(dev) == {
        "llmops:cluster.publicAccessCidrs[0]": "warn",
        "llmops:promptStore.writerGithubSubjects[0]": "warn",
    }
    prod = preflight.check_placeholders(None, settings_only("prod"))
    assert "llmops:costAlarms.alertEmails[0]" in by_subject(prod)


def test_a_stack_without_placeholders_passes(tmp_path):
    text = (PROJECT_DIR / "stacks" / "Pulumi.dev.yaml").read_text()
    text = text.replace("203.0.113.0/24", "100.64.10.0/24").replace("repo:acme/", "repo:our-org/")
    path = tmp_path / "Pulumi.ours.yaml"
    path.write_text(text)
    (check,) = preflight.check_placeholders(None, preflight.load_stack(str(path), plan={"resources": []}))
    assert check.status == "pass"


# --- 9. identity, region, credentials ----------------------------------------------------------


def test_the_report_starts_with_the_caller_and_region(aws):
    account = preflight.connect(None, "eu-west-1")
    assert (account.account_id, account.partition) == (ACCOUNT, "aws")
    assert preflight._identity(account).message == f"account {ACCOUNT}, region eu-west-1"


def test_no_region_is_an_error():
    with pytest.raises(LlmopsError, match="no AWS region"):
        preflight.connect(None, None)


def test_no_credentials_is_an_error(monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(LlmopsError, match="no AWS credentials") as err:
        preflight.connect(None, "eu-west-1")
    assert err.value.exit_code == 2


def test_a_failing_call_fails_its_check_only(stub, aws):
    client, stubber = stub("lambda")
    stubber.add_client_error("get_account_settings", "AccessDeniedException", "not allowed", 403)
    account = preflight.connect(StubbedSession({"lambda": client}), "eu-west-1")
    (check,) = preflight._guarded(
        "lambda-concurrency",
        preflight.check_lambda_concurrency,
        ("lambda:GetAccountSettings",),
        account,
        stack_of("dev"),
    )
    assert (check.status, check.message) == ("fail", "could not check: AccessDeniedException: not allowed")
    assert check.fix.startswith("allow lambda:GetAccountSettings to ")


# --- the command -------------------------------------------------------------------------------


def healthy_dev_account(stub, region="eu-central-1") -> StubbedSession:
    """An account where dev's every check passes (moto for what it implements)."""
    create_linked_roles(*ALL_ROLES)
    create_github_provider()
    lambda_client, lambda_stub = stub("lambda", region)
    lambda_stub.add_response("get_account_settings", account_settings(1000, 1000), {})
    quotas, quotas_stub = stub("service-quotas", region)
    stub_quota(
        quotas_stub, "L-3819A6DF", 256.0
    )  # four g5.16xlarge (64 vCPUs each): the worst case of dev's pool
    eks, eks_stub = stub("eks", region)
    stub_addons(eks_stub, stack_of("dev"))
    ce, ce_stub = stub("ce", "us-east-1")
    stub_tags(ce_stub, {"karpenter.sh/nodepool": "Active"})
    return StubbedSession({"lambda": lambda_client, "service-quotas": quotas, "eks": eks, "ce": ce})


def test_command_passes_with_json_on_a_healthy_account(aws, stub, monkeypatch, capsys):
    session = healthy_dev_account(stub)
    monkeypatch.setattr(preflight, "_session", lambda profile: session)
    # The real offline plan of dev (not a cached one): the command end to end.
    assert cli.main(["preflight", "dev", "--json", "--region", "eu-central-1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {k: report[k] for k in ("stack", "account", "region", "ok")} == {
        "stack": "dev",
        "account": ACCOUNT,
        "region": "eu-central-1",
        "ok": True,
    }
    assert set(report["checks"][0]) == {"id", "status", "subject", "message", "fix"}
    assert report["checks"][0]["id"] == "identity"
    statuses = {(c["id"], c["status"]) for c in report["checks"]}
    assert {s for _, s in statuses} <= {"pass", "warn", "info"}
    # warnings: the region override and dev's documentation placeholders
    assert {i for i, s in statuses if s == "warn"} == {"region", "placeholder"}
    assert report["counts"]["fail"] == 0 and report["counts"]["pass"] == len(
        [c for c in report["checks"] if c["status"] == "pass"]
    )


def test_command_exits_1_and_prints_the_fix_when_a_check_fails(aws, stub, monkeypatch, capsys):
    session = healthy_dev_account(stub)
    boto3.client("iam", region_name="us-east-1").delete_role(RoleName="AWSServiceRoleForEC2Spot")
    monkeypatch.setattr(preflight, "_session", lambda profile: session)
    monkeypatch.setattr(preflight, "_offline_plan", lambda stack: stack_plan("dev").plan)
    assert cli.main(["preflight", "dev", "--region", "eu-central-1"]) == 1
    out, err = capsys.readouterr()
    assert "FAIL  service-linked-role  AWSServiceRoleForEC2Spot: missing" in out
    assert "fix: aws iam create-service-linked-role --aws-service-name spot.amazonaws.com" in out
    assert "preflight: " in out and "1 failed" in out
    assert err == "error: 1 check(s) failed\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["preflight", "dev"], "error: no AWS credentials"),
        (["preflight", "dev", "--profile", "nope"], "error: no AWS profile 'nope'"),
        (["preflight", "dev", "--region", "mars"], "error: 'mars' is not an AWS region name"),
        (["preflight", "nope"], "error: no stack 'nope'"),
    ],
)
def test_command_exits_2_with_one_line_on_bad_input(monkeypatch, capsys, argv, message):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setattr(preflight, "_offline_plan", lambda stack: pytest.fail("planned before failing"))
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(message)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_readme_lists_the_command_and_the_read_actions_it_needs():
    readme = (PROJECT_DIR / "README.md").read_text()
    assert "| `llmops preflight STACK" in readme
    deploying = readme[readme.index("## Deploying for real") : readme.index("## CI/CD")]
    assert deploying.index("llmops preflight") < deploying.index("pulumi up")
    assert [a for a in preflight.READ_ACTIONS if a not in deploying] == []
