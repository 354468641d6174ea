"""What every component needs to know about where it runs, looked up once by the Platform."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components import kms
from llmops.settings import StackSettings


@dataclass
class _StackKey:
    """The one key of a stack that shares its key, created on first use (shared by the copies
    dataclasses.replace makes of the context)."""

    key: aws.kms.Key | None = None


# Classifications whose stacks use one customer-managed key for everything: separate keys per
# purpose bill $1 a month each and keep one key's users from decrypting another's data, which
# confidential and regulated data need; below that, IAM on each resource is the boundary.
SHARED_KEY_CLASSIFICATIONS = ("public", "internal")


@dataclass(frozen=True)
class AwsContext:
    settings: StackSettings
    provider: aws.Provider
    identity: aws.GetCallerIdentityResult
    partition: str
    dns_suffix: str
    access_logs: aws.s3.Bucket | None = None
    """The platform's S3 access-log bucket (set by the Platform once it exists)."""
    _stack_key: _StackKey = field(default_factory=_StackKey, repr=False)

    @property
    def region(self) -> str:
        return self.settings.region

    @property
    def account_id(self) -> str:
        return self.identity.account_id

    @property
    def protect(self) -> bool:
        return self.settings.deletion_protection

    def arn(self, service: str, resource: str, regional: bool = True) -> str:
        region = self.region if regional else ""
        return f"arn:{self.partition}:{service}:{region}:{self.account_id}:{resource}"

    def invoke_opts(self) -> pulumi.InvokeOptions:
        return pulumi.InvokeOptions(provider=self.provider)

    @property
    def shared_key(self) -> bool:
        """One key for the whole stack (public and internal data), else one key per purpose."""
        return self.settings.data_classification in SHARED_KEY_CLASSIFICATIONS

    def kms_key(
        self,
        name: str,
        description: str,
        parent: pulumi.Resource,
        services: list[str] | None = None,
        via_services: list[str] | None = None,
    ):
        """A customer-managed key for this use (see components/kms.py), or the stack's one key
        where the classification allows it; its policy admits every service any use names."""
        if not self.shared_key:
            return kms.new_key(
                name,
                description,
                parent=parent,
                identity=self.identity,
                partition=self.partition,
                region=self.region,
                protect=self.protect,
                services=services,
                via_services=via_services,
            )
        kms.check_shared_use(name, services or [], via_services or [])
        if self._stack_key.key is None:
            self._stack_key.key = kms.new_key(
                f"{self.settings.name_prefix}-stack-key",
                f"{self.settings.name_prefix}: every customer-managed encryption of the stack "
                f"(one key: {self.settings.data_classification} data)",
                parent=None,
                provider=self.provider,
                identity=self.identity,
                partition=self.partition,
                region=self.region,
                protect=self.protect,
                services=kms.SHARED_KEY_SERVICES,
                via_services=kms.SHARED_KEY_VIA_SERVICES,
            )
        return self._stack_key.key
