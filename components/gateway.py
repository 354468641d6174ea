"""The LiteLLM gateway: spend-logs bucket, budgets database, secrets, Pod Identity role, and the
Deployment running the config `llmops.gateway.config.render_config` generates."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random
import yaml

from components import gateway_tls, hardening, iam, names
from components import gateway_workload as workload
from components.context import AwsContext
from components.gateway_cache import response_cache
from components.gateway_database import in_cluster_database
from components.s3 import private_bucket
from components.secrets import stored_secret
from llmops import versions
from llmops.gateway.config import (
    CACHE_HOST_ENV,
    CACHE_PASSWORD_ENV,
    CACHE_PORT_ENV,
    CACHE_USER,
    CACHE_USER_ENV,
    DATABASE_URL_ENV,
    LOGS_BUCKET_ENV,
    LOGS_KMS_KEY_ENV,
    MASTER_KEY_ENV,
    SPEND_LOG_PREFIX,
    VLLM_API_KEY_ENV,
    SelfHostedModel,
    config_files,
    render_config,
    render_environment,
    uses_valkey_cache,
)

NAMESPACE = names.GATEWAY_NAMESPACE
SERVICE_ACCOUNT = "litellm"
DB_NAME = "litellm"
DB_USER = "litellm"
DB_PORT = 5432


@dataclass
class GatewayArgs:
    context: AwsContext
    cluster_name: pulumi.Input[str]
    k8s_provider: k8s.Provider
    vpc_id: pulumi.Input[str]
    vpc_cidr: str
    """Clients inside the VPC (and the internal NLB) reach the gateway pods on port 4000."""
    subnet_ids: list[pulumi.Input[str]]
    """Private subnets for the database."""
    cluster_security_group_id: pulumi.Input[str]
    """Given to the gateway pods too, so they keep reaching CoreDNS and the other pods."""
    models: list[SelfHostedModel] = field(default_factory=list)
    """Self-hosted models from the model-serving component (none: external providers only)."""
    vllm_api_key: pulumi.Input[str] | None = None
    """API key of the vLLM servers. None: one is generated (exported as vllm_api_key)."""


class Gateway(pulumi.ComponentResource):
    logs_bucket: pulumi.Output[str]
    logs_key_arn: pulumi.Output[str]
    database_endpoint: pulumi.Output[str]
    role_arn: pulumi.Output[str]
    vllm_api_key: pulumi.Output[str]
    master_key_secret_arn: pulumi.Output[str]
    data_key_arn: pulumi.Output[str]
    """The KMS key of the gateway's secrets (whoever reads the master key needs it)."""
    url: str
    """https://<hostname>: the gateway as the VPC sees it (Lambdas, pods, VPN clients)."""
    ca_certificate: pulumi.Output[str]
    """PEM of the CA that issued the gateway's certificate: what clients trust (not a secret)."""
    config: dict
    """The generated LiteLLM config (no secret values in it)."""

    def __init__(self, name: str, args: GatewayArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:gateway:Gateway", name, None, opts)
        self._ctx, self._name, self._args = args.context, name, args
        settings = args.context.settings
        self.config = render_config(settings, args.models)  # fails before any resource on bad input

        logs_key = self._ctx.kms_key(f"{name}-logs-key", "Gateway spend logs", self)
        data_key = self._ctx.kms_key(f"{name}-data-key", "Gateway database and secrets", self)
        self.logs_key_arn = logs_key.arn
        bucket = self._logs_bucket(logs_key)
        self.logs_bucket = bucket.bucket

        self._data_key = data_key
        in_cluster = settings.gateway.database.engine == "in-cluster"
        # The pods get their own security group only where an AWS resource admits them by it (RDS,
        # the Valkey cache): t-family nodes cannot give pods security groups.
        pods_sg = None
        if not in_cluster or uses_valkey_cache(settings):
            pods_sg = aws.ec2.SecurityGroup(
                f"{name}-pods-sg",
                description="LiteLLM gateway pods (security groups for pods)",
                vpc_id=args.vpc_id,
                ingress=[{"protocol": "tcp", "from_port": workload.PORT, "to_port": workload.PORT,
                          "cidr_blocks": [args.vpc_cidr],
                          "description": "gateway clients and the internal NLB"}],
                egress=[{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"],
                         "description": "models, AWS endpoints, external providers"}],
                opts=pulumi.ResourceOptions(parent=self),
            )  # fmt: skip
        if in_cluster:
            # Declared with the gateway's namespace (_workload), which the database's objects live in.
            self._db_password = random.RandomPassword(
                f"{name}-db-password", length=40, special=False, opts=pulumi.ResourceOptions(parent=self)
            )
        else:
            database, password = self._database(data_key, pods_sg)
            self.database_endpoint = database.address

        master_key = random.RandomPassword(
            f"{name}-master-key-random",
            length=48,
            special=False,
            # Renamed from {name}-master-key (the Secret's name): the alias keeps the generated key.
            opts=pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(name=f"{name}-master-key")]),
        )
        vllm_key = args.vllm_api_key
        if vllm_key is None:
            vllm_key = random.RandomPassword(
                f"{name}-vllm-key", length=40, special=False, opts=pulumi.ResourceOptions(parent=self)
            ).result
        self.vllm_api_key = pulumi.Output.secret(vllm_key)
        # LiteLLM's docs require the master key to start with "sk-" (virtual keys do too).
        master = pulumi.Output.secret(pulumi.Output.format("sk-{0}", master_key.result))
        self.master_key_secret_arn = self._secret("master-key", data_key, master).arn
        self.data_key_arn = data_key.arn

        role, identity = self._role(bucket, logs_key)
        self.role_arn = role.arn
        env = {MASTER_KEY_ENV: master}
        if not in_cluster:
            env[DATABASE_URL_ENV] = self._database_url(password, database.address, "require")
        env[VLLM_API_KEY_ENV] = self.vllm_api_key
        env.update(self._provider_keys())
        self._cache_env: dict[str, pulumi.Input[str]] = {}
        if uses_valkey_cache(settings):
            cache = response_cache(name, self._ctx, self, args.vpc_id, args.subnet_ids, pods_sg)
            env[CACHE_PASSWORD_ENV] = cache.password
            self._cache_env = {
                CACHE_HOST_ENV: cache.host,
                CACHE_PORT_ENV: cache.port,
                CACHE_USER_ENV: CACHE_USER,
            }
        self._workload(env, bucket, logs_key, pods_sg, identity)
        self.register_outputs(
            {
                "logs_bucket": self.logs_bucket,
                "database_endpoint": self.database_endpoint,
                "role_arn": self.role_arn,
            }
        )

    def _logs_bucket(self, key: aws.kms.Key) -> aws.s3.Bucket:
        """Spend logs: SSE-KMS, versioned, expiring after the retention; Object Lock (governance)
        in regulated stacks, so a record cannot be rewritten before its retention ends."""
        ctx, gw = self._ctx, self._ctx.settings.gateway
        return private_bucket(
            f"{self._name}-logs",
            parent=self,
            key=key,
            protect=ctx.protect,
            access_logs=ctx.access_logs,
            bucket_prefix=f"{ctx.settings.name_prefix}-gateway-logs-",
            expire_after_days=gw.spend_log_retention_days,
            expire_prefix=f"{SPEND_LOG_PREFIX}/",
            object_lock_days=gw.spend_log_retention_days if ctx.settings.regulated else None,
        ).bucket

    def _database(self, key: aws.kms.Key, pods_sg: aws.ec2.SecurityGroup):
        ctx, name, gw, args = self._ctx, self._name, self._ctx.settings.gateway, self._args
        child = pulumi.ResourceOptions(parent=self)
        db_sg = aws.ec2.SecurityGroup(
            f"{name}-db-sg",
            description="LiteLLM database: PostgreSQL from the gateway pods only",
            vpc_id=args.vpc_id,
            ingress=[{"protocol": "tcp", "from_port": DB_PORT, "to_port": DB_PORT,
                      "security_groups": [pods_sg.id], "description": "gateway pods"}],
            opts=child,
        )  # fmt: skip
        subnets = aws.rds.SubnetGroup(f"{name}-db-subnets", subnet_ids=args.subnet_ids, opts=child)
        password = random.RandomPassword(f"{name}-db-password", length=40, special=False, opts=child)
        database = aws.rds.Instance(
            f"{name}-db",
            identifier_prefix=f"{ctx.settings.name_prefix}-gateway-",
            engine="postgres",
            engine_version=versions.GATEWAY_POSTGRES_VERSION,
            instance_class=gw.database_instance_class,
            allocated_storage=gw.database_storage_gib,
            max_allocated_storage=gw.database_storage_gib * 5,
            storage_type="gp3",
            storage_encrypted=True,
            kms_key_id=key.arn,
            db_name=DB_NAME,
            username=DB_USER,
            password=password.result,
            db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[db_sg.id],
            publicly_accessible=False,
            multi_az=gw.multi_az(ctx.settings.environment),
            backup_retention_period=gw.database_backup_retention_days,
            copy_tags_to_snapshot=True,
            deletion_protection=ctx.protect,
            skip_final_snapshot=not ctx.protect,
            final_snapshot_identifier=f"{ctx.settings.name_prefix}-gateway-final" if ctx.protect else None,
            auto_minor_version_upgrade=True,
            enabled_cloudwatch_logs_exports=["postgresql"],
            performance_insights_enabled=True,
            performance_insights_kms_key_id=key.arn,
            opts=pulumi.ResourceOptions(parent=self, protect=ctx.protect),
        )
        return database, password

    def _database_url(self, password: random.RandomPassword, host: pulumi.Input[str], sslmode: str):
        """LiteLLM's DATABASE_URL, also kept in Secrets Manager (operators' break-glass access)."""
        url = pulumi.Output.format(
            "postgresql://{0}:{1}@{2}:{3}/{4}?sslmode={5}",
            DB_USER,
            password.result,
            host,
            DB_PORT,
            DB_NAME,
            sslmode,
        )
        url = pulumi.Output.secret(url)
        self._secret("database-url", self._data_key, url)
        return url

    def _in_cluster_database(self, namespace, opts: pulumi.ResourceOptions) -> pulumi.Output[str]:
        """The in-cluster PostgreSQL and the URL of its Service. Plain TCP (sslmode disable): the
        image has no server certificate, and the path stays on the pod network, admitted only from
        the gateway's pods by a NetworkPolicy (public and internal stacks only)."""
        service = in_cluster_database(
            f"{self._name}-db",
            namespace=namespace,
            database=DB_NAME,
            user=DB_USER,
            password=self._db_password.result,
            clients=workload.SELECTOR,
            settings=self._ctx.settings.gateway.database,
            protect=self._ctx.protect,
            opts=opts,
        )
        # From the Service's outputs, so the plan records the URL's dependency on it.
        host = service.metadata.apply(lambda m: f"{m['name']}.{m['namespace']}.svc.cluster.local")
        self.database_endpoint = host
        return self._database_url(self._db_password, host, "disable")

    def _secret(self, role: str, key: aws.kms.Key, value: pulumi.Input[str]) -> aws.secretsmanager.Secret:
        prefix = f"{self._ctx.settings.name_prefix}/gateway/{role}"
        return stored_secret(f"{self._name}-{role}", prefix, key, value, self._ctx, self)

    def _provider_keys(self) -> dict[str, pulumi.Output[str]]:
        """External providers' API keys, read from the Secrets Manager secrets the stack names."""
        keys = {}
        for provider in self._ctx.settings.gateway.external_providers:
            if provider.api_key_secret:
                version = aws.secretsmanager.get_secret_version_output(
                    secret_id=provider.api_key_secret,
                    opts=pulumi.InvokeOutputOptions(provider=self._ctx.provider),
                )
                keys[provider.api_key_env] = pulumi.Output.secret(version.secret_string)
        return keys

    def _role(self, bucket: aws.s3.Bucket, key: aws.kms.Key):
        ctx, name, child = self._ctx, self._name, pulumi.ResourceOptions(parent=self)
        role, identity = iam.pod_identity_role(
            name, account_id=ctx.account_id, cluster_name=self._args.cluster_name,
            namespace=NAMESPACE, service_account=SERVICE_ACCOUNT, parent=self,
        )  # fmt: skip
        statements = [
            iam.allow(["s3:PutObject"], bucket.arn.apply(lambda a: f"{a}/{SPEND_LOG_PREFIX}/*")),
            iam.allow(["kms:GenerateDataKey", "kms:Encrypt"], key.arn),
        ]
        bedrock = [p for p in ctx.settings.gateway.external_providers if p.kind == "bedrock"]
        if bedrock:
            regions = sorted({p.aws_region or ctx.region for p in bedrock})
            statements.append(
                iam.allow(
                    ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
                    [f"arn:{ctx.partition}:bedrock:{r}::foundation-model/*" for r in regions],
                )
            )
        policy = aws.iam.RolePolicy(
            f"{name}-role-policy", role=role.id, policy=iam.document_output(*statements), opts=child
        )
        return role, [identity, policy]

    def _workload(self, secret_env: dict, bucket, key, pods_sg, identity: list[pulumi.Resource]) -> None:
        settings, gw, name = self._ctx.settings, self._ctx.settings.gateway, self._name
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=self._args.k8s_provider)
        ns = hardening.namespace(
            f"{name}-ns", NAMESPACE, self._ctx.settings.data_classification,
            hardening.RESTRICTED_NAMESPACE_LABELS, k8s_opts,
        )  # fmt: skip
        hardening.default_deny_ingress(f"{name}-default-deny", ns.metadata["name"], k8s_opts)
        if gw.database.engine == "in-cluster":
            secret_env = {
                **secret_env,
                DATABASE_URL_ENV: self._in_cluster_database(ns.metadata["name"], k8s_opts),
            }
        meta = {"namespace": ns.metadata["name"], "labels": workload.LABELS}
        k8s.core.v1.ServiceAccount(f"{name}-sa", metadata={**meta, "name": SERVICE_ACCOUNT}, opts=k8s_opts)
        config_yaml = yaml.safe_dump(self.config, sort_keys=False)
        # The guardrail module(s) the config loads sit beside config.yaml (LiteLLM imports them
        # from the config file's directory); the checksum covers them too.
        side_files = config_files(self.config)
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={**meta, "name": "litellm-config"},
            data={
                workload.CONFIG_KEY: config_yaml,
                **{workload.config_map_key(path): text for path, text in side_files.items()},
            },
            opts=k8s_opts,
        )
        env_secret = k8s.core.v1.Secret(
            f"{name}-env",
            metadata={**meta, "name": "litellm-env"},
            type="Opaque",
            string_data={k: pulumi.Output.secret(v) for k, v in secret_env.items()},
            opts=k8s_opts,
        )
        hostname = gw.dns_name(settings.environment)
        certificate = gateway_tls.issue(
            f"{name}-tls",
            [hostname, f"{workload.APP}.{NAMESPACE}.svc", f"{workload.APP}.{NAMESPACE}.svc.cluster.local"],
            gw.certificate_validity_days,
            settings.name_prefix,
            self,
        )
        self.ca_certificate = certificate.ca_cert_pem
        tls_secret = k8s.core.v1.Secret(
            f"{name}-tls-secret",
            metadata={**meta, "name": "litellm-tls"},
            type="kubernetes.io/tls",
            string_data={"tls.crt": certificate.cert_pem, "tls.key": certificate.key_pem},
            opts=k8s_opts,
        )
        # Security groups for pods (vpc-cni ENABLE_POD_ENI): the database admits only this group.
        security_groups = []
        if pods_sg is not None:
            security_groups.append(
                k8s.apiextensions.CustomResource(
                    f"{name}-pods-sgp",
                    api_version="vpcresources.k8s.aws/v1beta1",
                    kind="SecurityGroupPolicy",
                    metadata={**meta, "name": "litellm"},
                    spec={
                        "podSelector": {"matchLabels": workload.SELECTOR},
                        "securityGroups": {"groupIds": [pods_sg.id, self._args.cluster_security_group_id]},
                    },
                    opts=k8s_opts,
                )
            )
        plain_env = {
            **render_environment(settings),
            LOGS_BUCKET_ENV: bucket.bucket,
            LOGS_KMS_KEY_ENV: key.arn,
            "AWS_REGION": settings.region,
            **self._cache_env,
        }
        template = workload.pod_template(
            service_account=SERVICE_ACCOUNT,
            config_map=config_map.metadata["name"],
            env_secret=env_secret.metadata["name"],
            tls_secret=tls_secret.metadata["name"],
            plain_env=plain_env,
            config_checksum=workload.checksum(
                config_yaml + "".join(side_files[k] for k in sorted(side_files))
            ),
            certificate_checksum=certificate.cert_pem.apply(workload.checksum),
            cpu_request=gw.cpu_request,
            cpu_limit=gw.cpu_limit,
            memory_mib=gw.memory_request_mib,
            config_files=tuple(side_files),
        )
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata={**meta, "name": "litellm"},
            spec={
                "replicas": gw.min_replicas,
                "selector": {"matchLabels": workload.SELECTOR},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": template,
            },
            # Pods started before the association get no credentials, and pods admitted before the
            # SecurityGroupPolicy keep the node's groups (the database would refuse them).
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=self._args.k8s_provider,
                ignore_changes=["spec.replicas"],
                depends_on=[*identity, *security_groups],
            ),
        )
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata={**meta, "name": "litellm", "annotations": workload.internal_service_annotations()},
            spec={
                "type": "LoadBalancer",
                "selector": workload.SELECTOR,
                # TCP passthrough: LiteLLM terminates TLS; only the VPC may reach the node ports
                # the cloud controller opens for the NLB.
                "ports": [
                    {"name": "https", "port": workload.SERVICE_PORT, "targetPort": "https", "protocol": "TCP"}
                ],
                "loadBalancerSourceRanges": [self._args.vpc_cidr],
            },
            opts=k8s_opts,
        )
        # Pulumi waits for the load balancer to be provisioned before the Service is ready.
        load_balancer = service.status.apply(lambda st: st.load_balancer.ingress[0].hostname)
        gateway_tls.private_record(f"{name}-dns", hostname, self._args.vpc_id, load_balancer, self)
        self.url = f"https://{hostname}"
        self.hostname = hostname
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa",
            metadata={**meta, "name": "litellm"},
            spec=workload.hpa_spec(deployment.metadata["name"], gw.min_replicas, gw.max_replicas),
            opts=k8s_opts,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata={**meta, "name": "litellm"},
            spec=workload.network_policy_spec(self._args.vpc_cidr),
            opts=k8s_opts,
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata={**meta, "name": "litellm"},
            spec={"maxUnavailable": 1, "selector": {"matchLabels": workload.SELECTOR}},
            opts=k8s_opts,
        )
