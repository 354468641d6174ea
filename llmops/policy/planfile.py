"""Reading and checking a plan document: `{"stack"?, "resources": [{"type", "name", "parent", "inputs"}]}`.

Optional per resource: `urn`, `id` (the mock's physical id), `outputs` (merged over the inputs for
stack rules, as the engine gives stack rules outputs) and `provider` (the provider reference
`urn::id`, or a provider's name). Every problem is reported, one line each, with its path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmops.errors import EXIT_USAGE, LlmopsError
from llmops.inputs import read_text


def load_plan(path: str | Path) -> dict[str, Any]:
    """Reads and validates a plan.json; raises LlmopsError (exit 2) naming every problem."""
    path = Path(path)
    text = read_text(path, "plan.json", hint="`llmops plan STACK` writes build/STACK/plan.json")
    if not text.strip():
        raise LlmopsError(f"{path}: empty file; expected the plan.json that `llmops plan` writes", EXIT_USAGE)
    try:
        plan = json.loads(text)
    except ValueError as err:
        raise LlmopsError(
            f"{path}: not JSON ({err}); expected the plan.json that `llmops plan` writes", EXIT_USAGE
        ) from None
    except RecursionError:
        raise LlmopsError(
            f"{path}: JSON nested too deeply to read; expected a plan.json", EXIT_USAGE
        ) from None
    problems = validate_plan(plan)
    if problems:
        raise LlmopsError("\n".join(f"{path}: {p}" for p in problems), EXIT_USAGE)
    return plan


def validate_plan(plan: Any) -> list[str]:
    """Problems with a plan document, one line each (empty when it is valid)."""
    if not isinstance(plan, dict):
        return ["must be a JSON object with a 'resources' list"]
    resources = plan.get("resources")
    if not isinstance(resources, list):
        return ["resources: must be a list of {type, name, parent, inputs}"]
    problems = []
    for i, res in enumerate(resources):
        where = f"resources[{i}]"
        if not isinstance(res, dict):
            problems.append(f"{where}: must be an object")
            continue
        rtype, name = res.get("type"), res.get("name")
        if not isinstance(rtype, str) or rtype.count(":") < 2:
            problems.append(f"{where}.type: must be a type token like aws:s3/bucket:Bucket (got {rtype!r})")
        if not isinstance(name, str) or not name:
            problems.append(f"{where}.name: must be a non-empty string")
        if not isinstance(res.get("inputs", {}), dict):
            problems.append(f"{where}.inputs: must be an object")
        if not isinstance(res.get("outputs", {}), dict):
            problems.append(f"{where}.outputs: must be an object")
        for key in ("parent", "urn", "id", "provider"):
            if res.get(key) is not None and not isinstance(res.get(key), str):
                problems.append(f"{where}.{key}: must be a string or null")
    return problems
