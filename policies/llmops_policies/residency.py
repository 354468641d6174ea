"""Data residency: every regional resource, every ARN it references, replication destinations and
multi-region keys stay within the stack's allowedRegions (empty allowedRegions: any region)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ._aws import region_of_arn
from ._rule import A, Ctx, D, M, Res, anchors, as_list, get, levels, resource_rule, walk

RESIDENCY = levels(D, A, M, M)
AZ = re.compile(r"^([a-z]{2}(?:-gov)?-[a-z]+-\d)[a-z]$")
# Residency anchors shared by the three rules.
ANCHORS = anchors(
    "GDPR:Art. 44",
    "UAE:PDPL (Federal Decree-Law 45/2021) Art. 22-23 cross-border transfer",
    "UAE:ICT Health Law (Federal Law 2/2019) Art. 13 health data kept in the UAE",
    "UAE:CBUAE / DFSA outsourcing and data location",
    "ISO 27001:2022:A.5.23",
)


def _regions(res: Res) -> Iterator[tuple[str, str]]:
    """(where, region) for the resource's region input, its provider's region, its AZ, and every ARN."""
    if res.type == "pulumi:providers:aws":
        region = res.get("region")
        if region:
            yield "provider region", str(region)
        return
    region = res.get("region")
    if isinstance(region, str) and region:
        yield "region", region
    if res.provider_props and isinstance(res.provider_props.get("region"), str):
        yield "provider region", res.provider_props["region"]
    for path, value in walk(res.props):
        if isinstance(value, str):
            arn_region = region_of_arn(value)
            if arn_region:
                yield path, arn_region
            elif (
                path.split(".")[-1] in ("availabilityZone", "availabilityZones")
                or ".availabilityZones." in path
            ):
                m = AZ.match(value)
                if m:
                    yield path, m.group(1)


@resource_rule(
    id="LLMOPS-RES-001",
    name="resources-in-allowed-regions",
    description="Checks whether every AWS resource, its provider, its availability zones and every ARN it "
    "references are in the stack's allowed regions.",
    severity="critical",
    remediation="Deploy in an allowed region (aws:region) and reference only keys, topics and buckets there; "
    "change allowedRegions in the policy config only with the data protection officer's approval.",
    anchors=ANCHORS,
    levels=levels(D, M, M, M),  # once allowedRegions is configured, leaving it is never an accident
    types=(),
)
def in_allowed_regions(res: Res, ctx: Ctx) -> Iterator[str]:
    if not ctx.allowed_regions or not (res.type.startswith("aws:") or res.type == "pulumi:providers:aws"):
        return
    seen = set()
    for where, region in _regions(res):
        if not ctx.region_allowed(region) and (where, region) not in seen:
            seen.add((where, region))
            yield f"{res.label} must stay in {', '.join(ctx.allowed_regions)}: {where} is {region}."


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
