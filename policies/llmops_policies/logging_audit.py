"""Logging and audit: EKS control-plane logs, log retention, bucket access logs, VPC flow logs."""

from __future__ import annotations

from collections.abc import Iterator

from . import _aws
from ._rule import A, Ctx, D, M, Res, Stack, anchors, as_list, levels, resource_rule, skip_unknown, stack_rule

CLUSTER_LOG_TYPES = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
# PCI DSS 4.0 10.5.1 keeps audit logs 12 months; dev stacks keep a week by default.
MIN_RETENTION = {"public": 1, "internal": 7, "confidential": 90, "regulated": 365}


@resource_rule(
    id="LLMOPS-LOG-001",
    name="eks-control-plane-logs",
    description="Checks whether the EKS cluster sends every control-plane log type (api, audit, "
    "authenticator, "
    "controllerManager, scheduler) to CloudWatch.",
    severity="medium",
    remediation="Set enabled_cluster_log_types to all five types.",
    anchors=anchors(
        "Checkov:CKV_AWS_37",
        "CIS EKS:2.1.1",
        "AWS FSBP:EKS.8",
        "PCI DSS 4.0:10.2.1",
        "HIPAA:164.312(b)",
        "ISO 27001:2022:A.8.15",
    ),
    levels=levels(D, A, M, M),
    types=("aws:eks/cluster:Cluster",),
    config={
        "requiredClusterLogTypes": {
            "type": "array",
            "items": {"type": "string"},
            "default": CLUSTER_LOG_TYPES,
        }
    },
)
def eks_logs(res: Res, ctx: Ctx) -> Iterator[str]:
    enabled = set(as_list(res.get("enabledClusterLogTypes")))
    missing = [t for t in as_list(ctx.cfg("requiredClusterLogTypes")) if t not in enabled]
    if missing:
        yield f"EKS cluster {res.name} must enable control-plane log types: {', '.join(missing)}."


@resource_rule(
    id="LLMOPS-LOG-002",
    name="log-retention-bounded",
    setting=(
        "llmops:cluster.logRetentionDays",
        "llmops:network.flowLogRetentionDays",
        "llmops:costAlarms.logRetentionDays",
    ),
    description="Checks whether CloudWatch log groups set a retention of at least the classification's "
    "minimum "
    "(regulated 365 days, confidential 90, internal 7).",
    severity="medium",
    remediation="Set retention_in_days (e.g. 365 for regulated stacks; 0 / unset keeps logs forever and "
    "grows the bill without bound).",
    anchors=anchors(
        "Checkov:CKV_AWS_338",
        "Checkov:CKV_AWS_66",
        "PCI DSS 4.0:10.5.1",
        "HIPAA:164.316(b)(2)(i)",
        "ISO 27001:2022:A.8.15",
        "GDPR:Art. 5(1)(e)",
    ),
    levels=levels(D, A, M, M),
    types=("aws:cloudwatch/logGroup:LogGroup",),
    config={
        "minRetentionDays": {
            "type": "integer",
            "minimum": 1,
            "description": "Overrides the per-classification minimum.",
        }
    },
)
def log_retention(res: Res, ctx: Ctx) -> Iterator[str]:
    minimum = int(ctx.cfg("minRetentionDays") or MIN_RETENTION[ctx.classification])
    days = res.get("retentionInDays")
    if not days:
        yield f"Log group {res.name} must set retentionInDays (at least {minimum})."
    elif int(days) < minimum:
        yield f"Log group {res.name} must keep logs at least {minimum} days (has {days})."


@stack_rule(
    id="LLMOPS-LOG-003",
    name="s3-access-logging",
    description="Checks whether every S3 bucket that is not itself a log target has server access logging.",
    severity="medium",
    remediation="Declare an aws.s3.BucketLogging for the bucket, targeting the platform's access-log bucket.",
    anchors=anchors(
        "Checkov:CKV_AWS_18",
        "PCI DSS 4.0:10.2.1",
        "HIPAA:164.312(b)",
        "ISO 27001:2022:A.8.15",
        "GDPR:Art. 30",
    ),
    levels=levels(D, A, M, M),
)
def s3_access_logging(stack: Stack, ctx: Ctx) -> Iterator[tuple[Res, str]]:
    index = _aws.BucketIndex(stack)
    targets, unplaced_targets = index.log_targets()  # unplaced: the log bucket is unknown, report nothing
    for bucket, logs in index.missing(*_aws.LOGGING):
        with skip_unknown:  # an unknown value (preview) skips this one only
            if not logs and bucket.urn not in targets and not unplaced_targets:
                yield bucket, f"S3 bucket {bucket.name} must have access logging (BucketLogging)."


@stack_rule(
    id="LLMOPS-LOG-004",
    name="vpc-flow-logs",
    description="Checks whether every VPC has a flow log capturing ALL traffic.",
    severity="medium",
    remediation="Declare an aws.ec2.FlowLog with vpc_id set to the VPC and traffic_type 'ALL', to a "
    "KMS-encrypted log group.",
    anchors=anchors(
        "Checkov:CKV2_AWS_11",
        "CIS AWS 3.0:3.7",
        "PCI DSS 4.0:10.2.1",
        "ISO 27001:2022:A.8.16",
        "HIPAA:164.312(b)",
    ),
    levels=levels(D, A, M, M),
)
def vpc_flow_logs(stack: Stack, ctx: Ctx) -> Iterator[tuple[Res, str]]:
    vpcs = stack.of("aws:ec2/vpc:Vpc")
    covered: dict[str, str] = {}
    unresolved = False
    for log in stack.of("aws:ec2/flowLog:FlowLog"):
        state = "unknown"
        with skip_unknown:
            vpc = _aws.link(log, vpcs, "vpcId") if log.get("vpcId") else None
            state = "none" if not log.get("vpcId") else "linked" if vpc else "unknown"
            if vpc is not None:
                covered[vpc.urn] = str(log.get("trafficType", "ALL"))
        unresolved = unresolved or state == "unknown"
    for vpc in vpcs:
        traffic = covered.get(vpc.urn)
        if traffic is None and not unresolved:
            yield vpc, f"VPC {vpc.name} must have a flow log (aws.ec2.FlowLog with its vpcId)."
        elif traffic not in (None, "ALL"):
            yield vpc, f"VPC {vpc.name} must log ALL traffic, not only {traffic}."
