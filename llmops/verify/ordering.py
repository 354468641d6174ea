"""Ordering: what AWS or Kubernetes validates when it is created waits for what it needs, so a first
`pulumi up` does not race (a notification before its queue policy, a NodePool before its CRD, pods
before their Pod Identity association or security group policy, a service before its role's
policies)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from llmops.verify.contracts import Finding, contract
from llmops.verify.model import PlanView, name_of, namespace_of, selects
from llmops.verify.permissions import deliveries, delivery_permission

# Deliveries AWS checks at creation: S3 refuses a notification configuration whose destination it
# cannot write to ("Unable to validate the following destination configurations",
# docs.aws.amazon.com/AmazonS3/latest/userguide/ways-to-add-notification-config-to-bucket.html);
# Budgets and Cost Anomaly Detection
# check that they may publish to their SNS subscribers (from memory: both refuse the subscriber).
VALIDATED_AT_CREATION = {
    "aws:s3/bucketNotification:BucketNotification",
    "aws:budgets/budget:Budget",
    "aws:costexplorer/anomalySubscription:AnomalySubscription",
}


# API groups every Kubernetes API server serves (kubernetes.io/docs/reference/using-api/#api-groups).
BUILTIN_GROUPS = {
    "apps",
    "batch",
    "policy",
    "autoscaling",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "node.k8s.io",
    "certificates.k8s.io",
    "apiregistration.k8s.io",
}


def _after(
    plan: PlanView, resource: str, needed: str, contract_id: str, why: str, fix: str
) -> Iterator[Finding]:
    if needed != resource and not plan.waits_for(resource, needed):
        yield Finding(
            contract_id, resource, needed, f"{resource} must be created after {needed}: {why}.", fix
        )


@contract(
    "ordering-delivery",
    "ordering",
    "Checks whether every delivery AWS validates at creation (S3 notifications, Budgets and Cost Anomaly "
    "subscribers) depends on the policy that allows it.",
)
def delivery_order(plan: PlanView) -> Iterator[Finding]:
    for source, service, target, _ in deliveries(plan):
        if source["type"] not in VALIDATED_AT_CREATION or target is None:
            continue
        permission = delivery_permission(plan, source, service, target)
        if permission is not None:
            yield from _after(
                plan,
                source["name"],
                permission["name"],
                "ordering-delivery",
                f"AWS validates that {service} may deliver to {target['name']} when {source['name']} is "
                "created",
                f"Add depends_on=[{permission['name']}].",
            )


@contract(
    "ordering-crd",
    "ordering",
    "Checks whether every custom resource depends on what installs its CRD.",
)
def crd_order(plan: PlanView) -> Iterator[Finding]:
    for obj in plan.k8s_objects:
        inputs = obj["inputs"]
        kind, api = inputs.get("kind"), inputs.get("apiVersion", "")
        if "/" not in api or api.split("/")[0] in BUILTIN_GROUPS:
            continue
        installer = plan.crd_installers.get((api, kind))
        if installer is None:
            yield Finding(
                "ordering-crd",
                obj["name"],
                f"CRD {kind}.{api}",
                f"{kind} {namespace_of(obj)}/{name_of(obj)} needs the {api} {kind} CRD, which nothing in "
                "the plan "
                "installs (and EKS does not serve).",
                "Install the chart that ships the CRD.",
            )
        elif installer != "EKS":
            yield from _after(
                plan,
                obj["name"],
                installer,
                "ordering-crd",
                f"the API server refuses a {kind} until {installer} has installed its CRD",
                f"Add depends_on=[{installer}].",
            )


@contract(
    "ordering-pod-identity",
    "ordering",
    "Checks whether every workload whose service account has a Pod Identity association, or whose pods a "
    "SecurityGroupPolicy selects, is created after the association and the policy.",
)
def identity_order(plan: PlanView) -> Iterator[Finding]:
    associations = {
        (a["inputs"].get("namespace"), a["inputs"].get("serviceAccount")): a["name"]
        for a in plan.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    }
    policies = plan.objects("SecurityGroupPolicy")
    for w in plan.workloads:
        if w.modelled:
            continue  # tenant pods come later, from the team's own deployments
        assoc = associations.get((w.namespace, w.service_account))
        if assoc:
            yield from _after(
                plan,
                w.resource,
                assoc,
                "ordering-pod-identity",
                f"pods of {w.label} started before the association get no AWS credentials until restarted",
                f"Add depends_on=[{assoc}].",
            )
        for policy in policies:
            spec = policy["inputs"].get("spec") or {}
            if namespace_of(policy) == w.namespace and selects(spec.get("podSelector"), w.labels):
                yield from _after(
                    plan,
                    w.resource,
                    policy["name"],
                    "ordering-pod-identity",
                    f"pods of {w.label} admitted before the SecurityGroupPolicy keep the node's security "
                    "groups",
                    f"Add depends_on=[{policy['name']}].",
                )


def _passed_role(resource: dict[str, Any]) -> str | None:
    inputs = resource.get("inputs") or {}
    return inputs.get("roleArn") or inputs.get("nodeRoleArn") or inputs.get("role")


@contract(
    "ordering-role-policies",
    "ordering",
    "Checks whether every EKS cluster, node group and Lambda function is created after the policies of the "
    "role it is given.",
)
def role_order(plan: PlanView) -> Iterator[Finding]:
    users = plan.of_type(
        "aws:eks/cluster:Cluster", "aws:eks/nodeGroup:NodeGroup", "aws:lambda/function:Function"
    )
    for user in users:
        role = plan.role_of(_passed_role(user))
        if role is None:
            continue
        for policy in plan.role_policies(role):
            yield from _after(
                plan,
                user["name"],
                policy["name"],
                "ordering-role-policies",
                f"{user['type'].rsplit(':', 1)[-1]} {user['name']} starts using role {role['name']} at "
                "creation "
                "(EKS creates ENIs, nodes join, Lambda checks its VPC and dead-letter access)",
                f"Add depends_on=[{policy['name']}].",
            )
