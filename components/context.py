"""What every component needs to know about where it runs, looked up once by the Platform."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import kms
from llmops.settings import StackSettings


@dataclass(frozen=True)
class AwsContext:
    settings: StackSettings
    provider: aws.Provider
    identity: aws.GetCallerIdentityResult
    partition: str
    dns_suffix: str
    access_logs: aws.s3.Bucket | None = None
    """The platform's S3 access-log bucket (set by the Platform once it exists)."""

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

    def kms_key(
        self,
        name: str,
        description: str,
        parent: pulumi.Resource,
        services: list[str] | None = None,
        via_services: list[str] | None = None,
    ):
        """A customer-managed key for this stack (see components/kms.py)."""
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
