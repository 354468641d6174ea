"""The product teams of a stack (stacks/teams/*.yaml, docs/teams.md): one Team each, the KMS key
of their secrets, and the reconciler Lambda that applies their desired gateway state.

    team files --> Team (namespace, quota, policies, access, roles, secrets) --> desired.json
    desired.json (in the reconciler's zip) --> team_reconciler --/team, /key--> LiteLLM
                                                              \\--PutSecretValue--> team key secrets
The reconciler runs when the desired state changes (an Invocation during `pulumi up`) and on a
schedule, so drift made in the gateway's UI is corrected.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components import iam
from components.context import AwsContext
from components.lambda_function import VpcPlacement, on_schedule, python_function
from components.prompt_store import PromptStore
from components.team import Team, TeamArgs
from components.vector_db import VectorDb
from lambdas.team_reconciler.handler import PULUMI_UP
from llmops.settings import TeamSettings

RECONCILER = "team_reconciler"
DESIRED_FILE = "desired.json"
RECONCILE_SCHEDULE = "rate(1 hour)"  # drift made in the gateway's UI lasts at most this long
LOG_RETENTION_DAYS = 365


def key_alias(environment: str, team: str) -> str:
    """The team's one virtual key in this environment (aliases are unique across the gateway)."""
    return f"{team}-{environment}"


@dataclass
class TeamsArgs:
    context: AwsContext
    teams: list[TeamSettings]
    cluster_name: pulumi.Input[str]
    k8s_provider: k8s.Provider
    prompt_store: PromptStore
    vector_db: VectorDb
    github_oidc_provider_arn: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    vpc_cidr: str
    subnet_ids: list[pulumi.Input[str]]
    s3_cidr_blocks: pulumi.Input[list[str]]
    secrets_through_nat: bool
    """Secrets Manager has no interface endpoint: the reconciler and team pods reach it through the
    NAT (HTTPS out of the VPC)."""
    gateway_url: pulumi.Input[str]
    gateway_ca_certificate: pulumi.Input[str]
    gateway_master_key_secret_arn: pulumi.Input[str]
    gateway_secret_key_arn: pulumi.Input[str]
    """KMS key of the master key's secret (the reconciler decrypts it)."""
    gateway: pulumi.Resource
    """The gateway: the reconciler's first run waits for it (its Deployment ready)."""
    dry_run: bool = False


class Teams(pulumi.ComponentResource):
    teams: dict[str, Team]
    desired_state: pulumi.Output[dict]
    """What the reconciler applies (DESIRED_FILE in its zip)."""
    reconciler_name: pulumi.Output[str]

    def __init__(self, name: str, args: TeamsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:tenancy:Teams", name, None, opts)
        ctx = args.context
        child = pulumi.ResourceOptions(parent=self)
        env = ctx.settings.environment
        self._key = ctx.kms_key(
            f"{name}-key",
            f"{ctx.settings.name_prefix} team secrets and the reconciler",
            parent=self,
            services=["logs.{region}.amazonaws.com"],
        )
        self.teams = {
            team.name: Team(
                f"{name}-{team.name}",
                TeamArgs(
                    context=ctx,
                    team=team,
                    cluster_name=args.cluster_name,
                    k8s_provider=args.k8s_provider,
                    prompt_store=args.prompt_store,
                    vector_db=args.vector_db,
                    secrets_key=self._key,
                    github_oidc_provider_arn=args.github_oidc_provider_arn,
                    vpc_cidr=args.vpc_cidr,
                    s3_cidr_blocks=args.s3_cidr_blocks,
                    secrets_through_nat=args.secrets_through_nat,
                ),
                child,
            )
            for team in args.teams
        }
        managed_by = f"llmops-{env}"
        key_secrets = [t.gateway_key_secret.arn for t in self.teams.values()]
        self.desired_state = pulumi.Output.all(*key_secrets).apply(
            lambda arns: {
                "environment": env,
                "managed_by": managed_by,
                "teams": [
                    {"team": t.desired, "key": {"key_alias": key_alias(env, name_), "secret_id": arn}}
                    for (name_, t), arn in zip(self.teams.items(), arns, strict=True)
                ],
            }
        )
        desired_text = self.desired_state.apply(lambda d: json.dumps(d, indent=2, sort_keys=True) + "\n")
        function = python_function(
            self,
            f"{name}-reconciler",
            f"{ctx.settings.name_prefix}-team-reconciler",
            RECONCILER,
            [
                iam.allow(["secretsmanager:GetSecretValue"], args.gateway_master_key_secret_arn),
                iam.allow(
                    ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
                    key_secrets,
                ),
                iam.allow(["kms:Decrypt"], args.gateway_secret_key_arn),
                # Writing a team's key encrypts it with the teams' key, through Secrets Manager only.
                iam.allow(
                    ["kms:GenerateDataKey", "kms:Decrypt"],
                    self._key.arn,
                    {"StringEquals": {"kms:ViaService": f"secretsmanager.{ctx.region}.amazonaws.com"}},
                ),
            ],
            {
                "GATEWAY_URL": args.gateway_url,
                "GATEWAY_CA_CERT": args.gateway_ca_certificate,
                "GATEWAY_SECRET_ID": args.gateway_master_key_secret_arn,
                "DRY_RUN": "true" if args.dry_run else "false",
            },
            ctx=ctx,
            key=self._key,
            log_retention_days=LOG_RETENTION_DAYS,
            reserved=1,  # one run at a time: two runs would both create a missing key
            timeout=120,
            vpc=VpcPlacement(args.vpc_id, args.vpc_cidr, args.subnet_ids, https_out=args.secrets_through_nat),
            extra_files=desired_text.apply(lambda text: {DESIRED_FILE: text}),
        )
        self.reconciler_name = function.name
        on_schedule(self, f"{name}-reconcile", function, RECONCILE_SCHEDULE)
        # Apply a changed desired state during `pulumi up` (the function's code holds it).
        aws.lambda_.Invocation(
            f"{name}-reconcile-now",
            function_name=function.name,
            input=json.dumps({"source": PULUMI_UP}),  # a rejected team fails `pulumi up`
            triggers={"desired": desired_text.apply(lambda t: hashlib.sha256(t.encode()).hexdigest())},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.gateway]),
        )
        self.register_outputs({"reconciler": function.name})
