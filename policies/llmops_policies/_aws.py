"""AWS helpers shared by the rule modules: v7 bucket sub-resources, IAM documents, ARNs."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from ._rule import Res, Stack, as_list, json_doc, skip_unknown

__all__ = ["Res", "link"]

BUCKET_TYPES = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
SSE_V2 = "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2"
VERSIONING = ("aws:s3/bucketVersioning:BucketVersioning", "aws:s3/bucketVersioningV2:BucketVersioningV2")
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
LOGGING = ("aws:s3/bucketLogging:BucketLogging", "aws:s3/bucketLoggingV2:BucketLoggingV2")
OBJECT_LOCK = (
    "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
    "aws:s3/bucketObjectLockConfigurationV2:BucketObjectLockConfigurationV2",
)
LIFECYCLE = (
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2",
)
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
BUCKET_ACL = ("aws:s3/bucketAcl:BucketAcl", "aws:s3/bucketAclV2:BucketAclV2")
OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"

ARN_REGION = re.compile(r"^arn:aws[a-z-]*:([a-z0-9-]+):([a-z]{2}(?:-gov)?-[a-z]+-\d):")
# The prompt-store component: llmops:prompts:PromptStore (or any llmops area naming prompts).
PROMPT_STORE_COMPONENT = re.compile(r"^llmops:([^:]*prompt[^:]*:[^:]+|[^:]+:PromptStore)$", re.IGNORECASE)


def _keys(res: Res) -> set[str]:
    keys = {res.name}
    for prop in ("bucket", "id", "arn", "name"):
        with skip_unknown:
            value = res.get(prop)
            if isinstance(value, str) and value:
                keys.add(value)
    return keys


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def link(sub: Res, candidates: list[Res], prop: str, exact: bool = False) -> Res | None:
    """The candidate that `sub`'s `prop` input (e.g. a BucketVersioning's `bucket`) refers to.

    In order: the engine's property dependencies; the input equal to a candidate's logical name,
    id, ARN, `bucket` or `name`; `sub`'s parent; then, for offline plans whose mocks record no ids,
    the candidate whose logical name prefixes `sub`'s, the candidate sharing `sub`'s parent (the
    longest common name prefix when several do), or the only candidate. Raises UnknownValueError
    when the input is unknown (preview), so callers skip rather than guess. `exact` stops
    after the value match (for references that are not "the thing I configure").
    """
    by_urn = {c.urn: c for c in candidates}
    for dep in sub.deps.get(prop, []):
        if dep.urn in by_urn:
            return dep
    value = sub.get(prop)
    if isinstance(value, str):
        bare = value.removeprefix("arn:aws:s3:::")
        for cand in candidates:
            keys = _keys(cand)
            if value in keys or bare in keys:
                return cand
    if exact:
        return None
    if sub.parent is not None and sub.parent.urn in by_urn:
        return sub.parent
    prefixed = [c for c in candidates if sub.name.startswith(c.name + "-")]
    if prefixed:
        return max(prefixed, key=lambda c: len(c.name))
    siblings = [
        c
        for c in candidates
        if sub.parent is not None and c.parent is not None and c.parent.urn == sub.parent.urn
    ]
    if siblings:
        return max(siblings, key=lambda c: _common_prefix(c.name, sub.name))
    return candidates[0] if len(candidates) == 1 else None


class BucketIndex:
    """Links v7's separate bucket configuration resources to their bucket (see `link`).

    A configuration whose bucket is unknown (preview) or unplaceable makes "missing" verdicts
    unsafe, so `missing` then reports only buckets that do have configurations.
    """

    def __init__(self, stack: Stack):
        self.buckets = stack.of(*BUCKET_TYPES)
        self.stack = stack

    def bucket_of(self, sub: Res) -> Res | None:
        return link(sub, self.buckets, "bucket")

    def configs(self, *types: str) -> tuple[dict[str, list[Res]], int]:
        """{bucket urn: [configurations of these types]} and how many could not be placed."""
        found: dict[str, list[Res]] = {b.urn: [] for b in self.buckets}
        unresolved = 0
        for sub in self.stack.of(*types):
            bucket = None
            with skip_unknown:
                bucket = self.bucket_of(sub)
            if bucket is None:
                unresolved += 1
            else:
                found[bucket.urn].append(sub)
        return found, unresolved

    def missing(self, *types: str) -> Iterator[tuple[Res, list[Res]]]:
        """(bucket, its configurations) for every bucket; buckets without any are yielded with []
        only when every configuration of these types could be placed."""
        found, unresolved = self.configs(*types)
        for bucket in self.buckets:
            subs = found[bucket.urn]
            if subs or unresolved == 0:
                yield bucket, subs

    def log_targets(self) -> tuple[set[str], bool]:
        """URNs of buckets that receive access logs, and whether some target could not be placed."""
        targets: set[str] = set()
        unplaced = False
        for log in self.stack.of(*LOGGING):
            target = None
            with skip_unknown:
                target = link(log, self.buckets, "targetBucket", exact=True)
            if target is None:
                unplaced = True
            else:
                targets.add(target.urn)
        return targets, unplaced

    def prompt_store_buckets(self) -> list[Res]:
        """Buckets declared inside the prompt-store component (type llmops:prompts:PromptStore), except
        its access-log bucket (S3 refuses Object Lock retention on log targets)."""
        targets, _ = self.log_targets()
        return [
            b
            for b in self.buckets
            if b.urn not in targets and any(PROMPT_STORE_COMPONENT.match(a.type) for a in b.ancestors())
        ]


# ---------------------------------------------------------------- IAM documents


def statements(document: Any) -> list[Mapping[str, Any]]:
    doc = json_doc(document)
    if not isinstance(doc, Mapping):
        return []
    return [s for s in as_list(doc.get("Statement")) if isinstance(s, Mapping)]


def allow_statements(document: Any) -> list[Mapping[str, Any]]:
    return [s for s in statements(document) if s.get("Effect", "Allow") == "Allow"]


def principals(statement: Mapping[str, Any]) -> list[tuple[str, str]]:
    """[(kind, value)]: ("*", "*") for a bare "*", else ("AWS"|"Service"|"Federated", value)."""
    principal = statement.get("Principal")
    if principal == "*":
        return [("*", "*")]
    out = []
    if isinstance(principal, Mapping):
        for kind in principal:
            out += [(kind, str(v)) for v in as_list(principal[kind])]
    return out


# ---------------------------------------------------------------- regions

# pulumi-aws modules whose resources live in no region (their API is global, whatever the
# provider's region): IAM, Route 53 (hosted zones, records, health checks; its Resolver and Profiles
# are regional), CloudFront, Budgets, Cost Explorer, Organizations, and a few more global services.
GLOBAL_MODULES = frozenset(
    {
        "iam",
        "route53",
        "route53domains",
        "cloudfront",
        "budgets",
        "costexplorer",
        "organizations",
        "globalaccelerator",
        "waf",
    }
)
REGIONAL_ROUTE53 = ("resolver", "profiles")
# ARN service namespaces of global services. Their real ARNs carry no region
# (arn:aws:iam::123456789012:role/x); one that does is a fake (offline mocks name Cost Explorer ARNs
# after the module, costexplorer) and says nothing about where data lives.
GLOBAL_ARN_SERVICES = GLOBAL_MODULES | {"sts", "ce"}


def is_global_type(rtype: str) -> bool:
    """Whether a pulumi-aws type token names a global resource (no region of its own)."""
    module_path = rtype.split(":")[1] if rtype.count(":") >= 2 else ""
    module, _, kind = module_path.partition("/")
    if not rtype.startswith("aws:") or module not in GLOBAL_MODULES:
        return False
    return not (module == "route53" and kind.startswith(REGIONAL_ROUTE53))


def region_of_arn(value: Any) -> str | None:
    """The region an ARN's resource lives in; None for region-less ARNs (S3 buckets, IAM) and for ARNs
    of global services (including WAFv2's CloudFront scope, arn:aws:wafv2:us-east-1:...:global/...)."""
    if isinstance(value, str):
        m = ARN_REGION.match(value)
        if m and m.group(1) not in GLOBAL_ARN_SERVICES:
            rest = value[m.end() :]
            if m.group(1) == "wafv2" and rest.partition(":")[2].startswith("global/"):
                return None
            return m.group(2)
    return None
