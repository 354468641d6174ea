"""Fixtures for the prompt registry tests: an in-process moto S3/STS and a versioned bucket.

This folder is a package so that this conftest does not shadow the top-level `conftest`
module that other tests import helpers from."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

import llmops.cli
from llmops.prompts import PromptRegistry

BUCKET = "llmops-test-prompts"


@pytest.fixture
def aws(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "LLMOPS_PROMPT_BUCKET"):
        monkeypatch.delenv(key, raising=False)
    with mock_aws():
        yield


@pytest.fixture
def bucket(aws):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return BUCKET


@pytest.fixture
def registry(bucket):
    return PromptRegistry(bucket, boto3.client("s3"), boto3.client("sts"))


@pytest.fixture
def cli(monkeypatch, capsys, bucket):
    """Run `llmops prompts ...` in-process through the real entry point; --json output parsed."""
    monkeypatch.setattr(llmops.cli, "COMMAND_MODULES", ["llmops.prompts.cli"])
    monkeypatch.setenv("LLMOPS_PROMPT_BUCKET", bucket)

    def run(*argv: str, as_json: bool = True):
        args = ["prompts", *map(str, argv)] + (["--json"] if as_json else [])
        code = llmops.cli.main(args)
        out, err = capsys.readouterr()
        return code, (json.loads(out) if as_json and out.strip() else out), err

    return run
