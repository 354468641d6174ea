"""Fixtures for the prompt registry tests: an in-process moto S3/STS and a versioned bucket."""

from __future__ import annotations

import json
import threading

import boto3
import pytest
from moto import mock_aws

import llmops.cli
from llmops.prompts import PromptFile, PromptRegistry, parse_prompt

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


def make_prompt(name: str = "support-bot", text: str = "Hello {{ customer }}, how can I help?", **extra):
    data = {
        "name": name,
        "template": [{"role": "system", "content": text}, {"role": "user", "content": "{{ question }}"}],
        "variables": ["customer", "question"],
        "model": "llama-3-1-8b-instruct",
        "parameters": {"temperature": 0.2},
        "owner": "team-support",
        "classification": "confidential",
        **extra,
    }
    return parse_prompt(data, "test")


def write_prompt_file(path, prompt: PromptFile):
    path.write_text(json.dumps(prompt.canonical()))  # JSON is YAML
    return path


class RaceGate:
    """Makes a race deterministic: every racer has read the shared state before any writes.

    Each racer's S3 client waits at a barrier on its first conditional PutObject to the
    contested keys, then the writes go through one at a time (real S3 serialises them; moto's
    in-process backend is not meant to be hit by racing threads)."""

    def __init__(self, racers: int, key_part: str):
        self.barrier = threading.Barrier(racers, timeout=30)
        self.lock = threading.Lock()
        self.key_part = key_part

    def client(self, s3):
        gate = self

        class Racer:
            waited = False

            def __getattr__(self, name):
                return getattr(s3, name)

            def put_object(self, **kwargs):
                conditional = "IfMatch" in kwargs or "IfNoneMatch" in kwargs
                contested = conditional and gate.key_part in kwargs["Key"]
                if contested and not self.waited:
                    self.waited = True
                    gate.barrier.wait()
                with gate.lock:
                    return s3.put_object(**kwargs)

        return Racer()


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
