"""Tagging and classification: required tags (provider default tags or the resource's own) with a
data-classification that matches the stack's; recommended Kubernetes labels."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from ._k8s import NAMESPACE, WORKLOADS, k8s_name, label
from ._rule import CLASSIFICATIONS, TAG, A, Ctx, D, M, Res, anchors, levels, provider_tags, resource_rule

REQUIRED_TAGS = ["environment", TAG, "owner", "cost-center", "managed-by"]
# Taggable resource types the platform declares (tags come from the provider's default_tags).
TAGGABLE = (
    "aws:s3/bucket:Bucket",
    "aws:s3/bucketV2:BucketV2",
    "aws:kms/key:Key",
    "aws:eks/cluster:Cluster",
    "aws:eks/nodeGroup:NodeGroup",
    "aws:eks/addon:Addon",
    "aws:eks/accessEntry:AccessEntry",
    "aws:eks/podIdentityAssociation:PodIdentityAssociation",
    "aws:ec2/vpc:Vpc",
    "aws:ec2/subnet:Subnet",
    "aws:ec2/securityGroup:SecurityGroup",
    "aws:ec2/launchTemplate:LaunchTemplate",
    "aws:ec2/natGateway:NatGateway",
    "aws:ec2/eip:Eip",
    "aws:ec2/internetGateway:InternetGateway",
    "aws:ec2/routeTable:RouteTable",
    "aws:ec2/vpcEndpoint:VpcEndpoint",
    "aws:ec2/flowLog:FlowLog",
    "aws:ec2/instance:Instance",
    "aws:ebs/volume:Volume",
    "aws:cloudwatch/logGroup:LogGroup",
    "aws:cloudwatch/metricAlarm:MetricAlarm",
    "aws:cloudwatch/eventRule:EventRule",
    "aws:sns/topic:Topic",
    "aws:sqs/queue:Queue",
    "aws:lambda/function:Function",
    "aws:iam/role:Role",
    "aws:iam/policy:Policy",
    "aws:rds/instance:Instance",
    "aws:rds/cluster:Cluster",
    "aws:rds/subnetGroup:SubnetGroup",
    "aws:lb/loadBalancer:LoadBalancer",
    "aws:secretsmanager/secret:Secret",
    "aws:ecr/repository:Repository",
    "aws:budgets/budget:Budget",
    "aws:costexplorer/anomalyMonitor:AnomalyMonitor",
    "aws:dynamodb/table:Table",
    "aws:amp/workspace:Workspace",
)


@resource_rule(
    id="LLMOPS-TAG-001",
    name="required-tags",
    setting="llmops:tags",
    description="Checks whether every taggable AWS resource carries the required tags (from the provider's "
    "default tags or its own) and a data-classification no lower than the stack's.",
    severity="medium",
    remediation="Set the tags once, in the AWS provider's default_tags (StackSettings.default_tags()); never "
    "override data-classification per resource with a lower value.",
    anchors=anchors(
        "ISO 27001:2022:A.5.12",
        "ISO 27001:2022:A.5.13",
        "PCI DSS 4.0:12.5.1",
        "GDPR:Art. 30",
        "UAE:data classification (UAE IA Standard)",
    ),
    levels=levels(A, A, M, M),
    types=TAGGABLE,
    config={"requiredTags": {"type": "array", "items": {"type": "string"}, "default": REQUIRED_TAGS}},
)
def required_tags(res: Res, ctx: Ctx) -> Iterator[str]:
    own = res.get("tags") or {}
    defaults = provider_tags(res.provider_props)
    if defaults is None:
        return  # the provider's default tags are unknown during preview
    tags = {**defaults, **(dict(own) if isinstance(own, Mapping) else {})}
    missing = [t for t in ctx.cfg("requiredTags") if not tags.get(t)]
    if missing:
        yield f"{res.label} must carry tags: {', '.join(missing)}."
    value = tags.get(TAG)
    if value and value not in CLASSIFICATIONS:
        yield f"{res.label} must tag {TAG} with one of {', '.join(CLASSIFICATIONS)}."
    elif value and CLASSIFICATIONS.index(value) < CLASSIFICATIONS.index(ctx.classification):
        yield f"{res.label} must not be tagged {TAG}={value} in a {ctx.classification} stack."


REQUIRED_LABELS = ["app.kubernetes.io/name", "app.kubernetes.io/part-of"]


@resource_rule(
    id="LLMOPS-TAG-002",
    name="kubernetes-labels",
    description="Checks whether workloads carry the recommended app.kubernetes.io labels and namespaces a "
    "data-classification label, so NetworkPolicies, cost reports and audits can select them.",
    severity="low",
    remediation="Label workloads app.kubernetes.io/name and app.kubernetes.io/part-of: llmops; label each "
    "namespace data-classification: <the stack's classification>.",
    anchors=anchors("ISO 27001:2022:A.5.13", "ISO 27001:2022:A.5.9", "Kubernetes:recommended labels"),
    levels=levels(D, A, A, A),  # labels help selection and audit; their absence exposes nothing
    types=(*WORKLOADS, NAMESPACE),
    config={"requiredLabels": {"type": "array", "items": {"type": "string"}, "default": REQUIRED_LABELS}},
)
def k8s_labels(res: Res, ctx: Ctx) -> Iterator[str]:
    if res.type == NAMESPACE:
        if not label(res, TAG):
            yield f"Namespace {k8s_name(res)} must carry a {TAG} label."
        return
    missing = [key for key in ctx.cfg("requiredLabels") if not label(res, key)]
    if missing:
        yield f"{res.type.rsplit(':', 1)[-1]} {k8s_name(res)} must carry labels: {', '.join(missing)}."
