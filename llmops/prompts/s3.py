"""S3 access for the registry: JSON objects, conditional writes, and errors mapped to exit codes.

Conditional writes are what make the registry safe without a database or a lock service:
- `If-None-Match: *` creates an object only if the key is free (new versions, eval records);
- `If-Match: <etag>` replaces an object only if nobody replaced it since we read it (aliases).
S3 answers 412 PreconditionFailed when the condition does not hold, and 409
ConditionalRequestConflict when another conditional write to the key is in flight
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-requests.html).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from llmops.errors import EXIT_CONFLICT, EXIT_NOT_FOUND, EXIT_USAGE, LlmopsError

CONFLICT_CODES = {"PreconditionFailed", "ConditionalRequestConflict"}
NOT_FOUND_CODES = {"NoSuchKey", "NoSuchVersion", "404"}


class PromptNotFound(LlmopsError):
    def __init__(self, message: str):
        super().__init__(message, EXIT_NOT_FOUND)


class PromptConflict(LlmopsError):
    """A conditional write lost a race, or a gate refused: nothing was written."""

    def __init__(self, message: str):
        super().__init__(message, EXIT_CONFLICT)


class StoreUnavailable(LlmopsError):
    """S3 or STS could not be reached or refused the credentials."""

    def __init__(self, message: str):
        super().__init__(message, EXIT_USAGE)


class _Conflict(Exception):
    """Internal: a conditional write failed; callers turn it into a retry or a PromptConflict."""


@dataclass(frozen=True)
class Stored:
    data: dict[str, Any]
    etag: str
    raw: bytes
    version_id: str | None = None
    where: str = ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    def require(self, *fields: str) -> dict[str, Any]:
        """The record, if it has the fields the registry writes (it may have been written around it)."""
        missing = [f for f in fields if f not in self.data]
        if missing:
            raise LlmopsError(
                f"{self.where} is not a registry record (missing {', '.join(missing)}); "
                "it was written outside `llmops prompts`: inspect its object versions"
            )
        return self.data


def make_clients(
    region: str | None = None, connect_timeout: float = 5, read_timeout: float = 10, max_attempts: int = 3
) -> tuple[Any, Any]:
    """boto3's standard configuration applies: credentials chain, AWS_REGION, AWS_ENDPOINT_URL."""
    config = Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    session = boto3.session.Session(region_name=region)
    return session.client("s3", config=config), session.client("sts", config=config)


def encode(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


class Bucket:
    """The handful of S3 calls the registry makes, with errors turned into LlmopsErrors."""

    def __init__(self, name: str, s3: Any):
        self.name = name
        self.s3 = s3

    def _fail(self, err: Exception, key: str) -> LlmopsError:
        if isinstance(err, ClientError):
            code = err.response.get("Error", {}).get("Code", "")
            if code == "NoSuchBucket":
                return PromptNotFound(f"no bucket {self.name} (check --bucket or LLMOPS_PROMPT_BUCKET)")
            where = f"s3://{self.name}/{key}"
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "ExpiredToken", "SignatureDoesNotMatch"):
                return StoreUnavailable(f"{where}: access denied ({code}); check your AWS credentials")
            return StoreUnavailable(f"{where}: {code}: {err.response['Error'].get('Message', '')}")
        return StoreUnavailable(f"s3://{self.name}: cannot reach S3 ({err}); check AWS_ENDPOINT_URL")

    def get(self, key: str, version_id: str | None = None) -> Stored | None:
        """The object as JSON, or None if the key (or that version of it) does not exist."""
        kwargs = {"Bucket": self.name, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        try:
            resp = self.s3.get_object(**kwargs)
            raw = resp["Body"].read()
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in NOT_FOUND_CODES:
                return None
            raise self._fail(err, key) from None
        except BotoCoreError as err:
            raise self._fail(err, key) from None
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise LlmopsError(f"s3://{self.name}/{key} is not a registry record (not a JSON object)")
        return Stored(data, resp["ETag"], raw, resp.get("VersionId"), f"s3://{self.name}/{key}")

    def put(
        self,
        key: str,
        body: bytes,
        *,
        if_none_match: bool = False,
        if_match: str | None = None,
        content_type: str = "application/json",
    ) -> str:
        """Write; raises _Conflict if the condition does not hold. Returns the new ETag."""
        kwargs: dict[str, Any] = {"Bucket": self.name, "Key": key, "Body": body, "ContentType": content_type}
        if if_none_match:
            kwargs["IfNoneMatch"] = "*"
        if if_match:
            kwargs["IfMatch"] = if_match
        try:
            return self.s3.put_object(**kwargs)["ETag"]
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code")
            # If-Match on a key deleted meanwhile answers 404: someone else changed it.
            if code in CONFLICT_CODES or (if_match and code in NOT_FOUND_CODES):
                raise _Conflict(code) from None
            raise self._fail(err, key) from None
        except BotoCoreError as err:
            raise self._fail(err, key) from None

    def keys(self, prefix: str) -> list[str]:
        """Every key under a prefix, in S3's (lexicographic) order."""
        out: list[str] = []
        try:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix):
                out += [o["Key"] for o in page.get("Contents", [])]
        except (ClientError, BotoCoreError) as err:
            raise self._fail(err, prefix) from None
        return out

    def folders(self, prefix: str) -> list[str]:
        out: list[str] = []
        try:
            pager = self.s3.get_paginator("list_objects_v2")
            for page in pager.paginate(Bucket=self.name, Prefix=prefix, Delimiter="/"):
                out += [p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", [])]
        except (ClientError, BotoCoreError) as err:
            raise self._fail(err, prefix) from None
        return out

    def versioning(self) -> str:
        """The bucket's versioning status: Enabled, Suspended, or Disabled (never enabled)."""
        try:
            return self.s3.get_bucket_versioning(Bucket=self.name).get("Status") or "Disabled"
        except (ClientError, BotoCoreError) as err:
            raise self._fail(err, "?versioning") from None

    def versions(self, prefix: str) -> tuple[list[dict], list[dict]]:
        """(object versions, delete markers) under a prefix, from the bucket's versioning."""
        versions: list[dict] = []
        markers: list[dict] = []
        try:
            pager = self.s3.get_paginator("list_object_versions")
            for page in pager.paginate(Bucket=self.name, Prefix=prefix):
                versions += page.get("Versions", [])
                markers += page.get("DeleteMarkers", [])
        except (ClientError, BotoCoreError) as err:
            raise self._fail(err, prefix) from None
        return versions, markers


def caller_arn(sts: Any) -> str:
    """Who is acting, from STS: recorded in every version, eval and alias move."""
    try:
        return sts.get_caller_identity()["Arn"]
    except (ClientError, BotoCoreError) as err:
        raise StoreUnavailable(f"cannot establish the caller's identity with STS ({err})") from None
