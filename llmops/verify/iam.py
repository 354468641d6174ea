"""Just enough IAM evaluation for the contracts: does a set of statements allow an action on a
resource, does a key policy let a service use a key. Conditions are not evaluated (an Allow with a
condition counts as an Allow; a conditioned Deny is ignored), which errs toward reporting less."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from llmops.verify.model import as_list


def _action_matches(pattern: str, action: str) -> bool:
    return fnmatchcase(action.lower(), str(pattern).lower())


def _resource_matches(pattern: str, resource: str) -> bool:
    return fnmatchcase(resource, str(pattern).replace("[", "[[]"))


def allows(statements: list[dict[str, Any]], action: str, resource: str | None = None) -> bool:
    """Whether the statements allow `action` on `resource` (on some resource when it is None)."""
    allowed = False
    for s in statements:
        if not any(_action_matches(a, action) for a in as_list(s.get("Action"))):
            continue
        resources = as_list(s.get("Resource")) or ["*"]
        if resource is not None and not any(_resource_matches(r, resource) for r in resources):
            continue
        if s.get("Effect") == "Deny" and not s.get("Condition"):
            return False
        if s.get("Effect") == "Allow":
            allowed = True
    return allowed


def _principals(statement: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(AWS principals, service principals) of a resource-policy statement."""
    principal = statement.get("Principal")
    if principal == "*":
        return {"*"}, {"*"}
    if not isinstance(principal, dict):
        return set(), set()
    return set(map(str, as_list(principal.get("AWS")))), set(map(str, as_list(principal.get("Service"))))


def service_allowed(
    statements: list[dict[str, Any]], service: str, action: str, resource: str | None
) -> bool:
    """Whether a resource policy lets an AWS service principal (s3.amazonaws.com, ...) do `action`."""
    relevant = [s for s in statements if {service, "*"} & _principals(s)[1]]
    return allows(relevant, action, resource)


def key_allows_service(key_statements: list[dict[str, Any]], service: str, action: str) -> bool:
    return service_allowed(key_statements, service, action, None)


def key_delegates_to_iam(key_statements: list[dict[str, Any]], account_root: str, action: str) -> bool:
    """Whether the key policy lets the account's IAM policies grant `action` (the root principal)."""
    relevant = [s for s in key_statements if account_root in _principals(s)[0] or "*" in _principals(s)[0]]
    return allows(relevant, action, None)
