"""Helpers of the team reconciler tests: the desired state as the Pulumi program would ship it, the
environment a test runs in (the LiteLLM admin stub over verified TLS, moto Secrets Manager with
the master key and one empty secret per team key) and the log parser."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

from tests.stubs.litellm_admin_stub import LiteLLMAdminStub
from tests.tls_certs import Certificates

REGION = "us-east-1"
MASTER_KEY = "sk-test-master-0123456789"
MANAGED_BY = "llmops-dev"


def desired_team(team_id: str, **overrides) -> dict:
    """A team object as the platform computes it (the shape of the issue's example)."""
    team = {
        "team_id": team_id,
        "team_alias": team_id,
        "models": ["qwen-small"],
        "max_budget": 50.0,
        "budget_duration": "30d",
        "tpm_limit": 200000,
        "rpm_limit": 600,
        "metadata": {
            "cost_center": "cc-4411",
            "classification": "internal",
            "contact": f"#{team_id}-alerts",
            "managed_by": MANAGED_BY,
        },
    }
    team.update(overrides)
    return team


@dataclass
class Env:
    stub: LiteLLMAdminStub
    secrets: object  # boto3 secretsmanager client (moto)
    desired_path: Path
    certs: Certificates
    other_certs: Certificates
    teams: list[dict] = field(default_factory=list)
    secret_arns: dict[str, str] = field(default_factory=dict)

    def secret_id(self, team_id: str) -> str:
        """The team's key secret, created empty (no value) the first time, as Pulumi creates it."""
        if team_id not in self.secret_arns:
            self.secret_arns[team_id] = self.secrets.create_secret(
                Name=f"llmops-dev/teams/{team_id}/gateway-key"
            )["ARN"]
        return self.secret_arns[team_id]

    def want(self, *teams: dict) -> None:
        """Writes desired.json with these team objects (each with its key)."""
        self.teams = [copy.deepcopy(t) for t in teams]
        entries = [
            {
                "team": t,
                "key": {"key_alias": f"{t['team_id']}-dev", "secret_id": self.secret_id(t["team_id"])},
            }
            for t in self.teams
        ]
        doc = {"environment": "dev", "managed_by": MANAGED_BY, "teams": entries}
        self.desired_path.write_text(json.dumps(doc, indent=2))

    def secret_value(self, team_id: str) -> str | None:
        try:
            return self.secrets.get_secret_value(SecretId=self.secret_id(team_id))["SecretString"]
        except self.secrets.exceptions.ResourceNotFoundException:
            return None

    def secret_versions(self, team_id: str) -> int:
        versions = self.secrets.list_secret_version_ids(SecretId=self.secret_id(team_id))["Versions"]
        return len(versions)

    def set_secret(self, team_id: str, value: str) -> None:
        self.secrets.put_secret_value(SecretId=self.secret_id(team_id), SecretString=value)


def logged(capsys) -> list[dict]:
    """The JSON log lines printed so far (every line of stdout must be one)."""
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
