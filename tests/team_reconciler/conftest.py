"""Fixtures of the team reconciler tests: see helpers.Env."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from lambdas.team_reconciler import handler
from team_reconciler.helpers import MASTER_KEY, REGION, Env
from tests.stubs.litellm_admin_stub import LiteLLMAdminStub
from tests.tls_certs import Certificates, issue


@pytest.fixture(scope="session")
def certificates(tmp_path_factory) -> tuple[Certificates, Certificates]:
    base = tmp_path_factory.mktemp("gateway-tls")
    names = ["gateway.dev.llmops.internal"]
    return issue(base / "ours", names, ["127.0.0.1"]), issue(base / "other", names, ["127.0.0.1"])


@pytest.fixture
def env(monkeypatch, tmp_path, certificates):
    trusted, other = certificates
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "ENVIRONMENT": "dev",
        "GATEWAY_CA_CERT": trusted.ca_pem,
        "DESIRED_STATE_PATH": str(tmp_path / "desired.json"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DRY_RUN", raising=False)
    with mock_aws(), LiteLLMAdminStub(master_key=MASTER_KEY, tls=trusted) as stub:
        handler.reset_clients()
        secrets = boto3.client("secretsmanager", region_name=REGION)
        master = secrets.create_secret(Name="llmops/dev/gateway/master-key", SecretString=MASTER_KEY)
        monkeypatch.setenv("GATEWAY_SECRET_ID", master["ARN"])
        monkeypatch.setenv("GATEWAY_URL", stub.url)
        yield Env(stub, secrets, tmp_path / "desired.json", trusted, other)
        handler.reset_clients()
