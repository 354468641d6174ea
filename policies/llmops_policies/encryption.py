"""Encryption at rest and in transit: S3 (v7's separate SSE resources), EKS secrets, KMS, logs,
SNS, SQS, EBS, RDS, Secrets Manager, StorageClasses."""

from __future__ import annotations

from collections.abc import Iterator

from . import _aws
from ._k8s import EC2_NODECLASS, STORAGE_CLASS
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

ENC_LEVELS = levels(A, M, M, M)  # encryption costs nothing in the way of a dev stack
KMS_ALGOS = ("aws:kms", "aws:kms:dsse")


@stack_rule(
    id="LLMOPS-ENC-001",
    name="s3-bucket-encrypted-with-customer-key",
    description="Checks whether every S3 bucket has a server-side encryption configuration using SSE-KMS "
    "with a customer-managed key (pulumi-aws v7 declares it as a separate resource). S3 server "
    "access-log target buckets may use SSE-S3 (AES256) instead: S3 cannot deliver access logs to a "
    "bucket whose default encryption is SSE-KMS.",
    severity="high",
    remediation="Declare an aws.s3.BucketServerSideEncryptionConfiguration for the bucket with "
    "sse_algorithm 'aws:kms', kms_master_key_id set to the platform's customer-managed key and "
    "bucket_key_enabled True.",
    anchors=anchors(
        "Checkov:CKV_AWS_145",
        "PCI DSS 4.0:3.5.1",
        "ISO 27001:2022:A.8.24",
        "HIPAA:164.312(a)(2)(iv)",
        "GDPR:Art. 32(1)(a)",
        "UAE:encryption at rest of regulated data (CBUAE, DHA)",
    ),
    levels=ENC_LEVELS,
)
def s3_encrypted(stack: Stack, ctx: Ctx) -> Iterator[tuple[Res, str]]:
    index = _aws.BucketIndex(stack)
    # docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html
    log_targets, _ = index.log_targets()
    for bucket, configs in index.missing(_aws.SSE, _aws.SSE_V2):
        with skip_unknown:  # an unknown value (preview) skips this one only
            if not configs:
                yield (
                    bucket,
                    f"S3 bucket {bucket.name} must have a BucketServerSideEncryptionConfiguration using "
                    f"aws:kms.",
                )
            for cfg in configs:
                rules = as_list(cfg.get("rules"))
                algos = [get(r, "applyServerSideEncryptionByDefault.sseAlgorithm") for r in rules]
                keys = [get(r, "applyServerSideEncryptionByDefault.kmsMasterKeyId") for r in rules]
                if bucket.urn in log_targets and "AES256" in algos:
                    continue
                if not any(a in KMS_ALGOS for a in algos):
                    yield (
                        cfg,
                        f"S3 bucket {bucket.name} must be encrypted with aws:kms, not {algos or 'nothing'}.",
                    )
                elif not any(keys):
                    yield (
                        cfg,
                        f"S3 bucket {bucket.name} must name a customer-managed KMS key (kmsMasterKeyId).",
                    )


@stack_rule(
    id="LLMOPS-ENC-002",
    name="s3-bucket-tls-only",
    description="Checks whether every S3 bucket has a bucket policy that denies requests without TLS "
    "(aws:SecureTransport false).",
    severity="medium",
    remediation="Attach an aws.s3.BucketPolicy with a Deny statement for all principals and s3:* when "
    "Condition Bool aws:SecureTransport is false.",
    anchors=anchors(
        "AWS FSBP:S3.5",
        "CIS AWS 3.0:2.1.1",
        "PCI DSS 4.0:4.2.1",
        "HIPAA:164.312(e)(1)",
        "ISO 27001:2022:A.8.24",
    ),
    levels=ENC_LEVELS,
)
def s3_tls_only(stack: Stack, ctx: Ctx) -> Iterator[tuple[Res, str]]:
    index = _aws.BucketIndex(stack)
    for bucket, policies in index.missing(_aws.BUCKET_POLICY):
        with skip_unknown:  # an unknown value (preview) skips this one only
            denies = False
            for policy in policies:
                for st in _aws.statements(policy.get("policy")):
                    cond = st.get("Condition") or {}
                    secure = get(cond, "Bool") or {}
                    if (
                        st.get("Effect") == "Deny"
                        and str(secure.get("aws:SecureTransport", "")).lower() == "false"
                    ):
                        denies = True
            if not denies:
                yield (
                    bucket,
                    f"S3 bucket {bucket.name} must have a bucket policy denying aws:SecureTransport false.",
                )


@resource_rule(
    id="LLMOPS-ENC-003",
    name="eks-secrets-encrypted",
    description="Checks whether the EKS cluster encrypts Kubernetes Secrets with a KMS key (envelope "
    "encryption).",
    severity="high",
    remediation="Set encryption_config with resources ['secrets'] and provider.key_arn of a "
    "customer-managed key.",
    anchors=anchors(
        "Checkov:CKV_AWS_58",
        "CIS EKS:5.3.1",
        "AWS FSBP:EKS.3",
        "PCI DSS 4.0:3.5.1",
        "ISO 27001:2022:A.8.24",
    ),
    levels=ENC_LEVELS,
    types=("aws:eks/cluster:Cluster",),
)
def eks_secrets(res: Res, ctx: Ctx) -> Iterator[str]:
    cfg = res.get("encryptionConfig") or {}
    if "secrets" not in as_list(get(cfg, "resources")) or not get(cfg, "provider.keyArn"):
        yield f"EKS cluster {res.name} must encrypt secrets with a KMS key (encryptionConfig)."


@resource_rule(
    id="LLMOPS-ENC-004",
    name="kms-key-rotation-enabled",
    description="Checks whether symmetric customer-managed KMS keys rotate automatically.",
    severity="medium",
    remediation="Set enable_key_rotation=True (rotation period 365 days or less).",
    anchors=anchors(
        "Checkov:CKV_AWS_7", "CIS AWS 3.0:3.6", "AWS FSBP:KMS.4", "PCI DSS 4.0:3.7.4", "ISO 27001:2022:A.8.24"
    ),
    levels=ENC_LEVELS,
    types=("aws:kms/key:Key",),
)
def kms_rotation(res: Res, ctx: Ctx) -> Iterator[str]:
    spec = res.get("customerMasterKeySpec", "SYMMETRIC_DEFAULT")
    symmetric = spec == "SYMMETRIC_DEFAULT" and res.get("keyUsage", "ENCRYPT_DECRYPT") == "ENCRYPT_DECRYPT"
    if symmetric and not truthy(res.get("enableKeyRotation", False)):
        yield f"KMS key {res.name} must have enableKeyRotation true."


@resource_rule(
    id="LLMOPS-ENC-005",
    name="kms-key-deletion-window",
    description="Checks whether KMS keys keep the longest deletion window, so a key deleted by mistake "
    "can be recovered before the data it protects becomes unreadable.",
    severity="medium",
    remediation="Set deletion_window_in_days to 30 (the AWS maximum); throw-away stacks may lower it.",
    anchors=anchors(
        "AWS FSBP:KMS.3", "PCI DSS 4.0:3.7.6", "ISO 27001:2022:A.8.13", "HIPAA:164.308(a)(7)(ii)(A)"
    ),
    levels=levels(D, A, M, M),
    types=("aws:kms/key:Key", "aws:kms/replicaKey:ReplicaKey"),
    config={"minDeletionWindowDays": {"type": "integer", "minimum": 7, "maximum": 30, "default": 30}},
)
def kms_deletion_window(res: Res, ctx: Ctx) -> Iterator[str]:
    minimum = int(ctx.cfg("minDeletionWindowDays"))
    days = res.get("deletionWindowInDays", 30)  # AWS default is 30
    if int(days) < minimum:
        yield f"KMS key {res.name} must have deletionWindowInDays >= {minimum} (has {days})."


@resource_rule(
    id="LLMOPS-ENC-006",
    name="log-group-encrypted",
    description="Checks whether CloudWatch log groups are encrypted with a customer-managed KMS key.",
    severity="medium",
    remediation="Set kms_key_id on the aws.cloudwatch.LogGroup (the key policy must allow "
    "logs.<region>.amazonaws.com).",
    anchors=anchors("Checkov:CKV_AWS_158", "PCI DSS 4.0:10.3.2", "ISO 27001:2022:A.8.15", "HIPAA:164.312(b)"),
    levels=ENC_LEVELS,
    types=("aws:cloudwatch/logGroup:LogGroup",),
)
def log_group_kms(res: Res, ctx: Ctx) -> Iterator[str]:
    if not res.get("kmsKeyId"):
        yield f"Log group {res.name} must be encrypted with a KMS key (kmsKeyId)."


@resource_rule(
    id="LLMOPS-ENC-007",
    name="sns-topic-encrypted",
    description="Checks whether SNS topics are encrypted with a KMS key.",
    severity="medium",
    remediation="Set kms_master_key_id on the topic (a customer-managed key whose policy admits the "
    "publishers).",
    anchors=anchors(
        "Checkov:CKV_AWS_26", "PCI DSS 4.0:3.5.1", "ISO 27001:2022:A.8.24", "HIPAA:164.312(a)(2)(iv)"
    ),
    levels=ENC_LEVELS,
    types=("aws:sns/topic:Topic",),
)
def sns_encrypted(res: Res, ctx: Ctx) -> Iterator[str]:
    if not res.get("kmsMasterKeyId"):
        yield f"SNS topic {res.name} must be encrypted with a KMS key (kmsMasterKeyId)."


@resource_rule(
    id="LLMOPS-ENC-008",
    name="sqs-queue-encrypted",
    description="Checks whether SQS queues are encrypted, with a customer-managed KMS key for regulated "
    "data.",
    severity="medium",
    remediation="Set kms_master_key_id (or, below regulated, sqs_managed_sse_enabled=True).",
    anchors=anchors(
        "Checkov:CKV_AWS_27", "PCI DSS 4.0:3.5.1", "ISO 27001:2022:A.8.24", "HIPAA:164.312(a)(2)(iv)"
    ),
    levels=ENC_LEVELS,
    types=("aws:sqs/queue:Queue",),
)
def sqs_encrypted(res: Res, ctx: Ctx) -> Iterator[str]:
    if res.get("kmsMasterKeyId"):
        return
    if ctx.classification == "regulated":
        yield f"SQS queue {res.name} must be encrypted with a customer-managed KMS key (kmsMasterKeyId)."
    elif not truthy(res.get("sqsManagedSseEnabled", False)):
        yield f"SQS queue {res.name} must set kmsMasterKeyId or sqsManagedSseEnabled."


@resource_rule(
    id="LLMOPS-ENC-009",
    name="ebs-volumes-encrypted",
    description="Checks whether EBS volumes, launch-template block devices and Karpenter EC2NodeClass "
    "block devices are encrypted.",
    severity="high",
    remediation="Set encrypted=True (and a kms_key_id) on every volume and block device mapping; in an "
    "EC2NodeClass set blockDeviceMappings[].ebs.encrypted: true.",
    anchors=anchors(
        "Checkov:CKV_AWS_3",
        "Checkov:CKV_AWS_8",
        "CIS AWS 3.0:2.2.1",
        "PCI DSS 4.0:3.5.1",
        "HIPAA:164.312(a)(2)(iv)",
    ),
    levels=ENC_LEVELS,
    types=(
        "aws:ebs/volume:Volume",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "aws:ec2/instance:Instance",
        EC2_NODECLASS,
    ),
)
def ebs_encrypted(res: Res, ctx: Ctx) -> Iterator[str]:
    if res.type == "aws:ebs/volume:Volume":
        if not truthy(res.get("encrypted", False)):
            yield f"EBS volume {res.name} must be encrypted."
        return
    if res.type == "aws:ec2/instance:Instance":
        devices = [("root", res.get("rootBlockDevice") or {})]
        devices += [(str(get(d, "deviceName")), d) for d in as_list(res.get("ebsBlockDevices"))]
        ebs = [(n, d) for n, d in devices if d]
    else:
        path = "spec.blockDeviceMappings" if res.type == EC2_NODECLASS else "blockDeviceMappings"
        ebs = [(str(get(m, "deviceName")), get(m, "ebs")) for m in as_list(res.get(path)) if get(m, "ebs")]
    for device, spec in ebs:
        if not truthy(get(spec, "encrypted", False)):
            yield f"{res.label} must encrypt block device {device} (ebs.encrypted true)."


@resource_rule(
    id="LLMOPS-ENC-010",
    name="rds-storage-encrypted",
    description="Checks whether RDS instances and clusters encrypt storage with a customer-managed KMS key.",
    severity="high",
    remediation="Set storage_encrypted=True and kms_key_id to the platform key (encryption cannot be added "
    "later).",
    anchors=anchors(
        "Checkov:CKV_AWS_16",
        "CIS AWS 3.0:2.3.1",
        "PCI DSS 4.0:3.5.1",
        "HIPAA:164.312(a)(2)(iv)",
        "GDPR:Art. 32(1)(a)",
    ),
    levels=ENC_LEVELS,
    types=("aws:rds/instance:Instance", "aws:rds/cluster:Cluster"),
)
def rds_encrypted(res: Res, ctx: Ctx) -> Iterator[str]:
    if not truthy(res.get("storageEncrypted", False)):
        yield f"RDS database {res.name} must have storageEncrypted true."
    elif not res.get("kmsKeyId") and ctx.classification in ("confidential", "regulated"):
        yield f"RDS database {res.name} must use a customer-managed KMS key (kmsKeyId)."


@resource_rule(
    id="LLMOPS-ENC-011",
    name="storageclass-encrypted",
    description="Checks whether EBS CSI StorageClasses create encrypted volumes.",
    severity="high",
    remediation='Set parameters.encrypted: "true" (and kmsKeyId for a customer key) on the StorageClass.',
    anchors=anchors("CIS EKS:5.3.1", "PCI DSS 4.0:3.5.1", "ISO 27001:2022:A.8.24", "HIPAA:164.312(a)(2)(iv)"),
    levels=ENC_LEVELS,
    types=(STORAGE_CLASS,),
)
def storageclass_encrypted(res: Res, ctx: Ctx) -> Iterator[str]:
    provisioner = res.get("provisioner", "")
    if provisioner in ("ebs.csi.aws.com", "kubernetes.io/aws-ebs") and not truthy(
        res.get("parameters.encrypted")
    ):
        yield f'StorageClass {res.get("metadata.name") or res.name} must set parameters.encrypted "true".'


@resource_rule(
    id="LLMOPS-ENC-012",
    name="secret-encrypted-with-customer-key",
    description="Checks whether Secrets Manager secrets are encrypted with a customer-managed KMS key.",
    severity="medium",
    remediation="Set kms_key_id on the aws.secretsmanager.Secret.",
    anchors=anchors(
        "Checkov:CKV_AWS_149", "PCI DSS 4.0:3.6.1", "ISO 27001:2022:A.8.24", "HIPAA:164.312(a)(2)(iv)"
    ),
    levels=levels(D, A, M, M),
    types=("aws:secretsmanager/secret:Secret",),
)
def secret_cmk(res: Res, ctx: Ctx) -> Iterator[str]:
    if not res.get("kmsKeyId"):
        yield f"Secret {res.name} must be encrypted with a customer-managed KMS key (kmsKeyId)."
