"""The prompt file format: a YAML document validated by `PromptFile`.

Placeholders are written `{{ variable }}` (as MLflow and Langfuse do). Every variable the
template uses must be declared under `variables`, and every declared variable must be used:
both mistakes are caught at `push` time rather than at inference time.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from llmops.errors import EXIT_USAGE, LlmopsError
from llmops.inputs import load_yaml

# Names travel in S3 keys and in `NAME@ALIAS` / `NAME:VERSION` references, so they exclude
# '/', '@' and ':'.
NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")
VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Anything between `{{` and `}}`; the body is then checked to be a plain identifier, so a typo
# such as `{{ customer name }}` is reported instead of being sent to the model verbatim.
PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
Classification = Literal["public", "internal", "confidential", "regulated"]
Scalar = str | int | float | bool | None
# The parameters a prompt may carry. OpenAI chat-completion parameters that LiteLLM 1.100.5
# forwards to a hosted_vllm route (HostedVLLMChatConfig.get_supported_openai_params in
# litellm/llms/hosted_vllm/chat/transformation.py, which extends OpenAIGPTConfig's list in
# litellm/llms/openai/chat/gpt_transformation.py) and vLLM's chat API implements, less the client's
# own settings (stream, stream_options, extra_headers, max_retries), what vLLM does not implement
# (functions, audio, modalities, prediction, web_search_options, service_tier, store, thinking,
# safety_identifier, prompt_cache_key, prompt_cache_retention) and object-valued ones (tools,
# tool_choice, response_format, logit_bias: a prompt's parameters are scalars or lists of them).
OPENAI_PARAMETERS = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "reasoning_effort",
)
# vLLM's extra sampling parameters: LiteLLM passes parameters it does not know to OpenAI-compatible
# providers (hosted_vllm among them) in the request body (add_provider_specific_params_to_optional_params
# in litellm/utils.py), and vLLM's chat API reads these there.
VLLM_PARAMETERS = ("top_k", "min_p", "repetition_penalty")
PARAMETERS = OPENAI_PARAMETERS + VLLM_PARAMETERS


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Message(_Model):
    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1)


class Variable(_Model):
    name: str
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not VARIABLE.match(value):
            raise ValueError(f"{value!r} is not a variable name (letters, digits, '_'; no leading digit)")
        return value


class PromptFile(_Model):
    """One prompt as written by its authors and reviewed in a pull request."""

    name: str
    """Registry key: lower-case letters, digits and '-', at most 64 characters."""
    description: str | None = None
    template: str | list[Message]
    """A single text template, or a list of chat messages with `role` and `content`."""
    variables: list[Variable] = Field(default_factory=list)
    """Declared inputs: each a name, or a mapping with `name` and `description`."""
    model: str = Field(min_length=1)
    """The gateway model (route) the prompt was written and evaluated for."""
    parameters: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    """Sampling parameters passed with the prompt (temperature, max_tokens, ...)."""
    owner: str = Field(min_length=1)
    classification: Classification
    """Highest classification of the data the prompt is filled with at inference time."""
    eval_set: str | None = None
    """Where the evaluation set for this prompt lives (a path or a dataset URI)."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(f"{value!r} must be lower-case letters, digits and '-', at most 64 characters")
        return value

    @field_validator("variables", mode="before")
    @classmethod
    def _short_variables(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("template")
    @classmethod
    def _not_empty(cls, value: str | list[Message]) -> str | list[Message]:
        if not value or (isinstance(value, str) and not value.strip()):
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _variables_match(self) -> PromptFile:
        problems = []
        declared = [v.name for v in self.variables]
        repeated = sorted({n for n in declared if declared.count(n) > 1})
        if repeated:
            problems.append(f"variables: declared more than once: {', '.join(repeated)}")
        used: dict[str, str] = {}
        for where, text in self.texts():
            for body in PLACEHOLDER.findall(text):
                token = body.strip()
                if not VARIABLE.match(token):
                    problems.append(f"{where}: malformed placeholder {{{{{body}}}}}; write {{{{ name }}}}")
                else:
                    used.setdefault(token, where)
        for name, where in used.items():
            if name not in declared:
                problems.append(f"{where}: uses undeclared variable {name!r}; declare it under `variables`")
        for name in dict.fromkeys(declared):
            if name not in used:
                problems.append(
                    f"variables: {name!r} is declared but the template never uses it; "
                    f"remove it or write {{{{ {name} }}}} where it belongs"
                )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def texts(self) -> list[tuple[str, str]]:
        """(location, text) of every templated string, for error messages and rendering."""
        if isinstance(self.template, str):
            return [("template", self.template)]
        return [(f"template[{i}].content", m.content) for i, m in enumerate(self.template)]

    def canonical(self) -> dict[str, Any]:
        """The content that is versioned and hashed: defaults filled, key order irrelevant."""
        return self.model_dump(mode="json")

    def content_hash(self) -> str:
        return content_hash(self.canonical())

    def render(self, values: dict[str, Any]) -> str | list[dict[str, str]]:
        """Fill the placeholders. Refuses missing variables and unknown ones (likely typos)."""
        declared = {v.name for v in self.variables}
        missing = sorted(declared - values.keys())
        unknown = sorted(values.keys() - declared)
        problems = []
        if missing:
            problems.append(f"missing variable(s) {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown variable(s) {', '.join(unknown)}")
        if problems:
            raise PromptRenderError(f"prompt {self.name}: {'; '.join(problems)}")

        def fill(text: str) -> str:
            # One pass over the original text: a value that itself contains `{{ x }}` is not expanded.
            return PLACEHOLDER.sub(lambda m: str(values[m.group(1).strip()]), text)

        if isinstance(self.template, str):
            return fill(self.template)
        return [{"role": m.role, "content": fill(m.content)} for m in self.template]


class PromptRenderError(LlmopsError):
    def __init__(self, message: str):
        super().__init__(message, EXIT_USAGE)


def content_hash(canonical: dict[str, Any]) -> str:
    """sha256 over canonical JSON (sorted keys, no whitespace): stable across YAML styling."""
    data = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(data.encode()).hexdigest()


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parameter_problems(parameters: Any) -> list[str]:
    """Unknown parameter names (likely typos), each with the nearest known name.

    Checked where a prompt is authored (`parse_prompt`: push and the file check), not when a
    stored version is read back, so a version pushed before a name was refused keeps serving."""
    if not isinstance(parameters, dict):
        return []  # the model reports the type
    problems = []
    for key in parameters:
        if key not in PARAMETERS:
            near = difflib.get_close_matches(str(key), PARAMETERS, n=1)
            hint = f"did you mean {near[0]}?" if near else f"known: {', '.join(PARAMETERS)}"
            problems.append(f"parameters.{key}: unknown parameter; {hint}")
    return problems


def parse_prompt(data: Any, source: str) -> PromptFile:
    """Validate a parsed document; every problem is reported on its own line with its path."""
    if not isinstance(data, dict):
        raise LlmopsError(f"{source}: a prompt file is a YAML mapping with name, template, variables, ...")
    problems = parameter_problems(data.get("parameters"))
    prompt = None
    try:
        prompt = PromptFile.model_validate(data)
    except ValidationError as err:
        problems += _validation_problems(err, data)
    if problems or prompt is None:
        lines = "\n".join(f"  {p}" for p in problems)
        raise LlmopsError(f"{source}: {len(problems)} problem(s) in the prompt file:\n{lines}")
    return prompt


def _validation_problems(err: ValidationError, data: dict) -> list[str]:
    problems = []
    for e in err.errors():
        msg = e["msg"].removeprefix("Value error, ")
        loc = list(e["loc"])
        if e["type"] == "extra_forbidden":
            msg = "unknown field (allowed: " + ", ".join(PromptFile.model_fields) + ")"
        elif e["type"] == "missing":
            msg = "required field is missing"
        if loc[:1] == ["template"] and len(loc) > 1 and loc[1] in ("str", "list[Message]"):
            # pydantic reports the union's two branches; keep the one the author meant.
            as_list = isinstance(data.get("template"), list)
            if (loc[1] == "str") == as_list:
                continue
            del loc[1]
            if len(loc) == 1 and not isinstance(data.get("template"), str | list):
                msg = "must be a string or a list of chat messages with role and content"
        where = _loc(tuple(loc))
        problems += [line if not where else f"{where}: {line}" for line in msg.splitlines()]
    return problems


def load_prompt_file(path: Path) -> PromptFile:
    """Reads (llmops/inputs.py: missing, directory, binary, not YAML: exit 2) and validates."""
    return parse_prompt(load_yaml(path, "prompt file"), str(path))


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings as `|` blocks, so a diff shows the changed template line by line."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def to_yaml(prompt: PromptFile) -> str:
    """A stable YAML rendering, used by `diff` so that changes read like the source file."""
    data = {k: v for k, v in prompt.canonical().items() if v not in (None, [], {})}
    return yaml.dump(data, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=100)
