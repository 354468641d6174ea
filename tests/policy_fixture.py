"""A compliant regulated plan (every rule passes) that the policy tests mutate one property at a time.

Shaped like the plan `llmops plan` records: pulumi-aws v7 types with camelCase inputs, bucket
settings as separate resources referring to the bucket by id, Kubernetes objects with their
manifests as inputs, custom resources as kubernetes:<group>/<version>:<Kind>.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

UNKNOWN = UNKNOWN_STRING_VALUE
REGION = "me-central-1"
ACCOUNT = "111122223333"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0d6c1e36-1111-2222-3333-444455556666"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:llmops-prod-alerts"
TAGS = {
    "environment": "prod",
    "data-classification": "regulated",
    "owner": "platform-team",
    "cost-center": "llmops-prod",
    "managed-by": "pulumi",
}


def res(
    rtype: str, name: str, inputs: dict[str, Any], parent: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {"type": rtype, "name": name, "parent": parent, "inputs": inputs, **extra}


def _bucket(component: str, name: str, *, lock: bool = False, log_target: str | None = None) -> list[dict]:
    bid = f"{name}-id"
    out = [
        res("aws:s3/bucket:Bucket", name, {"objectLockEnabled": lock} if lock else {}, component, id=bid),
        res(
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            f"{name}-sse",
            {
                "bucket": bid,
                "rules": [
                    {
                        "applyServerSideEncryptionByDefault": {
                            "sseAlgorithm": "aws:kms",
                            "kmsMasterKeyId": KEY,
                        },
                        "bucketKeyEnabled": True,
                    }
                ],
            },
            component,
        ),
        res(
            "aws:s3/bucketVersioning:BucketVersioning",
            f"{name}-versioning",
            {"bucket": bid, "versioningConfiguration": {"status": "Enabled"}},
            component,
        ),
        res(
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            f"{name}-public-access",
            {
                "bucket": bid,
                "blockPublicAcls": True,
                "blockPublicPolicy": True,
                "ignorePublicAcls": True,
                "restrictPublicBuckets": True,
            },
            component,
        ),
        res(
            "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
            f"{name}-ownership",
            {"bucket": bid, "rule": {"objectOwnership": "BucketOwnerEnforced"}},
            component,
        ),
        res(
            "aws:s3/bucketPolicy:BucketPolicy",
            f"{name}-policy",
            {
                "bucket": bid,
                "policy": json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Sid": "TlsOnly",
                                "Effect": "Deny",
                                "Principal": "*",
                                "Action": "s3:*",
                                "Resource": [f"arn:aws:s3:::{bid}", f"arn:aws:s3:::{bid}/*"],
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        ],
                    }
                ),
            },
            component,
        ),
    ]
    if log_target:
        out.append(
            res(
                "aws:s3/bucketLogging:BucketLogging",
                f"{name}-logging",
                {"bucket": bid, "targetBucket": f"{log_target}-id", "targetPrefix": "s3/"},
                component,
            )
        )
    if lock:
        out += [
            res(
                "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
                f"{name}-lock",
                {
                    "bucket": bid,
                    "objectLockEnabled": "Enabled",
                    "rule": {"defaultRetention": {"mode": "GOVERNANCE", "days": 365}},
                },
                component,
            ),
            res(
                "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
                f"{name}-lifecycle",
                {
                    "bucket": bid,
                    "rules": [
                        {
                            "id": "abort-uploads",
                            "status": "Enabled",
                            "filter": {},
                            "abortIncompleteMultipartUpload": {"daysAfterInitiation": 7},
                        }
                    ],
                },
                component,
            ),
        ]
    return out


def container(name: str, image: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        **extra,
    }


def pod(containers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": containers,
        **extra,
    }


def meta(name: str, namespace: str, **labels: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "llmops", **labels},
    }


LITELLM_CONFIG = {
    "model_list": [
        {
            "model_name": "llama-3-8b",
            "litellm_params": {
                "model": "hosted_vllm/llama-3-8b",
                "api_base": "http://vllm-llama.models.svc.cluster.local:8000/v1",
                "api_key": "os.environ/VLLM_API_KEY",
                "input_cost_per_token": 1.0e-7,
                "output_cost_per_token": 3.0e-7,
            },
        },
        {
            "model_name": "claude-bedrock",
            "litellm_params": {"model": "bedrock/anthropic.claude-3-haiku", "aws_region_name": REGION},
        },
    ],
    "litellm_settings": {
        "callbacks": ["s3_v2"],
        "turn_off_message_logging": True,
        "s3_callback_params": {
            "s3_bucket_name": "gateway-logs-id",
            "s3_region_name": REGION,
            "s3_path": "spend",
        },
    },
    "general_settings": {
        "master_key": "os.environ/LITELLM_MASTER_KEY",
        "database_url": "os.environ/DATABASE_URL",
    },
    "guardrails": [
        {
            "guardrail_name": "pii-mask",
            "litellm_params": {
                "guardrail": "litellm_content_filter",
                "mode": "pre_call",
                "default_on": True,
                "patterns": [
                    {"pattern_type": "prebuilt", "pattern_name": p, "action": "MASK"}
                    for p in ("email", "credit_card", "iban", "uae_emirates_id", "uae_phone")
                ],
            },
        }
    ],
}


def _kubernetes() -> list[dict[str, Any]]:
    vllm = container(
        "vllm",
        "vllm/vllm-openai:v0.11.0",
        args=[
            "--model",
            "/models/llama-3-8b",
            "--served-model-name",
            "llama-3-8b",
            "--api-key",
            "$(VLLM_API_KEY)",
        ],
        env=[
            {"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": "vllm-api-key", "key": "key"}}},
            {"name": "HF_HUB_OFFLINE", "value": "1"},
        ],
    )
    snapshot = container("snapshot", "amazon/aws-cli:2.31.0", command=["/bin/sh", "-c", "echo snapshot"])
    dcgm = container("dcgm-exporter", "nvcr.io/nvidia/k8s/dcgm-exporter:4.2.3-4.1.3-ubuntu22.04")
    dcgm["securityContext"] = {
        **dcgm["securityContext"],
        "runAsNonRoot": False,
        "runAsUser": 0,
        "capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]},
    }
    deny = {"podSelector": {}, "policyTypes": ["Ingress"]}
    return [
        res(
            "kubernetes:core/v1:Namespace",
            "models-ns",
            {"metadata": {"name": "models", "labels": {"data-classification": "regulated"}}},
            "serving",
        ),
        res(
            "kubernetes:networking.k8s.io/v1:NetworkPolicy",
            "models-default-deny",
            {"metadata": {"name": "default-deny", "namespace": "models"}, "spec": deny},
            "serving",
        ),
        res(
            "kubernetes:networking.k8s.io/v1:NetworkPolicy",
            "gpu-default-deny",
            {"metadata": {"name": "default-deny", "namespace": "gpu-system"}, "spec": deny},
            "gpu-pools",
        ),
        res(
            "kubernetes:networking.k8s.io/v1:NetworkPolicy",
            "models-allow-gateway",
            {
                "metadata": {"name": "allow-gateway", "namespace": "models"},
                "spec": {
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "vllm-llama"}},
                    "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"name": "gateway"}}}]}],
                },
            },
            "serving",
        ),
        res(
            "kubernetes:apps/v1:Deployment",
            "vllm-llama",
            {
                "metadata": meta("vllm-llama", "models"),
                "spec": {
                    "replicas": 1,
                    "template": {"metadata": {"labels": {"app": "vllm"}}, "spec": pod([vllm])},
                },
            },
            "serving",
        ),
        res(
            "kubernetes:batch/v1:CronJob",
            "qdrant-snapshot",
            {
                "metadata": meta("qdrant-snapshot", "models"),
                "spec": {
                    "schedule": "0 2 * * *",
                    "jobTemplate": {
                        "spec": {"template": {"spec": pod([snapshot], restartPolicy="OnFailure")}}
                    },
                },
            },
            "serving",
        ),
        res(
            "kubernetes:apps/v1:DaemonSet",
            "dcgm-exporter",
            {
                "metadata": meta("dcgm-exporter", "gpu-system"),
                "spec": {
                    "template": {
                        "spec": pod(
                            [dcgm],
                            securityContext={"seccompProfile": {"type": "RuntimeDefault"}},
                            volumes=[
                                {
                                    "name": "pod-resources",
                                    "hostPath": {"path": "/var/lib/kubelet/pod-resources"},
                                }
                            ],
                        )
                    }
                },
            },
            "gpu-pools",
        ),
        res(
            "kubernetes:core/v1:Service",
            "gateway-svc",
            {
                "metadata": {
                    "name": "gateway",
                    "namespace": "gateway",
                    "annotations": {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"},
                },
                "spec": {"type": "LoadBalancer", "ports": [{"port": 443}]},
            },
            "gateway",
        ),
        res(
            "kubernetes:helm.sh/v4:Chart",
            "karpenter",
            {
                "chart": "oci://public.ecr.aws/karpenter/karpenter",
                "version": "1.8.1",
                "namespace": "kube-system",
                "values": {"replicas": 2},
            },
            "gpu-pools",
        ),
        res(
            "kubernetes:storage.k8s.io/v1:StorageClass",
            "gp3-encrypted",
            {
                "metadata": {"name": "gp3-encrypted"},
                "provisioner": "ebs.csi.aws.com",
                "parameters": {"type": "gp3", "encrypted": "true", "kmsKeyId": KEY},
            },
            "cluster",
        ),
        res(
            "kubernetes:core/v1:ConfigMap",
            "gateway-config",
            {
                "metadata": {
                    "name": "litellm-config",
                    "namespace": "gateway",
                    "labels": {"app.kubernetes.io/name": "litellm"},
                },
                "data": {"config.yaml": json.dumps(LITELLM_CONFIG)},  # JSON is YAML
            },
            "gateway",
        ),
        res(
            "kubernetes:karpenter.sh/v1:NodePool",
            "l4-spot",
            {
                "apiVersion": "karpenter.sh/v1",
                "kind": "NodePool",
                "metadata": {"name": "l4-spot"},
                "spec": {
                    "limits": {"nvidia.com/gpu": "8"},
                    "template": {
                        "spec": {
                            "requirements": [
                                {
                                    "key": "karpenter.k8s.aws/instance-family",
                                    "operator": "In",
                                    "values": ["g6"],
                                }
                            ],
                            "taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}],
                        }
                    },
                },
            },
            "gpu-pools",
        ),
        res(
            "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass",
            "gpu",
            {
                "apiVersion": "karpenter.k8s.aws/v1",
                "kind": "EC2NodeClass",
                "metadata": {"name": "gpu"},
                "spec": {
                    "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1},
                    "blockDeviceMappings": [
                        {
                            "deviceName": "/dev/xvda",
                            "ebs": {"encrypted": True, "kmsKeyID": KEY, "volumeSize": "20Gi"},
                        }
                    ],
                },
            },
            "gpu-pools",
        ),
    ]


def _aws() -> list[dict[str, Any]]:
    pods_trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "pods.eks.amazonaws.com"},
                    "Action": ["sts:AssumeRole", "sts:TagSession"],
                }
            ],
        }
    )
    gh = "token.actions.githubusercontent.com"
    ci_trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{gh}"},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {f"{gh}:aud": "sts.amazonaws.com"},
                        "StringLike": {f"{gh}:sub": "repo:acme/llmops:ref:refs/heads/main"},
                    },
                }
            ],
        }
    )
    reader = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:ListBucket"],
                    "Resource": ["arn:aws:s3:::prompts-bucket-id", "arn:aws:s3:::prompts-bucket-id/*"],
                },
                {"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": [KEY]},
                {"Effect": "Allow", "Action": ["cloudwatch:PutMetricData"], "Resource": "*"},
            ],
        }
    )
    return [
        res(
            "aws:kms/key:Key",
            "platform-key",
            {"enableKeyRotation": True, "deletionWindowInDays": 30},
            "cluster",
        ),
        res("aws:ec2/vpc:Vpc", "network-vpc", {"cidrBlock": "10.0.0.0/16"}, "network", id="vpc-0abc"),
        res(
            "aws:ec2/subnet:Subnet",
            "network-private-a",
            {
                "vpcId": "vpc-0abc",
                "cidrBlock": "10.0.0.0/19",
                "availabilityZone": f"{REGION}a",
                "mapPublicIpOnLaunch": False,
            },
            "network",
        ),
        res(
            "aws:cloudwatch/logGroup:LogGroup",
            "network-flow-log-group",
            {"kmsKeyId": KEY, "retentionInDays": 365},
            "network",
        ),
        res(
            "aws:ec2/flowLog:FlowLog",
            "network-flow-log",
            {"vpcId": "vpc-0abc", "trafficType": "ALL", "logDestinationType": "cloud-watch-logs"},
            "network",
        ),
        *[
            res(
                "aws:ec2/vpcEndpoint:VpcEndpoint",
                f"network-endpoint-{svc}",
                {
                    "vpcId": "vpc-0abc",
                    "serviceName": f"com.amazonaws.{REGION}.{svc}",
                    "vpcEndpointType": "Gateway" if svc == "s3" else "Interface",
                },
                "network",
            )
            for svc in ("s3", "sts", "ecr.api", "ecr.dkr", "logs")
        ],
        res(
            "aws:ec2/securityGroup:SecurityGroup",
            "gateway-db-sg",
            {
                "vpcId": "vpc-0abc",
                "ingress": [
                    {"fromPort": 5432, "toPort": 5432, "protocol": "tcp", "cidrBlocks": ["10.0.0.0/16"]}
                ],
            },
            "gateway",
        ),
        res(
            "aws:eks/cluster:Cluster",
            "cluster-eks",
            {
                "version": "1.34",
                "roleArn": f"arn:aws:iam::{ACCOUNT}:role/cluster",
                "vpcConfig": {
                    "endpointPublicAccess": False,
                    "endpointPrivateAccess": True,
                    "subnetIds": ["subnet-1"],
                },
                "encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": KEY}},
                "enabledClusterLogTypes": ["api", "audit", "authenticator", "controllerManager", "scheduler"],
                "accessConfig": {
                    "authenticationMode": "API",
                    "bootstrapClusterCreatorAdminPermissions": False,
                },
            },
            "cluster",
        ),
        res(
            "aws:ec2/launchTemplate:LaunchTemplate",
            "cluster-system-nodes",
            {
                "metadataOptions": {
                    "httpTokens": "required",
                    "httpPutResponseHopLimit": 1,
                    "httpEndpoint": "enabled",
                },
                "blockDeviceMappings": [
                    {"deviceName": "/dev/xvda", "ebs": {"encrypted": "true", "kmsKeyId": KEY}}
                ],
            },
            "cluster",
        ),
        res(
            "aws:eks/nodeGroup:NodeGroup",
            "cluster-system",
            {"clusterName": "cluster-eks", "instanceTypes": ["m7i.xlarge"]},
            "cluster",
        ),
        res("aws:iam/role:Role", "prompt-reader", {"assumeRolePolicy": pods_trust}, "prompts"),
        res("aws:iam/role:Role", "ci-deploy", {"assumeRolePolicy": ci_trust}, "ci"),
        res("aws:iam/policy:Policy", "prompt-reader-policy", {"policy": reader}, "prompts"),
        res(
            "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
            "cluster-node-worker",
            {"role": "node", "policyArn": "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy"},
            "cluster",
        ),
        res(
            "aws:rds/instance:Instance",
            "gateway-db",
            {
                "instanceClass": "db.m7g.large",
                "engine": "postgres",
                "storageEncrypted": True,
                "kmsKeyId": KEY,
                "publiclyAccessible": False,
                "multiAz": True,
                "deletionProtection": True,
            },
            "gateway",
        ),
        res(
            "aws:lb/loadBalancer:LoadBalancer",
            "gateway-nlb",
            {"internal": True, "loadBalancerType": "network"},
            "gateway",
        ),
        res("aws:sns/topic:Topic", "cost-alerts", {"kmsMasterKeyId": KEY}, "cost"),
        res("aws:sqs/queue:Queue", "cost-spend-events", {"kmsMasterKeyId": KEY}, "cost"),
        res("aws:secretsmanager/secret:Secret", "gateway-master-key", {"kmsKeyId": KEY}, "gateway"),
        res(
            "aws:lambda/function:Function",
            "cost-aggregator",
            {
                "runtime": "python3.12",
                "architectures": ["arm64"],
                "timeout": 60,
                "reservedConcurrentExecutions": 5,
                "deadLetterConfig": {"targetArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:cost-dlq"},
            },
            "cost",
        ),
        res(
            "aws:cloudwatch/metricAlarm:MetricAlarm",
            "cost-team-daily",
            {"alarmActions": [TOPIC], "comparisonOperator": "GreaterThanThreshold", "threshold": 100},
            "cost",
        ),
        res(
            "aws:budgets/budget:Budget",
            "cost-gpu-budget",
            {
                "budgetType": "COST",
                "limitAmount": "5000",
                "notifications": [
                    {
                        "comparisonOperator": "GREATER_THAN",
                        "notificationType": "FORECASTED",
                        "threshold": 80,
                        "thresholdType": "PERCENTAGE",
                        "subscriberSnsTopicArns": [TOPIC],
                    }
                ],
            },
            "cost",
        ),
        res(
            "aws:costexplorer/anomalyMonitor:AnomalyMonitor",
            "cost-monitor",
            {"monitorType": "DIMENSIONAL", "monitorDimension": "SERVICE"},
            "cost",
        ),
        res(
            "aws:costexplorer/anomalySubscription:AnomalySubscription",
            "cost-anomalies",
            {"frequency": "IMMEDIATE", "monitorArnLists": ["arn"]},
            "cost",
        ),
        res(
            "aws:ebs/volume:Volume",
            "cache-volume",
            {"encrypted": True, "kmsKeyId": KEY, "availabilityZone": f"{REGION}b"},
            "serving",
        ),
    ]


def compliant_plan() -> dict[str, Any]:
    components = [
        res(f"llmops:{area}:{kind}", name, {})
        for area, kind, name in [
            ("prompts", "PromptStore", "prompts"),
            ("network", "Network", "network"),
            ("cluster", "Cluster", "cluster"),
            ("gateway", "Gateway", "gateway"),
            ("cost_alarms", "CostAlarms", "cost"),
            ("model_serving", "ModelServing", "serving"),
            ("gpu_pools", "GpuPools", "gpu-pools"),
            ("ci_access", "CiAccess", "ci"),
        ]
    ]
    provider = res(
        "pulumi:providers:aws", "aws", {"region": REGION, "defaultTags": json.dumps({"tags": TAGS})}
    )
    resources = [provider, *components]
    resources += _bucket("prompts", "prompts-bucket", lock=True, log_target="prompts-access-logs")
    resources += _bucket("prompts", "prompts-access-logs")
    resources += _aws() + _kubernetes()
    return {"stack": "prod", "resources": copy.deepcopy(resources)}


def find(plan: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in plan["resources"] if r["name"] == name)


def set_path(obj: Any, path: str, value: Any) -> None:
    """Sets a dotted path (list indices as numbers); value DELETE removes the key."""
    parts = path.split(".")
    for part in parts[:-1]:
        obj = obj[int(part)] if isinstance(obj, list) else obj.setdefault(part, {})
    last = parts[-1]
    if value is DELETE:
        if isinstance(obj, list):
            del obj[int(last)]
        else:
            obj.pop(last, None)
    elif isinstance(obj, list) and int(last) == len(obj):
        obj.append(value)
    elif isinstance(obj, list):
        obj[int(last)] = value
    else:
        obj[last] = value


DELETE = object()
