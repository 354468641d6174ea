"""A local stand-in for LiteLLM's team and key admin API (litellm 1.100.5), with in-memory state,
for tests of the team reconciler that assert the gateway's state and not just the calls made.

Why a stub: the real endpoints need LiteLLM's database mode (Postgres through Prisma), and the
Prisma query engines are downloaded at run time, which this offline test environment cannot do;
without a database every endpoint below only answers a "no DB connected" error.

What it implements, as the installed release does (`litellm/proxy/management_endpoints/
team_endpoints.py`, `key_management_endpoints.py`, request models in `litellm/proxy/_types.py`):
- auth: `Authorization: Bearer <master key>`, else 401 `{"error": {..., "type": "auth_error"}}`.
- GET  /team/list -> [team row + "team_memberships", "keys"] sorted by team_alias.
- GET  /team/info?team_id= -> {"team_id", "team_info", "keys", "team_memberships"}; 404.
- POST /team/new (NewTeamRequest) -> the team row; 400 when the team_id exists, for a negative
  max_budget or an unparsable budget_duration; fields LiteLLM keeps in metadata
  (LiteLLM_ManagementEndpoint_MetadataFields[_Premium]) are moved there, the premium ones 403
  unless `premium=True`; `team_member_budget_id` is stripped from caller metadata.
- POST /team/update (UpdateTeamRequest) -> {"team_id", "data": row}; 404; `metadata` replaces the
  stored metadata (as LiteLLM does), metadata fields are merged into it.
- POST /team/block, /team/unblock {"team_id"} -> the row; 404 `{"detail": {"error": ...}}`
  (these raise HTTPException outside LiteLLM's ProxyException wrapper).
- POST /key/generate (GenerateKeyRequest) -> GenerateKeyResponse with the plaintext `key` and
  `token` = its SHA-256; 400 when the key_alias is taken (aliases are unique gateway-wide).
- GET  /key/info?key=<key or hash> -> {"key", "info": row without token}; 404.
- GET  /key/list?key_alias=&team_id=&return_full_object=&page=&size= -> {"keys", "total_count",
  "current_page", "total_pages"}; full objects carry the hashed `token`.
- POST /key/update (UpdateKeyRequest, `key` plaintext or hash, or `key_alias`) -> the row; 404.
- POST /key/delete {"keys": [...]} | {"key_aliases": [...]} -> {"deleted_keys": <as passed>};
  404 when none match; deleted rows go to `deleted_keys` (LiteLLM's deleted-keys table).
Unknown body fields are ignored as pydantic ignores them, and recorded in `ignored_fields` so a
test can insist there are none. `respond` (method, path, body) -> (status, body) | None answers
before the stub's own logic, for injected failures. Binds 127.0.0.1 on a free port; `tls`
(tests/tls_certs.Certificates) serves HTTPS.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import re
import secrets
import ssl
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from litellm.proxy import _types

# The request models of the installed release (litellm 1.100.5 proxy/_types.py): the fields each
# endpoint takes, and those LiteLLM keeps in a team's metadata rather than in a column.
NEW_TEAM_FIELDS = frozenset(_types.NewTeamRequest.model_fields)
UPDATE_TEAM_FIELDS = frozenset(_types.UpdateTeamRequest.model_fields)
GENERATE_KEY_FIELDS = frozenset(_types.GenerateKeyRequest.model_fields)
UPDATE_KEY_FIELDS = frozenset(_types.UpdateKeyRequest.model_fields)
DELETE_KEY_FIELDS = frozenset(_types.KeyRequest.model_fields)
BLOCK_TEAM_FIELDS = frozenset(_types.BlockTeamRequest.model_fields)
METADATA_FIELDS = frozenset(_types.LiteLLM_ManagementEndpoint_MetadataFields)
PREMIUM_METADATA_FIELDS = frozenset(_types.LiteLLM_ManagementEndpoint_MetadataFields_Premium)
SYSTEM_METADATA_KEYS = ("team_member_budget_id",)
# LiteLLM_TeamTable columns a request can set (the rest are computed).
TEAM_COLUMNS = frozenset(
    {
        "team_alias", "organization_id", "admins", "members", "members_with_roles",
        "team_member_permissions", "metadata", "tpm_limit", "rpm_limit", "max_budget", "soft_budget",
        "budget_duration", "budget_limits", "models", "blocked", "router_settings", "access_group_ids",
        "default_team_member_models", "policies"
    }
)  # fmt: skip
KEY_COLUMNS = frozenset(
    {
        "key_alias", "models", "max_budget", "user_id", "team_id", "agent_id", "max_parallel_requests",
        "metadata", "tpm_limit", "rpm_limit", "budget_duration", "allowed_cache_controls", "config",
        "permissions", "model_max_budget", "budget_fallbacks", "blocked", "aliases", "organization_id",
        "budget_id", "allowed_routes", "router_settings", "access_group_ids", "project_id", "budget_limits"
    }
)  # fmt: skip
_DURATION = re.compile(r"^(\d+)(s|m|h|d|w|mo)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "mo": 30 * 86400}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _duration_seconds(value: str) -> int | None:
    match = _DURATION.match(value.strip()) if isinstance(value, str) else None
    return int(match.group(1)) * _SECONDS[match.group(2)] if match else None


class ApiError(Exception):
    def __init__(self, status: int, body: dict):
        super().__init__(status)
        self.status, self.body = status, body


def proxy_error(
    status: int, message: str, type_: str = "internal_server_error", param: str = "None"
) -> ApiError:
    """ProxyException as LiteLLM's handler renders it (proxy_server.openai_exception_handler)."""
    return ApiError(
        status, {"error": {"message": message, "type": type_, "param": param, "code": str(status)}}
    )


def http_error(status: int, detail) -> ApiError:
    """HTTPException rendered by FastAPI (what handle_exception_on_proxy does not wrap)."""
    return ApiError(status, {"detail": detail})


def wrapped(status: int, detail: dict) -> ApiError:
    """HTTPException(detail=dict) turned into a ProxyException by handle_exception_on_proxy."""
    return proxy_error(status, str(detail))


class LiteLLMAdminStub:
    def __init__(self, master_key: str = "sk-test-master", tls=None, premium: bool = False, respond=None):
        self.master_key = master_key
        self.premium = premium
        self.respond = respond
        self.teams: dict[str, dict] = {}
        self.keys: dict[str, dict] = {}  # token hash -> key row (with "token")
        self.deleted_keys: list[dict] = []
        self.requests: list[dict] = []
        self.ignored_fields: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def _handle(self, method: str):
                parsed = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(parsed.query))
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = {"_raw": raw.decode(errors="replace")}
                with stub._lock:
                    stub.requests.append(
                        {
                            "method": method,
                            "path": parsed.path,
                            "query": query,
                            "json": body,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                        }
                    )
                    try:
                        status, answer = stub._dispatch(method, parsed.path, query, body, self.headers)
                    except ApiError as err:
                        status, answer = err.status, err.body
                    stub.requests[-1].update(status=status, response=copy.deepcopy(answer))
                data = json.dumps(answer, default=str).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.cert_path, tls.key_path)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="litellm-admin-stub", daemon=True
        )

    # --- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> LiteLLMAdminStub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- test helpers ----------------------------------------------------------------------

    @property
    def writes(self) -> list[dict]:
        """Every state-changing call received (all of them are POSTs)."""
        return [r for r in self.requests if r["method"] == "POST"]

    def calls(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"] == path]

    def add_team(self, team_id: str, **fields) -> dict:
        """A team as /team/new would have created it."""
        with self._lock:
            return copy.deepcopy(self._create_team({"team_id": team_id, **fields}))

    def add_key(self, team_id: str | None, key_alias: str | None, key: str | None = None, **fields) -> str:
        """A key as /key/generate would have created it; returns the plaintext key."""
        with self._lock:
            return self._create_key({"team_id": team_id, "key_alias": key_alias, "key": key, **fields})["key"]

    def team(self, team_id: str) -> dict:
        return copy.deepcopy(self.teams[team_id])

    def keys_of(self, team_id: str) -> list[dict]:
        return [copy.deepcopy(k) for k in self.keys.values() if k["team_id"] == team_id]

    # --- dispatch --------------------------------------------------------------------------

    def _dispatch(self, method: str, path: str, query: dict, body, headers) -> tuple[int, object]:
        if self.respond is not None:
            injected = self.respond(method, path, body)
            if injected is not None:
                return injected
        if headers.get("Authorization") != f"Bearer {self.master_key}":
            raise proxy_error(
                401,
                "Authentication Error, Invalid proxy server token passed. Received API Key = ..., "
                "Unable to find token in cache or `LiteLLM_VerificationTokenTable`",
                "auth_error",
                "None",
            )
        routes = {
            ("GET", "/team/list"): self._team_list,
            ("GET", "/team/info"): self._team_info,
            ("POST", "/team/new"): self._team_new,
            ("POST", "/team/update"): self._team_update,
            ("POST", "/team/block"): self._team_block,
            ("POST", "/team/unblock"): self._team_unblock,
            ("POST", "/key/generate"): self._key_generate,
            ("GET", "/key/info"): self._key_info,
            ("GET", "/key/list"): self._key_list,
            ("POST", "/key/update"): self._key_update,
            ("POST", "/key/delete"): self._key_delete,
        }
        route = routes.get((method, path))
        if route is None:
            if any(p == path for _, p in routes):
                return 405, {"detail": "Method Not Allowed"}
            return 404, {"detail": "Not Found"}
        if method == "POST" and not isinstance(body, dict):
            return 422, {
                "detail": [
                    {"type": "model_attributes_type", "loc": ["body"], "msg": "Input should be an object"}
                ]
            }
        return 200, route(query if method == "GET" else body)

    def _known(self, path: str, body: dict, fields: frozenset) -> dict:
        for name in sorted(set(body) - fields):
            self.ignored_fields.append((path, name))
        return {k: v for k, v in body.items() if k in fields}

    @staticmethod
    def _require(body: dict, field: str, kind=str):
        if not isinstance(body.get(field), kind):
            raise ApiError(
                422, {"detail": [{"type": "missing", "loc": ["body", field], "msg": "Field required"}]}
            )
        return body[field]

    def _check_budget(self, body: dict) -> None:
        for field in ("max_budget", "soft_budget"):
            value = body.get(field)
            if value is not None and (not isinstance(value, int | float) or value < 0):
                raise wrapped(
                    400, {"error": f"{field} must be a non-negative finite number. Received: {value}"}
                )
        duration = body.get("budget_duration")
        if duration is not None and not (_duration_seconds(duration) or 0) > 0:
            raise wrapped(
                400,
                {
                    "error": f"Invalid budget_duration '{duration}'. "
                    "Use a format like '1h', '24h', '7d', or '30d'."
                },
            )

    def _move_metadata_fields(self, data: dict, metadata: dict, *, creating: bool) -> None:
        for field in sorted((METADATA_FIELDS | PREMIUM_METADATA_FIELDS) & set(data)):
            value = data.pop(field)
            if value is None:
                continue
            if field in PREMIUM_METADATA_FIELDS and value and not self.premium:
                feature = f": {field}" if creating else ""
                raise wrapped(
                    403,
                    {"error": f"This feature is only available for LiteLLM Enterprise users{feature}. "
                     "You must be a LiteLLM Enterprise user to use this feature."},
                )  # fmt: skip
            metadata[field] = value

    def _team_or_404(self, team_id: str, style: str) -> dict:
        team = self.teams.get(team_id)
        if team is None:
            if style == "http":
                raise http_error(404, {"error": f"Team not found, passed team_id={team_id}"})
            raise wrapped(404, {"error": f"Team not found, passed team_id={team_id}"})
        return team

    # --- teams -----------------------------------------------------------------------------

    def _create_team(self, body: dict) -> dict:
        data = self._known("/team/new", body, NEW_TEAM_FIELDS)
        self._check_budget(data)
        team_id = data.get("team_id") or str(uuid.uuid4())
        if team_id in self.teams:
            raise wrapped(
                400, {"error": f"Team id = {team_id} already exists. Please use a different team id."}
            )
        metadata = dict(data.get("metadata") or {})
        for key in SYSTEM_METADATA_KEYS:
            metadata.pop(key, None)
        self._move_metadata_fields(data, metadata, creating=True)
        now = _now()
        row = {
            "team_id": team_id, "team_alias": None, "organization_id": None, "admins": [], "members": [],
            "members_with_roles": [], "team_member_permissions": None, "metadata": metadata,
            "tpm_limit": None, "rpm_limit": None, "max_budget": None, "soft_budget": None,
            "budget_duration": None, "budget_limits": None, "models": [], "blocked": False,
            "router_settings": {}, "access_group_ids": [], "default_team_member_models": None,
            "spend": 0.0, "max_parallel_requests": None, "budget_reset_at": None, "model_id": None,
            "model_spend": {}, "model_max_budget": {}, "policies": None, "allow_team_guardrail_config": False,
            "litellm_model_table": None, "object_permission": None, "object_permission_id": None,
            "created_at": now.isoformat(), "updated_at": now.isoformat(),
        }  # fmt: skip
        for field, value in data.items():
            if field in TEAM_COLUMNS and field != "metadata":
                row[field] = value
        row["team_id"] = team_id
        self._set_budget_reset(row)
        self.teams[team_id] = row
        return row

    @staticmethod
    def _set_budget_reset(row: dict) -> None:
        seconds = _duration_seconds(row["budget_duration"]) if row.get("budget_duration") else None
        row["budget_reset_at"] = (
            (_now() + datetime.timedelta(seconds=seconds)).isoformat() if seconds else None
        )

    def _team_new(self, body: dict) -> dict:
        return copy.deepcopy(self._create_team(body))

    def _team_update(self, body: dict) -> dict:
        data = self._known("/team/update", body, UPDATE_TEAM_FIELDS)
        team_id = self._require(data, "team_id")
        self._check_budget(data)
        team = self._team_or_404(team_id, "wrapped")
        data.pop("team_id")
        if "metadata" in data:
            metadata = dict(data.pop("metadata") or {})
            for key in SYSTEM_METADATA_KEYS:
                metadata.pop(key, None)
        else:
            metadata = None
        moved: dict = {}
        self._move_metadata_fields(data, moved, creating=False)
        if moved:
            metadata = {**(team["metadata"] if metadata is None else metadata), **moved}
        if metadata is not None:
            team["metadata"] = metadata
        for field, value in data.items():
            if field in TEAM_COLUMNS:
                team[field] = value
        if "budget_duration" in data:
            self._set_budget_reset(team)
        team["updated_at"] = _now().isoformat()
        return {"team_id": team_id, "data": copy.deepcopy(team)}

    def _set_blocked(self, body: dict, blocked: bool) -> dict:
        data = self._known("/team/block", body, BLOCK_TEAM_FIELDS)
        team = self._team_or_404(self._require(data, "team_id"), "http")
        team["blocked"] = blocked
        team["updated_at"] = _now().isoformat()
        return copy.deepcopy(team)

    def _team_block(self, body: dict) -> dict:
        return self._set_blocked(body, True)

    def _team_unblock(self, body: dict) -> dict:
        return self._set_blocked(body, False)

    def _team_list(self, query: dict) -> list:
        rows = [
            {**copy.deepcopy(t), "team_memberships": [], "keys": self.keys_of(t["team_id"])}
            for t in self.teams.values()
        ]
        return sorted(rows, key=lambda t: t.get("team_alias") or "")

    def _team_info(self, query: dict) -> dict:
        team_id = query.get("team_id")
        if team_id is None:
            raise proxy_error(422, str({"message": "Malformed request. No team id passed in."}), "auth_error")
        if team_id not in self.teams:
            raise proxy_error(
                404, str({"message": f"Team not found, passed team id: {team_id}."}), "auth_error"
            )
        keys = [{k: v for k, v in row.items() if k != "token"} for row in self.keys_of(team_id)]
        return {"team_id": team_id, "team_info": self.team(team_id), "keys": keys, "team_memberships": []}

    # --- keys ------------------------------------------------------------------------------

    def _create_key(self, body: dict) -> dict:
        data = self._known("/key/generate", body, GENERATE_KEY_FIELDS)
        self._check_budget(data)
        alias = data.get("key_alias")
        if alias is not None and any(k["key_alias"] == alias for k in self.keys.values()):
            raise proxy_error(
                400,
                f"Key with alias '{alias}' already exists. Unique key aliases across all keys are required.",
                "bad_request_error",
                "key_alias",
            )
        key = data.pop("key", None) or f"sk-{secrets.token_urlsafe(16)}"
        if not key.startswith("sk-") or len(key) < 16:
            raise wrapped(400, {"error": "Invalid key format. LiteLLM Virtual Key must start with 'sk-'."})
        metadata = dict(data.get("metadata") or {})
        self._move_metadata_fields(data, metadata, creating=True)
        duration = data.get("duration")
        seconds = _duration_seconds(duration) if duration else None
        now = _now()
        token = hash_token(key)
        expires = (now + datetime.timedelta(seconds=seconds)).isoformat() if seconds else None
        row = {
            "token": token, "key_name": f"sk-...{key[-4:]}", "key_alias": None, "spend": 0.0,
            "max_budget": None, "expires": expires,
            "models": [], "aliases": {}, "config": {}, "user_id": None, "team_id": None, "agent_id": None,
            "project_id": None, "max_parallel_requests": None, "metadata": metadata, "tpm_limit": None,
            "rpm_limit": None, "budget_duration": None, "budget_reset_at": None, "allowed_cache_controls": [],
            "allowed_routes": [], "key_type": "default", "permissions": {}, "model_spend": {},
            "model_max_budget": {}, "budget_fallbacks": {}, "soft_budget_cooldown": False, "blocked": None,
            "litellm_budget_table": None, "budget_id": None, "org_id": None, "organization_id": None,
            "created_at": now.isoformat(), "created_by": "default_user_id", "updated_at": now.isoformat(),
            "updated_by": "default_user_id", "last_active": None, "object_permission_id": None,
            "object_permission": None, "access_group_ids": [], "rotation_count": 0, "auto_rotate": False,
            "rotation_interval": None,
        }  # fmt: skip
        for field, value in data.items():
            if field in KEY_COLUMNS and field != "metadata":
                row[field] = value
        self.keys[token] = row
        return {**copy.deepcopy(row), "key": key, "token_id": token}

    def _key_generate(self, body: dict) -> dict:
        return self._create_key(body)

    def _key_row(self, key: str | None) -> dict:
        row = self.keys.get(hash_token(key) if key and key.startswith("sk-") else key or "")
        if row is None:
            raise proxy_error(404, "Key not found in database", "not_found_error", "key")
        return row

    def _key_info(self, query: dict) -> dict:
        row = self._key_row(query.get("key"))
        return {
            "key": query.get("key"),
            "info": {k: copy.deepcopy(v) for k, v in row.items() if k != "token"},
        }

    def _key_list(self, query: dict) -> dict:
        page, size = int(query.get("page", 1)), int(query.get("size", 10))
        if not 1 <= size <= 100 or page < 1:
            raise ApiError(
                422, {"detail": [{"type": "less_than_equal", "loc": ["query", "size"], "msg": "1..100"}]}
            )
        rows = [
            k
            for k in self.keys.values()
            if all(
                query.get(f) in (None, k.get(f))
                for f in ("key_alias", "team_id", "user_id", "organization_id")
            )
        ]
        rows.sort(key=lambda k: (k["created_at"], k["token"]), reverse=True)
        chunk = rows[(page - 1) * size : page * size]
        full = query.get("return_full_object", "false").lower() == "true"
        return {
            "keys": [{**copy.deepcopy(k), "api_key": None} for k in chunk]
            if full
            else [k["token"] for k in chunk],
            "total_count": len(rows),
            "current_page": page,
            "total_pages": -(-len(rows) // size),
        }

    def _key_update(self, body: dict) -> dict:
        data = self._known("/key/update", body, UPDATE_KEY_FIELDS)
        if data.get("key"):
            row = self._key_row(data["key"])
        else:
            matches = [
                k for k in self.keys.values() if data.get("key_alias") and k["key_alias"] == data["key_alias"]
            ]
            if len(matches) != 1:
                raise proxy_error(404, "Key not found.", "not_found_error", "key")
            row = matches[0]
        data.pop("key", None)
        self._check_budget(data)
        metadata = dict(data["metadata"]) if isinstance(data.get("metadata"), dict) else dict(row["metadata"])
        self._move_metadata_fields(data, metadata, creating=False)
        row["metadata"] = metadata
        data.pop("metadata", None)
        for field, value in data.items():
            if field in KEY_COLUMNS:
                row[field] = value
        row["updated_at"] = _now().isoformat()
        return {"key": row["token"], **{k: copy.deepcopy(v) for k, v in row.items() if k != "token"}}

    def _key_delete(self, body: dict) -> dict:
        data = self._known("/key/delete", body, DELETE_KEY_FIELDS)
        if data.get("keys"):
            tokens = [hash_token(k) if k.startswith("sk-") else k for k in data["keys"]]
            passed = data["keys"]
        elif data.get("key_aliases"):
            tokens = [t for t, k in self.keys.items() if k["key_alias"] in data["key_aliases"]]
            passed = data["key_aliases"]
        else:
            raise proxy_error(400, "Invalid request type")
        found = [t for t in tokens if t in self.keys]
        if not found:
            raise wrapped(404, {"error": "No keys found"})
        for token in found:
            self.deleted_keys.append({**self.keys.pop(token), "deleted_at": _now().isoformat()})
        return {"deleted_keys": passed}
