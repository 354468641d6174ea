"""The bootstrap program: typed settings -> Bootstrap -> what the platform's stacks and CI need."""

import sys
from pathlib import Path

# components/ and llmops/ sit beside bootstrap/ (the platform's building blocks are reused here).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pulumi
from pulumi.runtime.config import CONFIG, get_config_env

from bootstrap.account import Bootstrap
from llmops.settings import SettingsError
from llmops.settings.bootstrap import from_config

try:
    settings = from_config({**get_config_env(), **CONFIG.get()}, source=f"stack {pulumi.get_stack()}")
except SettingsError as err:
    raise pulumi.RunError(str(err)) from None  # printed without a traceback

account = Bootstrap(settings.name_prefix, settings)

pulumi.export("backendUrl", account.state.backend_url)  # pulumi login <backendUrl>
pulumi.export("secretsProvider", account.state.secrets_provider)  # pulumi stack init --secrets-provider
pulumi.export("stateBucket", account.state.bucket.bucket)
pulumi.export("githubOidcProviderArn", account.ci.oidc_provider.arn)
pulumi.export("previewRoleArn", account.ci.preview_role.arn)  # vars.AWS_PREVIEW_ROLE_ARN
pulumi.export("deployRoleArns", {env: role.arn for env, role in account.ci.deploy_roles.items()})
pulumi.export("runnerLabels", account.runner_labels())  # runs-on of the deploy jobs
pulumi.export("pendingRunners", account.pending_runners)
pulumi.export("githubConnections", {region: c.arn for region, c in account.connections.items()})
