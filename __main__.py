"""The Pulumi program: typed settings -> Platform -> exports."""

import os
from pathlib import Path

import pulumi
from pulumi.runtime.config import CONFIG, get_config_env

from components.platform import Platform
from llmops.settings import SettingsError, from_config, load_teams
from llmops.settings.team import TEAMS_DIR


def stack_config() -> dict:
    # pulumi.Config reads one key at a time, but unknown keys must be reported too, so the
    # whole map is read (it arrives through the environment or the language host).
    return {**get_config_env(), **CONFIG.get()}


try:
    settings = from_config(stack_config(), source=f"stack {pulumi.get_stack()}")
    # The teams of this environment (stacks/teams/*.yaml; `llmops plan` of a stack file elsewhere
    # points this at the teams/ folder beside it).
    teams = load_teams(settings, Path(os.environ.get("LLMOPS_TEAMS_DIR") or TEAMS_DIR))
except SettingsError as err:
    raise pulumi.RunError(str(err)) from None  # printed without a traceback

platform = Platform(settings.name_prefix, settings, teams)

pulumi.export("region", settings.region)
pulumi.export("clusterName", platform.cluster.name)
pulumi.export("clusterEndpoint", platform.cluster.endpoint)
pulumi.export("kubeconfig", platform.cluster.kubeconfig)  # a secret: `pulumi stack output --show-secrets`
pulumi.export("vpcId", platform.network.vpc_id)
pulumi.export("gpuPools", list(platform.gpu_pools.node_pools))
pulumi.export("modelArtifactsBucket", platform.model_serving.artifacts_bucket)
pulumi.export(
    "models",
    [
        {"name": m.public_name, "servedName": m.served_name, "url": m.url, "gpus": m.gpus_per_replica}
        for m in platform.model_serving.models
    ],
)
pulumi.export("vllmApiKeySecretArn", platform.model_serving.api_key_secret_arn)
pulumi.export("metricsQueryUrl", platform.observability.metrics.query_url)
pulumi.export("qdrantUrl", platform.vector_db.url)
pulumi.export("qdrantApiKeySecretArn", platform.vector_db.api_key_secret_arn)
pulumi.export("qdrantBackupsBucket", platform.vector_db.backups_bucket)
pulumi.export("gatewayUrl", platform.gateway.url)
pulumi.export("gatewayCaCertificate", platform.gateway.ca_certificate)  # what clients trust; not a secret
pulumi.export("gatewayLogsBucket", platform.gateway.logs_bucket)
pulumi.export("usageDashboard", platform.cost_alarms.dashboard_name)  # spend and eval coverage per team
if platform.retrieval_freshness:  # index age, stale share and model drift per collection
    pulumi.export("retrievalFreshnessDashboard", platform.retrieval_freshness.dashboard_name)
pulumi.export("promptBucket", platform.prompt_store.bucket_name)
pulumi.export("promptWriterRoleArn", platform.prompt_store.writer_role_arn)
pulumi.export("promptReaderRoleArn", platform.prompt_store.reader_role_arn)
pulumi.export(
    "teams",
    {
        name: {
            "namespace": team.namespace,
            "roleArn": team.role.arn,
            "gatewayKeySecretArn": team.gateway_key_secret.arn,
        }
        for name, team in (platform.teams.teams if platform.teams else {}).items()
    },
)
