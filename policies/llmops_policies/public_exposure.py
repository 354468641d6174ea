"""Public exposure: bucket access blocks, ACLs and policies, the EKS endpoint, load balancers and
Services, public IPs, and ingress from the whole internet."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from . import _aws
from ._k8s import INGRESS, SERVICE, where
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
    truthy,
)

WORLD = ("0.0.0.0/0", "::/0")
PUBLIC_ACLS = ("public-read", "public-read-write", "authenticated-read")
PUBLIC_GRANTEES = (
    "http://acs.amazonaws.com/groups/global/AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
)
PAB_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
EXPOSURE = levels(A, M, M, M)


def _is_world(cidr: object) -> bool:
    try:
        return ipaddress.ip_network(str(cidr), strict=False).prefixlen == 0
    except ValueError:
        return False


@stack_rule(
    id="LLMOPS-PUB-001",
    name="s3-public-access-blocked",
    description="Checks whether every S3 bucket has a public access block with all four settings on.",
    severity="critical",
    remediation="Declare an aws.s3.BucketPublicAccessBlock for the bucket with block_public_acls, "
    "block_public_policy, ignore_public_acls and restrict_public_buckets all True.",
    anchors=anchors(
        "Checkov:CKV2_AWS_6",
        "CIS AWS 3.0:2.1.4",
        "PCI DSS 4.0:1.4.1",
        "ISO 27001:2022:A.8.20",
        "GDPR:Art. 32",
    ),
    levels=EXPOSURE,
)
def s3_public_access_block(stack: Stack, ctx: Ctx) -> Iterator[tuple[Res, str]]:
    for bucket, blocks in _aws.BucketIndex(stack).missing(_aws.PUBLIC_ACCESS_BLOCK):
        with skip_unknown:  # an unknown value (preview) skips this one only
            if not blocks:
                yield (
                    bucket,
                    f"S3 bucket {bucket.name} must have a BucketPublicAccessBlock with all four settings "
                    f"true.",
                )
            for block in blocks:
                off = [f for f in PAB_FLAGS if not truthy(block.get(f, False))]
                if off:
                    yield (
                        block,
                        f"S3 bucket {bucket.name} must block public access: {', '.join(off)} must be true.",
                    )


@resource_rule(
    id="LLMOPS-PUB-002",
    name="s3-no-public-acl-or-policy",
    description="Checks whether bucket ACLs grant nothing to everyone and bucket policies allow no "
    "anonymous principal.",
    severity="critical",
    remediation="Use ownership BucketOwnerEnforced (ACLs off) and grant access to named roles in the bucket "
    "policy; never Principal '*' without a restricting condition.",
    anchors=anchors(
        "Checkov:CKV_AWS_20",
        "Checkov:CKV_AWS_57",
        "Checkov:CKV2_AWS_65",
        "PCI DSS 4.0:1.4.1",
        "ISO 27001:2022:A.5.15",
    ),
    levels=EXPOSURE,
    types=(*_aws.BUCKET_ACL, _aws.BUCKET_POLICY),
)
def s3_no_public_acl(res: Res, ctx: Ctx) -> Iterator[str]:
    if res.type == _aws.BUCKET_POLICY:
        for st in _aws.allow_statements(res.get("policy")):
            anyone = any(kind == "*" or value == "*" for kind, value in _aws.principals(st))
            if anyone and not st.get("Condition"):
                yield f"Bucket policy {res.name} must not allow Principal '*' without a condition."
        return
    if res.get("acl") in PUBLIC_ACLS:
        yield f"Bucket ACL {res.name} must not be {res.get('acl')}."
    for grant in as_list(res.get("accessControlPolicy.grants")):
        if get(grant, "grantee.uri") in PUBLIC_GRANTEES:
            yield f"Bucket ACL {res.name} must not grant {get(grant, 'permission')} to everyone."


@resource_rule(
    id="LLMOPS-PUB-003",
    name="eks-endpoint-not-open-to-internet",
    setting=("llmops:cluster.endpointPublicAccess", "llmops:cluster.publicAccessCidrs"),
    description="Checks whether a public EKS API endpoint is limited to an allowlist of CIDRs that excludes "
    "0.0.0.0/0.",
    severity="critical",
    remediation="Keep endpoint_public_access False, or list your own ranges in public_access_cidrs "
    "(AWS defaults an empty list to 0.0.0.0/0).",
    anchors=anchors("Checkov:CKV_AWS_38", "CIS EKS:5.4.2", "PCI DSS 4.0:1.3.1", "ISO 27001:2022:A.8.20"),
    levels=levels(M, M, M, M),
    types=("aws:eks/cluster:Cluster",),
)
def eks_endpoint_cidrs(res: Res, ctx: Ctx) -> Iterator[str]:
    public = res.get("vpcConfig.endpointPublicAccess", True)  # the EKS API default is public
    if not truthy(public):
        return
    cidrs = as_list(res.get("vpcConfig.publicAccessCidrs"))
    if not cidrs or any(_is_world(c) for c in cidrs):
        yield f"EKS cluster {res.name} must restrict its public endpoint to an allowlist without 0.0.0.0/0."


@resource_rule(
    id="LLMOPS-PUB-004",
    name="eks-endpoint-private",
    setting="llmops:cluster.endpointPublicAccess",
    description="Checks whether the EKS API endpoint is private only (reached through the VPC).",
    severity="high",
    remediation="Set vpc_config.endpoint_public_access False and endpoint_private_access True; reach the API "
    "through a VPN, a bastion or CI runners in the VPC.",
    anchors=anchors(
        "Checkov:CKV_AWS_39",
        "AWS FSBP:EKS.1",
        "CIS EKS:5.4.2",
        "PCI DSS 4.0:1.4.1",
        "UAE:no internet exposure of regulated systems",
    ),
    levels=levels(D, A, M, M),
    types=("aws:eks/cluster:Cluster",),
)
def eks_endpoint_private(res: Res, ctx: Ctx) -> Iterator[str]:
    if truthy(res.get("vpcConfig.endpointPublicAccess", True)):
        yield f"EKS cluster {res.name} must have endpointPublicAccess false."
    elif not truthy(res.get("vpcConfig.endpointPrivateAccess", False)):
        yield f"EKS cluster {res.name} must have endpointPrivateAccess true."


@resource_rule(
    id="LLMOPS-PUB-005",
    name="load-balancers-internal",
    description="Checks whether AWS load balancers, LoadBalancer Services and ALB Ingresses are internal, "
    "not internet-facing.",
    severity="critical",
    remediation="aws.lb.LoadBalancer: internal=True. Service type LoadBalancer: annotate "
    "service.beta.kubernetes.io/aws-load-balancer-scheme: internal. Ingress: "
    "alb.ingress.kubernetes.io/scheme: internal.",
    anchors=anchors(
        "PCI DSS 4.0:1.3.1",
        "ISO 27001:2022:A.8.20",
        "ISO 27001:2022:A.8.22",
        "GDPR:Art. 32",
        "UAE:no internet exposure of regulated systems",
    ),
    levels=EXPOSURE,
    types=("aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer", SERVICE, INGRESS),
)
def lb_internal(res: Res, ctx: Ctx) -> Iterator[str]:
    if res.type.startswith("aws:"):
        if not truthy(res.get("internal", False)):
            yield f"Load balancer {res.name} must be internal (internal true)."
        return
    notes = res.get("metadata.annotations") or {}
    if res.type == INGRESS:
        if notes.get("alb.ingress.kubernetes.io/scheme") == "internet-facing":
            yield f"{where(res)} must not be internet-facing (alb.ingress.kubernetes.io/scheme: internal)."
        return
    if res.get("spec.type") != "LoadBalancer":
        return
    scheme = notes.get("service.beta.kubernetes.io/aws-load-balancer-scheme")
    legacy_internal = truthy(notes.get("service.beta.kubernetes.io/aws-load-balancer-internal", False))
    if scheme == "internet-facing" or (scheme != "internal" and not legacy_internal):
        yield f"{where(res)} must be an internal load balancer (aws-load-balancer-scheme: internal)."


@resource_rule(
    id="LLMOPS-PUB-006",
    name="no-public-ip-addresses",
    description="Checks whether instances, launch templates, subnets and databases avoid public IP "
    "addresses, and a NAT instance (a network interface forwarding traffic, with its Elastic IP) appears "
    "only in public and internal stacks.",
    severity="high",
    remediation="Launch nodes in private subnets: associate_public_ip_address False, map_public_ip_on_launch "
    "False, publicly_accessible False. NAT gateways keep their Elastic IPs, and so does a NAT instance's "
    "network interface in public and internal stacks (network.natGateways instance); confidential and "
    "regulated stacks use NAT gateways. Nothing else needs one.",
    anchors=anchors(
        "Checkov:CKV_AWS_88",
        "Checkov:CKV_AWS_130",
        "Checkov:CKV_AWS_17",
        "CIS AWS 3.0:2.3.3",
        "PCI DSS 4.0:1.4.4",
    ),
    levels=EXPOSURE,
    types=(
        "aws:ec2/instance:Instance",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "aws:ec2/subnet:Subnet",
        "aws:rds/instance:Instance",
        "aws:rds/cluster:Cluster",
        "aws:ec2/networkInterface:NetworkInterface",
        "aws:ec2/eip:Eip",
    ),
)
def no_public_ip(res: Res, ctx: Ctx) -> Iterator[str]:
    # A NAT instance forwards from an interface with source/destination check off and an Elastic
    # IP on that interface: accepted where the data is public or internal only.
    nat_allowed = ctx.classification in ("public", "internal")
    if res.type == "aws:ec2/networkInterface:NetworkInterface":
        if res.get("sourceDestCheck", True) is False and not nat_allowed:
            yield (
                f"Network interface {res.name} forwards traffic (sourceDestCheck false): a NAT instance is "
                f"not allowed in a {ctx.classification} stack."
            )
    elif res.type == "aws:ec2/eip:Eip":
        if res.get("instance"):
            yield f"Elastic IP {res.name} must not give instance {res.get('instance')} a public address."
        elif res.get("networkInterface") and not nat_allowed:
            yield (
                f"Elastic IP {res.name} gives network interface {res.get('networkInterface')} a public "
                f"address: not allowed in a {ctx.classification} stack."
            )
    elif res.type == "aws:ec2/subnet:Subnet":
        if truthy(res.get("mapPublicIpOnLaunch", False)):
            yield f"Subnet {res.name} must not map public IPs on launch."
    elif res.type.startswith("aws:rds/"):
        if truthy(res.get("publiclyAccessible", False)):
            yield f"RDS database {res.name} must not be publicly accessible."
    elif res.type == "aws:ec2/instance:Instance":
        if truthy(res.get("associatePublicIpAddress", False)):
            yield f"Instance {res.name} must not have a public IP address."
    else:
        for nic in as_list(res.get("networkInterfaces")):
            if truthy(get(nic, "associatePublicIpAddress", False)):
                yield f"Launch template {res.name} must not associate public IP addresses."


@resource_rule(
    id="LLMOPS-PUB-007",
    name="no-ingress-from-internet",
    description="Checks whether security groups admit no traffic from 0.0.0.0/0 or ::/0.",
    severity="critical",
    remediation="Admit only the security groups or private CIDRs that need the port; internal load balancers "
    "and VPC endpoints never need the whole internet.",
    anchors=anchors(
        "Checkov:CKV_AWS_24", "Checkov:CKV_AWS_260", "CIS AWS 3.0:5.2", "CIS AWS 3.0:5.3", "PCI DSS 4.0:1.3.1"
    ),
    levels=EXPOSURE,
    types=(
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:ec2/securityGroupRule:SecurityGroupRule",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    ),
)
def no_world_ingress(res: Res, ctx: Ctx) -> Iterator[str]:
    if res.type == "aws:ec2/securityGroup:SecurityGroup":
        rules = as_list(res.get("ingress"))
    elif res.type == "aws:ec2/securityGroupRule:SecurityGroupRule":
        rules = [res.props] if res.get("type") == "ingress" else []
    else:
        rules = [
            {
                "cidrBlocks": [res.get("cidrIpv4")],
                "ipv6CidrBlocks": [res.get("cidrIpv6")],
                "fromPort": res.get("fromPort"),
            }
        ]
    for rule in rules:
        cidrs = as_list(get(rule, "cidrBlocks")) + as_list(get(rule, "ipv6CidrBlocks"))
        if any(c in WORLD or _is_world(c) for c in cidrs if c):
            yield (
                f"Security group {res.name} must not admit {get(rule, 'fromPort', 'all ports')} from the "
                "internet."
            )
