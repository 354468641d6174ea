"""The whole platform of one stack: composes the components in dependency order."""

from __future__ import annotations

import dataclasses

import pulumi
import pulumi_aws as aws

from components.access_logs import AccessLogs, AccessLogsArgs
from components.cluster import Cluster, ClusterArgs
from components.context import AwsContext
from components.cost_alarms import CostAlarms, CostAlarmsArgs, TeamAlarm
from components.gateway import Gateway, GatewayArgs
from components.gpu_pools import GpuPools, GpuPoolsArgs
from components.model_serving import ModelServing, ModelServingArgs
from components.network import Network, NetworkArgs
from components.observability import Observability, ObservabilityArgs
from components.prompt_store import GITHUB_OIDC_HOST, PromptStore, PromptStoreArgs
from components.retrieval_freshness import RetrievalFreshness, RetrievalFreshnessArgs, declared_collections
from components.teams import Teams, TeamsArgs
from components.vector_db import VectorDb, VectorDbArgs
from llmops.settings import StackSettings, TeamSettings


def required_endpoints(settings: StackSettings, teams: list[TeamSettings]) -> list[str]:
    """Interface endpoints the components' paths need whatever `network.interfaceEndpoints` says:
    the budget guard calls CloudWatch from the VPC with HTTPS to the VPC only (monitoring); team
    pods and the reconciler reach Secrets Manager only inside the VPC (secretsmanager); without
    NAT, KEDA queries AMP (aps-workspaces) and the gateway calls Bedrock (bedrock-runtime) through
    endpoints. With a NAT and `network.interfaceEndpoints` empty (the cheap profile), none: every
    AWS call goes through the NAT, and those clients' security groups and NetworkPolicies allow
    HTTPS out of the VPC instead (Network.needs_nat). `llmops verify` reports any path still
    missing."""
    if settings.network.nat_gateways != "none" and not settings.network.interface_endpoints:
        return []
    needed = ["monitoring"]
    if teams:
        needed.append("secretsmanager")
    if settings.network.nat_gateways == "none":
        if settings.observability.metrics_source == "amp":
            needed.append("aps-workspaces")
        if any(p.kind == "bedrock" for p in settings.gateway.external_providers):
            needed.append("bedrock-runtime")
    return needed


class Platform(pulumi.ComponentResource):
    network: Network
    cluster: Cluster
    gpu_pools: GpuPools
    observability: Observability
    model_serving: ModelServing
    vector_db: VectorDb
    gateway: Gateway
    cost_alarms: CostAlarms
    teams: Teams | None
    retrieval_freshness: RetrievalFreshness | None

    def __init__(
        self,
        name: str,
        settings: StackSettings,
        teams: list[TeamSettings] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("llmops:platform:Platform", name, None, opts)
        # Every AWS resource goes through this provider: its default tags are the one place
        # tags come from (environment, data-classification, owner, cost-center, managed-by).
        provider = aws.Provider(
            f"{name}-aws",
            region=settings.region,
            default_tags={"tags": settings.default_tags()},
            opts=pulumi.ResourceOptions(parent=self),
        )
        invoke = pulumi.InvokeOptions(provider=provider)
        partition = aws.get_partition(opts=invoke)
        ctx = AwsContext(
            settings=settings,
            provider=provider,
            identity=aws.get_caller_identity(opts=invoke),
            partition=partition.partition,
            dns_suffix=partition.dns_suffix,
        )
        in_aws = pulumi.ResourceOptions(parent=self, providers={"aws": provider})
        access_logs = AccessLogs(
            f"{name}-access-logs", AccessLogsArgs(ctx, settings.access_log_retention_days), in_aws
        )
        ctx = dataclasses.replace(ctx, access_logs=access_logs.bucket)
        cluster_name = settings.name_prefix

        self.network = Network(
            f"{name}-network",
            NetworkArgs(ctx, cluster_name, required_endpoints(settings, teams or [])),
            in_aws,
        )
        self.cluster = Cluster(
            f"{name}-cluster",
            ClusterArgs(ctx, cluster_name, self.network.vpc_id, self.network.private_subnet_ids),
            in_aws,
        )
        self.gpu_pools = GpuPools(
            f"{name}-gpu",
            GpuPoolsArgs(
                context=ctx,
                cluster_name=self.cluster.name,
                cluster_security_group_id=self.cluster.security_group_id,
                subnet_ids=self.network.private_subnet_ids,
                ebs_key_arn=self.cluster.ebs_key_arn,
                k8s_provider=self.cluster.provider,
                system_nodes=self.cluster.system_nodes,
            ),
            in_aws,
        )
        self.observability = Observability(
            f"{name}-observability",
            ObservabilityArgs(
                context=ctx,
                cluster_name=self.cluster.name,
                cluster_security_group_id=self.cluster.security_group_id,
                subnet_ids=self.network.private_subnet_ids,
                k8s_provider=self.cluster.provider,
                system_nodes=self.cluster.system_nodes,
            ),
            in_aws,
        )
        self.model_serving = ModelServing(
            f"{name}-serving",
            ModelServingArgs(
                context=ctx,
                cluster_name=self.cluster.name,
                k8s_provider=self.cluster.provider,
                observability=self.observability,
                system_nodes=self.cluster.system_nodes,
            ),
            in_aws,
        )
        self.vector_db = VectorDb(
            f"{name}-vectordb",
            VectorDbArgs(context=ctx, cluster_name=self.cluster.name, k8s_provider=self.cluster.provider),
            in_aws,
        )
        self.gateway = Gateway(
            f"{name}-gateway",
            GatewayArgs(
                context=ctx,
                cluster_name=self.cluster.name,
                k8s_provider=self.cluster.provider,
                vpc_id=self.network.vpc_id,
                vpc_cidr=self.network.vpc_cidr,
                subnet_ids=self.network.private_subnet_ids,
                cluster_security_group_id=self.cluster.security_group_id,
                models=self.model_serving.models,
                vllm_api_key=self.model_serving.api_key,
            ),
            in_aws,
        )
        # The account's GitHub Actions OIDC provider has this fixed ARN (ci_access creates it).
        github_oidc = f"arn:{ctx.partition}:iam::{ctx.account_id}:oidc-provider/{GITHUB_OIDC_HOST}"
        self.prompt_store = PromptStore(
            f"{name}-prompts",
            PromptStoreArgs(
                ctx,
                github_oidc,
                settings.prompt_store.writer_github_subjects,
                # What the gateway serves (llmops/gateway/config.py: model_name of each route).
                gateway_routes=[m.name for m in settings.models] + settings.gateway.external_model_names(),
            ),
            in_aws,
        )
        self.cost_alarms = CostAlarms(
            f"{name}-cost",
            CostAlarmsArgs(
                context=ctx,
                settings=settings.cost_alarms,
                logs_bucket=self.gateway.logs_bucket,
                logs_key_arn=self.gateway.logs_key_arn,
                # The idle-GPU detector reads Container Insights' GPU metrics: none without the add-on.
                cluster_name=self.cluster.name if self.observability.gpu_metrics_in_cloudwatch else None,
                gpu_pool_names=[p.name for p in settings.gpu_pools],
                gateway_url=self.gateway.url,
                gateway_ca_certificate=self.gateway.ca_certificate,
                gateway_master_key_secret_arn=self.gateway.master_key_secret_arn,
                gateway_secret_key_arn=self.gateway.data_key_arn,
                vpc_id=self.network.vpc_id,
                vpc_cidr=self.network.vpc_cidr,
                vpc_subnet_ids=self.network.private_subnet_ids,
                guard_https_out=self.network.needs_nat(["monitoring", "secretsmanager"]),
                teams=[
                    TeamAlarm(
                        t.name,
                        t.gateway.monthly_budget_usd,
                        t.contact,
                        email=t.contact if t.contact_kind == "email" else None,
                    )
                    for t in teams or []
                ],
                prompt_bucket=self.prompt_store.bucket_name,
                prompt_bucket_arn=self.prompt_store.bucket_arn,
                prompt_key_arn=self.prompt_store.key_arn,
            ),
            in_aws,
        )
        self.teams = None
        if teams:
            self.teams = Teams(
                f"{name}-teams",
                TeamsArgs(
                    context=ctx,
                    teams=teams,
                    cluster_name=self.cluster.name,
                    k8s_provider=self.cluster.provider,
                    prompt_store=self.prompt_store,
                    vector_db=self.vector_db,
                    github_oidc_provider_arn=github_oidc,
                    vpc_id=self.network.vpc_id,
                    vpc_cidr=self.network.vpc_cidr,
                    subnet_ids=self.network.private_subnet_ids,
                    s3_cidr_blocks=self.network.s3_cidr_blocks,
                    secrets_through_nat=self.network.needs_nat(["secretsmanager"]),
                    gateway_url=self.gateway.url,
                    gateway_ca_certificate=self.gateway.ca_certificate,
                    gateway_master_key_secret_arn=self.gateway.master_key_secret_arn,
                    gateway_secret_key_arn=self.gateway.data_key_arn,
                    gateway=self.gateway,
                ),
                in_aws,
            )
        # The freshness exporter and its alarms, once any collection is declared (stack or teams).
        collections = declared_collections(settings, teams or [])
        self.retrieval_freshness = None
        if collections:
            self.retrieval_freshness = RetrievalFreshness(
                f"{name}-retrieval",
                RetrievalFreshnessArgs(
                    context=ctx,
                    cluster_name=self.cluster.name,
                    k8s_provider=self.cluster.provider,
                    vector_db=self.vector_db,
                    collections=collections,
                    alerts_topic_arn=self.cost_alarms.alerts_topic_arn,
                    team_topic_arns=self.cost_alarms.team_topic_arns,
                    system_nodes=self.cluster.system_nodes,
                ),
                in_aws,
            )
        self.register_outputs({})
