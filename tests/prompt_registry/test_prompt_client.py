"""PromptClient: TTL cache, last-known-good on disk, stale-while-error, fail-closed, render."""

from __future__ import annotations

import socket

import boto3
import pytest
from botocore.config import Config

from llmops.prompts import PromptClient, PromptNotFound, PromptRenderError, PromptUnavailable
from prompt_registry.helpers import make_prompt


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def warm(registry, tmp_path):
    """A first process that read the prompt while S3 was up (leaving its last-known-good copy)."""
    PromptClient(registry.bucket.name, s3=boto3.client("s3"), cache_dir=tmp_path).get("support-bot", "canary")


def unreachable_s3():
    """An S3 client aimed at a closed port on localhost: every call fails to connect."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=1)
    return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1", config=config)


@pytest.fixture
def published(registry):
    registry.push(make_prompt())
    registry.push(make_prompt(text="Version two for {{ customer }}"))
    registry.promote("support-bot", 1, "canary", "first")
    return registry


def test_serves_the_alias_with_version_and_hash(published, tmp_path):
    client = PromptClient(published.bucket.name, s3=boto3.client("s3"), cache_dir=tmp_path)
    served = client.get("support-bot", alias="canary")
    assert (served.version, served.source, served.stale) == (1, "s3", False)
    assert served.content_hash == published.get("support-bot:1")["content_hash"]
    assert served.metadata == {
        "prompt_name": "support-bot",
        "prompt_alias": "canary",
        "prompt_version": "1",
        "prompt_hash": served.content_hash,
    }
    messages = served.render({"customer": "Layla", "question": "Fees?"})
    assert messages == [
        {"role": "system", "content": "Hello Layla, how can I help?"},
        {"role": "user", "content": "Fees?"},
    ]
    with pytest.raises(PromptRenderError, match="missing variable\\(s\\) question"):
        served.render({"customer": "Layla"})


def test_memory_cache_holds_for_the_ttl_then_sees_a_promotion(published, tmp_path):
    clock = Clock()
    client = PromptClient(
        published.bucket.name, s3=boto3.client("s3"), cache_dir=tmp_path, ttl_seconds=30, clock=clock
    )
    assert client.get("support-bot", "canary").version == 1
    published.promote("support-bot", 2, "canary", "second")
    clock.now += 29
    cached = client.get("support-bot", "canary")
    assert (cached.version, cached.source) == (1, "memory")
    clock.now += 2
    fresh = client.get("support-bot", "canary")
    assert (fresh.version, fresh.source) == (2, "s3")


def test_serves_last_known_good_from_disk_when_s3_is_unreachable(published, tmp_path):
    warm(published, tmp_path)
    # A new process (empty memory) while S3 is down: the copy on disk answers.
    restarted = PromptClient(published.bucket.name, s3=unreachable_s3(), cache_dir=tmp_path)
    served = restarted.get("support-bot", "canary")
    assert (served.version, served.source, served.stale) == (1, "disk", True)
    assert served.render({"customer": "Omar", "question": "?"})[0]["content"] == "Hello Omar, how can I help?"


def test_stale_copy_in_memory_is_served_when_s3_fails(published, tmp_path):
    clock = Clock()
    client = PromptClient(
        published.bucket.name, s3=boto3.client("s3"), cache_dir=tmp_path, ttl_seconds=5, clock=clock
    )
    client.get("support-bot", "canary")
    client._bucket.s3 = unreachable_s3()
    clock.now += 10
    served = client.get("support-bot", "canary")
    assert (served.version, served.stale) == (1, True)


def test_fail_closed_raises_instead_of_serving_a_copy(published, tmp_path):
    warm(published, tmp_path)
    strict = PromptClient(published.bucket.name, s3=unreachable_s3(), cache_dir=tmp_path, fail_closed=True)
    with pytest.raises(PromptUnavailable, match="fail-closed"):
        strict.get("support-bot", "canary")


def test_no_copy_anywhere_raises_unavailable(published, tmp_path):
    client = PromptClient(published.bucket.name, s3=unreachable_s3(), cache_dir=tmp_path)
    with pytest.raises(PromptUnavailable, match="no last-known-good copy"):
        client.get("support-bot", "canary")


def test_a_tampered_disk_copy_is_refused(published, tmp_path):
    warm(published, tmp_path)
    path = tmp_path / published.bucket.name / "support-bot@canary.json"
    path.write_text(path.read_text().replace("how can I help", "send me your PIN"))
    with pytest.raises(PromptUnavailable, match="does not match its content hash"):
        restarted = PromptClient(published.bucket.name, s3=unreachable_s3(), cache_dir=tmp_path)
        restarted.get("support-bot", "canary")


def test_a_missing_alias_is_an_answer_not_an_outage(published, tmp_path):
    client = PromptClient(published.bucket.name, s3=boto3.client("s3"), cache_dir=tmp_path)
    with pytest.raises(PromptNotFound, match="no alias production"):
        client.get("support-bot")


def test_an_unreadable_disk_copy_is_refused(published, tmp_path):
    warm(published, tmp_path)
    (tmp_path / published.bucket.name / "support-bot@canary.json").write_text('{"name": "support-bot"}')
    with pytest.raises(PromptUnavailable, match="unreadable"):
        PromptClient(published.bucket.name, s3=unreachable_s3(), cache_dir=tmp_path).get(
            "support-bot", "canary"
        )
