"""GPU capacity: Karpenter (Pod Identity, interruption queue), an EC2NodeClass, one NodePool
per configured pool, and the NVIDIA device plugin where the OS does not ship it."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components import iam, names
from components.context import AwsContext
from components.karpenter_policy import controller_statements
from llmops import versions
from llmops.settings.infra import GpuPool

KARPENTER_NAMESPACE = names.KARPENTER_NAMESPACE
POOL_LABEL = "llmops.io/gpu-pool"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
# Helm values of per-GPU-node daemons (device plugin, DCGM exporter): only on GPU pool nodes,
# tolerating their taint.
GPU_NODES_ONLY = {
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": POOL_LABEL, "operator": "Exists"}]}]
            }
        }
    },
    "tolerations": [{"key": GPU_TAINT["key"], "operator": "Exists", "effect": "NoSchedule"}],
}
# EventBridge events Karpenter acts on before AWS takes a node away.
INTERRUPTION_EVENTS = {
    "scheduled-change": {"source": ["aws.health"], "detail-type": ["AWS Health Event"]},
    "spot-interruption": {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]},
    "rebalance": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance Rebalance Recommendation"]},
    "instance-state-change": {
        "source": ["aws.ec2"],
        "detail-type": ["EC2 Instance State-change Notification"],
    },
}


@dataclass
class GpuPoolsArgs:
    context: AwsContext
    cluster_name: pulumi.Input[str]
    cluster_security_group_id: pulumi.Input[str]
    subnet_ids: list[pulumi.Input[str]]
    ebs_key_arn: pulumi.Input[str]
    k8s_provider: k8s.Provider
    system_nodes: pulumi.Resource
    """Karpenter runs on the system nodes; it is installed after they exist."""


class GpuPools(pulumi.ComponentResource):
    node_role_arn: pulumi.Output[str]
    interruption_queue_url: pulumi.Output[str]
    node_pools: dict[str, k8s.apiextensions.CustomResource]

    def __init__(self, name: str, args: GpuPoolsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:gpu:GpuPools", name, None, opts)
        ctx = args.context
        self._name, self._ctx, self._args = name, ctx, args
        self._k8s = pulumi.ResourceOptions(parent=self, provider=args.k8s_provider)

        node_role = self._node_role()
        queue = self._interruption_queue()
        controller_role = self._controller_role(node_role, queue)
        karpenter = k8s.helm.v4.Chart(
            f"{name}-karpenter",
            # The release name names the chart's Deployment, Service and PDB (its fullname helper);
            # "karpenter" is what the platform's scrape job keeps (components/observability.py).
            name=names.KARPENTER_RELEASE,
            chart=versions.KARPENTER.ref,
            version=versions.KARPENTER.version,
            namespace=KARPENTER_NAMESPACE,
            values={
                "settings": {"clusterName": args.cluster_name, "interruptionQueue": queue.name},
                "serviceAccount": {"name": "karpenter"},
                # At most one per node (the chart's required anti-affinity): one on a one-node group.
                "replicas": min(2, args.context.settings.cluster.system_nodes.min_size),
                "nodeSelector": {"llmops.io/node-role": "system"},
                "controller": {"resources": args.context.settings.cluster.system_nodes.karpenter.resources()},
            },
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.k8s_provider, depends_on=[controller_role, args.system_nodes]
            ),
        )
        after_crds = pulumi.ResourceOptions(parent=self, provider=args.k8s_provider, depends_on=[karpenter])

        pools = ctx.settings.gpu_pools
        shared_class = self._node_class("gpu", node_role, [], after_crds)
        self.node_pools = {}
        for pool in pools:
            class_name, node_class = "gpu", shared_class
            if pool.capacity_reservation_ids:  # reservations are selected per node class
                class_name = f"gpu-{pool.name}"
                node_class = self._node_class(
                    class_name, node_role, pool.capacity_reservation_ids, after_crds
                )
            self.node_pools[pool.name] = k8s.apiextensions.CustomResource(
                f"{name}-{pool.name}",
                api_version="karpenter.sh/v1",
                kind="NodePool",
                metadata={"name": pool.name},
                spec=node_pool_spec(pool, class_name),
                opts=pulumi.ResourceOptions.merge(
                    after_crds, pulumi.ResourceOptions(depends_on=[node_class])
                ),
            )

        if ctx.settings.gpu_nodes.ami_family == "AL2023":
            self._device_plugin()

        self.node_role_arn = node_role.arn
        self.interruption_queue_url = queue.url
        self.register_outputs({"node_role_arn": self.node_role_arn, "node_pools": list(self.node_pools)})

    def _node_role(self) -> aws.iam.Role:
        child = pulumi.ResourceOptions(parent=self)
        role, _ = iam.role(
            f"{self._name}-node-role", iam.ec2_trust(), iam.NODE_MANAGED_POLICIES, self._ctx.partition, self
        )
        # Nodes join the cluster through an access entry (no aws-auth ConfigMap).
        aws.eks.AccessEntry(
            f"{self._name}-node-access",
            cluster_name=self._args.cluster_name,
            principal_arn=role.arn,
            type="EC2_LINUX",
            opts=child,
        )
        return role

    def _interruption_queue(self) -> aws.sqs.Queue:
        ctx, child = self._ctx, pulumi.ResourceOptions(parent=self)
        key = ctx.kms_key(
            f"{self._name}-queue-key",
            "Karpenter interruption queue",
            self,
            services=["events.amazonaws.com", "sqs.amazonaws.com"],
        )
        queue = aws.sqs.Queue(
            f"{self._name}-interruptions",
            message_retention_seconds=300,
            kms_master_key_id=key.arn,
            kms_data_key_reuse_period_seconds=300,
            opts=child,
        )
        aws.sqs.QueuePolicy(
            f"{self._name}-interruptions-policy",
            queue_url=queue.url,
            policy=iam.document_output(
                {
                    "Effect": "Allow",
                    "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
                    "Action": "sqs:SendMessage",
                    "Resource": queue.arn,
                },
                iam.deny_insecure_transport("sqs:*", queue.arn),
            ),
            opts=child,
        )
        for event, pattern in INTERRUPTION_EVENTS.items():
            rule = aws.cloudwatch.EventRule(
                f"{self._name}-{event}", event_pattern=json.dumps(pattern), opts=child
            )
            aws.cloudwatch.EventTarget(
                f"{self._name}-{event}-target", rule=rule.name, arn=queue.arn, opts=child
            )
        self._queue_key_arn = key.arn
        return queue

    def _controller_role(
        self, node_role: aws.iam.Role, queue: aws.sqs.Queue
    ) -> aws.eks.PodIdentityAssociation:
        ctx, child = self._ctx, pulumi.ResourceOptions(parent=self)
        role, identity = iam.pod_identity_role(
            f"{self._name}-controller",
            account_id=ctx.account_id,
            cluster_name=self._args.cluster_name,
            namespace=KARPENTER_NAMESPACE,
            service_account="karpenter",
            parent=self,
        )
        aws.iam.RolePolicy(
            f"{self._name}-controller-policy",
            role=role.id,
            policy=pulumi.Output.all(
                self._args.cluster_name, node_role.arn, queue.arn, self._args.ebs_key_arn, self._queue_key_arn
            ).apply(
                lambda v: iam.document(
                    *controller_statements(
                        partition=ctx.partition,
                        region=ctx.region,
                        account_id=ctx.account_id,
                        cluster_name=v[0],
                        node_role_arn=v[1],
                        queue_arn=v[2],
                        key_arns=[v[3], v[4]],
                    )
                )
            ),
            opts=child,
        )
        return identity

    def _node_class(self, class_name, node_role, reservation_ids, opts) -> k8s.apiextensions.CustomResource:
        ctx, gpu = self._ctx, self._ctx.settings.gpu_nodes
        volumes = _block_devices(
            gpu.ami_family,
            gpu.root_volume_gib,
            gpu.data_volume_gib,
            gpu.data_volume_snapshot_id,
            self._args.ebs_key_arn,
        )
        spec = {
            "role": node_role.name,
            "amiSelectorTerms": [{"alias": versions.GPU_NODE_AMI_ALIASES[gpu.ami_family]}],
            "subnetSelectorTerms": [{"id": s} for s in self._args.subnet_ids],
            "securityGroupSelectorTerms": [{"id": self._args.cluster_security_group_id}],
            "metadataOptions": {
                "httpEndpoint": "enabled",
                "httpProtocolIPv6": "disabled",
                "httpPutResponseHopLimit": 1,
                "httpTokens": "required",
            },
            "blockDeviceMappings": volumes,
            # Provider default tags do not reach instances Karpenter launches: tag them here.
            "tags": ctx.settings.default_tags(),
        }
        if reservation_ids:
            spec["capacityReservationSelectorTerms"] = [{"id": r} for r in reservation_ids]
        return k8s.apiextensions.CustomResource(
            f"{self._name}-{class_name}-nodeclass",
            api_version="karpenter.k8s.aws/v1",
            kind="EC2NodeClass",
            metadata={"name": class_name},
            spec=spec,
            opts=opts,
        )

    def _device_plugin(self) -> None:
        chart = versions.NVIDIA_DEVICE_PLUGIN
        k8s.helm.v4.Chart(
            f"{self._name}-nvidia-device-plugin",
            chart=chart.name,
            version=chart.version,
            repository_opts={"repo": chart.repo},
            namespace=KARPENTER_NAMESPACE,
            values={
                **GPU_NODES_ONLY,
            },
            opts=self._k8s,
        )


def node_pool_spec(pool: GpuPool, node_class_name: str) -> dict:
    """A Karpenter v1 NodePool: only the pool's GPU types, tainted for GPU pods, capped by
    the pool's GPU limit, consolidated when idle so an unused pool costs nothing."""
    if pool.instance_types:
        shape = {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": pool.instance_types}
    else:
        shape = {
            "key": "karpenter.k8s.aws/instance-family",
            "operator": "In",
            "values": pool.instance_families,
        }
    return {
        "template": {
            "metadata": {"labels": {**pool.labels, POOL_LABEL: pool.name}},
            "spec": {
                "nodeClassRef": {
                    "group": "karpenter.k8s.aws",
                    "kind": "EC2NodeClass",
                    "name": node_class_name,
                },
                "requirements": [
                    shape,
                    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": pool.capacity_types},
                    {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                    {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                ],
                "taints": [GPU_TAINT],
                "expireAfter": "720h",
            },
        },
        "disruption": {
            "consolidationPolicy": pool.consolidation,
            "consolidateAfter": pool.consolidate_after,
            "budgets": [{"nodes": "10%"}],
        },
        "limits": {"nvidia.com/gpu": pool.max_gpus},
        "weight": pool.weight,
    }


def _block_devices(ami_family, root_gib, data_gib, snapshot_id, key_arn) -> list[dict]:
    """Bottlerocket keeps the OS and the data (images, model cache) on separate volumes, and
    the data volume may start from a snapshot with the vLLM image already pulled."""

    def ebs(size_gib, snapshot=None):
        volume = {
            "volumeSize": f"{size_gib}Gi",
            "volumeType": "gp3",
            "encrypted": True,
            "kmsKeyID": key_arn,
            "deleteOnTermination": True,
            "iops": 3000,
            "throughput": 250,
        }
        if snapshot:
            volume["snapshotID"] = snapshot
        return volume

    if ami_family == "Bottlerocket":
        return [
            {"deviceName": "/dev/xvda", "ebs": ebs(root_gib)},
            {"deviceName": "/dev/xvdb", "ebs": ebs(data_gib, snapshot_id), "rootVolume": True},
        ]
    return [{"deviceName": "/dev/xvda", "ebs": ebs(data_gib), "rootVolume": True}]
