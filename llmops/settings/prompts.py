"""Settings of the prompt store: the S3 bucket behind the prompt registry, and who may write it."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from llmops.settings.base import Settings

ALIAS = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
# `repo:OWNER/NAME:...` with a literal owner and repository: a wildcard there would let any
# GitHub repository's workflows assume the writer role.
GITHUB_SUBJECT = re.compile(r"^repo:[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+:.+$")


class PromptStoreSettings(Settings):
    protected_aliases: list[str] = Field(default_factory=lambda: ["production"])
    """Aliases that `llmops prompts promote` moves only to a version whose latest eval record is a
    passing `llmops eval run --record`. Written to the bucket (`_registry/config.json`), where the
    writer role cannot change it; `llmops prompts audit` flags any move to them that bypassed the gate."""
    min_pass_rate: float | None = Field(None, gt=0, le=1)
    """A floor on the pass rate a version's eval run must reach before a protected alias moves
    to it, on top of the threshold its eval set (`evals/<prompt>.yaml`) sets. Unset: the eval
    set's threshold alone. Written to the registry config, where CI cannot change it."""
    object_lock_retention_days: int = Field(365, ge=1, le=36500)
    """Regulated stacks only: every object version (prompt versions, alias moves, evals) is
    kept under S3 Object Lock in governance mode for this many days, so the history cannot be
    deleted without the s3:BypassGovernanceRetention permission (which CloudTrail records)."""
    noncurrent_version_expiration_days: int | None = Field(None, ge=1)
    """Days after which replaced object versions (earlier alias records: the audit trail) are
    deleted. Unset (the default) keeps them forever. Refused in regulated stacks."""
    writer_github_subjects: list[str] = Field(default_factory=list)
    """GitHub OIDC subjects allowed to assume the prompt-writer role (CI), e.g.
    `repo:acme/prompts:ref:refs/heads/main` or `repo:acme/prompts:environment:prod`.
    Empty: no prompt-writer role is created, so CI cannot push prompts."""

    @field_validator("protected_aliases")
    @classmethod
    def _aliases(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if not ALIAS.match(a)]
        if bad:
            raise ValueError(f"{', '.join(bad)}: aliases are lower-case letters, digits and '-'")
        return value

    @field_validator("writer_github_subjects")
    @classmethod
    def _subjects(cls, value: list[str]) -> list[str]:
        bad = [s for s in value if not GITHUB_SUBJECT.match(s)]
        if bad:
            raise ValueError(
                f"{', '.join(bad)}: must name one repository, like repo:OWNER/NAME:ref:refs/heads/main "
                "(no wildcard in the owner or repository)"
            )
        return value
