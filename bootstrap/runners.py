"""CodeBuild-hosted GitHub Actions runners inside the environments' VPCs (docs/ci.md: why, and the
first-deploy sequence).

One CodeBuild project per environment whose API endpoint is private, in that environment's VPC
(private subnets behind its NAT), with a webhook that starts an ephemeral runner for every queued
job of the deploy workflow (event WORKFLOW_JOB_QUEUED, filter WORKFLOW_NAME) whose `runs-on` label
is `codebuild-<project>-${{ github.run_id }}-${{ github.run_attempt }}`. Its security group is
admitted to the cluster security group on 443, so the job reaches the private API endpoint.

The runner's service role may write its logs, attach its network interfaces and use its GitHub
connection, nothing else: the job's AWS credentials come from its OIDC token and the environment's
deploy role (bootstrap/ci_access.py), so a job that is not in the `<env>` GitHub environment gets a
network position in the VPC but no credentials.

CodeBuild reaches GitHub through an AWS CodeConnections connection (the GitHub App), one per region
that hosts a runner; a connection starts PENDING until someone completes the handshake in the
console (Developer Tools > Settings > Connections).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from bootstrap import policies
from components import iam, kms
from components.context import AwsContext
from llmops.settings.bootstrap import EnvironmentSettings, RunnerSettings

PROJECT_PREFIX = "llmops-bootstrap-runner"


def project_name(environment: str) -> str:
    return f"{PROJECT_PREFIX}-{environment}"


def runs_on_label(environment: str) -> str:
    """The `runs-on` label of a deploy job that runs on this environment's runner."""
    return f"codebuild-{project_name(environment)}-${{{{ github.run_id }}}}-${{{{ github.run_attempt }}}}"


@dataclass
class RunnerArgs:
    context: AwsContext
    environment: EnvironmentSettings
    repository: str
    workflow: str
    settings: RunnerSettings
    connection: aws.codeconnections.Connection


class Runner(pulumi.ComponentResource):
    """The in-VPC runner of one environment (its component's AWS provider is the environment's region)."""

    project: aws.codebuild.Project
    security_group: aws.ec2.SecurityGroup

    def __init__(self, name: str, args: RunnerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:bootstrap:Runner", name, None, opts)
        ctx, env, vpc = args.context, args.environment, args.environment.vpc
        if vpc is None:
            raise ValueError(f"{env.name}: a runner needs the environment's vpc")
        child = pulumi.ResourceOptions(parent=self)
        project = project_name(env.name)

        key = kms.new_key(
            f"{name}-logs-key",
            f"{project} logs",
            parent=self,
            identity=ctx.identity,
            partition=ctx.partition,
            region=env.region,
            protect=ctx.protect,
            services=["logs.{region}.amazonaws.com"],
        )
        logs = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/aws/codebuild/{project}",
            retention_in_days=args.settings.log_retention_days,
            kms_key_id=key.arn,
            opts=child,
        )
        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            name=project,
            description=f"{project}: HTTPS out (GitHub, AWS APIs, the cluster's private endpoint)",
            vpc_id=vpc.vpc_id,
            ingress=[],
            egress=[{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0"],
                     "description": "HTTPS"}],
            opts=child,
        )  # fmt: skip
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-to-cluster",
            security_group_id=vpc.cluster_security_group_id,
            referenced_security_group_id=self.security_group.id,
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            description=f"{project} reaches the EKS API server's private endpoint",
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-role",
            name=project,
            description=f"CodeBuild service role of {project}: logs, network interfaces, GitHub connection",
            assume_role_policy=iam.service_trust("codebuild.amazonaws.com", ctx.account_id),
            opts=child,
        )
        policy = aws.iam.RolePolicy(
            f"{name}-role-policy",
            role=role.id,
            policy=pulumi.Output.all(logs.arn, self.security_group.id, args.connection.arn).apply(
                lambda v: json.dumps(
                    policies.runner_policy(
                        region=env.region,
                        account_id=ctx.account_id,
                        partition=ctx.partition,
                        log_group_arn=v[0],
                        subnet_ids=list(vpc.subnet_ids),
                        security_group_id=v[1],
                        connection_arn=v[2],
                    )
                )
            ),
            opts=child,
        )
        self.project = aws.codebuild.Project(
            f"{name}-project",
            name=project,
            description=f"Ephemeral GitHub Actions runners for {env.name} deploys, in its VPC",
            service_role=role.arn,
            source={
                "type": "GITHUB",
                "location": f"https://github.com/{args.repository}.git",
                "auth": {"type": "CODECONNECTIONS", "resource": args.connection.arn},
            },
            artifacts={"type": "NO_ARTIFACTS"},
            environment={
                "type": "LINUX_CONTAINER",
                "compute_type": args.settings.compute_type,
                "image": args.settings.image,
                "image_pull_credentials_type": "CODEBUILD",
                "privileged_mode": False,
            },
            vpc_config={
                "vpc_id": vpc.vpc_id,
                "subnets": list(vpc.subnet_ids),
                "security_group_ids": [self.security_group.id],
            },
            logs_config={"cloudwatch_logs": {"group_name": logs.name, "status": "ENABLED"}},
            build_timeout=args.settings.timeout_minutes,
            queued_timeout=60,
            # CodeBuild checks at creation that its role may create network interfaces in the VPC.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )
        aws.codebuild.Webhook(
            f"{name}-webhook",
            project_name=self.project.name,
            build_type="BUILD",
            filter_groups=[
                {
                    "filters": [
                        {"type": "EVENT", "pattern": "WORKFLOW_JOB_QUEUED"},
                        {"type": "WORKFLOW_NAME", "pattern": f"^{args.workflow}$"},
                    ]
                }
            ],
            opts=child,
        )
        self.register_outputs({"project": self.project.name, "label": runs_on_label(env.name)})
