"""Network: default-deny NetworkPolicies where classified data flows, named peers only, VPC endpoints."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from ._k8s import NETWORK_POLICY, WORKLOADS, k8s_name, namespace
from ._rule import (
    A,
    Ctx,
    D,
    M,
    Res,
    Stack,
    anchors,
    as_list,
    get,
    levels,
    resource_rule,
    skip_unknown,
    stack_rule,
)

SYSTEM_NAMESPACES = ["kube-system", "kube-public", "kube-node-lease"]


def _is_default_deny(policy: Res) -> bool:
    selector = policy.get("spec.podSelector") or {}
    empty = not get(selector, "matchLabels") and not get(selector, "matchExpressions")
    types = as_list(policy.get("spec.policyTypes"))
    return empty and "Ingress" in types and not as_list(policy.get("spec.ingress"))


@stack_rule(
    id="LLMOPS-NET-001",
    name="namespace-default-deny",
    description="Checks whether every namespace that runs workloads has a default-deny ingress NetworkPolicy "
    "(empty podSelector, policyTypes Ingress, no rules), so only explicitly allowed traffic reaches pods.",
    severity="high",
    remediation="Add a NetworkPolicy with podSelector {} and policyTypes [Ingress] to the namespace, then "
    "one "
    "allow policy per client (e.g. the gateway to vLLM, labelled clients to Qdrant).",
    anchors=anchors(
        "CIS EKS:4.3.2", "PCI DSS 4.0:1.3.1", "ISO 27001:2022:A.8.22", "HIPAA:164.312(e)(1)", "GDPR:Art. 32"
    ),
    levels=levels(D, A, M, M),
    config={"exemptNamespaces": {"type": "array", "items": {"type": "string"}, "default": SYSTEM_NAMESPACES}},
)
def default_deny(stack: Stack, ctx: Ctx) -> Iterator[tuple[Res, str]]:
    denied: set[str] = set()
    for policy in stack.of(NETWORK_POLICY):
        decided = False
        with skip_unknown:
            if _is_default_deny(policy):
                denied.add(namespace(policy))
            decided = True
        if not decided:  # an unknown policy might be the default deny: do not judge its namespace
            with skip_unknown:
                denied.add(namespace(policy))
    exempt = set(as_list(ctx.cfg("exemptNamespaces")))
    reported: set[str] = set()
    for workload in stack.of(*WORKLOADS):
        with skip_unknown:
            ns = namespace(workload)
            if ns not in denied and ns not in exempt and ns not in reported:
                reported.add(ns)
                yield (
                    workload,
                    f"Namespace {ns} (of {k8s_name(workload)}) must have a default-deny ingress "
                    f"NetworkPolicy.",
                )


@resource_rule(
    id="LLMOPS-NET-002",
    name="networkpolicy-names-its-peers",
    description="Checks whether NetworkPolicy allow rules name their peers (no empty 'from', no 0.0.0.0/0 "
    "ipBlock).",
    severity="medium",
    remediation="List podSelector / namespaceSelector peers (e.g. pods labelled qdrant-client: 'true') in "
    "every ingress rule; an empty from admits every pod in the cluster.",
    anchors=anchors("PCI DSS 4.0:1.3.1", "ISO 27001:2022:A.8.22", "CIS EKS:4.3.2"),
    levels=levels(D, A, M, M),
    types=(NETWORK_POLICY,),
)
def networkpolicy_peers(res: Res, ctx: Ctx) -> Iterator[str]:
    for i, rule in enumerate(as_list(res.get("spec.ingress"))):
        peers = as_list(get(rule, "from"))
        if not peers:
            yield f"NetworkPolicy {k8s_name(res)} ingress rule {i} must name its peers (from is empty)."
        for peer in peers:
            if isinstance(peer, Mapping) and get(peer, "ipBlock.cidr") in ("0.0.0.0/0", "::/0"):
                yield f"NetworkPolicy {k8s_name(res)} ingress rule {i} must not admit 0.0.0.0/0."


DEFAULT_ENDPOINTS = ["s3", "sts", "ecr.api", "ecr.dkr"]


@stack_rule(
    id="LLMOPS-NET-003",
    name="vpc-endpoints-present",
    setting="llmops:network.interfaceEndpoints",
    description="Checks whether each VPC has endpoints for the AWS services nodes call (S3, STS, ECR by "
    "default), so that traffic to AWS stays on the AWS network.",
    severity="medium",
    remediation="Add an S3 gateway endpoint and interface endpoints (private DNS on) for sts, ecr.api, "
    "ecr.dkr "
    "and every service listed in network.interfaceEndpoints.",
    anchors=anchors(
        "PCI DSS 4.0:1.4.1",
        "ISO 27001:2022:A.8.21",
        "HIPAA:164.312(e)(1)",
        "UAE:regulated traffic kept off the internet",
    ),
    levels=levels(D, A, M, M),
    config={
        "requiredEndpoints": {"type": "array", "items": {"type": "string"}, "default": DEFAULT_ENDPOINTS}
    },
)
def vpc_endpoints(stack: Stack, ctx: Ctx) -> Iterator[tuple[Res, str]]:
    services: set[str] = set()
    unknown = False
    for endpoint in stack.of("aws:ec2/vpcEndpoint:VpcEndpoint"):
        unknown = True
        with skip_unknown:
            name = str(endpoint.get("serviceName", ""))
            # com.amazonaws.<region>.<service>, where service may contain dots (ecr.api)
            parts = name.split(".")
            services.add(".".join(parts[3:]) if name.startswith("com.amazonaws.") else name)
            unknown = False
        if unknown:
            return
    for vpc in stack.of("aws:ec2/vpc:Vpc"):
        missing = [s for s in as_list(ctx.cfg("requiredEndpoints")) if s not in services]
        if missing:
            yield vpc, f"VPC {vpc.name} must have VPC endpoints for: {', '.join(missing)}."
