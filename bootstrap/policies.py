"""The CI roles' IAM documents, as plain functions of names and ARNs (tested without an engine).

Trust: the GitHub Actions OIDC provider, audience `sts.amazonaws.com` and one exact subject per
role (StringEquals, no wildcard): `repo:OWNER/NAME:pull_request` for the preview role,
`repo:OWNER/NAME:environment:<env>` for each deploy role, so a prod credential needs a job of the
protected `prod` GitHub environment.

Deploy roles (docs/ci.md explains the choice): no AWS-managed administrator policy (the policy
pack refuses AdministratorAccess, PowerUserAccess and IAMFullAccess, LLMOPS-IAM-003), but what the
platform's program declares, service by service, limited to the environment's region; IAM, S3,
Secrets Manager and budgets limited to the environment's names (`llmops-<env>-*`); its own state
objects; and explicit denies on what bootstrap owns.
"""

from __future__ import annotations

from typing import Any

from components.prompt_store import GITHUB_OIDC_HOST

AUDIENCE = "sts.amazonaws.com"
STATE_PROJECT = "llmops"  # the platform's Pulumi project: its stacks' state lives under it
MAX_SESSION_SECONDS = 3600

# What the platform's program declares, by pulumi-aws module, as the IAM services it calls (a test
# checks that every module of the shipped stacks is here and every service is granted).
MODULE_SERVICES: dict[str, tuple[str, ...]] = {
    "ec2": ("ec2",), "eks": ("eks",), "kms": ("kms",), "cloudwatch": ("cloudwatch", "logs", "events"),
    "sqs": ("sqs",), "sns": ("sns",), "lambda": ("lambda",), "rds": ("rds",), "dynamodb": ("dynamodb",),
    "amp": ("aps",), "iam": ("iam",), "s3": ("s3",), "secretsmanager": ("secretsmanager",),
    "route53": ("route53",), "budgets": ("budgets",), "costexplorer": ("ce",),
    "elasticache": ("elasticache",),
}  # fmt: skip
# Regional services: these verbs, in the environment's region only (aws:RequestedRegion). The
# others (IAM, S3, Secrets Manager, Route 53, Budgets, Cost Explorer) are scoped by resource name.
COMMON_VERBS = ("Describe*", "Get*", "List*", "Create*", "Delete*", "Update*", "Put*", "Tag*", "Untag*")
REGIONAL_VERBS: dict[str, tuple[str, ...]] = {
    "ec2": ("Modify*", "Associate*", "Disassociate*", "Allocate*", "Release*", "Authorize*", "Revoke*",
            "Replace*", "Attach*", "Detach*", "RunInstances"),
    "eks": ("Associate*", "Disassociate*"),
    "kms": ("Enable*", "ScheduleKeyDeletion", "CancelKeyDeletion", "Encrypt", "Decrypt", "ReEncrypt*",
            "GenerateDataKey*", "RetireGrant", "RevokeGrant"),
    "cloudwatch": (),
    "logs": ("Associate*", "Disassociate*"),
    "events": ("Enable*", "Disable*", "Remove*"),
    "sqs": ("Set*",),
    "sns": ("Set*", "Subscribe", "Unsubscribe"),
    "lambda": ("Add*", "Remove*", "Publish*"),
    "rds": ("Modify*", "Add*", "Remove*"),
    "dynamodb": (),
    "aps": (),
    "elasticache": ("Modify*", "Add*", "Remove*"),
}  # fmt: skip
# The AWS-managed policies the platform attaches to its roles (a test checks the shipped plans).
PLATFORM_MANAGED_POLICIES = (
    "AmazonEC2ContainerRegistryPullOnly",
    "AmazonEKSClusterPolicy",
    "AmazonEKSVPCResourceController",
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "CloudWatchAgentServerPolicy",
    "service-role/AWSLambdaVPCAccessExecutionRole",
    "service-role/AmazonEBSCSIDriverPolicy",
)
# Service-linked roles a platform stack may have to create (llmops preflight checks the first three).
SERVICE_LINKED = (
    "eks.amazonaws.com",
    "eks-nodegroup.amazonaws.com",
    "autoscaling.amazonaws.com",
    "spot.amazonaws.com",
    "rds.amazonaws.com",
    "scraper.aps.amazonaws.com",
    "elasticache.amazonaws.com",
)


def statement(sid: str, effect: str, actions: list[str], resources: list[str] | str, **extra) -> dict:
    out: dict[str, Any] = {"Sid": sid, "Effect": effect, "Action": actions, "Resource": resources}
    out.update(extra)
    return out


def github_trust(provider_arn: str, repository: str, subject: str) -> dict:
    """The trust policy of a role GitHub Actions jobs assume: this provider, the STS audience and
    exactly one subject of one repository (`pull_request`, `environment:prod`, ...)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{GITHUB_OIDC_HOST}:aud": AUDIENCE,
                        f"{GITHUB_OIDC_HOST}:sub": f"repo:{repository}:{subject}",
                    }
                },
            }
        ],
    }


def state_paths(bucket_arn: str, stack: str) -> list[str]:
    """The objects of one stack of the platform project in a Pulumi DIY (S3) backend: its
    checkpoint (and `.bak`), history, backups and locks (the lock path holds the stack's fully
    qualified name, organization/<project>/<stack>)."""
    root = f"{bucket_arn}/.pulumi"
    return [
        f"{root}/stacks/{STATE_PROJECT}/{stack}.json*",
        f"{root}/history/{STATE_PROJECT}/{stack}/*",
        f"{root}/backups/{STATE_PROJECT}/{stack}/*",
        f"{root}/locks/*/{STATE_PROJECT}/{stack}/*",
    ]


def preview_policy(state_bucket_arn: str, state_key_arn: str) -> dict:
    """What the read-only preview role adds to AWS's ReadOnlyAccess, and what it takes away.

    `pulumi preview` reads every stack's checkpoint and decrypts its secrets (the stack's data key
    is wrapped by the state key): GetObject on the platform's state, kms:Decrypt on the state key.
    It takes no lock and writes nothing (Pulumi's DIY backend locks only up/refresh/destroy/import).
    ReadOnlyAccess also reads data; pull-request code runs with this role, so secret values, object
    contents, table items, queue messages and log events are denied everywhere else.
    """
    state = f"{state_bucket_arn}/.pulumi"
    return {
        "Version": "2012-10-17",
        "Statement": [
            statement("ListState", "Allow", ["s3:ListBucket"], state_bucket_arn,
                      Condition={"StringLike": {"s3:prefix": [".pulumi/*"]}}),
            statement("ReadPlatformState", "Allow", ["s3:GetObject"],
                      [f"{state}/meta.yaml", f"{state}/stacks/{STATE_PROJECT}/*"]),
            statement("DecryptState", "Allow", ["kms:Decrypt", "kms:DescribeKey"], state_key_arn),
            statement("NoSecretValues", "Deny",
                      ["secretsmanager:GetSecretValue", "secretsmanager:BatchGetSecretValue",
                       "ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"], "*"),
            {"Sid": "NoDataKeysButState", "Effect": "Deny",
             "Action": ["kms:Decrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"],
             "NotResource": [state_key_arn]},
            {"Sid": "NoObjectsButState", "Effect": "Deny", "Action": ["s3:GetObject*"],
             "NotResource": [f"{state}/meta.yaml", f"{state}/stacks/{STATE_PROJECT}/*"]},
            statement("NoData", "Deny",
                      ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:Scan",
                       "dynamodb:GetRecords", "sqs:ReceiveMessage", "logs:GetLogEvents",
                       "logs:FilterLogEvents", "logs:StartQuery", "logs:StartLiveTail",
                       "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage", "athena:GetQueryResults",
                       "rds:DownloadDBLogFilePortion"], "*"),
        ],
    }  # fmt: skip


def deploy_policy(
    *,
    environment: str,
    region: str,
    account_id: str,
    partition: str,
    state_bucket_arn: str,
    state_key_arn: str,
) -> dict:
    """The deploy role of one environment: the platform's program in its region and names."""
    prefix = f"llmops-{environment}"
    acct = f"{partition}:{{svc}}:{{region}}:{account_id}"

    def arn(service: str, resource: str, in_region: str = region) -> str:
        return f"arn:{acct.format(svc=service, region=in_region)}:{resource}"

    regional = sorted(
        f"{service}:{verb}" for service, extra in REGIONAL_VERBS.items() for verb in (*COMMON_VERBS, *extra)
    )
    iam_arn = f"arn:{partition}:iam::{account_id}"
    named_roles = [f"{iam_arn}:role/{prefix}-*", f"{iam_arn}:policy/{prefix}-*",
                   f"{iam_arn}:instance-profile/{prefix}-*"]  # fmt: skip
    managed = [f"arn:{partition}:iam::aws:policy/{p}" for p in PLATFORM_MANAGED_POLICIES]
    bootstrap_tagged = {"StringEquals": {"aws:ResourceTag/environment": "bootstrap"}}
    statements = [
        statement("PlatformServicesInRegion", "Allow", regional, "*",
                  Condition={"StringEquals": {"aws:RequestedRegion": [region]}}),
        statement("ReadForPlanning", "Allow",
                  ["iam:GetRole", "iam:GetPolicy", "iam:GetPolicyVersion", "iam:ListRoles",
                   "iam:ListPolicies", "s3:ListAllMyBuckets", "ssm:GetParameter", "ssm:GetParameters",
                   # Route 53 checks the caller may describe the VPC of a private zone, from us-east-1.
                   "ec2:DescribeVpcs"], "*"),
        statement("PlatformRoles", "Allow",
                  ["iam:Get*", "iam:List*", "iam:CreateRole", "iam:DeleteRole", "iam:UpdateRole",
                   "iam:UpdateRoleDescription", "iam:UpdateAssumeRolePolicy", "iam:TagRole", "iam:UntagRole",
                   "iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:PassRole", "iam:CreatePolicy",
                   "iam:DeletePolicy", "iam:CreatePolicyVersion", "iam:DeletePolicyVersion", "iam:TagPolicy",
                   "iam:UntagPolicy", "iam:CreateInstanceProfile", "iam:DeleteInstanceProfile",
                   "iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile",
                   "iam:TagInstanceProfile", "iam:UntagInstanceProfile"], named_roles),
        statement("PlatformManagedPolicies", "Allow", ["iam:AttachRolePolicy", "iam:DetachRolePolicy"],
                  f"{iam_arn}:role/{prefix}-*",
                  Condition={"ArnEquals": {"iam:PolicyARN": [*managed, f"{iam_arn}:policy/{prefix}-*"]}}),
        statement("ServiceLinkedRoles", "Allow", ["iam:CreateServiceLinkedRole"],
                  f"{iam_arn}:role/aws-service-role/*",
                  Condition={"StringEquals": {"iam:AWSServiceName": list(SERVICE_LINKED)}}),
        statement("PlatformBuckets", "Allow",
                  ["s3:CreateBucket", "s3:DeleteBucket", "s3:List*", "s3:Get*", "s3:Put*", "s3:Delete*",
                   "s3:AbortMultipartUpload"],
                  [f"arn:{partition}:s3:::{prefix}-*", f"arn:{partition}:s3:::{prefix}-*/*"]),
        statement("PlatformSecrets", "Allow",
                  [f"secretsmanager:{verb}" for verb in COMMON_VERBS] + ["secretsmanager:RestoreSecret"],
                  [arn("secretsmanager", f"secret:{prefix}/*"), arn("secretsmanager", f"secret:{prefix}-*")]),
        statement("PlatformDns", "Allow",
                  ["route53:Get*", "route53:List*", "route53:ChangeResourceRecordSets",
                   "route53:ChangeTagsForResource", "route53:DeleteHostedZone",
                   "route53:AssociateVPCWithHostedZone", "route53:DisassociateVPCFromHostedZone",
                   "route53:UpdateHostedZoneComment"],
                  [f"arn:{partition}:route53:::hostedzone/*", f"arn:{partition}:route53:::change/*"]),
        # CreateHostedZone has no resource type: only private zones of VPCs in the region.
        statement("PlatformPrivateZones", "Allow", ["route53:CreateHostedZone"], "*",
                  Condition={"ForAnyValue:StringLike": {"route53:VPCs": [f"VPCId=*,VPCRegion={region}"]}}),
        statement("PlatformBudgets", "Allow",
                  ["budgets:ViewBudget", "budgets:ModifyBudget", "budgets:TagResource",
                   "budgets:UntagResource", "budgets:ListTagsForResource"],
                  f"arn:{partition}:budgets::{account_id}:budget/{prefix}-*"),
        # Cost Explorer creates take no resource ARN: only ones tagged with this environment.
        statement("PlatformAnomalyMonitorsCreate", "Allow",
                  ["ce:CreateAnomalyMonitor", "ce:CreateAnomalySubscription", "ce:TagResource"], "*",
                  Condition={"StringEquals": {"aws:RequestTag/environment": environment}}),
        statement("PlatformAnomalyMonitors", "Allow",
                  ["ce:GetAnomalyMonitors", "ce:GetAnomalySubscriptions", "ce:UpdateAnomalyMonitor",
                   "ce:UpdateAnomalySubscription", "ce:DeleteAnomalyMonitor", "ce:DeleteAnomalySubscription",
                   "ce:TagResource", "ce:UntagResource", "ce:ListTagsForResource"],
                  [f"arn:{partition}:ce::{account_id}:anomalymonitor/*",
                   f"arn:{partition}:ce::{account_id}:anomalysubscription/*"]),
        statement("ListState", "Allow", ["s3:ListBucket"], state_bucket_arn,
                  Condition={"StringLike": {"s3:prefix": [".pulumi/*"]}}),
        statement("ReadStateMeta", "Allow", ["s3:GetObject"], f"{state_bucket_arn}/.pulumi/meta.yaml"),
        statement("OwnState", "Allow", ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                  state_paths(state_bucket_arn, environment)),
        statement("StateKey", "Allow",
                  ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"], state_key_arn),
        # The region-wide grants above would reach bootstrap's own keys, runner networks and logs.
        statement("KeepBootstrapKeys", "Deny",
                  ["kms:ScheduleKeyDeletion", "kms:Disable*", "kms:PutKeyPolicy", "kms:CreateGrant",
                   "kms:UpdateAlias", "kms:DeleteAlias", "kms:TagResource", "kms:UntagResource",
                   "kms:UpdateKeyDescription"], "*", Condition=bootstrap_tagged),
        statement("KeepBootstrapAliases", "Deny", ["kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias"],
                  f"arn:{partition}:kms:*:{account_id}:alias/llmops-bootstrap-*"),
        statement("KeepBootstrapNetwork", "Deny",
                  ["ec2:Delete*", "ec2:Modify*", "ec2:Revoke*", "ec2:Authorize*", "ec2:CreateTags",
                   "ec2:DeleteTags"], "*", Condition=bootstrap_tagged),
        statement("KeepBootstrapLogs", "Deny",
                  ["logs:Delete*", "logs:Put*", "logs:Disassociate*", "logs:Untag*"],
                  f"arn:{partition}:logs:*:{account_id}:log-group:/aws/codebuild/llmops-bootstrap-*"),
        statement("NoAdministrators", "Deny", ["iam:AttachRolePolicy", "iam:PutRolePermissionsBoundary"], "*",
                  Condition={"ArnLike": {"iam:PolicyARN": [
                      f"arn:{partition}:iam::aws:policy/{admin}"
                      for admin in ("AdministratorAccess", "PowerUserAccess", "IAMFullAccess")]}}),
    ]  # fmt: skip
    return {"Version": "2012-10-17", "Statement": statements}


def runner_policy(
    *,
    region: str,
    account_id: str,
    partition: str,
    log_group_arn: str,
    subnet_ids: list[str],
    security_group_id: str,
    connection_arn: str,
) -> dict:
    """A CodeBuild-hosted runner's service role: its logs, its network interfaces in its subnets
    and its GitHub connection. Nothing else: deploy credentials come only from the job's OIDC token
    through the environment's deploy role."""
    ec2 = f"arn:{partition}:ec2:{region}:{account_id}"
    subnets = [f"{ec2}:subnet/{s}" for s in subnet_ids]
    return {
        "Version": "2012-10-17",
        "Statement": [
            statement("Logs", "Allow", ["logs:CreateLogStream", "logs:PutLogEvents"],
                      [log_group_arn, f"{log_group_arn}:*"]),
            statement("DescribeNetwork", "Allow",
                      ["ec2:DescribeDhcpOptions", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
                       "ec2:DescribeSecurityGroups", "ec2:DescribeVpcs"], "*"),
            statement("NetworkInterfaces", "Allow", ["ec2:CreateNetworkInterface"],
                      [f"{ec2}:network-interface/*", *subnets, f"{ec2}:security-group/{security_group_id}"]),
            statement("RemoveNetworkInterfaces", "Allow", ["ec2:DeleteNetworkInterface"],
                      f"{ec2}:network-interface/*"),
            statement("AttachNetworkInterfaces", "Allow", ["ec2:CreateNetworkInterfacePermission"],
                      f"{ec2}:network-interface/*",
                      Condition={"StringEquals": {"ec2:AuthorizedService": "codebuild.amazonaws.com"},
                                 "ArnEquals": {"ec2:Subnet": subnets}}),
            statement("GitHubConnection", "Allow",
                      ["codeconnections:GetConnectionToken", "codeconnections:GetConnection",
                       "codeconnections:UseConnection"], connection_arn),
        ],
    }  # fmt: skip
