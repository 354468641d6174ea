"""Which changed input paths make Pulumi replace a resource instead of updating it: a heuristic.

Only the provider decides, at `pulumi preview`; offline we know the common cases. Kubernetes: the
paths pulumi-kubernetes marks force-new (metadata name and namespace, a ConfigMap's data, a
Secret's type, immutable selectors, ...). AWS: the arguments the provider marks ForceNew for the
types this program declares, and an explicit `name` (or name prefix), which names the physical
resource on almost every AWS type.
"""

from __future__ import annotations

import re

_ALL_KUBERNETES = ("metadata.name", "metadata.namespace")
_ALL_AWS = ("name", "namePrefix")
# type -> path prefixes whose change replaces the resource
FORCE_NEW: dict[str, tuple[str, ...]] = {
    "kubernetes:core/v1:ConfigMap": ("data", "binaryData"),
    "kubernetes:core/v1:Secret": ("type", "data", "stringData"),
    "kubernetes:core/v1:Service": ("spec.clusterIP", "spec.type"),
    "kubernetes:core/v1:PersistentVolumeClaim": ("spec",),
    "kubernetes:apps/v1:Deployment": ("spec.selector",),
    "kubernetes:apps/v1:StatefulSet": (
        "spec.podManagementPolicy",
        "spec.selector",
        "spec.serviceName",
        "spec.volumeClaimTemplates",
    ),
    "kubernetes:batch/v1:Job": ("spec.selector", "spec.template"),
    "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding": ("roleRef",),
    "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding": ("roleRef",),
    "kubernetes:storage.k8s.io/v1:StorageClass": ("parameters", "provisioner", "reclaimPolicy"),
    "aws:ec2/vpc:Vpc": ("cidrBlock",),
    "aws:ec2/subnet:Subnet": ("availabilityZone", "cidrBlock", "vpcId"),
    "aws:ec2/natGateway:NatGateway": ("allocationId", "subnetId"),
    "aws:ec2/vpcEndpoint:VpcEndpoint": ("serviceName", "vpcEndpointType", "vpcId"),
    "aws:eks/cluster:Cluster": ("kubernetesNetworkConfig",),
    "aws:eks/nodeGroup:NodeGroup": (
        "amiType",
        "capacityType",
        "instanceTypes",
        "nodeGroupName",
        "nodeRoleArn",
        "subnetIds",
    ),
    "aws:kms/key:Key": ("customerMasterKeySpec", "keyUsage"),
    "aws:rds/instance:Instance": ("engine", "identifier", "kmsKeyId", "storageEncrypted", "username"),
    "aws:s3/bucket:Bucket": ("bucket", "bucketPrefix", "objectLockEnabled"),
    "aws:sqs/queue:Queue": ("fifoQueue",),
    "aws:lambda/function:Function": ("packageType",),
    "aws:dynamodb/table:Table": ("hashKey", "rangeKey"),
}


# Types whose deletion (a removal, or a replacement) loses data or what was encrypted with it.
STATEFUL = {
    "aws:dynamodb/table:Table",
    "aws:kms/key:Key",
    "aws:rds/instance:Instance",
    "aws:s3/bucket:Bucket",
    "aws:secretsmanager/secret:Secret",
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:core/v1:PersistentVolumeClaim",
}


def replacement_paths(type_: str, paths: list[str]) -> list[str]:
    """The changed paths (dotted, as llmops.diff writes them) that likely replace a `type_`."""
    prefixes = FORCE_NEW.get(type_, ())
    if type_.startswith("kubernetes:") and not type_.startswith(("kubernetes:helm.sh/", "pulumi:")):
        prefixes += _ALL_KUBERNETES
    elif type_.startswith("aws:"):
        prefixes += _ALL_AWS
    return [p for p in paths if any(_under(p, prefix) for prefix in prefixes)]


def _under(path: str, prefix: str) -> bool:
    """`path` is `prefix` or below it (`spec.selector.matchLabels` is under `spec.selector`)."""
    return path == prefix or bool(re.match(re.escape(prefix) + r"[.\[]", path))
