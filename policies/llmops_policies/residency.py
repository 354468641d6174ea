"""Data residency: every regional resource, every ARN it references, replication destinations and
multi-region keys stay within the stack's allowedRegions (empty allowedRegions: any region)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from ._aws import is_global_type, region_of_arn
from ._rule import A, Ctx, D, M, Res, anchors, as_list, get, json_doc, levels, resource_rule, walk

RESIDENCY = levels(D, A, M, M)
AZ = re.compile(r"^([a-z]{2}(?:-gov)?-[a-z]+-\d)[a-z]$")
# Paths that hold availability zones: availabilityZone, availabilityZones.<i>, placement.availabilityZone.
AZ_PATH = re.compile(r"(^|\.)availabilityZones?(\.\d+)?$")
PROVIDER = "pulumi:providers:aws"
# Residency anchors shared by the three rules.
ANCHORS = anchors(
    "GDPR:Art. 44",
    "UAE:PDPL (Federal Decree-Law 45/2021) Art. 22-23 cross-border transfer",
    "UAE:ICT Health Law (Federal Law 2/2019) Art. 13 health data kept in the UAE",
    "UAE:CBUAE / DFSA outsourcing and data location",
    "ISO 27001:2022:A.5.23",
)


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every scalar leaf with its path, reading into JSON documents held as strings (IAM, bucket,
    key and topic policies), so an ARN inside a policy statement is seen like any other."""
    for leaf_path, leaf in walk(value, path):
        if isinstance(leaf, str) and leaf.lstrip()[:1] in ("{", "["):
            doc = json_doc(leaf)
            if isinstance(doc, (dict, list)):
                yield from _leaves(doc, leaf_path)
                continue
        yield leaf_path, leaf


def _places(res: Res) -> Iterator[tuple[str, str, str]]:
    """(kind, where, region) for what places this resource: its own `region` input (pulumi-aws v7
    lets any regional resource override its provider's), else its provider's region; its
    availability zones; and every regional ARN it references. Global resources (IAM, Route 53,
    CloudFront, Budgets, ...) have no region of their own: only their references count."""
    if not is_global_type(res.type):
        own = res.get("region")
        if isinstance(own, str) and own:
            yield "region", "region", own
        elif res.provider_props and isinstance(res.provider_props.get("region"), str):
            yield "provider", "provider region", res.provider_props["region"]
    for path, value in _leaves(res.props):
        if not isinstance(value, str):
            continue
        arn_region = region_of_arn(value)
        if arn_region:
            yield "arn", path, arn_region
        elif AZ_PATH.search(path):
            m = AZ.match(value)
            if m:
                yield "az", path, m.group(1)


def _listing(paths: list[str], most: int = 3) -> str:
    shown = ", ".join(paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")


@resource_rule(
    id="LLMOPS-RES-001",
    name="resources-in-allowed-regions",
    setting=("aws:region", "llmops:allowedRegions"),
    description="Checks whether every regional AWS resource (by its own region input, else its "
    "provider's), its provider, its availability zones and every regional ARN it references, policy "
    "documents included, are in the stack's allowed regions. Global resources (IAM, Route 53, "
    "CloudFront, Budgets, Cost Explorer, Organizations) have no region; their references still count.",
    severity="critical",
    remediation="Deploy in an allowed region (aws:region), drop per-resource region overrides outside it, "
    "and reference only keys, topics and buckets there; change allowedRegions only with the data "
    "protection officer's approval.",
    anchors=ANCHORS,
    levels=levels(D, M, M, M),  # once allowedRegions is configured, leaving it is never an accident
    types=(),
)
def in_allowed_regions(res: Res, ctx: Ctx) -> Iterator[str]:
    if not ctx.allowed_regions or not (res.type.startswith("aws:") or res.type == PROVIDER):
        return
    allowed = ", ".join(ctx.allowed_regions)
    if res.type == PROVIDER:
        region = res.get("region")
        if region and not ctx.region_allowed(str(region)):
            yield f"AWS provider {res.name} must deploy to {allowed}: its region is {region}."
        return
    # One message per resource, each reason once: the resource's own region, else its provider's,
    # then its zones and references grouped by region.
    reasons: list[str] = []
    refs: dict[tuple[str, str], list[str]] = {}
    for kind, where, region in _places(res):
        if ctx.region_allowed(region):
            continue
        if kind == "region":
            reasons.append(f"its region input is {region} (overriding its provider's region)")
        elif kind == "provider":
            reasons.append(f"its provider's region is {region}")
        else:
            paths = refs.setdefault((kind, region), [])
            if where not in paths:
                paths.append(where)
    for (kind, region), paths in refs.items():
        one = len(paths) == 1
        verb = ("is in" if one else "are in") if kind == "az" else ("references" if one else "reference")
        reasons.append(f"{_listing(paths)} {verb} {region}")
    if reasons:
        yield f"{res.label} must stay in {allowed}: {'; '.join(reasons)}."


@resource_rule(
    id="LLMOPS-RES-002",
    name="replication-within-allowed-regions",
    description="Checks whether S3 replication, Secrets Manager replicas, KMS replica keys, DynamoDB "
    "replicas and "
    "ECR replication target only allowed regions.",
    severity="critical",
    remediation="Remove the out-of-region destination, or replicate to a second allowed region.",
    anchors=ANCHORS,
    levels=RESIDENCY,
    types=(
        "aws:s3/bucketReplicationConfig:BucketReplicationConfig",
        "aws:secretsmanager/secret:Secret",
        "aws:kms/replicaKey:ReplicaKey",
        "aws:dynamodb/table:Table",
        "aws:ecr/replicationConfiguration:ReplicationConfiguration",
    ),
)
def replication_regions(res: Res, ctx: Ctx) -> Iterator[str]:
    if not ctx.allowed_regions:
        return
    targets: list[str] = []
    if res.type.startswith("aws:s3/"):
        for rule in as_list(res.get("rules")):
            targets += [region_of_arn(get(rule, "destination.encryptionConfiguration.replicaKmsKeyId")) or ""]
            targets += [region_of_arn(get(rule, "destination.bucket")) or ""]
    elif res.type.startswith("aws:secretsmanager/"):
        targets += [str(get(r, "region", "")) for r in as_list(res.get("replicas"))]
    elif res.type.startswith("aws:kms/"):
        targets += [str(res.get("region") or (res.provider_props or {}).get("region") or "")]
    elif res.type.startswith("aws:dynamodb/"):
        targets += [str(get(r, "regionName", "")) for r in as_list(res.get("replicas"))]
    else:
        for rule in as_list(res.get("replicationConfiguration.rules")):
            targets += [str(get(d, "region", "")) for d in as_list(get(rule, "destinations"))]
    for region in targets:
        if region and not ctx.region_allowed(region):
            yield f"{res.label} must not replicate to {region} (allowed: {', '.join(ctx.allowed_regions)})."


@resource_rule(
    id="LLMOPS-RES-003",
    name="kms-keys-single-region",
    description="Checks whether KMS keys are single-region when the stack restricts regions, since a "
    "multi-region "
    "key can be replicated out of the allowed regions later without touching this stack.",
    severity="high",
    remediation="Set multi_region False (the default).",
    anchors=ANCHORS,
    levels=RESIDENCY,
    types=("aws:kms/key:Key",),
)
def kms_single_region(res: Res, ctx: Ctx) -> Iterator[str]:
    if ctx.allowed_regions and res.get("multiRegion") in (True, "true"):
        yield f"KMS key {res.name} must not be multi-region while allowedRegions is set."
