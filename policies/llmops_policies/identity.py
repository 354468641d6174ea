"""Identity: wildcard IAM actions and resources, admin attachments, trust-policy conditions,
IMDSv2, and the EKS authentication mode."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from . import _aws
from ._k8s import EC2_NODECLASS
from ._rule import A, Ctx, D, M, Res, anchors, as_list, get, levels, resource_rule

POLICY_TYPES = (
    "aws:iam/policy:Policy",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/userPolicy:UserPolicy",
    "aws:iam/groupPolicy:GroupPolicy",
    "aws:iam/role:Role",
)
ADMIN_POLICIES = ("AdministratorAccess", "PowerUserAccess", "IAMFullAccess")
READ_ONLY = re.compile(r"^[a-z0-9-]+:(Describe|List|Get|BatchGet|Head)[A-Za-z*]*$")
# Actions that cannot be scoped to a resource ARN (IAM service authorization reference).
UNSCOPABLE = [
    "cloudwatch:PutMetricData",
    "logs:CreateLogGroup",
    "ec2:CreateLaunchTemplate",
    "ec2:CreateFleet",
    "ec2:RunInstances",
    "ec2:CreateTags",
    "ec2:TerminateInstances",
    "ec2:DeleteLaunchTemplate",
    "pricing:GetProducts",
    "ssm:GetParameter",
    "sts:GetCallerIdentity",
    "eks:DescribeCluster",
    "iam:PassRole",
    "iam:CreateInstanceProfile",
    "iam:TagInstanceProfile",
    "iam:AddRoleToInstanceProfile",
    "iam:RemoveRoleFromInstanceProfile",
    "iam:DeleteInstanceProfile",
    "iam:GetInstanceProfile",
    "aps:RemoteWrite",
    "aps:QueryMetrics",
    "budgets:ViewBudget",
    "ce:GetCostAndUsage",
]


def _documents(res: Res) -> Iterator[tuple[str, Any]]:
    """(label, document) for identity policies; a Role's inline policies, never its trust policy."""
    if res.type == "aws:iam/role:Role":
        for p in as_list(res.get("inlinePolicies")):
            yield f"inline policy {get(p, 'name', '?')} of role {res.name}", get(p, "policy")
    else:
        yield f"IAM policy {res.name}", res.get("policy")


@resource_rule(
    id="LLMOPS-IAM-001",
    name="iam-no-wildcard-actions",
    description="Checks whether identity policies avoid Allow statements with Action '*' or a whole service "
    "('s3:*').",
    severity="high",
    remediation="List the actions the workload calls (e.g. s3:GetObject, kms:Decrypt); use grant_* methods.",
    anchors=anchors(
        "Checkov:CKV_AWS_63",
        "Checkov:CKV_AWS_62",
        "CIS AWS 3.0:1.16",
        "PCI DSS 4.0:7.2.2",
        "ISO 27001:2022:A.8.2",
        "HIPAA:164.308(a)(4)",
    ),
    levels=levels(A, M, M, M),
    types=POLICY_TYPES,
)
def no_wildcard_actions(res: Res, ctx: Ctx) -> Iterator[str]:
    for label, doc in _documents(res):
        for st in _aws.allow_statements(doc):
            wild = [a for a in as_list(st.get("Action")) if a == "*" or str(a).endswith(":*")]
            if wild:
                yield f"{label} must not allow wildcard actions ({', '.join(map(str, wild))})."


@resource_rule(
    id="LLMOPS-IAM-002",
    name="iam-no-unscoped-write-resources",
    description="Checks whether identity policies scope write actions to resource ARNs instead of Resource "
    "'*' "
    "(read-only actions, actions AWS cannot scope, and conditioned statements are exempt).",
    severity="high",
    remediation="Name the bucket, key, queue or table ARNs in Resource, or add a Condition (tag or "
    "aws:RequestedRegion) where the action supports no resource ARN.",
    anchors=anchors(
        "Checkov:CKV_AWS_355",
        "Checkov:CKV_AWS_111",
        "PCI DSS 4.0:7.2.2",
        "ISO 27001:2022:A.5.15",
        "GDPR:Art. 25",
    ),
    levels=levels(A, A, M, M),
    types=POLICY_TYPES,
    config={"unscopableActions": {"type": "array", "items": {"type": "string"}, "default": UNSCOPABLE}},
)
def no_unscoped_resources(res: Res, ctx: Ctx) -> Iterator[str]:
    exempt = set(as_list(ctx.cfg("unscopableActions")))
    for label, doc in _documents(res):
        for st in _aws.allow_statements(doc):
            if "*" not in as_list(st.get("Resource")) or st.get("Condition"):
                continue
            writes = [
                a for a in map(str, as_list(st.get("Action"))) if not READ_ONLY.match(a) and a not in exempt
            ]
            if writes:
                yield f"{label} must scope {', '.join(writes[:5])} to resource ARNs, not Resource '*'."


@resource_rule(
    id="LLMOPS-IAM-003",
    name="iam-no-admin-attachments",
    description="Checks whether roles, users and groups are given no administrator-level AWS managed policy.",
    severity="critical",
    remediation="Replace AdministratorAccess / PowerUserAccess / IAMFullAccess with a least-privilege "
    "policy.",
    anchors=anchors(
        "Checkov:CKV_AWS_274",
        "CIS AWS 3.0:1.16",
        "PCI DSS 4.0:7.2.1",
        "ISO 27001:2022:A.8.2",
        "HIPAA:164.308(a)(4)",
    ),
    levels=levels(A, M, M, M),
    types=(
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "aws:iam/userPolicyAttachment:UserPolicyAttachment",
        "aws:iam/groupPolicyAttachment:GroupPolicyAttachment",
        "aws:iam/policyAttachment:PolicyAttachment",
        "aws:iam/role:Role",
    ),
)
def no_admin(res: Res, ctx: Ctx) -> Iterator[str]:
    arns = (
        as_list(res.get("managedPolicyArns")) if res.type == "aws:iam/role:Role" else [res.get("policyArn")]
    )
    for arn in arns:
        name = str(arn or "").rsplit("/", 1)[-1]
        if arn and ":aws:policy/" in str(arn) and name in ADMIN_POLICIES:
            yield f"{res.label} must not attach {name}."


def _federated_conditions(st: Mapping[str, Any]) -> set[str]:
    keys: set[str] = set()
    cond = st.get("Condition") or {}
    for op in cond:
        block = cond[op]
        if isinstance(block, Mapping):
            keys.update(str(k) for k in block)
    return keys


@resource_rule(
    id="LLMOPS-IAM-004",
    name="iam-trust-policy-conditions",
    description="Checks whether role trust policies admit no anonymous principal, condition federated (OIDC) "
    "principals on the token subject and audience, and condition cross-account principals.",
    severity="critical",
    remediation="GitHub OIDC: StringEquals token.actions.githubusercontent.com:aud sts.amazonaws.com and "
    "StringLike ...:sub repo:ORG/REPO:ref:refs/heads/main. Other accounts: add sts:ExternalId or "
    "aws:PrincipalArn conditions. Pods: use Pod Identity (Service pods.eks.amazonaws.com).",
    anchors=anchors(
        "Checkov:CKV_AWS_358",
        "PCI DSS 4.0:8.2.2",
        "ISO 27001:2022:A.5.15",
        "ISO 27001:2022:A.8.5",
        "HIPAA:164.312(d)",
    ),
    levels=levels(M, M, M, M),
    types=("aws:iam/role:Role",),
)
def trust_conditions(res: Res, ctx: Ctx) -> Iterator[str]:
    for st in _aws.allow_statements(res.get("assumeRolePolicy")):
        keys = _federated_conditions(st)
        for kind, value in _aws.principals(st):
            if kind == "*" or value == "*":
                yield f"Role {res.name} trust policy must not admit Principal '*'."
            elif kind == "Federated" and ":oidc-provider/" in value:
                host = value.split(":oidc-provider/", 1)[1]
                for needed in ("sub", "aud"):
                    if f"{host}:{needed}" not in keys:
                        yield f"Role {res.name} trust policy must condition {host}:{needed}."
            elif kind == "AWS" and not keys:
                yield (
                    f"Role {res.name} trust policy must condition the AWS principal (sts:ExternalId or "
                    "aws:PrincipalArn)."
                )


@resource_rule(
    id="LLMOPS-IAM-005",
    name="imdsv2-required",
    description="Checks whether instances, launch templates and Karpenter EC2NodeClasses require IMDSv2 "
    "tokens "
    "with a hop limit of 1, so pods cannot reach the node role's credentials.",
    severity="high",
    remediation="Set metadata_options http_tokens 'required' and http_put_response_hop_limit 1 "
    "(EC2NodeClass: spec.metadataOptions.httpTokens required, httpPutResponseHopLimit 1). Pods get AWS "
    "credentials from Pod Identity instead.",
    anchors=anchors(
        "Checkov:CKV_AWS_79",
        "Checkov:CKV_AWS_341",
        "CIS AWS 3.0:5.6",
        "PCI DSS 4.0:2.2.5",
        "ISO 27001:2022:A.8.9",
    ),
    levels=levels(A, M, M, M),
    types=("aws:ec2/launchTemplate:LaunchTemplate", "aws:ec2/instance:Instance", EC2_NODECLASS),
    config={"maxHopLimit": {"type": "integer", "minimum": 1, "default": 1}},
)
def imdsv2(res: Res, ctx: Ctx) -> Iterator[str]:
    path = "spec.metadataOptions" if res.type == EC2_NODECLASS else "metadataOptions"
    opts = res.get(path) or {}
    if get(opts, "httpEndpoint") == "disabled":
        return
    if get(opts, "httpTokens") != "required":
        yield f"{res.label} must require IMDSv2 ({path}.httpTokens required)."
    hops = get(opts, "httpPutResponseHopLimit")
    if hops is None or int(hops) > int(ctx.cfg("maxHopLimit")):
        yield f"{res.label} must set {path}.httpPutResponseHopLimit to {ctx.cfg('maxHopLimit')} or less."


@resource_rule(
    id="LLMOPS-IAM-006",
    name="eks-access-entries-only",
    description="Checks whether the EKS cluster authenticates through access entries only "
    "(authenticationMode "
    "API), not the aws-auth ConfigMap.",
    severity="medium",
    remediation="Set access_config.authentication_mode 'API' and grant access with aws.eks.AccessEntry plus "
    "AccessPolicyAssociation; bootstrap_cluster_creator_admin_permissions False.",
    anchors=anchors(
        "AWS EKS Best Practices:access entries",
        "PCI DSS 4.0:7.2.1",
        "ISO 27001:2022:A.5.15",
        "ISO 27001:2022:A.8.2",
    ),
    levels=levels(D, A, M, M),
    types=("aws:eks/cluster:Cluster",),
)
def eks_auth_mode(res: Res, ctx: Ctx) -> Iterator[str]:
    mode = res.get("accessConfig.authenticationMode", "CONFIG_MAP")
    if mode != "API":
        yield f"EKS cluster {res.name} must use authenticationMode API (has {mode})."
