"""Every rule: a compliant plan passes; changing one property breaks exactly the rule that guards it,
naming the resource; an unknown value (preview) in that property is skipped, not guessed."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from llmops.policy import evaluate_plan, format_violations, pack_config
from llmops.policy.catalogue import config_document
from llmops.policy.engine import pack
from tests.policy_fixture import (
    ACCOUNT,
    DELETE,
    KEY,
    LITELLM_CONFIG,
    UNKNOWN,
    compliant_plan,
    find,
    res,
    set_path,
)

Mutation = Callable[[dict[str, Any]], None]
PROD = json.loads(config_document("prod"))
GITHUB_OIDC = "token.actions.githubusercontent.com"
VLLM = "spec.template.spec.containers.0"
VLLM_POD = "spec.template.spec"


def put(name: str, *pairs: tuple[str, Any]) -> Mutation:
    """Sets inputs paths on resource `name` (value DELETE removes)."""

    def apply(plan: dict[str, Any]) -> None:
        for path, value in pairs:
            set_path(find(plan, name)["inputs"], path, value)

    return apply


def drop(*names: str) -> Mutation:
    def apply(plan: dict[str, Any]) -> None:
        plan["resources"] = [r for r in plan["resources"] if r["name"] not in names]

    return apply


def add(resource: dict[str, Any]) -> Mutation:
    def apply(plan: dict[str, Any]) -> None:
        plan["resources"].append(resource)

    return apply


def both(*mutations: Mutation) -> Mutation:
    def apply(plan: dict[str, Any]) -> None:
        for m in mutations:
            m(plan)

    return apply


def gateway(path: str, value: Any) -> Mutation:
    """Changes the LiteLLM config inside the gateway ConfigMap."""

    def apply(plan: dict[str, Any]) -> None:
        cfg = json.loads(json.dumps(LITELLM_CONFIG))
        set_path(cfg, path, value)
        find(plan, "gateway-config")["inputs"]["data"]["config.yaml"] = json.dumps(cfg)

    return apply


def policy_doc(statement: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@dataclass
class Case:
    rule: str
    target: str  # the resource the violation must name ("(stack)" for stack-wide ones)
    breaks: Mutation
    unknown: Mutation | None = None  # the decisive value unknown: the rule must stay silent

    def __str__(self) -> str:
        return f"{self.rule}:{self.target}"


SSE_ALGO = "rules.0.applyServerSideEncryptionByDefault.sseAlgorithm"
CASES = [
    # encryption
    Case(
        "s3-bucket-encrypted-with-customer-key",
        "prompts-bucket-sse",
        put("prompts-bucket-sse", (SSE_ALGO, "AES256")),
        put("prompts-bucket-sse", (SSE_ALGO, UNKNOWN)),
    ),
    Case(
        "s3-bucket-encrypted-with-customer-key",
        "prompts-bucket",
        drop("prompts-bucket-sse"),
        both(drop("prompts-bucket-sse"), put("prompts-access-logs-sse", ("bucket", UNKNOWN))),
    ),
    Case(
        "s3-bucket-tls-only",
        "prompts-bucket",
        drop("prompts-bucket-policy"),
        put("prompts-bucket-policy", ("policy", UNKNOWN)),
    ),
    Case(
        "eks-secrets-encrypted",
        "cluster-eks",
        put("cluster-eks", ("encryptionConfig.resources", [])),
        put("cluster-eks", ("encryptionConfig.provider.keyArn", UNKNOWN)),
    ),
    Case(
        "kms-key-rotation-enabled",
        "platform-key",
        put("platform-key", ("enableKeyRotation", False)),
        put("platform-key", ("enableKeyRotation", UNKNOWN)),
    ),
    Case(
        "kms-key-deletion-window",
        "platform-key",
        put("platform-key", ("deletionWindowInDays", 7)),
        put("platform-key", ("deletionWindowInDays", UNKNOWN)),
    ),
    Case(
        "log-group-encrypted",
        "network-flow-log-group",
        put("network-flow-log-group", ("kmsKeyId", DELETE)),
        put("network-flow-log-group", ("kmsKeyId", UNKNOWN)),
    ),
    Case(
        "sns-topic-encrypted",
        "cost-alerts",
        put("cost-alerts", ("kmsMasterKeyId", DELETE)),
        put("cost-alerts", ("kmsMasterKeyId", UNKNOWN)),
    ),
    Case(
        "sqs-queue-encrypted",
        "cost-spend-events",
        put("cost-spend-events", ("kmsMasterKeyId", DELETE), ("sqsManagedSseEnabled", True)),
        put("cost-spend-events", ("kmsMasterKeyId", UNKNOWN)),
    ),
    Case(
        "ebs-volumes-encrypted",
        "cache-volume",
        put("cache-volume", ("encrypted", False)),
        put("cache-volume", ("encrypted", UNKNOWN)),
    ),
    Case(
        "ebs-volumes-encrypted",
        "cluster-system-nodes",
        put("cluster-system-nodes", ("blockDeviceMappings.0.ebs.encrypted", "false")),
    ),
    Case(
        "ebs-volumes-encrypted",
        "gpu",
        put("gpu", ("spec.blockDeviceMappings.0.ebs.encrypted", False)),
        put("gpu", ("spec.blockDeviceMappings", UNKNOWN)),
    ),
    Case(
        "rds-storage-encrypted",
        "gateway-db",
        put("gateway-db", ("storageEncrypted", False)),
        put("gateway-db", ("storageEncrypted", UNKNOWN)),
    ),
    Case("rds-storage-encrypted", "gateway-db", put("gateway-db", ("kmsKeyId", DELETE))),
    Case(
        "storageclass-encrypted",
        "gp3-encrypted",
        put("gp3-encrypted", ("parameters.encrypted", "false")),
        put("gp3-encrypted", ("parameters.encrypted", UNKNOWN)),
    ),
    Case(
        "secret-encrypted-with-customer-key",
        "gateway-master-key",
        put("gateway-master-key", ("kmsKeyId", DELETE)),
        put("gateway-master-key", ("kmsKeyId", UNKNOWN)),
    ),
    # public exposure
    Case(
        "s3-public-access-blocked",
        "prompts-bucket-public-access",
        put("prompts-bucket-public-access", ("blockPublicPolicy", False)),
        put("prompts-bucket-public-access", ("blockPublicPolicy", UNKNOWN)),
    ),
    Case(
        "s3-public-access-blocked",
        "prompts-access-logs",
        drop("prompts-access-logs-public-access"),
        both(
            drop("prompts-access-logs-public-access"),
            put("prompts-bucket-public-access", ("bucket", UNKNOWN)),
        ),
    ),
    Case(
        "s3-no-public-acl-or-policy",
        "prompts-bucket-policy",
        put(
            "prompts-bucket-policy",
            (
                "policy",
                policy_doc({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}),
            ),
        ),
        put("prompts-bucket-policy", ("policy", UNKNOWN)),
    ),
    Case(
        "s3-no-public-acl-or-policy",
        "prompts-acl",
        add(
            res(
                "aws:s3/bucketAcl:BucketAcl",
                "prompts-acl",
                {"bucket": "prompts-bucket-id", "acl": "public-read"},
            )
        ),
    ),
    Case(
        "eks-endpoint-not-open-to-internet",
        "cluster-eks",
        put(
            "cluster-eks",
            ("vpcConfig.endpointPublicAccess", True),
            ("vpcConfig.publicAccessCidrs", ["0.0.0.0/0"]),
        ),
        put("cluster-eks", ("vpcConfig.endpointPublicAccess", UNKNOWN)),
    ),
    Case(
        "eks-endpoint-not-open-to-internet",
        "cluster-eks",
        put("cluster-eks", ("vpcConfig.endpointPublicAccess", True)),
    ),
    Case(
        "eks-endpoint-private",
        "cluster-eks",
        put(
            "cluster-eks",
            ("vpcConfig.endpointPublicAccess", True),
            ("vpcConfig.publicAccessCidrs", ["203.0.113.0/24"]),
        ),
        put("cluster-eks", ("vpcConfig.endpointPublicAccess", UNKNOWN)),
    ),
    Case(
        "load-balancers-internal",
        "gateway-nlb",
        put("gateway-nlb", ("internal", False)),
        put("gateway-nlb", ("internal", UNKNOWN)),
    ),
    Case(
        "load-balancers-internal",
        "gateway-svc",
        put(
            "gateway-svc",
            (
                "metadata.annotations",
                {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing"},
            ),
        ),
        put("gateway-svc", ("metadata.annotations", UNKNOWN)),
    ),
    Case(
        "no-public-ip-addresses",
        "network-private-a",
        put("network-private-a", ("mapPublicIpOnLaunch", True)),
        put("network-private-a", ("mapPublicIpOnLaunch", UNKNOWN)),
    ),
    Case("no-public-ip-addresses", "gateway-db", put("gateway-db", ("publiclyAccessible", True))),
    Case(
        "no-ingress-from-internet",
        "gateway-db-sg",
        put("gateway-db-sg", ("ingress.0.cidrBlocks", ["0.0.0.0/0"])),
        put("gateway-db-sg", ("ingress.0.cidrBlocks", UNKNOWN)),
    ),
    # logging and audit
    Case(
        "eks-control-plane-logs",
        "cluster-eks",
        put("cluster-eks", ("enabledClusterLogTypes", ["api"])),
        put("cluster-eks", ("enabledClusterLogTypes", UNKNOWN)),
    ),
    Case(
        "log-retention-bounded",
        "network-flow-log-group",
        put("network-flow-log-group", ("retentionInDays", 30)),
        put("network-flow-log-group", ("retentionInDays", UNKNOWN)),
    ),
    Case(
        "log-retention-bounded",
        "network-flow-log-group",
        put("network-flow-log-group", ("retentionInDays", DELETE)),
    ),
    Case(
        "s3-access-logging",
        "prompts-bucket",
        drop("prompts-bucket-logging"),
        put("prompts-bucket-logging", ("targetBucket", UNKNOWN)),
    ),
    Case(
        "vpc-flow-logs", "network-vpc", drop("network-flow-log"), put("network-flow-log", ("vpcId", UNKNOWN))
    ),
    Case("vpc-flow-logs", "network-vpc", put("network-flow-log", ("trafficType", "REJECT"))),
    # network
    Case(
        "namespace-default-deny",
        "vllm-llama",
        drop("models-default-deny"),
        put("models-default-deny", ("spec.podSelector", UNKNOWN)),
    ),
    Case(
        "networkpolicy-names-its-peers",
        "models-allow-gateway",
        put("models-allow-gateway", ("spec.ingress.0.from", [])),
        put("models-allow-gateway", ("spec.ingress.0.from", UNKNOWN)),
    ),
    Case(
        "vpc-endpoints-present",
        "network-vpc",
        drop("network-endpoint-sts"),
        put("network-endpoint-sts", ("serviceName", UNKNOWN)),
    ),
    # identity
    Case(
        "iam-no-wildcard-actions",
        "prompt-reader-policy",
        put(
            "prompt-reader-policy",
            (
                "policy",
                policy_doc(
                    {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::prompts-bucket-id/*"}
                ),
            ),
        ),
        put("prompt-reader-policy", ("policy", UNKNOWN)),
    ),
    Case(
        "iam-no-unscoped-write-resources",
        "prompt-reader-policy",
        put(
            "prompt-reader-policy",
            ("policy", policy_doc({"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": "*"})),
        ),
        put("prompt-reader-policy", ("policy", UNKNOWN)),
    ),
    Case(
        "iam-no-admin-attachments",
        "cluster-node-worker",
        put("cluster-node-worker", ("policyArn", "arn:aws:iam::aws:policy/AdministratorAccess")),
        put("cluster-node-worker", ("policyArn", UNKNOWN)),
    ),
    Case(
        "iam-trust-policy-conditions",
        "ci-deploy",
        put(
            "ci-deploy",
            (
                "assumeRolePolicy",
                policy_doc(
                    {
                        "Effect": "Allow",
                        "Action": "sts:AssumeRoleWithWebIdentity",
                        "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{GITHUB_OIDC}"},
                    }
                ),
            ),
        ),
        put("ci-deploy", ("assumeRolePolicy", UNKNOWN)),
    ),
    Case(
        "iam-trust-policy-conditions",
        "prompt-reader",
        put(
            "prompt-reader",
            (
                "assumeRolePolicy",
                policy_doc(
                    {
                        "Effect": "Allow",
                        "Action": "sts:AssumeRole",
                        "Principal": {"AWS": "arn:aws:iam::999988887777:root"},
                    }
                ),
            ),
        ),
    ),
    Case(
        "imdsv2-required",
        "cluster-system-nodes",
        put("cluster-system-nodes", ("metadataOptions.httpTokens", "optional")),
        put("cluster-system-nodes", ("metadataOptions.httpTokens", UNKNOWN)),
    ),
    Case("imdsv2-required", "gpu", put("gpu", ("spec.metadataOptions.httpPutResponseHopLimit", 2))),
    Case(
        "eks-access-entries-only",
        "cluster-eks",
        put("cluster-eks", ("accessConfig.authenticationMode", "API_AND_CONFIG_MAP")),
        put("cluster-eks", ("accessConfig.authenticationMode", UNKNOWN)),
    ),
    # residency
    Case(
        "resources-in-allowed-regions",
        "cache-volume",
        put("cache-volume", ("availabilityZone", "us-east-1a")),
        put("cache-volume", ("availabilityZone", UNKNOWN)),
    ),
    Case("resources-in-allowed-regions", "aws", put("aws", ("region", "eu-west-1"))),
    Case(
        "resources-in-allowed-regions",
        "cost-alerts",
        put("cost-alerts", ("kmsMasterKeyId", KEY.replace("me-central-1", "us-east-1"))),
    ),
    Case(
        "resources-in-allowed-regions",
        "cost-spend-events",
        put("cost-spend-events", ("region", "eu-central-1")),
    ),
    Case(
        "replication-within-allowed-regions",
        "gateway-master-key",
        put("gateway-master-key", ("replicas", [{"region": "eu-west-1"}])),
        put("gateway-master-key", ("replicas", UNKNOWN)),
    ),
    Case(
        "replication-within-allowed-regions",
        "prompts-replication",
        add(
            res(
                "aws:s3/bucketReplicationConfig:BucketReplicationConfig",
                "prompts-replication",
                {
                    "bucket": "prompts-bucket-id",
                    "role": "arn:aws:iam::111122223333:role/replication",
                    "rules": [
                        {
                            "status": "Enabled",
                            "destination": {
                                "bucket": "arn:aws:s3:::dr-bucket",
                                "encryptionConfiguration": {
                                    "replicaKmsKeyId": KEY.replace("me-central-1", "eu-west-1")
                                },
                            },
                        }
                    ],
                },
            )
        ),
    ),
    Case(
        "kms-keys-single-region",
        "platform-key",
        put("platform-key", ("multiRegion", True)),
        put("platform-key", ("multiRegion", UNKNOWN)),
    ),
    # tagging
    Case(
        "required-tags",
        "platform-key",
        put("aws", ("defaultTags", json.dumps({"tags": {"environment": "prod"}}))),
        put("aws", ("defaultTags", UNKNOWN)),
    ),
    Case(
        "required-tags",
        "cost-alerts",
        put("cost-alerts", ("tags", {"data-classification": "internal"})),
        put("cost-alerts", ("tags", UNKNOWN)),
    ),
    Case(
        "kubernetes-labels",
        "vllm-llama",
        put("vllm-llama", ("metadata.labels", {"app.kubernetes.io/name": "x"})),
        put("vllm-llama", ("metadata.labels", UNKNOWN)),
    ),
    Case("kubernetes-labels", "models-ns", put("models-ns", ("metadata.labels", {}))),
    # Kubernetes workloads (CronJob pod templates too)
    Case(
        "no-privileged-containers",
        "vllm-llama",
        put("vllm-llama", (f"{VLLM}.securityContext.privileged", True)),
        put("vllm-llama", (f"{VLLM}.securityContext.privileged", UNKNOWN)),
    ),
    Case(
        "no-privileged-containers",
        "qdrant-snapshot",
        put(
            "qdrant-snapshot",
            ("spec.jobTemplate.spec.template.spec.containers.0.securityContext.privileged", True),
        ),
    ),
    Case(
        "no-privileged-containers",
        "dcgm-exporter",
        put("dcgm-exporter", ("spec.template.spec.containers.0.securityContext.privileged", True)),
    ),
    Case(
        "no-host-namespaces",
        "vllm-llama",
        put("vllm-llama", (f"{VLLM_POD}.hostNetwork", True)),
        put("vllm-llama", (f"{VLLM_POD}.hostNetwork", UNKNOWN)),
    ),
    Case(
        "no-host-path-volumes",
        "vllm-llama",
        put(
            "vllm-llama",
            (f"{VLLM_POD}.volumes", [{"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}]),
        ),
        put("vllm-llama", (f"{VLLM_POD}.volumes", UNKNOWN)),
    ),
    Case("no-host-path-volumes", "dcgm-exporter", put("dcgm-exporter", ("metadata.namespace", "default"))),
    Case(
        "no-host-path-volumes",
        "dcgm-exporter",
        put("dcgm-exporter", ("spec.template.spec.volumes.0.hostPath.path", "/")),
    ),
    Case(
        "no-privilege-escalation",
        "vllm-llama",
        put("vllm-llama", (f"{VLLM}.securityContext.allowPrivilegeEscalation", DELETE)),
        put("vllm-llama", (f"{VLLM}.securityContext.allowPrivilegeEscalation", UNKNOWN)),
    ),
    Case(
        "capabilities-dropped",
        "vllm-llama",
        put("vllm-llama", (f"{VLLM}.securityContext.capabilities.drop", [])),
        put("vllm-llama", (f"{VLLM}.securityContext.capabilities", UNKNOWN)),
    ),
    Case(
        "capabilities-dropped",
        "vllm-llama",
        put("vllm-llama", (f"{VLLM}.securityContext.capabilities.add", ["SYS_ADMIN"])),
    ),
    Case(
        "seccomp-runtime-default",
        "vllm-llama",
        put(
            "vllm-llama",
            (f"{VLLM}.securityContext.seccompProfile", DELETE),
            (f"{VLLM_POD}.securityContext.seccompProfile", DELETE),
        ),
        put("vllm-llama", (f"{VLLM}.securityContext.seccompProfile", UNKNOWN)),
    ),
    Case(
        "run-as-non-root",
        "vllm-llama",
        put("vllm-llama", (f"{VLLM}.securityContext.runAsUser", 0)),
        put("vllm-llama", (f"{VLLM}.securityContext.runAsUser", UNKNOWN)),
    ),
    Case(
        "run-as-non-root",
        "qdrant-snapshot",
        put(
            "qdrant-snapshot",
            ("spec.jobTemplate.spec.template.spec.containers.0.securityContext.runAsNonRoot", False),
        ),
    ),
    Case(
        "resource-requests-and-limits",
        "vllm-llama",
        put("vllm-llama", (f"{VLLM}.resources.limits", DELETE)),
        put("vllm-llama", (f"{VLLM}.resources", UNKNOWN)),
    ),
    Case(
        "images-pinned",
        "vllm-llama",
        put("vllm-llama", (f"{VLLM}.image", "vllm/vllm-openai:latest")),
        put("vllm-llama", (f"{VLLM}.image", UNKNOWN)),
    ),
    Case("images-pinned", "vllm-llama", put("vllm-llama", (f"{VLLM}.image", "vllm/vllm-openai"))),
    Case(
        "images-from-allowed-registries",
        "vllm-llama",
        put("vllm-llama", (f"{VLLM}.image", "evil.example.com/vllm:1.0")),
        put("vllm-llama", (f"{VLLM}.image", UNKNOWN)),
    ),
    Case(
        "no-secrets-in-env-literals",
        "vllm-llama",
        put("vllm-llama", (f"{VLLM}.env.1", {"name": "OPENAI_API_KEY", "value": "sk-proj-TOPSECRET"})),
        put("vllm-llama", (f"{VLLM}.env.1", {"name": "OPENAI_API_KEY", "value": UNKNOWN})),
    ),
    Case(
        "service-account-token-not-mounted",
        "vllm-llama",
        put("vllm-llama", (f"{VLLM_POD}.automountServiceAccountToken", DELETE)),
        put("vllm-llama", (f"{VLLM_POD}.automountServiceAccountToken", UNKNOWN)),
    ),
    Case(
        "read-only-root-filesystem",
        "vllm-llama",
        put("vllm-llama", (f"{VLLM}.securityContext.readOnlyRootFilesystem", False)),
        put("vllm-llama", (f"{VLLM}.securityContext.readOnlyRootFilesystem", UNKNOWN)),
    ),
    Case(
        "helm-charts-pinned",
        "karpenter",
        put("karpenter", ("version", "^1.8")),
        put("karpenter", ("version", UNKNOWN)),
    ),
    Case(
        "helm-charts-pinned", "karpenter", put("karpenter", ("chart", "oci://registry.example.com/karpenter"))
    ),
    # gateway
    Case(
        "gateway-pii-guardrail",
        "gateway-config",
        gateway("guardrails", []),
        put("gateway-config", ("data", UNKNOWN)),
    ),
    Case("gateway-pii-guardrail", "gateway-config", gateway("guardrails.0.litellm_params.mode", "post_call")),
    Case("gateway-pii-guardrail", "gateway-config", gateway("guardrails.0.litellm_params.default_on", False)),
    Case(
        "gateway-pii-guardrail", "gateway-config", gateway("guardrails.0.litellm_params.patterns.2", DELETE)
    ),
    Case(
        "gateway-no-prompts-in-spend-logs",
        "gateway-config",
        gateway("general_settings.store_prompts_in_spend_logs", True),
        put("gateway-config", ("data", UNKNOWN)),
    ),
    Case(
        "gateway-message-logging-off",
        "gateway-config",
        gateway("litellm_settings.turn_off_message_logging", False),
        put("gateway-config", ("data", UNKNOWN)),
    ),
    Case(
        "gateway-secrets-from-environment",
        "gateway-config",
        gateway("general_settings.master_key", "sk-TOPSECRET"),
        put("gateway-config", ("data", UNKNOWN)),
    ),
    Case(
        "gateway-secrets-from-environment",
        "gateway-config",
        gateway("model_list.0.litellm_params.api_key", "TOPSECRET-inline"),
    ),
    Case(
        "gateway-providers-allowlisted",
        "gateway-config",
        gateway("model_list.1.litellm_params.model", "openai/gpt-4o"),
        put("gateway-config", ("data", UNKNOWN)),
    ),
    Case(
        "gateway-providers-allowlisted",
        "gateway-config",
        gateway("model_list.0.litellm_params.api_base", "https://llm.example.com/v1"),
    ),
    Case(
        "gateway-providers-allowlisted",
        "gateway-config",
        gateway("model_list.1.litellm_params.aws_region_name", "us-east-1"),
    ),
    Case(
        "vllm-api-key-from-secret",
        "vllm-llama",
        put("vllm-llama", (f"{VLLM}.args.5", "TOPSECRET-literal")),
        put("vllm-llama", (f"{VLLM}.args", UNKNOWN)),
    ),
    Case(
        "vllm-api-key-from-secret",
        "vllm-llama",
        put("vllm-llama", (f"{VLLM}.env.0", {"name": "VLLM_API_KEY", "value": "x"})),
    ),
    Case(
        "vllm-no-trust-remote-code",
        "vllm-llama",
        put("vllm-llama", (f"{VLLM}.args.6", "--trust-remote-code")),
        put("vllm-llama", (f"{VLLM}.args", UNKNOWN)),
    ),
    Case(
        "gateway-spend-logs-to-s3-in-region",
        "gateway-config",
        gateway("litellm_settings.callbacks", []),
        put("gateway-config", ("data", UNKNOWN)),
    ),
    Case(
        "gateway-spend-logs-to-s3-in-region",
        "gateway-config",
        gateway("litellm_settings.s3_callback_params.s3_region_name", "eu-west-1"),
    ),
    # prompt store
    Case(
        "prompt-store-versioning",
        "prompts-bucket",
        put("prompts-bucket-versioning", ("versioningConfiguration.status", "Suspended")),
        put("prompts-bucket-versioning", ("versioningConfiguration.status", UNKNOWN)),
    ),
    Case("prompt-store-versioning", "prompts-bucket", drop("prompts-bucket-versioning")),
    Case(
        "prompt-store-object-lock",
        "prompts-bucket",
        both(put("prompts-bucket", ("objectLockEnabled", False)), drop("prompts-bucket-lock")),
        put("prompts-bucket-lock", ("bucket", UNKNOWN)),
    ),
    Case(
        "prompt-store-object-lock",
        "prompts-bucket",
        put("prompts-bucket-lock", ("rule.defaultRetention.mode", DELETE)),
    ),
    Case(
        "prompt-store-keeps-history",
        "prompts-bucket-lifecycle",
        put(
            "prompts-bucket-lifecycle",
            (
                "rules.1",
                {
                    "id": "expire-old",
                    "status": "Enabled",
                    "noncurrentVersionExpiration": {"noncurrentDays": 30},
                },
            ),
        ),
        put(
            "prompts-bucket-lifecycle",
            ("rules.1", {"id": "x", "status": "Enabled", "noncurrentVersionExpiration": UNKNOWN}),
        ),
    ),
    Case(
        "prompt-store-keeps-history",
        "prompts-bucket-lifecycle",
        put("prompts-bucket-lifecycle", ("rules.0.expiration", {"days": 90})),
    ),
    # cost
    Case(
        "gpu-instance-types-allowed",
        "l4-spot",
        put("l4-spot", ("spec.template.spec.requirements.0.values", ["x2iedn"])),
        put("l4-spot", ("spec.template.spec.requirements.0.values", UNKNOWN)),
    ),
    Case(
        "gpu-instance-types-allowed",
        "cluster-system",
        put("cluster-system", ("instanceTypes", ["x1e.32xlarge"])),
    ),
    Case(
        "nodepool-gpu-limit",
        "l4-spot",
        put("l4-spot", ("spec.limits", DELETE)),
        put("l4-spot", ("spec.limits", UNKNOWN)),
    ),
    Case("nodepool-gpu-limit", "l4-spot", put("l4-spot", ("spec.limits", {"nvidia.com/gpu": "64"}))),
    Case("budget-with-notifications", "(stack)", drop("cost-gpu-budget")),
    Case(
        "budget-with-notifications",
        "cost-gpu-budget",
        put("cost-gpu-budget", ("notifications", [])),
        put("cost-gpu-budget", ("notifications", UNKNOWN)),
    ),
    Case(
        "cost-anomaly-monitor", "(stack)", drop("cost-monitor"), put("cost-monitor", ("monitorType", UNKNOWN))
    ),
    Case("cost-anomaly-monitor", "(stack)", drop("cost-anomalies")),
    Case(
        "alarms-have-actions",
        "cost-team-daily",
        put("cost-team-daily", ("alarmActions", [])),
        put("cost-team-daily", ("alarmActions", UNKNOWN)),
    ),
    Case(
        "lambda-dead-letter-queue",
        "cost-aggregator",
        put("cost-aggregator", ("deadLetterConfig", DELETE)),
        put("cost-aggregator", ("deadLetterConfig.targetArn", UNKNOWN)),
    ),
    Case(
        "lambda-reserved-concurrency",
        "cost-aggregator",
        put("cost-aggregator", ("reservedConcurrentExecutions", 0)),
        put("cost-aggregator", ("reservedConcurrentExecutions", UNKNOWN)),
    ),
    Case(
        "lambda-timeout-bounded",
        "cost-aggregator",
        put("cost-aggregator", ("timeout", 900)),
        put("cost-aggregator", ("timeout", UNKNOWN)),
    ),
]


def violations(plan: dict[str, Any], config: dict[str, Any] | None = None) -> list:
    found = evaluate_plan(plan, config or PROD)
    crashes = [v for v in found if "could not evaluate" in v.message]
    assert not crashes, crashes
    return found


def test_compliant_plan_passes_every_rule_at_every_classification():
    plan = compliant_plan()
    assert violations(plan) == []
    for classification in ("public", "internal", "confidential"):
        assert violations(plan, pack_config(classification, ["me-central-1"])) == []


@pytest.mark.parametrize("case", CASES, ids=str)
def test_fails_when_broken(case: Case):
    plan = compliant_plan()
    case.breaks(plan)
    found = violations(plan)
    hits = [v for v in found if v.policy == case.rule]
    assert any(v.resource == case.target for v in hits), (
        f"{case}: got {[(v.resource, v.message) for v in hits]}"
    )
    assert all(" must " in v.message for v in hits)
    assert not any("TOPSECRET" in v.message for v in found), "a secret value was echoed"


RULES = {r.name: r for r in pack().rules()}
ONE_CASE_PER_RULE = list({c.rule: c for c in reversed(CASES)}.values())


@pytest.mark.parametrize("case", ONE_CASE_PER_RULE, ids=str)
def test_violation_says_how_to_fix_it(case: Case):
    """Every violation carries its rule's remediation and the stack settings to change (the JSON
    report's remediation and setting fields), and the text report prints both under it."""
    plan = compliant_plan()
    case.breaks(plan)
    rule = RULES[case.rule]
    hits = [v for v in violations(plan) if v.policy == case.rule]
    assert hits, case
    for v in hits:
        doc = json.loads(json.dumps(v.to_dict()))
        assert doc["remediation"] == rule.remediation and doc["setting"] == list(rule.setting)
    text = format_violations(hits).splitlines()
    assert text.count(f"          fix: {rule.remediation}") == len(hits)
    if rule.setting:
        assert text.count(f"          setting: {', '.join(rule.setting)}") == len(hits)
    else:
        assert not any(line.strip().startswith("setting:") for line in text)


@pytest.mark.parametrize("case", [c for c in CASES if c.unknown], ids=str)
def test_unknown_value_is_skipped(case: Case):
    plan = compliant_plan()
    case.unknown(plan)
    assert [v for v in violations(plan) if v.policy == case.rule] == []


def test_every_rule_has_a_violating_and_an_unknown_case():
    names = {r.name for r in pack().rules()}
    assert names == {c.rule for c in CASES}
    assert names == {c.rule for c in CASES if c.unknown}


def test_trust_remote_code_passes_for_an_allowlisted_model():
    plan = compliant_plan()
    put("vllm-llama", (f"{VLLM}.args.6", "--trust-remote-code"))(plan)
    config = json.loads(config_document("prod"))
    config["vllm-no-trust-remote-code"]["trustRemoteCodeModels"] = ["/models/llama-3-8b"]
    assert [v for v in violations(plan, config) if v.policy == "vllm-no-trust-remote-code"] == []


def test_docker_official_images_are_allowed_by_default():
    plan = compliant_plan()
    put("qdrant-snapshot", ("spec.jobTemplate.spec.template.spec.containers.0.image", "python:3.13.9-slim"))(
        plan
    )
    assert [v for v in violations(plan) if v.policy == "images-from-allowed-registries"] == []


def test_env_names_that_point_at_secrets_pass():
    """A file path, an ARN or an id is where a secret lives, not the secret."""
    plan = compliant_plan()
    env = find(plan, "vllm-llama")["inputs"]["spec"]["template"]["spec"]["containers"][0]["env"]
    env += [
        {"name": "QDRANT_API_KEY_FILE", "value": "/secrets/api-key"},
        {"name": "SPEND_LOGS_KMS_KEY_ARN", "value": KEY},
        {"name": "PASSWORD", "value": "/run/secrets/db"},
    ]
    assert [v for v in violations(plan) if v.policy == "no-secrets-in-env-literals"] == []


def test_gpu_daemon_allowance_is_narrow():
    """The DCGM exporter may mount its kubelet socket and add SYS_ADMIN in gpu-system; a Deployment may "
    "not."""
    plan = compliant_plan()
    dcgm = find(plan, "dcgm-exporter")
    vllm_spec = find(plan, "vllm-llama")["inputs"]["spec"]["template"]["spec"]
    vllm_spec["volumes"] = dcgm["inputs"]["spec"]["template"]["spec"]["volumes"]
    rules = {v.policy for v in violations(plan) if v.resource == "vllm-llama"}
    assert "no-host-path-volumes" in rules
    assert not [v for v in violations(plan) if v.resource == "dcgm-exporter"]


def test_levels_follow_classification():
    plan = compliant_plan()
    put("vllm-llama", (f"{VLLM}.securityContext.runAsUser", 0))(plan)
    by_class = {
        c: {v.level for v in violations(plan, pack_config(c, [])) if v.policy == "run-as-non-root"}
        for c in ("public", "internal", "regulated")
    }
    assert by_class == {"public": set(), "internal": {"advisory"}, "regulated": {"mandatory"}}


def test_config_enforcement_level_overrides_the_default():
    plan = compliant_plan()
    put("cost-team-daily", ("alarmActions", []))(plan)
    config = pack_config("regulated", ["me-central-1"])
    config["alarms-have-actions"]["enforcementLevel"] = "disabled"
    assert not [v for v in violations(plan, config) if v.policy == "alarms-have-actions"]
    config = {"all": "advisory"}
    assert {v.level for v in violations(plan, config)} == {"advisory"}


def test_access_log_targets_may_use_sse_s3_but_other_buckets_may_not():
    """S3 cannot deliver server access logs to an SSE-KMS bucket, so log targets are exempt."""
    plan = compliant_plan()
    set_path(find(plan, "prompts-access-logs-sse")["inputs"], SSE_ALGO, "AES256")
    assert not [v for v in evaluate_plan(plan, PROD) if v.policy == "s3-bucket-encrypted-with-customer-key"]
    # Once nothing logs into it, the same bucket must use a customer key again.
    plan["resources"] = [r for r in plan["resources"] if r["name"] != "prompts-bucket-logging"]
    violations = [v for v in evaluate_plan(plan, PROD) if v.policy == "s3-bucket-encrypted-with-customer-key"]
    assert [v.resource for v in violations] == ["prompts-access-logs-sse"]
