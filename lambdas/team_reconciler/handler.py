"""Team reconciler: converges the LiteLLM gateway's teams and team keys on the desired state the
platform's Pulumi program computes, and stores each team's key in its Secrets Manager secret.

Desired state: the JSON file DESIRED_STATE_PATH (default `desired.json` next to this file, which
the Pulumi program ships in the zip as `team_reconciler/desired.json`):
  {"environment": "dev", "managed_by": "llmops-dev",
   "teams": [{"team": {<fields of LiteLLM's /team/new, team_id required>},
              "key": {"key_alias": "...", "secret_id": "<Secrets Manager secret ARN or name>"}}]}
The file is checked before anything is called (a broken file raises: it is a deploy bug): the
team objects hold only /team/new fields and no `blocked` (blocks belong to the budget guard and
to this reconciler), team ids and key aliases are unique, and each team's `metadata.managed_by`
is `managed_by` (set when absent): that tag is how removed teams are found.

LiteLLM's admin API as in litellm 1.100.5 (`proxy/management_endpoints/team_endpoints.py`,
`key_management_endpoints.py`, request models in `proxy/_types.py`), with
`Authorization: Bearer <master key>`:
  GET  /team/list                                  -> [team row (+ keys, team_memberships)]
  POST /team/new     NewTeamRequest                -> team row; 400 when team_id exists
  POST /team/update  {"team_id", <changed fields>} -> {"team_id", "data": team row}; 404
  POST /team/block | /team/unblock {"team_id"}     -> team row; 404
  GET  /key/info?key=<sha256 of the key>           -> {"key", "info": key row}; 404
  GET  /key/list?key_alias=..&return_full_object=true -> {"keys": [key rows with `token`], ...}
  POST /key/generate {"team_id", "key_alias", "models", "metadata"} -> {"key": "sk-...", ...}
  POST /key/update   {"key": <hash>, "models"?, "metadata"?} -> the key row
  POST /key/delete   {"keys": [<hash>]}            -> {"deleted_keys": [...]}
Keys are looked up by their SHA-256 (LiteLLM's `hash_token`), so no key travels in a URL.

Per desired team:
- missing: created with the desired fields (/team/new).
- present: fields that drifted are sent to /team/update (only those, with team_id). Lists are
  compared as sets, numbers as numbers, dicts (metadata above all) as subsets: keys LiteLLM or
  an operator added are not drift. Fields LiteLLM keeps in the team's metadata (model_rpm_limit,
  tags, guardrails, ...: LiteLLM_ManagementEndpoint_MetadataFields[_Premium]) are compared
  there. /team/update replaces the whole metadata, so a metadata change sends the stored
  metadata merged with the desired keys. Fields the team row does not show or /team/update does
  not take (members_with_roles, team_member_budget, model_aliases, object_permission,
  rpm_limit_type, ...) are applied at creation only.
- blocked: a team this reconciler blocked because it had been removed (metadata
  `llmops_removed: true`) is unblocked when desired again, then the marker is removed, in that
  order, so an interrupted run never leaves a block without its marker. Any other block (the
  budget guard's, an operator's: no marker) stays, logged as `keep-blocked`. A team that was
  already blocked when it was removed (`llmops_blocked_before_removal: true`) stays blocked too.
- key: one virtual key per team and environment, alias `key.key_alias`, value in the secret
  `key.secret_id` (the bare `sk-...`). When the secret is missing or empty, or holds a key that
  is not a live (unexpired) key of this team with this alias, the keys of this team holding the
  alias, and the team's key the secret held (another alias, expired), are deleted (/key/delete:
  LiteLLM keeps deleted keys in its deleted-keys table and the spend logs keep their hashes; the
  alias is unique across the gateway, and no sanctioned client holds a key the secret does not;
  an alias held by another team's key is an error for this team), a new key is generated with
  the team's models and metadata and stored with PutSecretValue. If storing fails, the new key is
  deleted again. A live key whose models or metadata drifted is updated in place (/key/update);
  a matching one is left alone. A key blocked in the gateway is left blocked.
Gateway teams with `metadata.managed_by == managed_by` that are not desired are marked
(`llmops_removed: true`, `llmops_removed_at`, `llmops_blocked_before_removal`) and then blocked
(/team/block), never deleted: their spend history stays. Marking comes first, so a block without
the marker is never the reconciler's. A removed team unblocked by someone is blocked again.

Idempotent: a run against a converged gateway only reads. DRY_RUN=true (or an event with
`"dryRun": true`, which can only turn it on) reads, logs `would-<action>` and writes nothing.
Network errors and 5xx raise (Lambda's retries, then its DLQ); a 4xx on one team (from the
gateway or from Secrets Manager) is logged as `error` and the other teams still run. A 4xx on
the initial /team/list (a wrong master key) raises. Secrets Manager's ResourceNotFoundException
on GetSecretValue means "no key yet" (a secret without a value answers it too). Every action
is one JSON log line with `action`, `team`, `environment` and `dryRun`; no key is ever logged.
The return value lists every action, the errors and the number of writes.

Environment: GATEWAY_URL (https://...; or `url` in the master key secret), GATEWAY_CA_CERT (PEM;
unset: the system's trust store), GATEWAY_SECRET_ID (master key secret: the bare `sk-...` or JSON
{"master_key", "url"}), DESIRED_STATE_PATH, DRY_RUN, ENVIRONMENT (when set, must equal the
desired state's), SECRET_CACHE_SECONDS (master key cache, default 300), HTTP_TIMEOUT_SECONDS
(default 10).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from functools import cache
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

MARKER = "llmops_removed"
MARKER_AT = "llmops_removed_at"
MARKER_WAS_BLOCKED = "llmops_blocked_before_removal"
MARKER_KEYS = (MARKER, MARKER_AT, MARKER_WAS_BLOCKED)
# Metadata keys LiteLLM owns: it strips them from requests (TeamMemberBudgetHandler).
SYSTEM_METADATA_KEYS = ("team_member_budget_id",)

# litellm 1.100.5 proxy/_types.py: NewTeamRequest.model_fields and UpdateTeamRequest.model_fields.
NEW_TEAM_FIELDS = frozenset(
    {
        "access_group_ids", "admins", "allowed_passthrough_routes", "allowed_vector_store_indexes",
        "blocked", "budget_duration", "budget_limits", "default_estimated_output_tokens",
        "default_estimated_output_tokens_per_model", "default_team_member_models",
        "disable_global_guardrails", "enforced_batch_output_expires_after", "enforced_file_expires_after",
        "guardrails", "max_budget", "mcp_rpm_limit", "members", "members_with_roles", "metadata",
        "model_aliases", "model_rpm_limit", "model_tpm_limit", "models", "object_permission",
        "organization_id", "policies", "prompts", "router_settings", "rpm_limit", "rpm_limit_type",
        "secret_manager_settings", "soft_budget", "tags", "team_alias", "team_id", "team_member_budget",
        "team_member_budget_duration", "team_member_key_duration", "team_member_permissions",
        "team_member_rpm_limit", "team_member_tpm_limit", "tpm_limit", "tpm_limit_type"
    }
)  # fmt: skip
UPDATE_TEAM_FIELDS = NEW_TEAM_FIELDS - {
    "admins", "members", "members_with_roles", "rpm_limit_type", "team_member_permissions", "tpm_limit_type",
}  # fmt: skip
# proxy/_types.py LiteLLM_ManagementEndpoint_MetadataFields + ..._Premium: LiteLLM moves these
# request fields into the team's metadata instead of a column of its own.
METADATA_FIELDS = frozenset(
    {
        "model_rpm_limit", "model_tpm_limit", "model_itpm_limit", "model_otpm_limit",
        "default_estimated_output_tokens", "default_estimated_output_tokens_per_model", "mcp_rpm_limit",
        "tag_rpm_limit", "rpm_limit_type", "tpm_limit_type", "enforced_params", "temp_budget_increase",
        "temp_budget_expiry", "allowed_vector_store_indexes", "enforced_batch_output_expires_after",
        "enforced_file_expires_after", "throttle_on_budget_exceeded", "enable_prompt_caching",
        "disable_global_guardrails", "guardrails", "policies", "tags", "team_member_key_duration",
        "prompts", "logging", "secret_manager_settings", "allowed_passthrough_routes"
    }
)  # fmt: skip
# Taken by /team/update but not shown on the team row /team/list returns (budget table, model
# table, object permission table): set at creation, not compared.
UNREADABLE_FIELDS = frozenset(
    {"model_aliases", "object_permission", "team_member_budget", "team_member_budget_duration",
     "team_member_rpm_limit", "team_member_tpm_limit"}
)  # fmt: skip

_cached: dict[str, tuple[float, dict]] = {}


@cache
def _secrets():
    return boto3.client("secretsmanager")


def reset_clients() -> None:
    _secrets.cache_clear()
    _tls.cache_clear()
    _cached.clear()


def log(action: str, **fields) -> None:
    print(json.dumps({"level": "ERROR" if action == "error" else "INFO", "action": action, **fields}))


class Rejected(Exception):
    """A 4xx answer: this request cannot succeed as sent, retrying will not help."""

    def __init__(self, status: int, where: str, message: str):
        super().__init__(f"{where}: HTTP {status}: {message}")
        self.status, self.where, self.message = status, where, message


# --- desired state ---------------------------------------------------------------------------


def load_desired() -> dict:
    path = Path(os.environ.get("DESIRED_STATE_PATH") or Path(__file__).with_name("desired.json"))
    desired = json.loads(path.read_text())
    problems = []
    managed_by = desired.get("managed_by") if isinstance(desired, dict) else None
    if not isinstance(managed_by, str) or not managed_by:
        raise ValueError(f"{path}: managed_by must be a non-empty string")
    if not isinstance(desired.get("environment"), str) or not isinstance(desired.get("teams"), list):
        raise ValueError(f"{path}: needs environment (string) and teams (list)")
    expected = os.environ.get("ENVIRONMENT")
    if expected and desired["environment"] != expected:
        raise ValueError(f"{path}: environment {desired['environment']!r}, this function is {expected!r}")
    team_ids, aliases = set(), set()
    for i, entry in enumerate(desired["teams"]):
        team, key = (entry.get("team"), entry.get("key")) if isinstance(entry, dict) else (None, None)
        where = f"teams[{i}]"
        if not isinstance(team, dict) or not isinstance(team.get("team_id"), str) or not team["team_id"]:
            problems.append(f"{where}.team.team_id: required")
            continue
        if not isinstance(key, dict) or not all(
            isinstance(key.get(k), str) and key[k] for k in ("key_alias", "secret_id")
        ):
            problems.append(f"{where}.key: needs key_alias and secret_id")
            continue
        unknown = sorted(set(team) - NEW_TEAM_FIELDS)
        if unknown:
            problems.append(f"{where}.team: not fields of /team/new: {', '.join(unknown)}")
        if "blocked" in team:
            problems.append(f"{where}.team.blocked: blocks are not desired state")
        metadata = team.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            problems.append(f"{where}.team.metadata: must be an object")
            continue
        if metadata.setdefault("managed_by", managed_by) != managed_by:
            problems.append(
                f"{where}.team.metadata.managed_by: {metadata['managed_by']!r}, not {managed_by!r}"
            )
        if set(metadata) & set(MARKER_KEYS + SYSTEM_METADATA_KEYS):
            problems.append(
                f"{where}.team.metadata: {', '.join(MARKER_KEYS + SYSTEM_METADATA_KEYS)} are reserved"
            )
        if team["team_id"] in team_ids:
            problems.append(f"{where}.team.team_id: {team['team_id']} appears twice")
        if key["key_alias"] in aliases:
            problems.append(f"{where}.key.key_alias: {key['key_alias']} appears twice (aliases are unique)")
        team_ids.add(team["team_id"])
        aliases.add(key["key_alias"])
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))
    return desired


# --- gateway ---------------------------------------------------------------------------------


def gateway() -> dict:
    secret_id = os.environ["GATEWAY_SECRET_ID"]
    hit = _cached.get(secret_id)
    if hit and time.monotonic() - hit[0] < float(os.environ.get("SECRET_CACHE_SECONDS", "300")):
        return hit[1]
    value = _secrets().get_secret_value(SecretId=secret_id)["SecretString"].strip()
    doc = json.loads(value) if value.startswith("{") else {"master_key": value}
    url = os.environ.get("GATEWAY_URL") or doc.get("url") or ""
    if not url.startswith("https://") or not doc.get("master_key"):
        raise ValueError(
            f"need an https:// GATEWAY_URL (or url in {secret_id}) and a master key in {secret_id}"
        )
    doc = {"url": url.rstrip("/"), "master_key": doc["master_key"]}
    _cached[secret_id] = (time.monotonic(), doc)
    return doc


@cache
def _tls(ca_pem: str | None) -> ssl.SSLContext:
    """Certificates and host names verified, against the gateway's own CA when one is given."""
    return ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()


def _error_message(raw: bytes) -> str:
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        return raw[:300].decode(errors="replace")
    if isinstance(body, dict):
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else error or body.get("detail")
        return str(message)[:500]
    return str(body)[:500]


def call(method: str, path: str, body: dict | None = None, query: dict | None = None):
    gw = gateway()
    url = gw["url"] + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {gw['master_key']}"},
        method=method,
    )
    timeout = float(os.environ.get("HTTP_TIMEOUT_SECONDS", "10"))
    try:
        with urllib.request.urlopen(
            request, timeout=timeout, context=_tls(os.environ.get("GATEWAY_CA_CERT") or None)
        ) as response:
            raw = response.read()
    except urllib.error.HTTPError as err:
        message = _error_message(err.read())
        if 400 <= err.code < 500:
            raise Rejected(err.code, f"{method} {path}", message) from None
        log("error", reason=f"gateway answered HTTP {err.code}", status=err.code, call=f"{method} {path}")
        raise
    return json.loads(raw or b"null")


def key_hash(key: str) -> str:
    """LiteLLM's hash_token (proxy/_types.py): the id of a key in its database."""
    return hashlib.sha256(key.encode()).hexdigest()


# --- comparison ------------------------------------------------------------------------------


def same(want, have) -> bool:
    """`have` (the gateway's) satisfies `want` (desired): numbers as numbers, lists as sets (of
    scalars; lists of objects element by element), dicts as subsets, None as absent."""
    if want is None:
        return have is None or have == [] or have == {}
    if isinstance(want, bool) or isinstance(have, bool):
        return want is have
    if isinstance(want, int | float) and isinstance(have, int | float):
        return float(want) == float(have)
    if isinstance(want, dict):
        return isinstance(have, dict) and all(same(v, have.get(k)) for k, v in want.items())
    if isinstance(want, list):
        have = [] if have is None else have
        if not isinstance(have, list) or len({json.dumps(x, sort_keys=True) for x in want}) > len(have):
            return False
        if all(not isinstance(x, dict | list) for x in [*want, *have]):
            return {_scalar(x) for x in want} == {_scalar(x) for x in have}
        left = list(have)
        for item in want:
            match = next((i for i, h in enumerate(left) if same(item, h)), None)
            if match is None:
                return False
            left.pop(match)
        return not left
    return want == have


def _scalar(x):
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else x


def team_drift(want: dict, row: dict) -> list[str]:
    """Desired fields whose value in the gateway's team row differs."""
    metadata = row.get("metadata") or {}
    changed = []
    for field, value in want.items():
        if field == "team_id" or field not in UPDATE_TEAM_FIELDS or field in UNREADABLE_FIELDS:
            continue
        have = metadata.get(field) if field in METADATA_FIELDS else row.get(field)
        if not same(value, have):
            changed.append(field)
    return changed


def merged_metadata(stored: dict | None, desired: dict, *, drop: tuple = ()) -> dict:
    kept = {k: v for k, v in (stored or {}).items() if k not in SYSTEM_METADATA_KEYS + drop}
    return {**kept, **desired}


def expired(info: dict) -> bool:
    expires = info.get("expires")
    if not expires:
        return False
    when = datetime.datetime.fromisoformat(str(expires))
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when <= datetime.datetime.now(datetime.UTC)


# --- the run ---------------------------------------------------------------------------------


class Run:
    def __init__(self, desired: dict, dry_run: bool):
        self.environment = desired["environment"]
        self.managed_by = desired["managed_by"]
        self.dry_run = dry_run
        self.actions: list[dict] = []
        self.errors: list[dict] = []
        self.writes = 0

    def note(self, action: str, team: str, **fields) -> None:
        entry = {"action": action, "team": team, **fields}
        log(action, team=team, environment=self.environment, dryRun=self.dry_run, **fields)
        self.actions.append(entry)

    def write(self, action: str, team: str, do, **fields):
        """Performs one write (`do()`), or in a dry run only says it would."""
        if self.dry_run:
            self.note(f"would-{action}", team, **fields)
            return None
        result = do()
        self.writes += 1
        self.note(action, team, **fields)
        return result

    def fail(self, team: str, err: Rejected) -> None:
        entry = {"team": team, "status": err.status, "call": err.where, "message": err.message}
        self.note("error", team, status=err.status, call=err.where, message=err.message)
        self.errors.append(entry)


PULUMI_UP = "pulumi-up"  # the `source` of the event components/teams.py invokes it with


def handler(event: dict | None = None, context: object = None) -> dict:
    desired = load_desired()
    dry_run = os.environ.get("DRY_RUN", "false").lower() in ("1", "true", "yes")
    dry_run = dry_run or (isinstance(event, dict) and event.get("dryRun") is True)
    run = Run(desired, dry_run)
    teams = call("GET", "/team/list")
    if not isinstance(teams, list):
        raise ValueError(f"GET /team/list answered {type(teams).__name__}, expected a list of teams")
    rows = {t["team_id"]: t for t in teams if isinstance(t, dict) and t.get("team_id")}
    for entry in desired["teams"]:
        team_id = entry["team"]["team_id"]
        try:
            exists = reconcile_team(run, entry["team"], rows.get(team_id))
            reconcile_key(run, entry["team"], entry["key"], exists)
        except Rejected as err:
            run.fail(team_id, err)
    wanted = {e["team"]["team_id"] for e in desired["teams"]}
    for team_id, row in rows.items():
        if team_id in wanted or (row.get("metadata") or {}).get("managed_by") != run.managed_by:
            continue
        try:
            retire_team(run, row)
        except Rejected as err:
            run.fail(team_id, err)
    result = {
        "environment": run.environment,
        "managedBy": run.managed_by,
        "dryRun": run.dry_run,
        "writes": run.writes,
        "errors": run.errors,
        "actions": run.actions,
    }
    if run.errors and isinstance(event, dict) and event.get("source") == PULUMI_UP:
        # The run `pulumi up` waits for: a rejected team fails the update, where people look.
        # Scheduled runs log the error and go on (the next hour retries).
        teams = ", ".join(sorted({str(e.get("team")) for e in run.errors}))
        raise RuntimeError(f"{len(run.errors)} team(s) rejected by the gateway: {teams} (see the log)")
    return result


def reconcile_team(run: Run, want: dict, row: dict | None) -> bool:
    """Creates, updates or unblocks the team; True when it exists in the gateway afterwards."""
    team_id = want["team_id"]
    if row is None:
        run.write("create-team", team_id, lambda: call("POST", "/team/new", want))
        return not run.dry_run
    metadata = row.get("metadata") or {}
    marked = metadata.get(MARKER) is True
    if row.get("blocked"):
        if marked and metadata.get(MARKER_WAS_BLOCKED) is not True:
            run.write("unblock-team", team_id, lambda: call("POST", "/team/unblock", {"team_id": team_id}))
        else:
            reason = (
                "was already blocked when it was removed"
                if marked
                else "blocked without the reconciler's marker (budget guard or an operator)"
            )
            run.note("keep-blocked", team_id, reason=reason)
    changed = team_drift(want, row)
    if changed or marked:
        body = {"team_id": team_id, **{f: want[f] for f in changed}}
        if "metadata" in changed or marked:
            body["metadata"] = merged_metadata(metadata, want.get("metadata") or {}, drop=MARKER_KEYS)
        fields = sorted(set(changed) | ({"metadata"} if marked else set()))
        run.write("update-team", team_id, lambda: call("POST", "/team/update", body), fields=fields)
    elif not row.get("blocked"):
        run.note("in-sync", team_id, item="team")
    return True


def reconcile_key(run: Run, want: dict, spec: dict, team_exists: bool) -> None:
    team_id, alias, secret_id = want["team_id"], spec["key_alias"], spec["secret_id"]
    models = want.get("models") or []
    metadata = want.get("metadata") or {}
    if not team_exists:  # dry run of a new team
        run.write("generate-key", team_id, None, alias=alias, reason="the team is new")
        run.write("store-key", team_id, None, alias=alias, secret=secret_id)
        return
    stored = read_secret(secret_id)
    info, reason = None, None
    if not stored:
        reason = "the secret holds no key"
    elif not stored.startswith("sk-"):
        reason = "the secret does not hold a LiteLLM key"
    else:
        try:
            info = call("GET", "/key/info", query={"key": key_hash(stored)}).get("info") or {}
        except Rejected as err:
            if err.status != 404:
                raise
            reason = "the key in the secret is unknown to the gateway"
        if info is not None:
            if info.get("team_id") != team_id:
                reason = f"the key in the secret belongs to team {info.get('team_id')}"
            elif info.get("key_alias") != alias:
                reason = f"the key in the secret has the alias {info.get('key_alias')}"
            elif expired(info):
                reason = "the key in the secret has expired"
    if reason is None:
        changes = {}
        if not same(models, info.get("models") or []):
            changes["models"] = models
        if not same(metadata, info.get("metadata") or {}):
            changes["metadata"] = merged_metadata(info.get("metadata"), metadata)
        if changes:
            body = {"key": key_hash(stored), **changes}
            run.write(
                "update-key",
                team_id,
                lambda: call("POST", "/key/update", body),
                alias=alias,
                fields=sorted(changes),
            )
        else:
            run.note(
                "in-sync",
                team_id,
                item="key",
                alias=alias,
                **({"keyBlocked": True} if info.get("blocked") else {}),
            )
        return
    holders = call("GET", "/key/list", query={"key_alias": alias, "return_full_object": "true", "size": 100})
    holders = [
        k for k in (holders or {}).get("keys") or [] if isinstance(k, dict) and k.get("key_alias") == alias
    ]
    others = sorted({str(k.get("team_id")) for k in holders if k.get("team_id") != team_id})
    if others:
        raise Rejected(
            409, "GET /key/list", f"key alias {alias} is held by a key of team {', '.join(others)}"
        )
    stale = [k["token"] for k in holders if k.get("token")]
    if info is not None and info.get("team_id") == team_id and key_hash(stored) not in stale:
        stale.append(key_hash(stored))  # this team's previous key (another alias, or expired)
    if stale:
        run.write(
            "delete-key",
            team_id,
            lambda: call("POST", "/key/delete", {"keys": stale}),
            alias=alias,
            count=len(stale),
        )
    request = {"team_id": team_id, "key_alias": alias, "models": models, "metadata": metadata}
    generated = run.write(
        "generate-key", team_id, lambda: call("POST", "/key/generate", request), alias=alias, reason=reason
    )
    if run.dry_run:
        run.write("store-key", team_id, None, alias=alias, secret=secret_id)
        return
    new_key = (generated or {}).get("key")
    if not isinstance(new_key, str) or not new_key.startswith("sk-"):
        raise ValueError(f"POST /key/generate for team {team_id} answered without a key")
    try:
        run.write("store-key", team_id, lambda: put_secret(secret_id, new_key), alias=alias, secret=secret_id)
    except Exception:
        # Nobody can get the new key: take it back (best effort; the next run converges anyway).
        try:
            call("POST", "/key/delete", {"keys": [key_hash(new_key)]})
            run.writes += 1
            run.note("delete-key", team_id, alias=alias, count=1, reason="the new key could not be stored")
        except Exception as err:  # the original error is the one to report
            log("error", team=team_id, reason=f"could not delete the unstored key: {type(err).__name__}")
        raise


def read_secret(secret_id: str) -> str | None:
    try:
        value = _secrets().get_secret_value(SecretId=secret_id).get("SecretString")
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None  # no such secret, or no current value yet
        raise _aws_rejected(err, "secretsmanager:GetSecretValue") from None
    return (value or "").strip() or None


def put_secret(secret_id: str, value: str) -> None:
    try:
        _secrets().put_secret_value(SecretId=secret_id, SecretString=value)
    except ClientError as err:
        raise _aws_rejected(err, "secretsmanager:PutSecretValue") from None


def _aws_rejected(err: ClientError, where: str) -> Exception:
    status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 500
    if 400 <= status < 500:
        error = err.response.get("Error", {})
        return Rejected(status, where, f"{error.get('Code')}: {error.get('Message')}")
    return err


def retire_team(run: Run, row: dict) -> None:
    """A managed team no longer desired: marked removed, then blocked; never deleted."""
    team_id = row["team_id"]
    metadata = row.get("metadata") or {}
    blocked = bool(row.get("blocked"))
    mark = None
    if metadata.get(MARKER) is not True:
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        mark = {MARKER: True, MARKER_AT: now, MARKER_WAS_BLOCKED: blocked}
    elif not blocked and metadata.get(MARKER_WAS_BLOCKED) is True:
        mark = {MARKER_WAS_BLOCKED: False}  # unblocked since: the block set below is ours
    if mark:
        body = {"team_id": team_id, "metadata": merged_metadata(metadata, mark)}
        run.write("mark-removed", team_id, lambda: call("POST", "/team/update", body), **mark)
    if not blocked:
        run.write(
            "block-team", team_id, lambda: call("POST", "/team/block", {"team_id": team_id}), reason="removed"
        )
    if not mark and blocked:
        run.note("in-sync", team_id, item="removed team")
