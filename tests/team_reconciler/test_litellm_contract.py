"""The reconciler and the stub agree with the installed LiteLLM release (litellm[proxy] in .venv):
routes and methods, request models (every field sent is one the model declares, every body
validates), response models (the stub's answers validate as LiteLLM's), the fields LiteLLM keeps
in metadata and the database columns. Upgrading LiteLLM re-checks all of it."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from lambdas.team_reconciler import handler
from team_reconciler.helpers import desired_team
from tests.stubs import litellm_admin_stub as stub_module


@pytest.fixture(scope="module")
def litellm():
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download of the price map
    from litellm.proxy import _types
    from litellm.proxy.management_endpoints import key_management_endpoints, team_endpoints

    return _types, team_endpoints, key_management_endpoints


def fields(model) -> set[str]:
    return set(model.model_fields)


def test_the_handlers_field_lists_are_the_releases(litellm):
    types, team_endpoints, _ = litellm
    assert fields(types.NewTeamRequest) == handler.NEW_TEAM_FIELDS
    assert fields(types.UpdateTeamRequest) == handler.UPDATE_TEAM_FIELDS
    metadata_fields = set(types.LiteLLM_ManagementEndpoint_MetadataFields)
    assert (
        metadata_fields | set(types.LiteLLM_ManagementEndpoint_MetadataFields_Premium)
        == handler.METADATA_FIELDS
    )
    system = team_endpoints.TeamMemberBudgetHandler.SYSTEM_MANAGED_METADATA_KEYS
    assert tuple(system) == handler.SYSTEM_METADATA_KEYS
    # Taken by /team/update but not on the team row /team/list returns (object_permission is a
    # relation it does not include): compared they would drift forever.
    row = fields(types.LiteLLM_TeamTable) - {"object_permission"}
    assert handler.UPDATE_TEAM_FIELDS - row - handler.METADATA_FIELDS == handler.UNREADABLE_FIELDS


def test_the_stubs_columns_are_the_releases(litellm):
    """The stub takes its request fields from LiteLLM's models; its table columns are its own."""
    types, _, _ = litellm
    schema = (Path(types.__file__).parent / "schema.prisma").read_text()

    def columns(model: str) -> set[str]:
        block = re.search(rf"^model {model} \{{(.*?)^\}}", schema, re.MULTILINE | re.DOTALL).group(1)
        return {
            line.split()[0] for line in block.splitlines() if line.strip() and line.split()[0].isidentifier()
        }

    assert columns("LiteLLM_TeamTable") >= stub_module.TEAM_COLUMNS
    assert columns("LiteLLM_VerificationToken") >= stub_module.KEY_COLUMNS


def test_routes_methods_and_query_parameters_exist_in_the_release(litellm):
    _, team_endpoints, key_endpoints = litellm
    routes = {
        (method, route.path): route
        for route in (*team_endpoints.router.routes, *key_endpoints.router.routes)
        for method in getattr(route, "methods", ())
    }
    used = {
        ("GET", "/team/list"): set(),
        ("POST", "/team/new"): set(),
        ("POST", "/team/update"): set(),
        ("POST", "/team/block"): set(),
        ("POST", "/team/unblock"): set(),
        ("GET", "/key/info"): {"key"},
        ("GET", "/key/list"): {"key_alias", "return_full_object", "size"},
        ("POST", "/key/generate"): set(),
        ("POST", "/key/update"): set(),
        ("POST", "/key/delete"): set(),
        ("GET", "/team/info"): {"team_id"},  # the stub's, for tests
    }
    for (method, path), params in used.items():
        assert (method, path) in routes, f"{method} {path}"
        declared = {p.name for p in routes[(method, path)].dependant.query_params}
        assert params <= declared, (path, params - declared)


REQUEST_MODELS = {
    "/team/new": "NewTeamRequest",
    "/team/update": "UpdateTeamRequest",
    "/team/block": "BlockTeamRequest",
    "/team/unblock": "BlockTeamRequest",
    "/key/generate": "GenerateKeyRequest",
    "/key/update": "UpdateKeyRequest",
    "/key/delete": "KeyRequest",
}


def test_every_request_of_a_full_lifecycle_is_valid_and_every_answer_parses(env, litellm):
    types, _, _ = litellm
    fraud, search = desired_team("fraud-analytics"), desired_team("search")
    env.want(fraud, search)
    handler.handler({}, None)  # create
    env.stub.teams["fraud-analytics"]["max_budget"] = 1.0  # drift
    env.set_secret("search", "sk-unknown-0123456789abcdef")  # regenerate
    env.want(desired_team("fraud-analytics", models=["qwen-small", "qwen-large"]), search)  # key update
    handler.handler({}, None)
    env.want(fraud)  # remove search
    handler.handler({}, None)
    env.want(fraud, search)  # re-add it
    summary = handler.handler({}, None)
    assert summary["errors"] == []
    assert env.stub.ignored_fields == []  # nothing sent that LiteLLM would silently drop
    seen = set()
    for request in env.stub.requests:
        seen.add(request["path"])
        if request["status"] == 404 and request["path"] == "/key/info":  # the unknown key in a secret
            assert request["response"]["error"]["type"] == "not_found_error"
            continue
        assert request["status"] == 200, request
        if request["method"] == "POST":
            model = getattr(types, REQUEST_MODELS[request["path"]])
            assert set(request["json"]) <= fields(model), request["path"]
            model.model_validate(request["json"])
        parse_answer(types, request["path"], request["response"])
    assert seen == {*REQUEST_MODELS, "/team/list", "/key/info", "/key/list"}


def parse_answer(types, path: str, answer) -> None:
    if path == "/team/list":
        for team in answer:
            types.TeamListResponseObject.model_validate(team)
    elif path in ("/team/new", "/team/block", "/team/unblock"):
        types.LiteLLM_TeamTable.model_validate(answer)
    elif path == "/team/update":
        types.LiteLLM_TeamTable.model_validate(answer["data"])
    elif path == "/key/generate":
        # On the wire `key` is the key and `token` its hash (generate_key_fn sets token =
        # token_id after validating); the model's validator would copy token into key.
        types.GenerateKeyResponse.model_validate({**answer, "token": None})
        assert answer["key"].startswith("sk-") and answer["token"] == handler.key_hash(answer["key"])
    elif path == "/key/info":
        types.LiteLLM_VerificationToken.model_validate(answer["info"])
    elif path == "/key/list":
        for key in answer["keys"]:
            assert types.UserAPIKeyAuth.model_validate(key).token == key["token"]
    elif path == "/key/update":
        types.LiteLLM_VerificationToken.model_validate(answer)
    elif path == "/key/delete":
        assert set(answer) == {"deleted_keys"}
