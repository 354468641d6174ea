"""The offline engine: run `__main__.py` under Pulumi's mocks and record what it declares.

No Pulumi CLI, no cloud: Pulumi's own mock runtime stands in for the engine, `llmops.fakes`
for the providers. Each resource is recorded with what `pulumi preview` knows of it: type, name,
URN, parent, inputs, the outputs the provider computes (ARNs, URLs), its dependencies (explicit
`dependsOn` and through its inputs), its protect flag and its provider. Secret values are
masked, so a recorded plan never holds a secret.
"""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from llmops import PROJECT_DIR, fakes
from llmops.errors import LlmopsError

SECRET_MASK = "[secret]"
# Computed outputs that are secret whatever the resource (never written to a plan).
SECRET_OUTPUTS = {"result", "bcryptHash", "secretString", "password", "privateKeyPem", "privateKeyOpenssh",
                  "privateKeyPemPkcs8"}  # fmt: skip
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # Pulumi's wire marker of a secret value
_lock = threading.Lock()  # the Pulumi runtime is process-global: one program at a time


@dataclass
class RecordedPlan:
    stack: str
    resources: list[dict[str, Any]] = field(default_factory=list)
    invokes: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    """What checks of the plan need from the stack's settings (region, classification, residency)."""

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["type"] == type_]

    def named(self, name: str) -> dict[str, Any]:
        matches = [r for r in self.resources if r["name"] == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources named {name!r}")
        return matches[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "settings": self.settings,
            "resources": self.resources,
            "invokes": self.invokes,
            "outputs": self.outputs,
        }


def clean(value: Any) -> Any:
    """Secrets masked; whole numbers back to ints (the wire format carries every number as a float)."""
    if isinstance(value, dict):
        if value.get("4dabf18193072939515e22adb298388d") == _SECRET_SIG:
            inner = value.get("value")
            if isinstance(inner, dict):  # keep the keys (e.g. a Secret's stringData), mask the values
                return {k: SECRET_MASK for k in inner}
            return SECRET_MASK
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (pulumi.Asset, pulumi.Archive)):  # Lambda code: where it comes from
        return _asset(value)
    return value


def _asset(value: pulumi.Asset | pulumi.Archive) -> dict[str, Any]:
    if isinstance(value, pulumi.AssetArchive):
        return {"archive": {k: clean(v) for k, v in sorted(value.assets.items())}}
    path = getattr(value, "path", None)
    if path is not None:
        kind = "archive" if isinstance(value, pulumi.Archive) else "asset"
        resolved = Path(path).resolve()
        shown = resolved.relative_to(PROJECT_DIR) if resolved.is_relative_to(PROJECT_DIR) else resolved
        return {kind: {"path": str(shown)}}
    if isinstance(value, pulumi.StringAsset):  # generated code (a reconciler's desired state)
        return {"StringAsset": {"text": value.text}}
    return {type(value).__name__: "(inline)"}


class _Mocks(pulumi.runtime.Mocks):
    def __init__(self, plan: RecordedPlan, region: str):
        self.plan, self.region = plan, region
        self.provider_regions: dict[str, str] = {}  # AWS provider name -> its region

    def _region(self, provider: str | None) -> str:
        """The region of the provider a resource or invoke uses ("<urn>::<id>"), else the stack's."""
        name = provider.rsplit("::", 1)[0].rsplit("::", 1)[-1] if provider else ""
        return self.provider_regions.get(name, self.region)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        if args.typ == "pulumi:providers:aws" and isinstance(args.inputs.get("region"), str):
            self.provider_regions[args.name] = args.inputs["region"]
        region = self._region(args.provider)
        rid, state = fakes.resource_state(args.typ, args.name, args.inputs, region)
        computed = {k: v for k, v in state.items() if args.inputs.get(k) != v and k not in SECRET_OUTPUTS}
        self.plan.resources.append(
            {
                "type": args.typ,
                "name": args.name,
                "id": rid,  # what other resources' inputs refer to (bucket ids, subnet ids, ...)
                "inputs": clean(args.inputs),
                "outputs": clean(computed),  # what the provider computes: ARNs, URLs, endpoints
            }
        )
        return rid, state

    def call(self, args: pulumi.runtime.MockCallArgs):
        fake = fakes.INVOKES.get(args.token)
        if fake is None:
            raise LlmopsError(f"the program calls {args.token}, which has no fake in llmops/fakes.py INVOKES")
        self.plan.invokes.append({"token": args.token, "args": clean(args.args)})
        return fake(args.args, self._region(args.provider))


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    """Pulumi's mock monitor, keeping what the engine learns of each resource beyond its inputs:
    URN, parent, dependencies (explicit and per input property), protect flag and provider."""

    def __init__(self, mocks: _Mocks):
        super().__init__(mocks)
        self.registrations: dict[str, dict[str, Any]] = {}

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.registrations[response.urn] = {
                "parent": request.parent or None,
                "dependencies": list(request.dependencies),
                "propertyDependencies": {k: list(v.urns) for k, v in request.propertyDependencies.items()},
                "protect": bool(request.protect),
                "provider": request.provider or None,
            }
        return response


def _link(plan: RecordedPlan, registrations: dict[str, dict[str, Any]]) -> None:
    """Merge the engine's view into the recorded resources. Resources are named by their logical
    name (unique in this program, checked here), so a plan reads without URNs."""
    names = [r["name"] for r in plan.resources]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise LlmopsError(
            f"{plan.stack}: resource names must be unique in a plan; repeated: {', '.join(repeated)}"
        )
    name_of = {urn: urn.rsplit("::", 1)[-1] for urn in registrations}
    urn_of = {(urn.split("::")[2].split("$")[-1], name): urn for urn, name in name_of.items()}

    def named(urns) -> list[str]:
        return sorted({name_of[u] for u in urns if u in name_of})

    for resource in plan.resources:
        urn = urn_of[(resource["type"], resource["name"])]
        reg = registrations[urn]
        through_inputs = {u for urns in reg["propertyDependencies"].values() for u in urns}
        provider = reg["provider"]  # a provider reference is "<urn>::<id>"
        resource.update(
            urn=urn,
            parent=name_of.get(reg["parent"]),
            dependsOn=named(set(reg["dependencies"]) - through_inputs),
            dependencies=named(reg["dependencies"]),
            propertyDependencies={k: named(v) for k, v in sorted(reg["propertyDependencies"].items()) if v},
            protect=reg["protect"],
            provider=name_of.get(provider.rsplit("::", 1)[0]) if provider else None,
        )


def _config_map(config: dict[str, Any]) -> dict[str, str]:
    """Pulumi hands config to programs as strings; structured values as JSON."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


def run_program(
    stack: str,
    config: dict[str, Any],
    region: str,
    environ: dict[str, str] | None = None,
    *,
    program: Path | None = None,
    project: str = "llmops",
) -> RecordedPlan:
    """Run a project's program (the platform's `__main__.py` unless `program` names another, of
    Pulumi project `project`) under mocks with the given config (and environment variables, set for
    the run only); return what it declared."""
    plan = RecordedPlan(stack=stack)
    mocks = _Mocks(plan, region)
    monitor = _RecordingMonitor(mocks)
    with _lock, _environment(environ or {}):
        pulumi_mocks.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
        pulumi.runtime.set_all_config(_config_map(config))
        if str(PROJECT_DIR) not in sys.path:
            sys.path.insert(0, str(PROJECT_DIR))
        main = str(program or PROJECT_DIR / "__main__.py")
        try:
            _sync_await(run_pulumi_func(lambda: runpy.run_path(main, run_name="__main__")))
        except pulumi.RunError as err:  # the program's own "this is what to fix": no traceback
            raise LlmopsError(f"{stack}: {err}") from None
        root = pulumi.runtime.settings.get_root_resource()
        plan.outputs = {k: _resolve(v) for k, v in (root.outputs if root else {}).items()}
    _link(plan, monitor.registrations)
    # Registration order depends on asyncio scheduling; sorted, plans diff cleanly between runs.
    plan.resources.sort(key=lambda r: (r["name"], r["type"]))
    plan.invokes.sort(key=lambda i: json.dumps(i, sort_keys=True))
    return plan


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _resolve(value: Any) -> Any:
    """An export's value, or the mask if it is secret."""
    output = pulumi.Output.from_input(value)
    if _sync_await(output.is_secret()):
        return SECRET_MASK
    return _sync_await(output.future())
