"""GitHub Actions' access to the account: the OIDC provider, the read-only preview role (pull
requests) and one deploy role per environment (bootstrap/policies.py has the documents).

The provider is `arn:<partition>:iam::<account>:oidc-provider/token.actions.githubusercontent.com`,
the ARN components/platform.py computes for the prompt-writer role's trust: one provider per
account serves every repository and role. No thumbprint: IAM verifies GitHub's endpoint against
its own library of trusted root CAs (IAM API reference, CreateOpenIDConnectProvider).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from bootstrap import policies
from components.context import AwsContext
from components.prompt_store import GITHUB_OIDC_HOST
from llmops.settings.bootstrap import EnvironmentSettings


@dataclass
class CiAccessArgs:
    context: AwsContext
    repository: str
    environments: list[EnvironmentSettings]
    state_bucket_arn: pulumi.Output[str]
    state_key_arn: pulumi.Output[str]


class CiAccess(pulumi.ComponentResource):
    oidc_provider: aws.iam.OpenIdConnectProvider
    preview_role: aws.iam.Role
    deploy_roles: dict[str, aws.iam.Role]

    def __init__(self, name: str, args: CiAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:bootstrap:CiAccess", name, None, opts)
        ctx, child = args.context, pulumi.ResourceOptions(parent=self)
        prefix = ctx.settings.name_prefix
        self.oidc_provider = aws.iam.OpenIdConnectProvider(
            f"{name}-github-oidc",
            url=f"https://{GITHUB_OIDC_HOST}",
            client_id_lists=[policies.AUDIENCE],
            opts=child,
        )

        def trust(subject: str) -> pulumi.Output[str]:
            return self.oidc_provider.arn.apply(
                lambda arn: json.dumps(policies.github_trust(arn, args.repository, subject))
            )

        self.preview_role = aws.iam.Role(
            f"{name}-preview",
            name=f"{prefix}-preview",
            description="pulumi preview of every stack on pull requests: read-only, no secret values",
            assume_role_policy=trust("pull_request"),
            max_session_duration=policies.MAX_SESSION_SECONDS,
            opts=child,
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-preview-read-only",
            role=self.preview_role.name,
            policy_arn=f"arn:{ctx.partition}:iam::aws:policy/ReadOnlyAccess",
            opts=child,
        )
        state = pulumi.Output.all(args.state_bucket_arn, args.state_key_arn)
        aws.iam.RolePolicy(
            f"{name}-preview-state",
            role=self.preview_role.id,
            policy=state.apply(lambda v: json.dumps(policies.preview_policy(v[0], v[1]))),
            opts=child,
        )

        self.deploy_roles = {}
        for env in args.environments:
            role = aws.iam.Role(
                f"{name}-deploy-{env.name}",
                name=f"{prefix}-deploy-{env.name}",
                description=f"pulumi up of the {env.name} stack, from its GitHub environment only",
                assume_role_policy=trust(f"environment:{env.name}"),
                max_session_duration=policies.MAX_SESSION_SECONDS,
                opts=child,
            )
            aws.iam.RolePolicy(
                f"{name}-deploy-{env.name}-platform",
                role=role.id,
                policy=state.apply(
                    lambda v, env=env: json.dumps(
                        policies.deploy_policy(
                            environment=env.name,
                            region=env.region,
                            account_id=ctx.account_id,
                            partition=ctx.partition,
                            state_bucket_arn=v[0],
                            state_key_arn=v[1],
                        )
                    )
                ),
                opts=child,
            )
            self.deploy_roles[env.name] = role
        self.register_outputs(
            {
                "oidc_provider_arn": self.oidc_provider.arn,
                "preview_role_arn": self.preview_role.arn,
                "deploy_role_arns": {k: r.arn for k, r in self.deploy_roles.items()},
            }
        )
