"""Test-only `general_settings.custom_auth` for the real proxy: team keys without a database.

LiteLLM's database mode cannot run here (prisma downloads its engines at start), so the proxy
cannot look team keys up. This module, copied beside config.yaml, answers what that lookup would:
the caller's key hash, team id and team metadata (as the team reconciler sets them), in LiteLLM's
own `UserAPIKeyAuth`. Everything after authentication (guardrails, the cache key, the router) is
the production path. The master key stays the proxy admin.
"""

from __future__ import annotations

import hashlib
import os

from fastapi import HTTPException
from litellm.proxy._types import LitellmUserRoles, UserAPIKeyAuth

# key -> (team id, team metadata)
TEAMS = {
    "sk-team-payments": ("payments", {}),
    "sk-team-claims": ("claims", {"llmops_max_input_tokens": 40}),
}


async def user_api_key_auth(request, api_key: str) -> UserAPIKeyAuth:
    token = api_key.removeprefix("Bearer ").strip()
    hashed = hashlib.sha256(token.encode()).hexdigest()
    if token == os.environ["LITELLM_MASTER_KEY"]:
        return UserAPIKeyAuth(api_key=token, token=hashed, user_role=LitellmUserRoles.PROXY_ADMIN)
    if token not in TEAMS:
        raise HTTPException(status_code=401, detail={"error": "unknown key"})
    team_id, metadata = TEAMS[token]
    return UserAPIKeyAuth(api_key=token, token=hashed, team_id=team_id, team_metadata=metadata)
