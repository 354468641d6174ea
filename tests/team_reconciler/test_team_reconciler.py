"""The team reconciler converges the gateway (the LiteLLM admin stub, over verified TLS) and the
team key secrets (moto) on the desired state; the tests assert the resulting state."""

from __future__ import annotations

import hashlib
import json
import urllib.error

import pytest

from lambdas.team_reconciler import handler
from team_reconciler.helpers import MANAGED_BY, MASTER_KEY, desired_team, logged
from tests.stubs.litellm_admin_stub import LiteLLMAdminStub

FRAUD, SEARCH = desired_team("fraud-analytics"), desired_team("search", models=["qwen-small", "gpt-4o-mini"])


def run(**event) -> dict:
    return handler.handler(event or {"source": "aws.events"}, None)


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def actions(summary: dict, team: str | None = None) -> list[str]:
    return [a["action"] for a in summary["actions"] if team is None or a["team"] == team]


def converge(env, *teams) -> dict:
    env.want(*teams)
    summary = run()
    assert summary["errors"] == []
    env.stub.requests.clear()
    return summary


def team_state(env, team_id: str) -> dict:
    return env.stub.team(team_id)


# --- creation and idempotency ------------------------------------------------------------------


def test_creates_teams_and_their_keys_from_an_empty_gateway(env, capsys):
    env.want(FRAUD, SEARCH)
    summary = run()
    assert summary["errors"] == [] and summary["dryRun"] is False
    for want in (FRAUD, SEARCH):
        team = team_state(env, want["team_id"])
        for field in ("team_alias", "models", "max_budget", "budget_duration", "tpm_limit", "rpm_limit"):
            assert team[field] == want[field], field
        assert team["metadata"] == want["metadata"] and team["blocked"] is False
        (key,) = env.stub.keys_of(want["team_id"])
        assert key["key_alias"] == f"{want['team_id']}-dev" and key["models"] == want["models"]
        assert key["metadata"] == want["metadata"]
        stored = env.secret_value(want["team_id"])
        assert stored.startswith("sk-") and sha(stored) == key["token"]  # the secret holds that key
        assert actions(summary, want["team_id"]) == ["create-team", "generate-key", "store-key"]
    assert summary["writes"] == 6
    assert [r["path"] for r in env.stub.writes] == ["/team/new", "/key/generate"] * 2
    out = capsys.readouterr().out
    assert env.secret_value("search") not in out and env.secret_value("fraud-analytics") not in out
    assert MASTER_KEY not in out
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["action"] for line in lines] == actions(summary)
    assert all(line["environment"] == "dev" and line["dryRun"] is False for line in lines)


def test_a_second_run_without_changes_makes_no_write(env):
    converge(env, FRAUD, SEARCH)
    versions = {t: env.secret_versions(t) for t in ("fraud-analytics", "search")}
    summary = run()
    assert env.stub.writes == [] and summary["writes"] == 0 and summary["errors"] == []
    assert {t: env.secret_versions(t) for t in versions} == versions  # no PutSecretValue
    assert set(actions(summary)) == {"in-sync"}
    # Only reads: the team list and one /key/info per team, by the key's hash.
    assert sorted(r["path"] for r in env.stub.requests) == ["/key/info", "/key/info", "/team/list"]
    stored = env.secret_value("search")
    assert stored not in json.dumps(env.stub.requests)  # the key never travels, only its hash


def test_values_equal_as_numbers_sets_and_metadata_subsets_are_not_drift(env):
    team = env.stub.add_team(
        "fraud-analytics",
        team_alias="fraud-analytics",
        models=["b-model", "qwen-small"],
        max_budget=50,  # int in the gateway, 50.0 desired
        budget_duration="30d",
        tpm_limit=200000.0,
        rpm_limit=600,
        metadata={**FRAUD["metadata"], "added_by_an_operator": "x"},
    )
    env.set_secret("fraud-analytics", env.stub.add_key(team["team_id"], "fraud-analytics-dev",
                                                       models=["qwen-small", "b-model"],
                                                       metadata=FRAUD["metadata"]))  # fmt: skip
    env.want(desired_team("fraud-analytics", models=["qwen-small", "b-model"]))
    summary = run()
    assert env.stub.writes == [] and actions(summary) == ["in-sync", "in-sync"]


# --- drift ------------------------------------------------------------------------------------


def test_drifted_fields_are_updated_and_only_those(env):
    converge(env, FRAUD)
    team = env.stub.teams["fraud-analytics"]
    team.update(max_budget=80.0, models=["qwen-small", "llama-70b"], tpm_limit=1000)
    team["metadata"] = {**team["metadata"], "cost_center": "cc-0000", "team_member_budget_id": "b-1", "x": 1}
    summary = run()
    assert summary["errors"] == []
    (update,) = env.stub.calls("/team/update")
    body = update["json"]
    assert set(body) == {"team_id", "max_budget", "models", "tpm_limit", "metadata"}  # no rpm_limit, ...
    assert body["max_budget"] == 50.0 and body["models"] == ["qwen-small"] and body["tpm_limit"] == 200000
    # /team/update replaces metadata: the stored keys are sent back, LiteLLM's own one is not.
    assert body["metadata"] == {**FRAUD["metadata"], "x": 1}
    state = team_state(env, "fraud-analytics")
    assert state["max_budget"] == 50.0 and state["models"] == ["qwen-small"] and state["tpm_limit"] == 200000
    assert state["metadata"]["cost_center"] == "cc-4411" and state["metadata"]["x"] == 1
    assert actions(summary) == ["update-team", "in-sync"]
    assert next(a for a in summary["actions"] if a["action"] == "update-team")["fields"] == [
        "max_budget",
        "metadata",
        "models",
        "tpm_limit",
    ]
    env.stub.requests.clear()
    assert run()["writes"] == 0 and env.stub.writes == []


def test_desired_changes_are_applied_and_the_key_follows_the_models(env):
    converge(env, FRAUD)
    key_before = env.secret_value("fraud-analytics")
    changed = desired_team(
        "fraud-analytics",
        max_budget=75.5,
        budget_duration="7d",
        rpm_limit=900,
        models=["qwen-small", "qwen-large"],
        metadata={**FRAUD["metadata"], "contact": "#fraud-oncall"},
    )
    env.want(changed)
    summary = run()
    state = team_state(env, "fraud-analytics")
    assert (state["max_budget"], state["budget_duration"], state["rpm_limit"]) == (75.5, "7d", 900)
    assert sorted(state["models"]) == ["qwen-large", "qwen-small"]
    assert state["metadata"]["contact"] == "#fraud-oncall"
    (key,) = env.stub.keys_of("fraud-analytics")
    assert sorted(key["models"]) == ["qwen-large", "qwen-small"]  # updated in place...
    assert key["metadata"]["contact"] == "#fraud-oncall"
    assert env.secret_value("fraud-analytics") == key_before  # ...not regenerated
    assert actions(summary) == ["update-team", "update-key"]
    (key_update,) = env.stub.calls("/key/update")
    assert key_update["json"]["key"] == sha(key_before)


# --- keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        (None, "holds no key"),  # the secret has no value yet
        ("   ", "holds no key"),
        ("not-a-key", "does not hold a LiteLLM key"),
        ("sk-unknown-0123456789abcdef", "unknown to the gateway"),
    ],
)
def test_a_key_is_regenerated_when_the_secret_does_not_hold_the_teams_live_key(env, secret, reason):
    team = env.stub.add_team("fraud-analytics", **{k: v for k, v in FRAUD.items() if k != "team_id"})
    old = env.stub.add_key(team["team_id"], "fraud-analytics-dev", models=FRAUD["models"],
                           metadata=FRAUD["metadata"])  # fmt: skip
    if secret is not None:
        env.set_secret("fraud-analytics", secret)
    env.want(FRAUD)
    summary = run()
    assert summary["errors"] == []
    stored = env.secret_value("fraud-analytics")
    (key,) = env.stub.keys_of("fraud-analytics")
    assert (
        stored not in (old, secret)
        and sha(stored) == key["token"]
        and key["key_alias"] == "fraud-analytics-dev"
    )
    # The old key held the alias (unique in LiteLLM) and nobody can get it any more: deleted first.
    assert [k["token"] for k in env.stub.deleted_keys] == [sha(old)]
    assert actions(summary) == ["in-sync", "delete-key", "generate-key", "store-key"]
    assert reason in next(a for a in summary["actions"] if a["action"] == "generate-key")["reason"]
    env.stub.requests.clear()
    assert run()["writes"] == 0


def test_a_key_of_another_team_or_an_expired_key_in_the_secret_is_replaced(env):
    converge(env, FRAUD, SEARCH)
    env.set_secret("fraud-analytics", env.secret_value("search"))  # copy-paste accident
    summary = run()
    assert (
        "belongs to team search"
        in next(a for a in summary["actions"] if a["action"] == "generate-key")["reason"]
    )
    assert sha(env.secret_value("fraud-analytics")) == env.stub.keys_of("fraud-analytics")[0]["token"]
    assert len(env.stub.keys_of("search")) == 1  # the other team's key is not touched
    env.stub.keys[sha(env.secret_value("search"))]["expires"] = "2020-01-01T00:00:00+00:00"
    summary = run()
    assert actions(summary, "search") == ["in-sync", "delete-key", "generate-key", "store-key"]


def test_a_renamed_alias_replaces_the_teams_previous_key(env):
    converge(env, FRAUD)
    previous = env.secret_value("fraud-analytics")
    doc = json.loads(env.desired_path.read_text())
    doc["teams"][0]["key"]["key_alias"] = "fraud-analytics-dev-v2"
    env.desired_path.write_text(json.dumps(doc))
    summary = run()
    (key,) = env.stub.keys_of("fraud-analytics")
    assert key["key_alias"] == "fraud-analytics-dev-v2" and key["token"] == sha(
        env.secret_value("fraud-analytics")
    )
    assert [k["token"] for k in env.stub.deleted_keys] == [sha(previous)]
    assert "has the alias fraud-analytics-dev" in summary["actions"][-2]["reason"]


def test_an_alias_held_by_another_teams_key_is_an_error_for_that_team_only(env):
    env.stub.add_team("intruder")
    env.stub.add_key("intruder", "fraud-analytics-dev")
    env.want(FRAUD, SEARCH)
    summary = run()
    (error,) = summary["errors"]
    assert error["team"] == "fraud-analytics" and "held by a key of team intruder" in error["message"]
    assert env.stub.keys_of("intruder") and env.secret_value("fraud-analytics") is None
    assert env.secret_value("search") is not None


def test_a_key_blocked_in_the_gateway_is_left_alone(env):
    converge(env, FRAUD)
    env.stub.keys_of("fraud-analytics")  # exists
    env.stub.keys[sha(env.secret_value("fraud-analytics"))]["blocked"] = True
    summary = run()
    assert env.stub.writes == [] and summary["actions"][-1]["keyBlocked"] is True


def test_a_key_that_cannot_be_stored_is_deleted_again_and_the_others_still_run(env):
    env.want(FRAUD, SEARCH)
    doc = json.loads(env.desired_path.read_text())
    doc["teams"][0]["key"]["secret_id"] = "llmops-dev/teams/fraud-analytics/does-not-exist"
    env.desired_path.write_text(json.dumps(doc))
    summary = run()
    (error,) = summary["errors"]
    assert error["team"] == "fraud-analytics" and error["call"] == "secretsmanager:PutSecretValue"
    assert 400 <= error["status"] < 500 and "ResourceNotFoundException" in error["message"]
    assert env.stub.keys_of("fraud-analytics") == []  # generated, not stored, deleted
    assert team_state(env, "fraud-analytics")["team_id"] == "fraud-analytics"
    assert actions(summary, "search") == ["create-team", "generate-key", "store-key"]


# --- removal, blocks --------------------------------------------------------------------------


def test_a_removed_team_is_marked_and_blocked_never_deleted(env):
    converge(env, FRAUD, SEARCH)
    env.stub.add_team("by-hand", metadata={"owner": "ops"})  # not managed: never touched
    env.stub.add_team("staging-team", metadata={"managed_by": "llmops-staging"})
    key_before = env.stub.keys_of("search")
    env.want(FRAUD)
    summary = run()
    assert summary["errors"] == []
    state = team_state(env, "search")
    assert state["blocked"] is True
    assert (
        state["metadata"]["llmops_removed"] is True
        and state["metadata"]["llmops_blocked_before_removal"] is False
    )
    assert state["metadata"]["llmops_removed_at"] and state["metadata"]["cost_center"] == "cc-4411"
    assert env.stub.keys_of("search") == key_before and env.stub.deleted_keys == []  # history stays
    assert [(r["path"], r["json"]["team_id"]) for r in env.stub.writes] == [
        ("/team/update", "search"),  # the marker first...
        ("/team/block", "search"),  # ...then the block: a block without marker is never ours
    ]
    assert actions(summary, "search") == ["mark-removed", "block-team"]
    assert (
        team_state(env, "by-hand")["blocked"] is False and team_state(env, "staging-team")["blocked"] is False
    )
    env.stub.requests.clear()
    assert run()["writes"] == 0 and env.stub.writes == []
    # Someone unblocks it: blocked again, it is still removed.
    env.stub.teams["search"]["blocked"] = False
    assert actions(run(), "search") == ["block-team"] and team_state(env, "search")["blocked"] is True


def test_a_readded_team_is_unblocked_and_unmarked(env):
    converge(env, FRAUD, SEARCH)
    converge(env, FRAUD)  # search removed: marked and blocked
    env.want(FRAUD, SEARCH)
    summary = run()
    state = team_state(env, "search")
    assert state["blocked"] is False
    assert not {"llmops_removed", "llmops_removed_at", "llmops_blocked_before_removal"} & set(
        state["metadata"]
    )
    assert state["metadata"] == SEARCH["metadata"]
    # Unblocked before the marker goes: an interrupted run leaves a marked block, which the next run lifts.
    assert [r["path"] for r in env.stub.writes] == ["/team/unblock", "/team/update"]
    assert actions(summary, "search") == ["unblock-team", "update-team", "in-sync"]
    env.stub.requests.clear()
    assert run()["writes"] == 0


def test_a_team_the_budget_guard_blocked_stays_blocked(env, capsys):
    converge(env, FRAUD)
    env.stub.teams["fraud-analytics"]["blocked"] = True  # /team/block by the budget guard: no marker
    env.stub.teams["fraud-analytics"]["max_budget"] = 10.0
    summary = run()
    assert team_state(env, "fraud-analytics")["blocked"] is True
    assert env.stub.calls("/team/unblock") == []
    assert team_state(env, "fraud-analytics")["max_budget"] == 50.0  # other drift is still repaired
    assert actions(summary) == ["keep-blocked", "update-team", "in-sync"]
    (kept,) = [line for line in logged(capsys) if line["action"] == "keep-blocked"]
    assert "budget guard" in kept["reason"] and kept["team"] == "fraud-analytics"


def test_a_team_blocked_before_it_was_removed_stays_blocked_when_readded(env):
    converge(env, FRAUD, SEARCH)
    env.stub.teams["search"]["blocked"] = True  # the budget guard's block
    converge(env, FRAUD)
    state = team_state(env, "search")
    assert state["metadata"]["llmops_blocked_before_removal"] is True and state["blocked"] is True
    env.want(FRAUD, SEARCH)
    summary = run()
    assert team_state(env, "search")["blocked"] is True and env.stub.calls("/team/unblock") == []
    assert "llmops_removed" not in team_state(env, "search")["metadata"]
    assert actions(summary, "search")[0] == "keep-blocked"


# --- dry run ----------------------------------------------------------------------------------


def test_dry_run_writes_nothing_and_says_what_it_would_do(env, monkeypatch, capsys):
    converge(env, FRAUD, SEARCH)
    env.stub.teams["fraud-analytics"]["max_budget"] = 1.0
    env.set_secret("fraud-analytics", " ")  # emptied (Secrets Manager refuses "")
    versions = env.secret_versions("fraud-analytics")
    capsys.readouterr()
    monkeypatch.setenv("DRY_RUN", "true")
    env.want(FRAUD, desired_team("new-team"))  # search removed, new-team added
    summary = run()
    assert env.stub.writes == [] and summary["writes"] == 0 and summary["dryRun"] is True
    assert "new-team" not in env.stub.teams and team_state(env, "search")["blocked"] is False
    assert env.secret_versions("fraud-analytics") == versions and env.secret_value("new-team") is None
    assert actions(summary, "fraud-analytics") == [
        "would-update-team",
        "would-delete-key",
        "would-generate-key",
        "would-store-key",
    ]
    assert actions(summary, "new-team") == ["would-create-team", "would-generate-key", "would-store-key"]
    assert actions(summary, "search") == ["would-mark-removed", "would-block-team"]
    assert all(line["dryRun"] is True for line in logged(capsys))
    # An event can ask for a dry run, never for a real one.
    monkeypatch.setenv("DRY_RUN", "false")
    assert run(dryRun=True)["dryRun"] is True and env.stub.writes == []
    monkeypatch.setenv("DRY_RUN", "true")
    assert run(dryRun=False)["dryRun"] is True and env.stub.writes == []


# --- transport and errors ---------------------------------------------------------------------


def test_the_gateway_is_called_over_verified_tls(env, monkeypatch):
    env.want(FRAUD)
    assert env.stub.url.startswith("https://")
    monkeypatch.setenv("GATEWAY_CA_CERT", env.other_certs.ca_pem)  # a CA that did not issue its cert
    handler.reset_clients()
    with pytest.raises(urllib.error.URLError) as refused:
        run()
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value) and env.stub.requests == []
    monkeypatch.setenv("GATEWAY_URL", env.stub.url.replace("https://", "http://"))
    handler.reset_clients()
    with pytest.raises(ValueError, match="https://"):  # the master key never goes in clear text
        run()


def test_a_wrong_master_key_raises(env):
    env.want(FRAUD)
    env.stub.master_key = "sk-rotated-0123456789"
    with pytest.raises(handler.Rejected) as rejected:
        run()
    assert rejected.value.status == 401 and env.stub.writes == []


@pytest.mark.parametrize("path", ["/team/list", "/team/new", "/key/generate"])
def test_gateway_5xx_raises_for_lambdas_retries(env, path, capsys):
    env.stub.respond = lambda method, p, body: (503, {"error": {"message": "down"}}) if p == path else None
    env.want(FRAUD, SEARCH)
    with pytest.raises(urllib.error.HTTPError) as failed:
        run()
    assert failed.value.code == 503
    assert logged(capsys)[-1] == {
        "level": "ERROR",
        "action": "error",
        "reason": "gateway answered HTTP 503",
        "status": 503,
        "call": f"{'GET' if path == '/team/list' else 'POST'} {path}",
    }


def test_network_errors_raise(env, monkeypatch):
    env.want(FRAUD)
    with LiteLLMAdminStub() as closed:
        url = closed.url.replace("http://", "https://")
    monkeypatch.setenv("GATEWAY_URL", url)  # nothing listens there any more
    handler.reset_clients()
    with pytest.raises(urllib.error.URLError):
        run()


def test_a_4xx_on_one_team_is_logged_and_the_others_still_run(env, capsys):
    broken = desired_team("broken", budget_duration="30 days")  # LiteLLM answers 400
    env.want(broken, FRAUD)
    summary = run()
    (error,) = summary["errors"]
    assert error["team"] == "broken" and error["status"] == 400 and error["call"] == "POST /team/new"
    assert "Invalid budget_duration" in error["message"]
    assert "broken" not in env.stub.teams and env.secret_value("broken") is None
    assert actions(summary, "fraud-analytics") == ["create-team", "generate-key", "store-key"]
    errors = [line for line in logged(capsys) if line["action"] == "error"]
    assert errors == [
        {
            "level": "ERROR",
            "action": "error",
            "team": "broken",
            "environment": "dev",
            "dryRun": False,
            "status": 400,
            "call": "POST /team/new",
            "message": error["message"],
        }
    ]


def test_the_run_pulumi_up_waits_for_fails_on_a_rejected_team_after_the_others_ran(env):
    env.want(desired_team("broken", budget_duration="30 days"), FRAUD)
    with pytest.raises(RuntimeError, match=r"1 team\(s\) rejected by the gateway: broken"):
        run(source="pulumi-up")  # components/teams.py's Invocation
    assert "fraud-analytics" in env.stub.teams and env.secret_value("fraud-analytics")


# --- the desired state ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d["teams"][0]["team"].update(blocked=True), "blocks are not desired state"),
        (lambda d: d["teams"][0]["team"].update(max_budgett=1), "not fields of /team/new: max_budgett"),
        (lambda d: d["teams"][0]["team"]["metadata"].update(managed_by="x"), "managed_by: 'x'"),
        (lambda d: d["teams"][0]["team"]["metadata"].update(llmops_removed=True), "reserved"),
        (lambda d: d["teams"].append(d["teams"][0]), "appears twice"),
        (lambda d: d["teams"][0].pop("key"), "needs key_alias and secret_id"),
        (lambda d: d.update(environment="prod"), "this function is 'dev'"),
    ],
)
def test_a_broken_desired_state_raises_before_any_call(env, change, problem):
    env.want(FRAUD)
    doc = json.loads(env.desired_path.read_text())
    change(doc)
    env.desired_path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=problem):
        run()
    assert env.stub.requests == []


def test_managed_by_is_added_to_team_metadata_when_absent(env):
    team = desired_team("fraud-analytics")
    del team["metadata"]["managed_by"]
    env.want(team)
    run()
    assert team_state(env, "fraud-analytics")["metadata"]["managed_by"] == MANAGED_BY


def test_the_default_desired_state_is_the_file_next_to_the_handler(env, monkeypatch):
    monkeypatch.delenv("DESIRED_STATE_PATH")
    shipped = handler.Path(handler.__file__).with_name("desired.json")
    assert not shipped.exists()  # generated by the Pulumi program into the zip, not committed
    with pytest.raises(FileNotFoundError, match=r"team_reconciler/desired\.json"):
        run()
