"""Team files: `stacks/teams/<name>.yaml`, the reviewed onboarding of one product team.

A team file names the team (its namespace is `team-<name>`), who owns it, where its alarms go,
what it may use (quota, gateway models and budget) and what it owns (prompts, vector
collections). `overrides.<environment>` changes parts of it per environment (a JSON merge patch,
RFC 7396: mappings merge key by key, lists and values replace, null removes a key so its default
applies); the result is validated after merging, against the stack it is planned into.

`load_teams(settings)` reads every file of `stacks/teams/` and returns the teams of the stack's
environment, or raises one `SettingsError` (exit 2) listing every problem of every file, each as
`stacks/teams/<file>.yaml: <path>: <message>`; a path under `overrides.<env>.` says the value came
from that override. Every environment a team is in is validated (the stack rules only against
the stack being planned), so a broken file fails every plan, not only the plan of its stack.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from llmops import PROJECT_DIR
from llmops.errors import LlmopsError
from llmops.inputs import InputError, load_yaml
from llmops.settings.base import Settings, dns_label
from llmops.settings.prompts import GITHUB_SUBJECT
from llmops.settings.serving import CollectionSpec, collection_name
from llmops.settings.stack import DataClassification, StackSettings

STACKS_DIR = PROJECT_DIR / "stacks"
TEAMS_DIR = STACKS_DIR / "teams"
CLASSIFICATIONS: tuple[str, ...] = typing.get_args(DataClassification)  # lowest first
# Prompts of a team are named <team>--<prompt>: a team name never contains the separator.
PROMPT_SEPARATOR = "--"
# Keys an override may not change: they say which file and which environments it is.
FIXED_KEYS = ("name", "environments", "overrides")
# A problem found by comparing the team with the stack it is planned into (its message names
# the stack, so it is never tagged with the environments it was found in).
STACK_RULE = "team_stack_rule"

ROLE_ARN = re.compile(r"^arn:aws(-cn|-us-gov)?:iam::\d{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}$")
SLACK_CHANNEL = re.compile(r"^#[a-z0-9][a-z0-9_-]{0,79}$")
EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
TAG_VALUE = re.compile(r"^[\w.:/=+@ -]{1,256}$")  # AWS tag value characters (it is a tag)
CPU_QUANTITY = re.compile(r"^(\d+(\.\d{1,3})?|\d+m)$")
MEMORY_QUANTITY = re.compile(r"^(\d+(\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)$")
MEMORY_UNITS = {
    **{u: 1024**i for i, u in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"), start=1)},
    **{u: 1000**i for i, u in enumerate(("k", "M", "G", "T", "P", "E"), start=1)},
}


@dataclass(frozen=True)
class TeamContext:
    """What checking a team file against its surroundings needs (pydantic's validation context,
    `TeamSettings.model_validate(doc, context=TeamContext(...))`). Without it only the file's
    own rules run.

    stack: the stack the team is planned into; the stack rules (classification, models, GPUs)
    run only when it is set. file_name: the team file's name; `name` must be its stem.
    environments: the stacks that exist; `environments` and `overrides` may name only those
    (empty: not checked)."""

    stack: StackSettings | None = None
    file_name: str | None = None
    environments: tuple[str, ...] = ()


def _context(info: ValidationInfo) -> TeamContext:
    return info.context if isinstance(info.context, TeamContext) else TeamContext()


def _stack_rule(message: str) -> PydanticCustomError:
    return PydanticCustomError(STACK_RULE, message)


def _unique(items: list) -> list:
    dupes = sorted({str(i) for i in items if items.count(i) > 1})
    if dupes:
        raise ValueError(f"entries must be unique; repeated: {', '.join(dupes)}")
    return items


def _numbers_as_text(value: Any) -> Any:
    """`cpu: 16` in YAML is a number; a quantity is text."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _team_name(value: str, info: ValidationInfo) -> str:
    dns_label(value)
    if PROMPT_SEPARATOR in value:
        raise ValueError(
            f"{value!r} contains '--', the separator of the team's prompt names (<team>--<prompt>)"
        )
    stack = _context(info).stack
    if stack is not None and value in {b.team for b in stack.cost_alarms.team_budgets}:
        raise _stack_rule(
            f"the {stack.environment} stack's costAlarms.teamBudgets also has team {value}; a team "
            "file's gateway.monthlyBudgetUsd sets the team's alarms: remove that teamBudgets entry"
        )
    file_name = _context(info).file_name
    if file_name is not None and Path(file_name).stem != value:
        raise ValueError(
            f"{value} does not match the file name {file_name}: a team file is named "
            f"<name>.yaml (rename the file to {value}.yaml or change name)"
        )
    return value


def _role_arn(value: str) -> str:
    if not ROLE_ARN.match(value):
        raise ValueError(
            f"{value!r} must be an IAM role ARN like arn:aws:iam::111122223333:role/NAME "
            "(no users, groups or wildcards)"
        )
    return value


def _contact(value: str) -> str:
    if not (SLACK_CHANNEL.match(value) or EMAIL.match(value)):
        raise ValueError(
            f"{value!r} must be a Slack channel like #fraud-alerts (lower-case, quoted in YAML) "
            "or an e-mail address like fraud-oncall@example.com"
        )
    return value


def _cost_center(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty: it becomes the cost-center tag of the team's resources")
    if value != value.strip() or not TAG_VALUE.match(value):
        raise ValueError(
            f"{value!r}: at most 256 letters, digits, inner spaces and _ . : / = + - @ "
            "(it becomes the cost-center tag)"
        )
    return value


def _environment(value: str, info: ValidationInfo) -> str:
    dns_label(value)
    known = _context(info).environments
    if known and value not in known:
        raise ValueError(f"{value} is not a stack (stacks/Pulumi.<env>.yaml exist for {', '.join(known)})")
    return value


def _override_environment(value: str, info: ValidationInfo) -> str:
    dns_label(value)
    if "environments" not in info.data:
        return value  # environments itself is invalid: its problem is reported
    team = info.data["environments"]
    if team is not None and value not in team:
        raise ValueError(f"{value} is not one of the team's environments ({', '.join(team)})")
    known = _context(info).environments
    if team is None and known and value not in known:
        raise ValueError(f"{value} is not a stack (stacks/Pulumi.<env>.yaml exist for {', '.join(known)})")
    return value


def _override_patch(value: dict[str, Any]) -> dict[str, Any]:
    fixed = [k for k in FIXED_KEYS if k in value]
    if fixed:
        raise ValueError(f"{', '.join(fixed)}: the same in every environment, set only at the top level")
    return value


def _github_subject(value: str) -> str:
    if value.strip() in ("*", "repo:*") or not GITHUB_SUBJECT.match(value):
        raise ValueError(
            f"{value!r} must name one repository, like repo:OWNER/NAME:ref:refs/heads/main; "
            "wildcards (* ?) may follow repo:OWNER/NAME: only"
        )
    return value


def _cpu(value: str) -> str:
    if not CPU_QUANTITY.match(value):
        raise ValueError(f"{value!r} must be a Kubernetes CPU quantity like 16, 0.5 or 500m")
    if cpu_millicores(value) == 0:
        raise ValueError("must be above 0: no pod of the team could start")
    return value


def _memory(value: str) -> str:
    if not MEMORY_QUANTITY.match(value):
        raise ValueError(
            f"{value!r} must be a Kubernetes memory quantity with a unit, like 64Gi or 512Mi "
            "(Ki, Mi, Gi, Ti binary; k, M, G, T decimal; m would mean thousandths of a byte)"
        )
    if memory_bytes(value) == 0:
        raise ValueError("must be above 0: no pod of the team could start")
    return value


def cpu_millicores(quantity: str) -> int:
    """A CPU quantity (`16`, `0.5`, `500m`) in millicores."""
    if quantity.endswith("m"):
        return int(quantity[:-1])
    return int(Decimal(quantity) * 1000)


def memory_bytes(quantity: str) -> int:
    """A memory quantity (`64Gi`, `512Mi`, `1G`) in bytes."""
    match = MEMORY_QUANTITY.match(quantity)
    if match is None:
        raise ValueError(f"{quantity!r} is not a memory quantity")
    try:
        return int(Decimal(match[1]) * MEMORY_UNITS[match[3]])
    except InvalidOperation:
        raise ValueError(f"{quantity!r} is not a memory quantity") from None


def _known_model(value: str, info: ValidationInfo) -> str:
    stack = _context(info).stack
    if stack is not None:
        served = [m.name for m in stack.models] + stack.gateway.external_model_names()
        if value not in served:
            serves = f"serves {', '.join(served)}" if served else "serves no models"
            raise _stack_rule(f"unknown model {value} (the {stack.environment} stack {serves})")
    return value


def _declared_collections(value: list[CollectionSpec]) -> list[CollectionSpec]:
    names = [c.name for c in value]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"collection names must be unique; repeated: {', '.join(dupes)}")
    return value


EnvironmentName = Annotated[str, AfterValidator(_environment)]
RoleArn = Annotated[str, AfterValidator(_role_arn)]
ModelName = Annotated[str, AfterValidator(_known_model)]
GithubSubject = Annotated[str, AfterValidator(_github_subject)]
CollectionName = Annotated[str, AfterValidator(collection_name)]
EnvironmentList = Annotated[list[EnvironmentName], Field(min_length=1), AfterValidator(_unique)]
_ENVIRONMENTS = TypeAdapter(EnvironmentList | None)


class TeamQuota(Settings):
    """Limits of the team's namespace (its ResourceQuota): totals over all its pods."""

    cpu: Annotated[str, BeforeValidator(_numbers_as_text), AfterValidator(_cpu)]
    """CPU the team's pods may request in total, a Kubernetes quantity: `16` cores, `500m`."""
    memory: Annotated[str, BeforeValidator(_numbers_as_text), AfterValidator(_memory)]
    """Memory the team's pods may request in total, a Kubernetes quantity with a unit: `64Gi`,
    `512Mi`."""
    gpus: int = Field(0, ge=0)
    """GPUs (nvidia.com/gpu) the team's pods may request in total. At most what the stack's GPU
    pools can hold (the sum of their maxGpus). 0: the team runs no GPU workloads."""

    @field_validator("gpus")
    @classmethod
    def _gpus_fit(cls, value: int, info: ValidationInfo) -> int:
        stack = _context(info).stack
        if stack is not None:
            total = sum(p.max_gpus for p in stack.gpu_pools)
            if value > total:
                pools = ", ".join(f"{p.name} {p.max_gpus}" for p in stack.gpu_pools) or "it has none"
                raise _stack_rule(
                    f"{value} GPUs are more than the {stack.environment} stack's GPU pools can hold "
                    f"({total}; maxGpus: {pools})"
                )
        return value

    @property
    def cpu_millicores(self) -> int:
        return cpu_millicores(self.cpu)

    @property
    def memory_bytes(self) -> int:
        return memory_bytes(self.memory)


class TeamGateway(Settings):
    """The team in the LiteLLM gateway: what it may call and spend."""

    models: Annotated[list[ModelName], Field(min_length=1), AfterValidator(_unique)]
    """Public model names (gateway routes) the team's keys may call: self-hosted models
    (llmops:models[].name) and external providers' models of the stack. At least one (LiteLLM
    reads an empty list as every model)."""
    monthly_budget_usd: float = Field(gt=0, allow_inf_nan=False)
    """The team's budget in the gateway, in USD per month (above 0)."""
    tpm_limit: int | None = Field(None, gt=0)
    """Tokens per minute the team's keys may use together. Unset: no limit."""
    rpm_limit: int | None = Field(None, gt=0)
    """Requests per minute the team's keys may make together. Unset: no limit."""
    max_input_tokens: int | None = Field(None, gt=0)
    """Input tokens one request of the team's keys may send (its prompt-size budget, refused at the
    gateway before any model call). The route's own budget (llmops:gateway.inputBudget) still
    applies: the tighter wins. Unset: the route's only."""


class TeamPrompts(Settings):
    """The team's prompts in the prompt store, named `<team>--<prompt>`."""

    github_subjects: Annotated[list[GithubSubject], AfterValidator(_unique)] = Field(default_factory=list)
    """GitHub OIDC subjects (CI) that may push the team's prompts, e.g.
    `repo:acme/fraud-prompts:ref:refs/heads/main`. IAM StringLike wildcards (* ?) are allowed
    after `repo:OWNER/NAME:`, never in the owner or repository. Empty: the team has no
    prompt-writer role."""


class TeamSettings(Settings):
    """One team file. Field order matters: a field's validator sees only the fields before it."""

    name: Annotated[str, AfterValidator(_team_name)]
    """The team's name: a DNS label without `--` (its prompts are `<name>--<prompt>`), equal to
    the file name's stem. The namespace is `team-<name>`. Renaming replaces the team's resources."""
    owners: Annotated[list[RoleArn], Field(min_length=1), AfterValidator(_unique)]
    """IAM role ARNs given edit rights in the team's namespace only (EKS access entries). At
    least one."""
    contact: Annotated[str, AfterValidator(_contact)]
    """Where the team's alarms go: a Slack channel (`"#fraud-alerts"`, quoted in YAML) or an
    e-mail address."""
    cost_center: Annotated[str, AfterValidator(_cost_center)]
    """Cost-allocation tag (cost-center) of the team's resources. Not empty."""
    classification: DataClassification
    """Highest classification of the data the team brings. At most the stack's
    dataClassification (public < internal < confidential < regulated)."""
    environments: EnvironmentList | None = None
    """Stacks that include the team, e.g. `[staging, prod]`; each must exist
    (stacks/Pulumi.<env>.yaml). Unset: every stack."""
    quota: TeamQuota
    """The namespace's quota: CPU, memory, GPUs."""
    gateway: TeamGateway
    """The team's models, budget and rate limits in the gateway."""
    prompts: TeamPrompts = TeamPrompts()
    """Who may push the team's prompts."""
    vector_collections: Annotated[list[CollectionName], AfterValidator(_unique)] = Field(default_factory=list)
    """Qdrant collections the team owns (no two teams own the same one)."""
    collections: Annotated[list[CollectionSpec], AfterValidator(_declared_collections)] = Field(
        default_factory=list
    )
    """Collections the platform creates for the team and watches, as `llmops:vectorDb.collections`
    without ownerTeam (docs/retrieval.md); the team owns them as it owns its vectorCollections. A name
    must not be the stack's or another team's."""
    overrides: dict[
        Annotated[str, AfterValidator(_override_environment)],
        Annotated[dict[str, Any], AfterValidator(_override_patch)],
    ] = Field(default_factory=dict)
    """Differences per environment, keyed by one of the team's environments, e.g.
    `{dev: {quota: {gpus: 0}, gateway: {monthlyBudgetUsd: 50}}}`. Merged over the rest of the
    file (mappings key by key, lists and values replace, null removes a key) and validated after
    merging; name, environments and overrides cannot differ. load_teams returns the teams with
    their environment's override applied (this field keeps what the file says)."""

    @field_validator("classification")
    @classmethod
    def _classification_allowed(cls, value: str, info: ValidationInfo) -> str:
        stack = _context(info).stack
        rank = CLASSIFICATIONS.index
        if stack is not None and rank(value) > rank(stack.data_classification):
            raise _stack_rule(
                f"{value} is above the {stack.environment} stack's dataClassification "
                f"({stack.data_classification}); leave {stack.environment} out of environments or "
                f"lower the classification in overrides.{stack.environment}"
            )
        return value

    @property
    def namespace(self) -> str:
        return f"team-{self.name}"

    @property
    def collection_names(self) -> list[str]:
        """Every collection the team owns: vectorCollections, then the ones it declares."""
        return list(dict.fromkeys([*self.vector_collections, *(c.name for c in self.collections)]))

    @property
    def prompt_prefix(self) -> str:
        """Prefix of the team's prompt names in the prompt store."""
        return f"{self.name}{PROMPT_SEPARATOR}"

    @property
    def contact_kind(self) -> Literal["slack", "email"]:
        return "slack" if self.contact.startswith("#") else "email"

    def includes(self, environment: str) -> bool:
        """Whether the stack of `environment` includes the team."""
        return self.environments is None or environment in self.environments


@dataclass
class _FileResult:
    path: Path
    problems: list[str]
    name: str | None = None  # the file's name key, when it is text
    team: TeamSettings | None = None  # valid and in the stack's environment
    patch: dict[str, Any] | None = None  # the override applied to `team`
    environment: str | None = None  # the environment of `team`


def load_teams(settings: StackSettings, directory: Path = TEAMS_DIR) -> list[TeamSettings]:
    """The teams of `settings.environment`, sorted by name, each with that environment's override
    applied. Reads every `*.yaml` (and `*.yml`) file of `directory`; other files are ignored and
    a missing directory means no teams. Raises one SettingsError listing every problem of every
    file, each line `<file>: <path>: <message>`."""
    from llmops.settings import SettingsError  # the package imports this module

    if not directory.exists():
        return []
    if not directory.is_dir():
        raise LlmopsError(f"{_shown(directory)}: not a directory; team files go in stacks/teams/<name>.yaml")
    try:
        names = sorted(directory.iterdir())
    except OSError as err:
        reason = err.strerror or err
        raise LlmopsError(f"{_shown(directory)}: cannot list the team files ({reason})") from None
    files = [p for p in names if p.suffix in (".yaml", ".yml") and not p.name.startswith(".")]
    known = _known_environments(directory, settings.environment)
    results = [_load_file(path, settings, known) for path in files]
    _check_across_files(results, settings, directory.parent / f"Pulumi.{settings.environment}.yaml")
    problems = [p for r in results for p in r.problems]
    if problems:
        raise SettingsError(_shown(directory), problems, what="the team files")
    return sorted((r.team for r in results if r.team is not None), key=lambda t: t.name)


def _shown(path: Path) -> str:
    """A path as messages show it: relative to the project when inside it."""
    try:
        return str(path.resolve().relative_to(PROJECT_DIR))
    except ValueError:
        return str(path)


def _known_environments(directory: Path, current: str) -> tuple[str, ...]:
    """The stacks beside the teams directory (stacks/Pulumi.<env>.yaml) and the one being
    planned; none when no stack file is there (environment names are then not checked)."""
    files = directory.parent.glob("Pulumi.*.yaml")
    stems = {p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in files}
    return tuple(sorted(stems | {current})) if stems else ()


def _load_file(path: Path, settings: StackSettings, known: tuple[str, ...]) -> _FileResult:
    shown = _shown(path)
    try:
        doc = load_yaml(path, "team file")
    except InputError as err:
        return _FileResult(path, [str(err).replace(str(path), shown, 1)])
    if not isinstance(doc, dict):
        what = "an empty file" if doc is None else f"a {type(doc).__name__}"
        return _FileResult(
            path, [f"{shown}: a team file is a mapping (name, owners, contact, ...), not {what}"]
        )
    result = _FileResult(path, [], name=doc["name"] if isinstance(doc.get("name"), str) else None)
    overrides = doc["overrides"] if isinstance(doc.get("overrides"), dict) else {}
    current = settings.environment
    try:
        envs = _ENVIRONMENTS.validate_python(doc.get("environments"), context=TeamContext(environments=known))
        envs = envs if envs is not None else list(known or [current])
        variants: list[str | None] = [current] if current in envs else []
        variants += [e for e in envs if e != current]
    except ValidationError:
        variants = [None]  # unknown environments: the file on its own (its problem is reported)

    found: dict[str, tuple[set[str | None], bool]] = {}  # problem -> (variants, may be tagged)
    for env in variants:
        patch = overrides.get(env) if env is not None else None
        patch = {k: v for k, v in patch.items() if k not in FIXED_KEYS} if isinstance(patch, dict) else {}
        context = TeamContext(
            stack=settings if env == current else None, file_name=path.name, environments=known
        )
        try:
            team = TeamSettings.model_validate(_merge(doc, patch), context=context)
        except ValidationError as err:
            for e in err.errors():
                where = _loc(e["loc"])
                from_patch = env is not None and _in_patch(e["loc"], patch)
                problem = f"overrides.{env}.{where}" if from_patch else where
                problem = f"{problem}: {_message(e)}"
                taggable = not from_patch and e["type"] != STACK_RULE
                found.setdefault(problem, (set(), taggable))[0].add(env)
            continue
        if env == current:
            result.team, result.patch, result.environment = team, patch, env
    for problem, (envs_seen, taggable) in found.items():
        if taggable and len(variants) > 1 and len(envs_seen) < len(variants):
            problem += f" (in {', '.join(e for e in variants if e in envs_seen)})"
        result.problems.append(f"{shown}: {problem}")
    if result.problems:
        result.team = None
    return result


def _check_across_files(results: list[_FileResult], settings: StackSettings, stack_file: Path) -> None:
    """Team names are unique across files; a vector collection has one owner, and a collection a
    team declares is not one the stack declares."""
    by_name: dict[str, list[_FileResult]] = {}
    for r in results:
        if r.name is not None:
            by_name.setdefault(r.name, []).append(r)
    for name, same in by_name.items():
        for r in same if len(same) > 1 else ():
            others = ", ".join(_shown(o.path) for o in same if o is not r)
            r.problems.append(f"{_shown(r.path)}: name: team {name} is also defined in {others}")
    owners: dict[str, _FileResult] = {}
    in_stack = {c.name: (i, c) for i, c in enumerate(settings.vector_db.collections)}
    for r in results:
        if r.team is None or r.problems:
            continue
        owned = [(("vectorCollections", i), c) for i, c in enumerate(r.team.vector_collections)]
        owned += [(("collections", i, "name"), c.name) for i, c in enumerate(r.team.collections)]
        for loc, collection in owned:
            where = _loc(loc)
            if r.patch and _in_patch(loc, r.patch):
                where = f"overrides.{r.environment}.{where}"
            stack_index, declared = in_stack.get(collection, (None, None))
            if declared is not None and (
                loc[0] == "collections" or declared.owner_team not in (None, r.team.name)
            ):
                owner = f" (ownerTeam {declared.owner_team})" if declared.owner_team else ""
                r.problems.append(
                    f"{_shown(r.path)}: {where}: collection {collection} is declared by the "
                    f"{settings.environment} stack{owner} too ({_shown(stack_file)}: "
                    f"llmops:vectorDb.collections[{stack_index}])"
                )
                continue
            first = owners.setdefault(collection, r)
            if first is not r:
                r.problems.append(
                    f"{_shown(r.path)}: {where}: collection {collection} is owned by team "
                    f"{first.team.name} ({_shown(first.path)}) too"
                )
    for r in results:
        if r.problems:
            r.team = None


def _merge(base: Any, patch: Any) -> Any:
    """`patch` applied to `base` as a JSON merge patch (RFC 7396)."""
    if not isinstance(patch, dict):
        return patch
    out = dict(base) if isinstance(base, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


def _in_patch(loc: tuple, patch: Any) -> bool:
    """Whether the value at `loc` is set by the override `patch`."""
    node = patch
    for part in loc:
        if part == "[key]":
            continue
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if not (in_dict or in_list):
            return False
        node = node[part]
    return bool(loc)


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if part == "[key]":  # the key of a mapping is the problem, not its value
            continue
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out or "(top level)"


def _message(err: dict) -> str:
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return "unknown key (check the spelling against docs/teams.md)"
    if err["type"] == "missing":
        return "required key is missing"
    if err["type"] not in ("value_error", STACK_RULE) and not isinstance(err.get("input"), dict | list):
        msg += f" (got {err['input']!r})"
    return msg


__all__ = [
    "STACKS_DIR",
    "TEAMS_DIR",
    "TeamContext",
    "TeamGateway",
    "TeamPrompts",
    "TeamQuota",
    "TeamSettings",
    "cpu_millicores",
    "load_teams",
    "memory_bytes",
]
