"""`llmops preflight STACK`: read-only checks of the target AWS account before a first `pulumi up`.

Some things only the account can tell: its service-linked roles, Lambda concurrency, which GPU
instance types its AZs offer, its GPU vCPU quotas, the add-on versions EKS offers, the state of
the cost-allocation tags the budgets filter on, and the GitHub OIDC provider CI roles trust.
What the stack declares comes from its offline plan (as `llmops plan` computes it). Each check
prints PASS, FAIL or WARN with its fix; nothing in the account is created or changed.
Exits 0 when nothing fails (warnings do not), 1 when a check fails, 2 on bad input or when
there are no usable credentials.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import boto3
import jsonschema
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound

from llmops import plan as plan_cmd
from llmops.errors import EXIT_NOT_FOUND, EXIT_OK, LlmopsError
from llmops.instances import InstanceType
from llmops.offline import RecordedPlan
from llmops.settings import StackSettings, from_config, read_stack_file
from llmops.settings.infra import GpuPool
from llmops.settings.stack import REGION

EXIT_CHECK_FAILED = EXIT_NOT_FOUND  # 1: at least one check failed
Status = Literal["pass", "fail", "warn", "info"]
BOTO_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=10,
    read_timeout=30,
    user_agent_extra="llmops-preflight",
)


@dataclass(frozen=True)
class Check:
    id: str
    status: Status
    subject: str
    message: str
    fix: str = ""


@dataclass
class Account:
    """The account and region checked, and one client per service and region."""

    session: boto3.Session
    region: str
    account_id: str
    partition: str
    caller_arn: str
    _clients: dict = field(default_factory=dict, repr=False)

    def client(self, service: str, region: str | None = None):
        key = (service, region or self.region)
        if key not in self._clients:
            self._clients[key] = self.session.client(service, region_name=key[1], config=BOTO_CONFIG)
        return self._clients[key]

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}::{self.account_id}:{resource}"


@dataclass
class Stack:
    """What the stack declares: its file, settings and planned resources."""

    name: str
    path: Path
    config: dict[str, Any]
    settings: StackSettings
    resources: list[dict[str, Any]]

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["type"] == type_]


@dataclass
class Report:
    stack: str
    account: str
    region: str
    caller: str
    checks: list[Check]

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        counts = {s: sum(c.status == s for c in self.checks) for s in ("pass", "fail", "warn", "info")}
        return {
            "stack": self.stack,
            "account": self.account,
            "region": self.region,
            "caller": self.caller,
            "ok": not self.failed,
            "counts": counts,
            "checks": [dataclasses.asdict(c) for c in self.checks],
        }


# --- loading the stack and connecting ----------------------------------------------------------


def load_stack(
    stack: str, plan: RecordedPlan | dict | None = None, settings: StackSettings | None = None
) -> Stack:
    """The stack file, its settings and the offline plan (computed unless given)."""
    name, path = plan_cmd.resolve_stack(stack)
    config = read_stack_file(path)
    settings = settings or from_config(config, source=str(path))
    if plan is None:
        plan = _offline_plan(str(path))
    resources = plan["resources"] if isinstance(plan, dict) else plan.resources
    return Stack(name, path, config, settings, resources)


def _offline_plan(stack: str) -> RecordedPlan:
    with tempfile.TemporaryDirectory(prefix="llmops-preflight-") as build_dir:
        return plan_cmd.run(stack, Path(build_dir)).plan


def connect(session: boto3.Session | None, region: str | None) -> Account:
    """Who the credentials are; one clear error when there are none or the region is unset."""
    if not region:
        raise LlmopsError("no AWS region: set aws:region in the stack file or pass --region")
    if not REGION.match(region):
        raise LlmopsError(f"{region!r} is not an AWS region name like eu-west-1")
    session = session or boto3.Session()
    try:
        identity = session.client("sts", region_name=region, config=BOTO_CONFIG).get_caller_identity()
    except NoCredentialsError:
        raise LlmopsError(
            "no AWS credentials: pass --profile, or set AWS_PROFILE or "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        ) from None
    except ClientError as err:
        raise LlmopsError(f"AWS refused the credentials: {_describe(err)}") from None
    except BotoCoreError as err:
        raise LlmopsError(f"cannot reach AWS STS in {region}: {err}") from None
    partition = identity["Arn"].split(":")[1]
    return Account(session, region, identity["Account"], partition, identity["Arn"])


def _describe(err: Exception) -> str:
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
    return str(err)


# --- 1. service-linked roles -------------------------------------------------------------------


@dataclass(frozen=True)
class LinkedRole:
    name: str
    service: str
    why: str
    must_exist: bool = False
    """True: missing is a failure even if the service could create it on first use."""


# EKS creates both of its roles when the cluster / node group is created, if the caller may
# (https://docs.aws.amazon.com/eks/latest/userguide/using-service-linked-roles-eks.html,
# https://docs.aws.amazon.com/eks/latest/userguide/using-service-linked-roles-eks-nodegroups.html).
EKS_ROLE = LinkedRole(
    "AWSServiceRoleForAmazonEKS", "eks.amazonaws.com", "EKS manages the cluster's ENIs with it"
)
NODEGROUP_ROLE = LinkedRole(
    "AWSServiceRoleForAmazonEKSNodegroup", "eks-nodegroup.amazonaws.com", "EKS manages the node group with it"
)
# EC2 Auto Scaling creates it with the first group, if the caller may
# (https://docs.aws.amazon.com/autoscaling/ec2/userguide/autoscaling-service-linked-role.html).
AUTOSCALING_ROLE = LinkedRole(
    "AWSServiceRoleForAutoScaling", "autoscaling.amazonaws.com", "the node group's Auto Scaling group uses it"
)
# Spot launches need it and Karpenter's controller may not create it
# (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-fleet-prerequisites.html#service-linked-roles-spot-instances).
SPOT_ROLE = LinkedRole(
    "AWSServiceRoleForEC2Spot",
    "spot.amazonaws.com",
    "Karpenter launches the spot GPU pools with it and cannot create it",
    must_exist=True,
)
SERVICE_ROLE_PATH = re.compile(r":role/aws-service-role/(?P<service>[^/]+)/(?P<name>[^/]+)$")


def required_linked_roles(stack: Stack) -> list[LinkedRole]:
    roles: dict[str, LinkedRole] = {}
    if stack.of_type("aws:eks/cluster:Cluster"):
        roles[EKS_ROLE.name] = EKS_ROLE
    if stack.of_type("aws:eks/nodeGroup:NodeGroup"):
        roles[NODEGROUP_ROLE.name] = NODEGROUP_ROLE
        roles[AUTOSCALING_ROLE.name] = AUTOSCALING_ROLE
    if any("spot" in pool.capacity_types for pool in stack.settings.gpu_pools):
        roles[SPOT_ROLE.name] = SPOT_ROLE
    # KMS refuses a key policy whose principal does not exist, so a service-linked role a key
    # policy names must exist before `pulumi up` creates the key
    # (https://docs.aws.amazon.com/kms/latest/APIReference/API_PutKeyPolicy.html, Policy).
    for key, service, name in _key_policy_linked_roles(stack):
        known = roles.get(name, LinkedRole(name, service, ""))
        why = f"the key policy of {key} names it and KMS refuses policies naming missing principals"
        roles[name] = dataclasses.replace(known, why=why, must_exist=True)
    return list(roles.values())


def _key_policy_linked_roles(stack: Stack) -> Iterator[tuple[str, str, str]]:
    for key in stack.of_type("aws:kms/key:Key"):
        for principal in _aws_principals(key["inputs"].get("policy")):
            match = SERVICE_ROLE_PATH.search(principal)
            if match:
                yield key["name"], match["service"], match["name"]


def _aws_principals(policy: Any) -> Iterator[str]:
    for statement in _statements(policy):
        principal = statement.get("Principal")
        if isinstance(principal, dict):
            yield from _as_list(principal.get("AWS"))


def check_linked_roles(account: Account, stack: Stack) -> list[Check]:
    iam = account.client("iam")
    may_create = _CreatePermission(account)
    checks = []
    for role in required_linked_roles(stack):
        fix = f"aws iam create-service-linked-role --aws-service-name {role.service}"
        if _role_exists(iam, role.name):
            checks.append(Check("service-linked-role", "pass", role.name, "exists"))
        elif role.must_exist:
            checks.append(Check("service-linked-role", "fail", role.name, f"missing: {role.why}", fix))
        else:
            checks.append(_missing_created_on_use(role, may_create(role), fix))
    return checks


def _missing_created_on_use(role: LinkedRole, allowed: bool | str, fix: str) -> Check:
    if allowed is True:
        message = f"missing; {role.service} creates it on first use and the caller may create it"
        return Check("service-linked-role", "warn", role.name, message, f"{fix}  (optional)")
    reason = "the caller may not create it" if allowed is False else allowed
    message = f"missing and {reason} (iam:CreateServiceLinkedRole): {role.why}"
    return Check("service-linked-role", "fail", role.name, message, fix)


def _role_exists(iam, name: str) -> bool:
    try:
        iam.get_role(RoleName=name)
    except ClientError as err:
        if err.response["Error"]["Code"] == "NoSuchEntity":
            return False
        raise
    return True


class _CreatePermission:
    """Whether the caller may create a service-linked role: True, False, or why it is unknown.
    Asks the IAM policy simulator (https://docs.aws.amazon.com/IAM/latest/APIReference/API_SimulatePrincipalPolicy.html)."""

    def __init__(self, account: Account):
        self._account = account
        self._principal: str | None = None

    def __call__(self, role: LinkedRole) -> bool | str:
        try:
            principal = self._principal = self._principal or self._caller_principal()
        except ClientError as err:
            return f"the caller's role could not be read ({_describe(err)})"
        if principal == "root":
            return True
        role_arn = self._account.arn("iam", f"role/aws-service-role/{role.service}/{role.name}")
        try:
            result = self._account.client("iam").simulate_principal_policy(
                PolicySourceArn=principal,
                ActionNames=["iam:CreateServiceLinkedRole"],
                ResourceArns=[role_arn],
                ContextEntries=[
                    {
                        "ContextKeyName": "iam:AWSServiceName",
                        "ContextKeyValues": [role.service],
                        "ContextKeyType": "string",
                    }
                ],
            )
        except ClientError as err:
            return f"whether the caller may create it is unknown ({_describe(err)})"
        return result["EvaluationResults"][0]["EvalDecision"] == "allowed"

    def _caller_principal(self) -> str:
        """The IAM ARN whose policies apply: a session's role (with its path), a user, or root."""
        resource = self._account.caller_arn.split(":", 5)[5]
        if resource == "root":
            return "root"
        if resource.startswith("assumed-role/"):
            role = resource.split("/")[1]
            return self._account.client("iam").get_role(RoleName=role)["Role"]["Arn"]
        return self._account.arn("iam", resource)


# --- 2. Lambda concurrency ---------------------------------------------------------------------

# Reserved concurrency may not take the account below 100 unreserved executions
# (https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html).
MIN_UNRESERVED = 100
LAMBDA_CONCURRENCY_QUOTA = "L-B99A9384"  # Lambda "Concurrent executions"


def check_lambda_concurrency(account: Account, stack: Stack) -> list[Check]:
    functions = stack.of_type("aws:lambda/function:Function")
    wanted = sum(max(f["inputs"].get("reservedConcurrentExecutions") or 0, 0) for f in functions)
    if not wanted:
        return [Check("lambda-concurrency", "info", account.region, "no function reserves concurrency")]
    limit = account.client("lambda").get_account_settings()["AccountLimit"]
    total, unreserved = limit["ConcurrentExecutions"], limit["UnreservedConcurrentExecutions"]
    left = unreserved - wanted
    message = (
        f"the stack reserves {wanted} for {len(functions)} functions; account limit {total}, "
        f"{total - unreserved} already reserved, {left} would stay unreserved (AWS keeps at least "
        f"{MIN_UNRESERVED})"
    )
    if left >= MIN_UNRESERVED:
        return [Check("lambda-concurrency", "pass", account.region, message)]
    needed = max(1000, total - left + MIN_UNRESERVED)
    fix = (
        f"aws service-quotas request-service-quota-increase --service-code lambda "
        f"--quota-code {LAMBDA_CONCURRENCY_QUOTA} --desired-value {needed} --region {account.region}"
    )
    return [Check("lambda-concurrency", "fail", account.region, message, fix)]


# --- 3. GPU instance offerings -----------------------------------------------------------------


def network_zones(account: Account, stack: Stack) -> list[dict]:
    """The AZs the network will use: the first azCount available ones by name, as
    aws.get_availability_zones(state="available") returns them to components/network.py
    (https://www.pulumi.com/registry/packages/aws/api-docs/getavailabilityzones/)."""
    zones = account.client("ec2").describe_availability_zones(
        Filters=[{"Name": "state", "Values": ["available"]}]
    )["AvailabilityZones"]
    return sorted(zones, key=lambda z: z["ZoneName"])[: stack.settings.network.az_count]


def check_instance_offerings(account: Account, stack: Stack) -> list[Check]:
    pools = stack.settings.gpu_pools
    if not pools:
        return [Check("instance-offerings", "info", account.region, "the stack has no GPU pools")]
    zones = network_zones(account, stack)
    names = [z["ZoneName"] for z in zones]
    want = stack.settings.network.az_count
    if len(zones) < want:
        message = f"{account.region} offers {len(zones)} available AZs; network.azCount is {want}"
        fix = f"set llmops:network.azCount to {len(zones)} or choose another region"
        return [Check("instance-offerings", "fail", account.region, message, fix)]
    checks = [_zone_type_warning(z) for z in zones if z.get("ZoneType") not in (None, "availability-zone")]
    types = sorted({t.name for pool in pools for t in pool.types()})
    offered = _offerings(account, types, names)
    return checks + [_pool_offerings(pool, offered, names, account.region) for pool in pools]


def _zone_type_warning(zone: dict) -> Check:
    message = f"the network would put subnets in {zone['ZoneName']}, a {zone['ZoneType']}"
    return Check("instance-offerings", "warn", zone["ZoneName"], message, "opt the account out of the zone")


def _offerings(account: Account, types: list[str], zones: list[str]) -> dict[str, set[str]]:
    """Instance type -> the AZs (of `zones`) that offer it
    (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstanceTypeOfferings.html)."""
    offered: dict[str, set[str]] = {t: set() for t in types}
    pages = (
        account.client("ec2")
        .get_paginator("describe_instance_type_offerings")
        .paginate(
            LocationType="availability-zone",
            Filters=[{"Name": "location", "Values": zones}, {"Name": "instance-type", "Values": types}],
        )
    )
    for page in pages:
        for offering in page["InstanceTypeOfferings"]:
            if offering["Location"] in zones:
                offered.setdefault(offering["InstanceType"], set()).add(offering["Location"])
    return offered


def _pool_offerings(pool: GpuPool, offered: dict[str, set[str]], zones: list[str], region: str) -> Check:
    subject = f"gpu pool {pool.name}"
    names = [t.name for t in pool.types()]
    if not any(offered.get(n) for n in names):
        message = f"none of {', '.join(names)} is offered in {', '.join(zones)}"
        fix = (
            f"choose types offered there (aws ec2 describe-instance-type-offerings --location-type "
            f"availability-zone --region {region}) or another region"
        )
        return Check("instance-offerings", "fail", subject, message, fix)
    lacking = {z: [n for n in names if z not in offered.get(n, set())] for z in zones}
    lacking = {z: missing for z, missing in lacking.items() if missing}
    if not lacking:
        message = f"{', '.join(names)} offered in {', '.join(zones)}"
        return Check("instance-offerings", "pass", subject, message)
    message = "; ".join(f"{z} lacks {', '.join(missing)}" for z, missing in lacking.items())
    fix = "Karpenter launches these only in the other AZs; drop them from the pool if that is not enough"
    return Check("instance-offerings", "warn", subject, message, fix)


# --- 4. GPU vCPU quotas ------------------------------------------------------------------------


@dataclass(frozen=True)
class Quota:
    code: str
    name: str


# EC2 counts running instances in vCPUs per instance class and market
# (https://docs.aws.amazon.com/ec2/latest/instancetypes/ec2-instance-quotas.html). Codes as the
# Service Quotas console lists them (L-DB2E81BA etc.); capacity reservations (reserved) count as
# on-demand.
GPU_QUOTAS: dict[tuple[str, str], Quota] = {
    ("G", "on-demand"): Quota("L-DB2E81BA", "Running On-Demand G and VT instances"),
    ("G", "spot"): Quota("L-3819A6DF", "All G and VT Spot Instance Requests"),
    ("P", "on-demand"): Quota("L-417A185B", "Running On-Demand P instances"),
    ("P", "spot"): Quota("L-7212CCBC", "All P Spot Instance Requests"),
}


@dataclass
class VcpuNeed:
    lean: int = 0
    """vCPUs to reach maxGpus on the pool types with the fewest vCPUs per GPU."""
    worst: int = 0
    """Most vCPUs nodes within maxGpus can have (Karpenter may pick any allowed size)."""
    pools: list[str] = field(default_factory=list)


def quota_class(instance: InstanceType) -> str:
    return "P" if instance.family.startswith("p") else "G"  # g* and vt* share the G quota


def vcpu_needs(pools: list[GpuPool]) -> dict[tuple[str, str], VcpuNeed]:
    """Per quota: what the pools need at their GPU ceilings. A pool that may use several
    markets (spot and on-demand) needs its whole ceiling in each, since it may land in either."""
    needs: dict[tuple[str, str], VcpuNeed] = {}
    for pool in pools:
        markets = {"spot" if c == "spot" else "on-demand" for c in pool.capacity_types}
        for klass in sorted({quota_class(t) for t in pool.types()}):
            fitting = [t for t in pool.types() if quota_class(t) == klass and t.gpus <= pool.max_gpus]
            if not fitting:
                continue
            lean = math.ceil(pool.max_gpus * min(t.vcpus / t.gpus for t in fitting))
            worst = _most_vcpus(fitting, pool.max_gpus)
            for market in sorted(markets):
                need = needs.setdefault((klass, market), VcpuNeed())
                need.lean, need.worst = need.lean + lean, need.worst + worst
                need.pools.append(f"{pool.name} ({pool.max_gpus} GPUs: {lean}-{worst} vCPUs)")
    return needs


def _most_vcpus(types: list[InstanceType], max_gpus: int) -> int:
    """Most vCPUs of any set of nodes with at most max_gpus GPUs (an unbounded knapsack)."""
    best = [0] * (max_gpus + 1)
    for gpus in range(1, max_gpus + 1):
        best[gpus] = max([best[gpus - 1]] + [best[gpus - t.gpus] + t.vcpus for t in types if t.gpus <= gpus])
    return best[max_gpus]


def check_gpu_quotas(account: Account, stack: Stack) -> list[Check]:
    needs = vcpu_needs(stack.settings.gpu_pools)
    if not needs:
        return [Check("gpu-quota", "info", account.region, "the stack has no GPU pools")]
    return [_quota_check(account, GPU_QUOTAS[key], needs[key]) for key in GPU_QUOTAS if key in needs]


def _quota_check(account: Account, quota: Quota, need: VcpuNeed) -> Check:
    value = int(_quota_value(account, quota.code))
    subject = f"{quota.name} ({quota.code})"
    pools = ", ".join(need.pools)
    message = f"{value} vCPUs in {account.region}; the pools need {need.lean}-{need.worst}: {pools}"
    fix = (
        f"aws service-quotas request-service-quota-increase --service-code ec2 --quota-code {quota.code} "
        f"--desired-value {need.worst} --region {account.region}"
    )
    if value < need.lean:
        return Check("gpu-quota", "fail", subject, f"{message}: the pools cannot reach their maxGpus", fix)
    if value < need.worst:
        message += ": enough on the smallest sizes, not on the largest Karpenter may pick"
        return Check("gpu-quota", "warn", subject, message, fix)
    return Check("gpu-quota", "pass", subject, message)


def _quota_value(account: Account, code: str) -> float:
    """The applied quota, or AWS's default where none is applied
    (https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_GetServiceQuota.html)."""
    quotas = account.client("service-quotas")
    try:
        return quotas.get_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"]
    except ClientError as err:
        if err.response["Error"]["Code"] != "NoSuchResourceException":
            raise
    return quotas.get_aws_default_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"]


# --- 5. EKS add-on versions and configuration --------------------------------------------------


def check_eks_addons(account: Account, stack: Stack) -> list[Check]:
    clusters = stack.of_type("aws:eks/cluster:Cluster")
    if not clusters:
        return [Check("eks-addon", "info", account.region, "the stack has no EKS cluster")]
    kubernetes = clusters[0]["inputs"]["version"]
    addons = sorted(stack.of_type("aws:eks/addon:Addon"), key=lambda r: r["inputs"]["addonName"])
    return [_addon_check(account, kubernetes, addon["inputs"]) for addon in addons]


def _addon_check(account: Account, kubernetes: str, inputs: dict) -> Check:
    name, pinned = inputs["addonName"], inputs["addonVersion"]
    subject = f"{name} {pinned}"
    offered, default = _addon_versions(account, kubernetes, name)
    if pinned not in offered:
        newest = max(offered, key=_version_key) if offered else "none"
        message = f"not offered for Kubernetes {kubernetes} in {account.region}"
        fix = f"pin one EKS offers in llmops/versions.py (default {default or 'none'}, newest {newest})"
        return Check("eks-addon", "fail", subject, message, fix)
    values = inputs.get("configurationValues")
    if not values:
        return Check("eks-addon", "pass", subject, f"offered for Kubernetes {kubernetes}")
    schema = account.client("eks").describe_addon_configuration(addonName=name, addonVersion=pinned)
    problems = schema_problems(values, schema.get("configurationSchema") or "{}")
    if problems:
        fix = (
            "fix the add-on's configuration in components/ against: aws eks describe-addon-configuration "
            f"--addon-name {name} --addon-version {pinned}"
        )
        return Check("eks-addon", "fail", subject, "configurationValues: " + "; ".join(problems), fix)
    return Check("eks-addon", "pass", subject, f"offered for Kubernetes {kubernetes}; configuration valid")


def _addon_versions(account: Account, kubernetes: str, name: str) -> tuple[list[str], str | None]:
    """Versions of an add-on EKS offers for a Kubernetes version, and the default one
    (https://docs.aws.amazon.com/eks/latest/APIReference/API_DescribeAddonVersions.html)."""
    pages = (
        account.client("eks")
        .get_paginator("describe_addon_versions")
        .paginate(kubernetesVersion=kubernetes, addonName=name)
    )
    versions, default = [], None
    for page in pages:
        for addon in page.get("addons", []):
            for info in addon.get("addonVersions", []):
                versions.append(info["addonVersion"])
                compatible = [
                    c for c in info.get("compatibilities", []) if c.get("clusterVersion") == kubernetes
                ]
                if any(c.get("defaultVersion") for c in compatible):
                    default = info["addonVersion"]
    return versions, default


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version))


def schema_problems(values: str, schema: str) -> list[str]:
    """Where configurationValues break the add-on's JSON Schema, as EKS would refuse them
    (https://docs.aws.amazon.com/eks/latest/APIReference/API_DescribeAddonConfiguration.html)."""
    try:
        document = json.loads(values)
    except json.JSONDecodeError as err:
        return [f"not JSON ({err})"]
    parsed = json.loads(schema)
    validator = jsonschema.validators.validator_for(parsed)(parsed)
    errors = sorted(validator.iter_errors(document), key=lambda e: e.json_path)
    return [f"{e.json_path}: {e.message}" for e in errors]


# --- 6. cost-allocation tags -------------------------------------------------------------------

# Cost Explorer has one endpoint per partition (https://docs.aws.amazon.com/general/latest/gr/billing.html).
COST_EXPLORER_REGION = {"aws": "us-east-1", "aws-cn": "cn-northwest-1"}


def budget_tag_keys(stack: Stack) -> list[str]:
    """Tag keys the budgets filter on: TagKeyValue values are `user:<key>$<value>`
    (https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_budgets_Budget.html)."""
    keys = set()
    for budget in stack.of_type("aws:budgets/budget:Budget"):
        for cost_filter in budget["inputs"].get("costFilters") or []:
            if cost_filter.get("name") == "TagKeyValue":
                keys |= {v.removeprefix("user:").split("$", 1)[0] for v in cost_filter.get("values") or []}
    return sorted(keys)


def check_cost_allocation_tags(account: Account, stack: Stack) -> list[Check]:
    keys = budget_tag_keys(stack)
    if not keys:
        return [Check("cost-allocation-tag", "info", "budgets", "no budget filters on a tag")]
    ce = account.client("ce", region=COST_EXPLORER_REGION.get(account.partition, "us-east-1"))
    status = {}
    # https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_ListCostAllocationTags.html
    for page in ce.get_paginator("list_cost_allocation_tags").paginate(TagKeys=keys):
        status |= {tag["TagKey"]: tag["Status"] for tag in page["CostAllocationTags"]}
    return [_tag_check(key, status.get(key)) for key in keys]


def _tag_check(key: str, status: str | None) -> Check:
    fix = (
        f"aws ce update-cost-allocation-tags-status --cost-allocation-tags-status TagKey={key},Status=Active "
        "(from the organization's management account if this is a member account)"
    )
    if status == "Active":
        return Check("cost-allocation-tag", "pass", key, "active: the GPU budget sees the pools' spend")
    if status == "Inactive":
        return Check("cost-allocation-tag", "fail", key, "inactive: the GPU budget would track nothing", fix)
    # A key appears in billing up to 24 hours after a resource first carries it; Karpenter tags
    # only the instances it launches, so a fresh account cannot activate it before the deploy.
    message = "not seen in billing yet: it appears up to a day after the first GPU node runs"
    return Check("cost-allocation-tag", "warn", key, message, f"then: {fix}")


# --- 7. the GitHub OIDC provider ---------------------------------------------------------------


OIDC_PROVIDER = "aws:iam/openIdConnectProvider:OpenIdConnectProvider"


@dataclass
class Federation:
    host: str
    audiences: set[str] = field(default_factory=set)
    roles: list[str] = field(default_factory=list)


def oidc_federations(stack: Stack) -> dict[str, Federation]:
    """OIDC providers the planned roles trust, with the audiences their conditions require."""
    found: dict[str, Federation] = {}
    for role in stack.of_type("aws:iam/role:Role"):
        for statement in _statements(role["inputs"].get("assumeRolePolicy")):
            principal = statement.get("Principal")
            federated = _as_list(principal.get("Federated")) if isinstance(principal, dict) else []
            for arn in federated:
                if ":oidc-provider/" not in arn:
                    continue
                host = arn.split(":oidc-provider/", 1)[1]
                entry = found.setdefault(host, Federation(host))
                entry.roles.append(role["inputs"].get("name") or role["name"])
                conditions = statement.get("Condition", {}).get("StringEquals", {})
                entry.audiences |= set(_as_list(conditions.get(f"{host}:aud"))) or {"sts.amazonaws.com"}
    return found


def check_oidc_providers(account: Account, stack: Stack) -> list[Check]:
    federations = oidc_federations(stack)
    if not federations:
        return [Check("github-oidc", "info", "iam", "no planned role trusts an OIDC provider")]
    created = {r["inputs"].get("url", "").removeprefix("https://") for r in stack.of_type(OIDC_PROVIDER)}
    return [_oidc_check(account, f, f.host in created) for f in federations.values()]


def _oidc_check(account: Account, federation: Federation, created: bool) -> Check:
    # The plan's ARNs carry the offline fake account; the real provider is in this account.
    arn = account.arn("iam", f"oidc-provider/{federation.host}")
    roles = ", ".join(federation.roles)
    if created:
        return Check("github-oidc", "info", arn, f"created by this stack; trusted by {roles}")
    try:
        # https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetOpenIDConnectProvider.html
        provider = account.client("iam").get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    except ClientError as err:
        if err.response["Error"]["Code"] != "NoSuchEntity":
            raise
        fix = (
            f"aws iam create-open-id-connect-provider --url https://{federation.host} "
            f"--client-id-list {' '.join(sorted(federation.audiences))}"
        )
        return Check("github-oidc", "fail", arn, f"missing: {roles} cannot be assumed", fix)
    missing = sorted(federation.audiences - set(provider.get("ClientIDList", [])))
    if missing:
        fix = " && ".join(
            f"aws iam add-client-id-to-open-id-connect-provider --open-id-connect-provider-arn {arn} "
            f"--client-id {aud}"
            for aud in missing
        )
        message = f"its client ids lack {', '.join(missing)}, which {roles} require"
        return Check("github-oidc", "fail", arn, message, fix)
    audiences = ", ".join(sorted(federation.audiences))
    return Check("github-oidc", "pass", arn, f"exists with client id {audiences}")


# --- 8. documentation placeholders -------------------------------------------------------------

# Address ranges reserved for documentation (https://www.rfc-editor.org/rfc/rfc5737, IPv6:
# https://www.rfc-editor.org/rfc/rfc3849) and example domains (https://www.rfc-editor.org/rfc/rfc2606).
DOCUMENTATION_NETWORKS = [
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
]
EXAMPLE_DOMAIN = re.compile(r"(?:^|[@./])example\.(?:com|org|net)\b", re.IGNORECASE)
PLACEHOLDER_SUBJECT = re.compile(r"^repo:acme/")


def placeholder(value: str) -> str | None:
    """Why a setting's value is a documentation placeholder, or None."""
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        network = None
    if network and any(network.version == d.version and network.overlaps(d) for d in DOCUMENTATION_NETWORKS):
        return "a documentation address range (RFC 5737/3849)"
    if EXAMPLE_DOMAIN.search(value):
        return "an example domain (RFC 2606)"
    if PLACEHOLDER_SUBJECT.match(value):
        return "the example GitHub organization acme"
    return None


def config_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string in a config value with its setting path (llmops:cluster.publicAccessCidrs[0])."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from config_strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from config_strings(item, f"{path}[{index}]")
    elif isinstance(value, str):
        yield path, value


def check_placeholders(account: Account, stack: Stack) -> list[Check]:
    checks = []
    for key, value in stack.config.items():
        for path, text in config_strings(value, key):
            reason = placeholder(text)
            if reason:
                message = f"{text!r} is {reason}, a placeholder from the shipped stack files"
                fix = f"replace it in {_shown(stack.path)} with your own value"
                checks.append(Check("placeholder", "warn", path, message, fix))
    return checks or [Check("placeholder", "pass", _shown(stack.path), "no documentation placeholders")]


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# --- the run -----------------------------------------------------------------------------------

CheckFn = Callable[[Account, Stack], list[Check]]
# Each check, and the read-only IAM actions it calls (README: Deploying for real).
CHECKS: list[tuple[str, CheckFn, tuple[str, ...]]] = [
    ("service-linked-role", check_linked_roles, ("iam:GetRole", "iam:SimulatePrincipalPolicy")),
    ("lambda-concurrency", check_lambda_concurrency, ("lambda:GetAccountSettings",)),
    (
        "instance-offerings",
        check_instance_offerings,
        ("ec2:DescribeAvailabilityZones", "ec2:DescribeInstanceTypeOfferings"),
    ),
    (
        "gpu-quota",
        check_gpu_quotas,
        ("servicequotas:GetServiceQuota", "servicequotas:GetAWSDefaultServiceQuota"),
    ),
    ("eks-addon", check_eks_addons, ("eks:DescribeAddonVersions", "eks:DescribeAddonConfiguration")),
    ("cost-allocation-tag", check_cost_allocation_tags, ("ce:ListCostAllocationTags",)),
    ("github-oidc", check_oidc_providers, ("iam:GetOpenIDConnectProvider",)),
    ("placeholder", check_placeholders, ()),
]
ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}
READ_ACTIONS = sorted({"sts:GetCallerIdentity", *(a for _, _, actions in CHECKS for a in actions)})


def preflight(
    stack: str,
    session: boto3.Session | None = None,
    *,
    plan: RecordedPlan | dict | None = None,
    settings: StackSettings | None = None,
    region: str | None = None,
) -> Report:
    # Credentials before the offline plan: a missing profile should not wait for seconds of planning.
    target = load_stack(stack, {"resources": []} if plan is None else plan, settings)
    account = connect(session, region or target.settings.region)
    if plan is None:
        target.resources = _offline_plan(str(target.path)).resources
    checks = [_identity(account), *_region_override(account, target)]
    for check_id, check, actions in CHECKS:
        checks += _guarded(check_id, check, actions, account, target)
    return Report(target.name, account.account_id, account.region, account.caller_arn, checks)


def run_preflight(
    stack: str,
    session: boto3.Session | None = None,
    *,
    plan: RecordedPlan | dict | None = None,
    settings: StackSettings | None = None,
    region: str | None = None,
) -> list[Check]:
    """Every check of the account `session` reaches, for `stack` (a name in stacks/ or a stack
    file). `plan` (a RecordedPlan or plan.json dict) and `settings` skip recomputing them;
    `region` overrides the stack's aws:region."""
    return preflight(stack, session, plan=plan, settings=settings, region=region).checks


def _guarded(check_id: str, check: CheckFn, actions, account: Account, stack: Stack) -> list[Check]:
    try:
        return check(account, stack)
    except (ClientError, BotoCoreError) as err:
        fix = "retry; the call failed, not the check"
        if isinstance(err, ClientError) and err.response["Error"].get("Code") in ACCESS_DENIED:
            fix = f"allow {', '.join(actions)} to {account.caller_arn}"
        return [Check(check_id, "fail", account.region, f"could not check: {_describe(err)}", fix)]


def _identity(account: Account) -> Check:
    message = f"account {account.account_id}, region {account.region}"
    return Check("identity", "info", account.caller_arn, message)


def _region_override(account: Account, stack: Stack) -> list[Check]:
    if account.region == stack.settings.region:
        return []
    message = f"checking {account.region}, but the stack deploys to {stack.settings.region} (aws:region)"
    fix = "drop --region to check where the stack deploys"
    return [Check("region", "warn", account.region, message, fix)]


# --- the command -------------------------------------------------------------------------------


def render(report: Report) -> list[str]:
    lines = [f"Preflight of stack {report.stack}: account {report.account}, {report.region} (read-only)", ""]
    for check in report.checks:
        lines.append(f"{check.status.upper():<5} {check.id:<20} {check.subject}: {check.message}")
        if check.fix and check.status in ("fail", "warn"):
            lines.append(f"{'':26}fix: {check.fix}")
    counts = report.to_dict()["counts"]
    lines += ["", f"preflight: {counts['pass']} passed, {counts['fail']} failed, {counts['warn']} warnings"]
    return lines


def _session(profile: str | None) -> boto3.Session:
    try:
        return boto3.Session(profile_name=profile)
    except ProfileNotFound:
        raise LlmopsError(f"no AWS profile {profile!r} in the AWS config files") from None


def _cmd(args) -> int:
    report = preflight(args.stack, _session(args.profile), region=args.region)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print("\n".join(render(report)))
    if report.failed:
        print(f"error: {sum(c.status == 'fail' for c in report.checks)} check(s) failed", file=sys.stderr)
        return EXIT_CHECK_FAILED
    return EXIT_OK


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "preflight",
        help="read-only checks of the target AWS account before a first pulumi up",
        description=__doc__,
    )
    parser.add_argument("stack", help="stack name in stacks/ (dev, staging, prod) or path to a stack file")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--region", help="check this region instead of the stack's aws:region")
    parser.add_argument("--profile", help="AWS profile to use (default: the usual credential chain)")
    parser.set_defaults(func=_cmd)


def _statements(policy: Any) -> list[dict]:
    if isinstance(policy, str):
        try:
            policy = json.loads(policy)
        except json.JSONDecodeError:
            return []
    if not isinstance(policy, dict):
        return []
    return [s for s in _as_list(policy.get("Statement")) if isinstance(s, dict)]


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


__all__ = ["Check", "Report", "add_parser", "preflight", "run_preflight"]
