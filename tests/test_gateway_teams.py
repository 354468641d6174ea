"""Per-team controls on the real LiteLLM proxy: the response cache never crosses teams, and a
team's own prompt-size budget applies to its keys.

The proxy runs the config `render_config` produced for a confidential stack with one cached route
(`responseCache`, backend `local`: the same LiteLLM cache key and the same team namespace as the
Valkey backend, kept in the pod's memory because no Redis/Valkey server runs here) and one
uncached route. Without a database the proxy cannot look team keys up, so the test adds
`general_settings.custom_auth: team_auth.user_api_key_auth` (tests/stubs/team_auth.py), which
answers what that lookup would (team id, team metadata); the rest is the generated config.
"""

from __future__ import annotations

import importlib.util
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from llmops.gateway.config import TEAM_INPUT_LIMIT_KEY, SelfHostedModel, config_files, render_config
from llmops.settings import from_config
from tests.stubs import team_auth
from tests.stubs.litellm_proxy import MASTER_KEY, start_proxy
from tests.stubs.openai_stub import PII_REPLY, REPLY, OpenAIStub

pytestmark = pytest.mark.slow
if importlib.util.find_spec("litellm") is None:
    pytest.skip("litellm[proxy] is not installed", allow_module_level=True)

PAYMENTS, CLAIMS = "sk-team-payments", "sk-team-claims"
CLAIMS_LIMIT = team_auth.TEAMS[CLAIMS][1][TEAM_INPUT_LIMIT_KEY]


@pytest.fixture(scope="module")
def stub():
    running = OpenAIStub("teams").start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def proxy(stub, tmp_path_factory):
    settings = from_config(
        {
            "aws:region": "me-central-1",
            "llmops:environment": "test",
            "llmops:dataClassification": "confidential",
            "llmops:gateway": json.dumps({"responseCache": {"routes": ["chat-cached"], "backend": "local"}}),
        }
    )
    models = [
        SelfHostedModel("chat-cached", "org/cached", stub.url, "L4", 1, 0.8048, 400),
        SelfHostedModel("chat-live", "org/live", stub.url, "L4", 1, 0.8048, 400),
    ]
    config = render_config(settings, models)
    config["litellm_settings"]["success_callback"] = []  # no S3 here; tests/test_gateway_proxy.py covers it
    config["litellm_settings"]["failure_callback"] = []
    config["general_settings"].pop("database_url")
    config["general_settings"]["custom_auth"] = "team_auth.user_api_key_auth"  # the one test override
    files = config_files(config) | {"team_auth.py": Path(team_auth.__file__).read_text()}
    running = start_proxy(config, tmp_path_factory.mktemp("litellm-teams"), config_files=files)
    yield running
    running.stop()


def post(proxy, key: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{proxy.base}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60, context=proxy.tls) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def ask(proxy, stub, key: str, model: str, prompt: str, **extra) -> int:
    """Send one question; return how many requests the model received for it (0: cached)."""
    before = len(stub.chat_requests())
    status, body = post(
        proxy, key, {"model": model, "messages": [{"role": "user", "content": prompt}], **extra}
    )
    assert status == 200, body
    return len(stub.chat_requests()) - before


def test_a_cached_answer_is_served_to_its_team_and_never_to_another(proxy, stub):
    prompt = "What is the cut-off time for same-day transfers?"
    assert ask(proxy, stub, PAYMENTS, "chat-cached", prompt) == 1
    assert ask(proxy, stub, PAYMENTS, "chat-cached", prompt) == 0, "the same team must hit the cache"
    assert ask(proxy, stub, CLAIMS, "chat-cached", prompt) == 1, "another team must reach the model"
    assert ask(proxy, stub, CLAIMS, "chat-cached", prompt) == 0
    assert ask(proxy, stub, MASTER_KEY, "chat-cached", prompt) == 1, "a key without a team has its own scope"


def test_a_caller_cannot_choose_another_teams_cache(proxy, stub):
    """What LiteLLM would otherwise honour from the request: a namespace (cache.namespace or
    metadata.redis_namespace) or a literal cache_key (litellm/caching/caching.py)."""
    stolen = [
        {"cache": {"namespace": "llmops:team:payments"}},
        {"metadata": {"redis_namespace": "llmops:team:payments"}},
    ]
    for i, extra in enumerate(stolen):
        prompt = f"Which documents does chargeback case {i} need?"
        assert ask(proxy, stub, PAYMENTS, "chat-cached", prompt) == 1
        assert ask(proxy, stub, PAYMENTS, "chat-cached", prompt) == 0
        assert ask(proxy, stub, CLAIMS, "chat-cached", prompt, **extra) == 1, (
            f"claims read payments' cache: {extra}"
        )


def test_routes_that_did_not_opt_in_are_never_cached(proxy, stub):
    prompt = "Summarise today's fraud alerts."
    assert ask(proxy, stub, PAYMENTS, "chat-live", prompt, cache={"use-cache": True}) == 1
    assert ask(proxy, stub, PAYMENTS, "chat-live", prompt, cache={"use-cache": True}) == 1


def test_a_caller_may_still_skip_the_cache(proxy, stub):
    prompt = "Is the card scheme outage over?"
    assert ask(proxy, stub, PAYMENTS, "chat-cached", prompt) == 1
    assert ask(proxy, stub, PAYMENTS, "chat-cached", prompt, cache={"no-cache": True}) == 1


def test_a_teams_own_budget_applies_to_its_keys_only(proxy, stub):
    prompt = " ".join(f"w{i}" for i in range(CLAIMS_LIMIT * 2))
    before = len(stub.chat_requests())
    status, body = post(
        proxy, CLAIMS, {"model": "chat-live", "messages": [{"role": "user", "content": prompt}]}
    )
    assert status == 413, body
    message = body["error"]["message"]
    assert f"limit of {CLAIMS_LIMIT} input tokens" in message and "team claims" in message, message
    assert len(stub.chat_requests()) == before, "a model was called"
    assert ask(proxy, stub, PAYMENTS, "chat-live", prompt) == 1, "the other team has no such limit"


def test_a_cached_answer_is_masked_on_every_hit(proxy, stub):
    """The cache keeps the answer as the model gave it; post_call masking runs on hits too."""
    stub.reply = PII_REPLY
    try:
        prompt = "Who holds account 17?"
        answers = []
        for expected_calls in (1, 0):
            before = len(stub.chat_requests())
            status, body = post(
                proxy, PAYMENTS, {"model": "chat-cached", "messages": [{"role": "user", "content": prompt}]}
            )
            assert status == 200 and len(stub.chat_requests()) - before == expected_calls, body
            answers.append(body["choices"][0]["message"]["content"])
    finally:
        stub.reply = REPLY
    for answer in answers:
        assert "jane.doe@example.ae" not in answer and "784-1987-1234567-1" not in answer, answer
        assert "[EMAIL_REDACTED]" in answer, answer
