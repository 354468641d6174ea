"""One product team, from its reviewed file stacks/teams/<name>.yaml (docs/teams.md): a namespace
with quota, limits and default-deny NetworkPolicies; namespace-scoped access for its owners; a Pod
Identity role for its workloads and a prompt-writer role for its CI, both limited to the team's
prompts (named `<team>--<prompt>`); its gateway key and Qdrant token in Secrets Manager, readable by
its workloads only; and the desired state of its LiteLLM team, which the reconciler applies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components import gateway_workload, hardening, iam, names
from components.context import AwsContext
from components.prompt_store import PromptStore, github_trust
from components.vector_db import APP as QDRANT_APP
from components.vector_db import CLIENT_LABEL, GRPC, HTTP, VectorDb
from llmops.gateway.config import TEAM_INPUT_LIMIT_KEY
from llmops.settings import TeamSettings

WORKLOAD_ACCOUNT = "workload"  # the service account team pods run as to get the team's role
BUDGET_DURATION = "30d"  # LiteLLM resets the team's spend every 30 days (its max_budget window)
# Containers without requests or limits get these (LimitRange); the quota bounds the total.
DEFAULT_REQUEST = {"cpu": "100m", "memory": "128Mi"}
DEFAULT_LIMIT = {"cpu": "1", "memory": "512Mi"}
POD_IDENTITY_AGENT = "169.254.170.23/32"  # EKS Pod Identity agent, port 80, on every node
TEAM_LABEL = "llmops.io/team"
NAMESPACE_NAME = "kubernetes.io/metadata.name"  # the label Kubernetes sets on every namespace


def tcp(port: int) -> dict:
    return {"protocol": "TCP", "port": port}


@dataclass
class TeamArgs:
    context: AwsContext
    team: TeamSettings
    cluster_name: pulumi.Input[str]
    k8s_provider: k8s.Provider
    prompt_store: PromptStore
    vector_db: VectorDb
    secrets_key: aws.kms.Key
    """Encrypts the team's secrets; each team's role may decrypt only its own (encryption context)."""
    github_oidc_provider_arn: pulumi.Input[str]
    vpc_cidr: str
    """Team pods reach the gateway's load balancer and the VPC endpoints on 443 inside the VPC."""
    s3_cidr_blocks: pulumi.Input[list[str]]
    """S3's ranges (its gateway endpoint's prefix list): prompts are read there, and nothing else
    outside the VPC is admitted, unless `secrets_through_nat`."""
    secrets_through_nat: bool = False
    """Secrets Manager has no interface endpoint: team pods get HTTPS out of the VPC (the NAT)."""


class Team(pulumi.ComponentResource):
    namespace: str
    collections: list[str]
    """The Qdrant collections its token opens (and its Qdrant egress is for)."""
    role: aws.iam.Role
    gateway_key_secret: aws.secretsmanager.Secret
    desired: dict[str, Any]
    """The LiteLLM team as `/team/new` takes it (written to build/STACK/teams/<name>.json)."""

    def __init__(self, name: str, args: TeamArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:tenancy:Team", name, None, opts)
        self._name, self._args, self._ctx = name, args, args.context
        team, ctx = args.team, args.context
        self.namespace = team.namespace
        # Its own collections, and the stack's whose ownerTeam it is (llmops:vectorDb.collections).
        stack_owned = [c.name for c in ctx.settings.vector_db.collections if c.owner_team == team.name]
        self.collections = list(dict.fromkeys([*team.collection_names, *stack_owned]))
        self._k8s = pulumi.ResourceOptions(parent=self, provider=args.k8s_provider)

        ns = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": self.namespace,
                "labels": {
                    **hardening.RESTRICTED_NAMESPACE_LABELS,
                    TEAM_LABEL: team.name,
                    "data-classification": team.classification,
                    "app.kubernetes.io/part-of": "llmops",
                },
            },
            opts=self._k8s,
        )
        self._in_ns = pulumi.ResourceOptions(parent=self, provider=args.k8s_provider, depends_on=[ns])
        self._limits()
        self._network_policies()
        self._owners()
        self.role = self._workload_role()
        self._prompt_writer()
        self.gateway_key_secret = self._secret(
            "gateway-key", "the team's LiteLLM virtual key (the reconciler writes it)"
        )
        if self.collections:
            token = self._secret("qdrant-token", "a Qdrant JWT for the team's collections")
            aws.secretsmanager.SecretVersion(
                f"{name}-qdrant-token-value",
                secret_id=token.id,
                secret_string=args.vector_db.collection_token(self.collections),
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.desired = desired_team(team, ctx.settings.environment)
        self.register_outputs({"namespace": self.namespace, "role_arn": self.role.arn})

    def _limits(self) -> None:
        quota = self._args.team.quota
        k8s.core.v1.ResourceQuota(
            f"{self._name}-quota",
            metadata={"name": "team", "namespace": self.namespace},
            spec={
                "hard": {
                    "requests.cpu": quota.cpu,
                    "requests.memory": quota.memory,
                    "limits.memory": quota.memory,
                    "requests.nvidia.com/gpu": str(quota.gpus),
                }
            },
            opts=self._in_ns,
        )
        k8s.core.v1.LimitRange(
            f"{self._name}-limits",
            metadata={"name": "team", "namespace": self.namespace},
            spec={
                "limits": [
                    {
                        "type": "Container",
                        "defaultRequest": DEFAULT_REQUEST,
                        "default": DEFAULT_LIMIT,
                        "max": {"cpu": quota.cpu, "memory": quota.memory},
                    }
                ]
            },
            opts=self._in_ns,
        )

    def _network_policies(self) -> None:
        """Default deny both ways; then the team's own pods, DNS, the gateway, its credentials,
        HTTPS to AWS (prompts in S3, VPC endpoints) and, if it owns collections, Qdrant."""
        ns, everything = self.namespace, {}
        own = {"podSelector": {}}
        policies: dict[str, dict] = {
            "default-deny": {"podSelector": everything, "policyTypes": ["Ingress", "Egress"]},
            "allow-team": {
                "podSelector": everything,
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [own]}],
                "egress": [{"to": [own]}],
            },
            "allow-dns": {
                "podSelector": everything,
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {NAMESPACE_NAME: names.SYSTEM_NAMESPACE}
                                },
                                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                            }
                        ],
                        "ports": [{"protocol": "UDP", "port": 53}, tcp(53)],
                    }
                ],
            },
            "allow-gateway": {
                "podSelector": everything,
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        # In the cluster: the gateway's pods (Service litellm.llmops-gateway.svc:443).
                        "to": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {NAMESPACE_NAME: names.GATEWAY_NAMESPACE}
                                },
                                "podSelector": {"matchLabels": gateway_workload.SELECTOR},
                            }
                        ],
                        "ports": [tcp(gateway_workload.PORT)],
                    }
                ],
            },
            "allow-aws": {
                "podSelector": everything,
                "policyTypes": ["Egress"],
                "egress": pulumi.Output.from_input(self._args.s3_cidr_blocks).apply(self._aws_egress),
            },
        }
        if self.collections:
            policies["allow-qdrant"] = {
                # Qdrant admits pods labelled llmops.io/qdrant-client=true (components/vector_db.py);
                # the team's token limits them to its own collections.
                "podSelector": {"matchLabels": {CLIENT_LABEL: "true"}},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {NAMESPACE_NAME: names.VECTOR_DB_NAMESPACE}
                                },
                                "podSelector": {"matchLabels": {"app.kubernetes.io/name": QDRANT_APP}},
                            }
                        ],
                        "ports": [tcp(HTTP), tcp(GRPC)],
                    }
                ],
            }
        for policy, spec in policies.items():
            k8s.networking.v1.NetworkPolicy(
                f"{self._name}-{policy}",
                metadata={"name": policy, "namespace": ns},
                spec=spec,
                opts=self._in_ns,
            )

    def _aws_egress(self, s3_blocks: list[str]) -> list[dict]:
        """HTTPS in the VPC: the gateway's internal load balancer (its DNS name) and the interface
        endpoints (Secrets Manager for the team's key); S3 for prompts; the node's Pod Identity
        agent for credentials. No other address outside the VPC, unless Secrets Manager has no
        endpoint: then HTTPS anywhere, as AWS publishes no address list of its API. (An empty `to`
        would admit every address, so S3 gets a rule only with its ranges.)"""
        rules = [{"to": [{"ipBlock": {"cidr": self._args.vpc_cidr}}], "ports": [tcp(443)]}]
        if self._args.secrets_through_nat:
            rules.append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [tcp(443)]})
        if s3_blocks:
            rules.append({"to": [{"ipBlock": {"cidr": b}} for b in s3_blocks], "ports": [tcp(443)]})
        rules.append({"to": [{"ipBlock": {"cidr": POD_IDENTITY_AGENT}}], "ports": [tcp(80)]})
        return rules

    def _owners(self) -> None:
        """Owners edit their namespace and nothing else (EKS access policy AmazonEKSEditPolicy,
        namespace scope)."""
        ctx = self._ctx
        for owner in self._args.team.owners:
            label = owner.rsplit("/", 1)[-1]
            entry = aws.eks.AccessEntry(
                f"{self._name}-owner-{label}",
                cluster_name=self._args.cluster_name,
                principal_arn=owner,
                type="STANDARD",
                opts=pulumi.ResourceOptions(parent=self),
            )
            aws.eks.AccessPolicyAssociation(
                f"{self._name}-owner-{label}-edit",
                cluster_name=self._args.cluster_name,
                principal_arn=entry.principal_arn,
                policy_arn=f"arn:{ctx.partition}:eks::aws:cluster-access-policy/AmazonEKSEditPolicy",
                access_scope={"type": "namespace", "namespaces": [self.namespace]},
                opts=pulumi.ResourceOptions(parent=self),
            )

    def _workload_role(self) -> aws.iam.Role:
        """Pods running as the namespace's `workload` service account read the team's prompts and
        its secrets; nothing else."""
        ctx = self._ctx
        k8s.core.v1.ServiceAccount(
            f"{self._name}-workload-sa",
            metadata={
                "name": WORKLOAD_ACCOUNT,
                "namespace": self.namespace,
                "labels": {"llmops.io/team": self._args.team.name},
            },
            automount_service_account_token=False,
            opts=self._in_ns,
        )
        role, _ = iam.pod_identity_role(
            f"{self._name}-workload",
            account_id=ctx.account_id,
            cluster_name=self._args.cluster_name,
            namespace=self.namespace,
            service_account=WORKLOAD_ACCOUNT,
            parent=self,
        )
        self._args.prompt_store.grant_read(role, self._args.team.prompt_prefix)
        return role

    def _prompt_writer(self) -> None:
        team = self._args.team
        subjects = team.prompts.github_subjects
        if not subjects:
            return
        writer = aws.iam.Role(
            f"{self._name}-prompt-writer",
            description=f"CI of team {team.name} pushes its prompts (names {team.prompt_prefix}*)",
            assume_role_policy=github_trust(self._args.github_oidc_provider_arn, subjects),
            max_session_duration=3600,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self._args.prompt_store.grant_write(writer, self._args.team.prompt_prefix)

    def _secret(self, kind: str, description: str) -> aws.secretsmanager.Secret:
        """A secret only the team's workload role reads (and decrypts: the key grant is bound to
        this secret through Secrets Manager's SecretARN encryption context)."""
        ctx, team = self._ctx, self._args.team
        secret = aws.secretsmanager.Secret(
            f"{self._name}-{kind}",
            name_prefix=f"{ctx.settings.name_prefix}/teams/{team.name}/{kind}-",
            description=description,
            kms_key_id=self._args.secrets_key.arn,
            recovery_window_in_days=30 if ctx.protect else 0,
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.iam.RolePolicy(
            f"{self._name}-read-{kind}",
            role=self.role.id,
            policy=iam.document_output(
                iam.allow(["secretsmanager:GetSecretValue"], secret.arn),
                iam.allow(
                    ["kms:Decrypt"],
                    self._args.secrets_key.arn,
                    {
                        "StringEquals": {
                            "kms:EncryptionContext:SecretARN": secret.arn,
                            "kms:ViaService": f"secretsmanager.{ctx.region}.amazonaws.com",
                        }
                    },
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return secret


def desired_team(team: TeamSettings, environment: str) -> dict[str, Any]:
    """The team as LiteLLM's `/team/new` takes it (litellm 1.100.5 NewTeamRequest). team_id is the
    team's name: the spend aggregator's Team dimension and the budget guard's block key."""
    return {
        "team_id": team.name,
        "team_alias": team.name,
        "models": list(team.gateway.models),
        "max_budget": float(team.gateway.monthly_budget_usd),
        "budget_duration": BUDGET_DURATION,
        "tpm_limit": team.gateway.tpm_limit,
        "rpm_limit": team.gateway.rpm_limit,
        "metadata": {
            "cost_center": team.cost_center,
            "classification": team.classification,
            "contact": team.contact,
            "managed_by": f"llmops-{environment}",
            # Read by the gateway's prompt-size guardrail (llmops/gateway/hooks.py); null when unset,
            # so removing the limit from the team file removes it from the gateway too.
            TEAM_INPUT_LIMIT_KEY: team.gateway.max_input_tokens,
        },
    }
