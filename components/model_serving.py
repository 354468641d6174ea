"""Self-hosted models: the model-artifacts bucket, one vLLM Deployment per model on its GPU
pool, and queue-depth autoscaling with KEDA (to zero where a model's minReplicas is 0).

`models` (a list of SelfHostedModel) is what the gateway reads: URL, served name and the
inputs of a per-token price.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components import hardening, iam, names
from components.context import AwsContext
from components.model_workload import model_objects
from components.observability import Observability
from components.s3 import PrivateBucket, private_bucket
from components.secrets import generated_secret
from llmops import instances, versions
from llmops.errors import EXIT_USAGE, LlmopsError
from llmops.gateway.config import SelfHostedModel
from llmops.settings import StackSettings
from llmops.settings.serving import ModelSettings

API_KEY_SECRET = "vllm-api-key"
API_KEY_ENV = "VLLM_API_KEY"  # vLLM reads its API key from this variable
GATEWAY_NAMESPACE = "llmops-gateway"
GATEWAY_POD_LABELS = {"app.kubernetes.io/name": "litellm"}


def replica_instance(model: ModelSettings, settings: StackSettings) -> instances.InstanceType:
    """The cheapest instance type of the model's pool, offered in the stack's region, that holds
    one replica (what Karpenter launches for a lone replica; list prices from llmops/pricing/)."""
    pool = next(p for p in settings.gpu_pools if p.name == model.pool)
    fits = [t for t in instances.offered_in(pool.types(), settings.region) if t.gpus >= model.gpus]
    return min(fits, key=lambda t: t.usd_per_hour(settings.region) or 0.0)


def replica_price(instance: instances.InstanceType, settings: StackSettings) -> float:
    price = instance.usd_per_hour(settings.region)
    if price is None:
        raise LlmopsError(
            f"{settings.region} has no price table in llmops/pricing/: the gateway cannot price "
            f"self-hosted tokens on {instance.name}; add the region's prices",
            EXIT_USAGE,
        )
    return price


def self_hosted_models(settings: StackSettings) -> list[SelfHostedModel]:
    """What the gateway needs about every model, derived from the validated settings alone."""
    out = []
    for model in settings.models:
        instance = replica_instance(model, settings)
        out.append(
            SelfHostedModel(
                public_name=model.name,
                served_name=model.served,
                url=f"http://{model.name}.{names.MODELS_NAMESPACE}.svc.cluster.local:{names.VLLM_PORT}/v1",
                gpu_model=instance.gpu_model,
                gpus_per_replica=model.gpus,
                instance_usd_per_hour=replica_price(instance, settings),
                tokens_per_second_assumption=model.tokens_per_second,
                gpus_per_instance=instance.gpus,
            )
        )
    return out


@dataclass
class ModelServingArgs:
    context: AwsContext
    cluster_name: pulumi.Input[str]
    k8s_provider: k8s.Provider
    observability: Observability
    system_nodes: pulumi.Resource
    client_namespace: str = GATEWAY_NAMESPACE
    """Namespace of the pods allowed to call the models (the gateway's)."""
    client_pod_labels: dict[str, str] = field(default_factory=lambda: dict(GATEWAY_POD_LABELS))
    """Labels of those pods."""


class ModelServing(pulumi.ComponentResource):
    artifacts: PrivateBucket
    artifacts_bucket: pulumi.Output[str]
    models: list[SelfHostedModel]
    api_key: pulumi.Output[str]
    api_key_secret_arn: pulumi.Output[str]

    def __init__(self, name: str, args: ModelServingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:serving:ModelServing", name, None, opts)
        ctx, settings = args.context, args.context.settings
        self._name, self._ctx, self._args = name, ctx, args
        self._k8s = pulumi.ResourceOptions(parent=self, provider=args.k8s_provider)

        key = ctx.kms_key(f"{name}-artifacts-key", "Model weights in the model-artifacts bucket", self)
        self.artifacts = private_bucket(
            f"{name}-artifacts", parent=self, key=key, protect=ctx.protect, access_logs=ctx.access_logs
        )
        self.artifacts_bucket = self.artifacts.name
        self.models = self_hosted_models(settings)

        namespace = hardening.namespace(
            f"{name}-namespace", names.MODELS_NAMESPACE, ctx.settings.data_classification,
            hardening.RESTRICTED_NAMESPACE_LABELS, self._k8s,
        )  # fmt: skip
        in_ns = pulumi.ResourceOptions(parent=self, provider=args.k8s_provider, depends_on=[namespace])
        api_secret = self._api_key(in_ns)
        self._network_policies(in_ns)
        keda = self._keda()
        trigger_auth = None
        if args.observability.metrics.aws_region:
            trigger_auth = k8s.apiextensions.CustomResource(
                f"{name}-amp-auth",
                api_version="keda.sh/v1alpha1",
                kind="TriggerAuthentication",
                metadata={"name": "amp-sigv4", "namespace": names.MODELS_NAMESPACE},
                # KEDA's operator signs queries with its own Pod Identity role (see _keda).
                spec={"podIdentity": {"provider": "aws"}},
                opts=pulumi.ResourceOptions(
                    parent=self, provider=args.k8s_provider, depends_on=[namespace, keda]
                ),
            )

        for model in settings.models:
            identity = self._weights_role(model)
            objects = model_objects(
                model,
                weights_uri=self._weights_uri(model),
                api_key_secret=API_KEY_SECRET,
                metrics=args.observability.metrics,
                trigger_auth="amp-sigv4" if trigger_auth else None,
                region=ctx.region,
            )
            after = [r for r in (keda, api_secret, trigger_auth, identity) if r is not None]
            self._declare(model, objects, in_ns, after)

        self.register_outputs(
            {
                "artifacts_bucket": self.artifacts_bucket,
                "models": [m.public_name for m in self.models],
                "api_key_secret_arn": self.api_key_secret_arn,
            }
        )

    def _weights_uri(self, model: ModelSettings) -> pulumi.Input[str]:
        if model.hugging_face_id:
            return model.hugging_face_id
        return self.artifacts.name.apply(lambda b: f"s3://{b}/{model.s3_prefix}")

    def _weights_role(self, model: ModelSettings) -> aws.eks.PodIdentityAssociation | None:
        """A Pod Identity role that can read only this model's prefix (and decrypt it)."""
        if not model.s3_prefix:
            return None
        ctx, child = self._ctx, pulumi.ResourceOptions(parent=self)
        # Pods started before the association exists get no credentials: the Deployment waits.
        role, identity = iam.pod_identity_role(
            f"{self._name}-{model.name}",
            account_id=ctx.account_id,
            cluster_name=self._args.cluster_name,
            namespace=names.MODELS_NAMESPACE,
            service_account=f"vllm-{model.name}",
            parent=self,
        )
        aws.iam.RolePolicy(
            f"{self._name}-{model.name}-weights",
            role=role.id,
            policy=self.artifacts.read_statements(model.s3_prefix).apply(lambda s: iam.document(*s)),
            opts=child,
        )
        return identity

    def _api_key(self, opts: pulumi.ResourceOptions) -> k8s.core.v1.Secret:
        """One API key for every vLLM server: generated, kept in Secrets Manager (the gateway
        reads it from there) and given to the pods as a Kubernetes Secret."""
        ctx = self._ctx
        key = ctx.kms_key(f"{self._name}-secrets-key", "vLLM API key in Secrets Manager", self)
        self.api_key, secret = generated_secret(
            f"{self._name}-api-key", f"{ctx.settings.name_prefix}/vllm-api-key", key, ctx, self
        )
        self.api_key_secret_arn = secret.arn
        return k8s.core.v1.Secret(
            f"{self._name}-api-key-k8s",
            metadata={"name": API_KEY_SECRET, "namespace": names.MODELS_NAMESPACE},
            type="Opaque",
            string_data={API_KEY_ENV: self.api_key},
            opts=opts,
        )

    def _network_policies(self, opts: pulumi.ResourceOptions) -> None:
        """Nothing reaches the models namespace except the gateway's pods and the metrics scraper."""
        metrics = self._args.observability.metrics
        vllm = {"matchLabels": {"app.kubernetes.io/name": names.VLLM_APP}}
        port = [{"protocol": "TCP", "port": names.VLLM_PORT}]
        ns = names.MODELS_NAMESPACE
        hardening.default_deny_ingress(f"{self._name}-default-deny", ns, opts)
        k8s.networking.v1.NetworkPolicy(
            f"{self._name}-allow-gateway",
            metadata={"name": "allow-gateway", "namespace": ns},
            spec={
                "podSelector": vllm,
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {
                                        "kubernetes.io/metadata.name": self._args.client_namespace
                                    }
                                },
                                "podSelector": {"matchLabels": self._args.client_pod_labels},
                            }
                        ],
                        "ports": port,
                    }
                ],
            },
            opts=opts,
        )
        if metrics.in_cluster_pod_labels:
            source = {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": names.MONITORING_NAMESPACE}
                },
                "podSelector": {"matchLabels": metrics.in_cluster_pod_labels},
            }
        else:
            # The AMP scraper's network interfaces sit in the VPC's private subnets; /metrics is
            # the only path there that needs no API key.
            source = {"ipBlock": {"cidr": metrics.scraper_cidr}}
        k8s.networking.v1.NetworkPolicy(
            f"{self._name}-allow-metrics",
            metadata={"name": "allow-metrics-scraper", "namespace": ns},
            spec={
                "podSelector": vllm,
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [source], "ports": port}],
            },
            opts=opts,
        )

    def _keda(self) -> k8s.helm.v4.Chart:
        """KEDA (pinned chart) on the system nodes; its operator queries AMP with a Pod Identity
        role that may only read metrics."""
        args = self._args
        namespace = hardening.namespace(
            f"{self._name}-keda-namespace",
            names.KEDA_NAMESPACE,
            self._ctx.settings.data_classification,
            hardening.RESTRICTED_NAMESPACE_LABELS,
            self._k8s,
        )
        depends: list[pulumi.Resource] = [namespace, args.system_nodes]
        if args.observability.metrics.aws_region:
            role, identity = iam.pod_identity_role(
                f"{self._name}-keda",
                account_id=self._ctx.account_id,
                cluster_name=args.cluster_name,
                namespace=names.KEDA_NAMESPACE,
                service_account="keda-operator",
                parent=self,
            )
            args.observability.grant_query(f"{self._name}-keda-query", role)
            depends.append(identity)
        small = self._ctx.settings.cluster.system_nodes.keda.resources()
        return k8s.helm.v4.Chart(
            f"{self._name}-keda",
            name="keda",
            chart=versions.KEDA.name,
            version=versions.KEDA.version,
            repository_opts={"repo": versions.KEDA.repo},
            namespace=names.KEDA_NAMESPACE,
            values={
                "nodeSelector": {"llmops.io/node-role": "system"},
                "resources": {"operator": small, "metricServer": small, "webhooks": small},
                "podIdentity": {"aws": {"irsa": {"enabled": False}}},  # EKS Pod Identity instead
            },
            opts=pulumi.ResourceOptions(parent=self, provider=args.k8s_provider, depends_on=depends),
        )

    def _declare(self, model, objects: dict, opts: pulumi.ResourceOptions, after: list) -> None:
        n = f"{self._name}-{model.name}"
        k8s.core.v1.ServiceAccount(f"{n}-sa", **objects["service_account"], opts=opts)
        deployment = k8s.apps.v1.Deployment(
            f"{n}-deployment",
            **objects["deployment"],
            # KEDA owns the replica count once the Deployment exists.
            opts=pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(ignore_changes=["spec.replicas"], depends_on=after)
            ),
        )
        k8s.core.v1.Service(f"{n}-service", **objects["service"], opts=opts)
        k8s.policy.v1.PodDisruptionBudget(f"{n}-pdb", **objects["pdb"], opts=opts)
        k8s.apiextensions.CustomResource(
            f"{n}-scaler",
            api_version="keda.sh/v1alpha1",
            kind="ScaledObject",
            **objects["scaled_object"],
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[deployment, *after])),
        )
