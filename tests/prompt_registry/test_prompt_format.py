"""The prompt file format: validation messages, rendering, hashing, the shipped examples."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmops.errors import EXIT_USAGE, LlmopsError
from llmops.prompts import PromptFile, PromptRenderError, load_prompt_file, parse_prompt
from llmops.prompts.format import OPENAI_PARAMETERS, VLLM_PARAMETERS, to_yaml

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "prompts").glob("*.yaml"))
BASE = {"name": "greeter", "model": "m", "owner": "team-a", "classification": "internal"}


def problems(data: dict) -> list[str]:
    with pytest.raises(LlmopsError) as info:
        parse_prompt(data, "p.yaml")
    assert info.value.exit_code == EXIT_USAGE
    return str(info.value).splitlines()[1:]


def test_examples_are_valid_and_realistic():
    assert len(EXAMPLES) >= 2
    for path in EXAMPLES:
        prompt = load_prompt_file(path)
        assert prompt.variables, f"{path.name}: a realistic prompt takes inputs"
        values = {v.name: f"<{v.name}>" for v in prompt.variables}
        rendered = prompt.render(values)
        text = rendered if isinstance(rendered, str) else "".join(m["content"] for m in rendered)
        assert "{{" not in text, f"{path.name}: placeholders left after rendering"
        assert all(f"<{name}>" in text for name in values), f"{path.name}: a variable was not filled"


def test_fails_when_the_template_uses_an_undeclared_variable():
    lines = problems({**BASE, "template": "Hi {{ name }}, about {{ topic }}", "variables": ["name"]})
    assert lines == ["  template: uses undeclared variable 'topic'; declare it under `variables`"]


def test_fails_when_a_declared_variable_is_never_used():
    lines = problems({**BASE, "template": "Hi {{ name }}", "variables": ["name", {"name": "tone"}]})
    assert len(lines) == 1 and "'tone' is declared but the template never uses it" in lines[0]


def test_reports_every_problem_with_its_location():
    data = {
        **BASE,
        "template": [
            {"role": "system", "content": "Use {{ a }} and {{ b c }}"},
            {"role": "user", "content": "{{x}}"},
        ],
        "variables": ["a", "unused"],
    }
    lines = problems(data)
    assert any(line.startswith("  template[0].content: malformed placeholder {{ b c }}") for line in lines)
    assert any(line.startswith("  template[1].content: uses undeclared variable 'x'") for line in lines)
    assert any("'unused' is declared" in line for line in lines)


def test_fails_on_unknown_fields_bad_roles_and_bad_names():
    template = [{"role": "robot", "content": "x"}]
    lines = problems({**BASE, "name": "Bad Name", "template": template, "temprature": 1})
    joined = "\n".join(lines)
    assert "name: 'Bad Name' must be lower-case" in joined
    assert "template[0].role:" in joined
    assert "temprature: unknown field" in joined
    assert "str" not in joined.split("template[0]")[0], "the union's other branch should not be reported"


def test_fails_when_required_fields_are_missing():
    lines = problems({"name": "x", "template": "hi"})
    assert {line.split(":")[0].strip() for line in lines} == {"model", "owner", "classification"}


def test_render_refuses_missing_and_unknown_variables():
    data = {**BASE, "template": "Hi {{ name }} from {{ city }}", "variables": ["name", "city"]}
    prompt = parse_prompt(data, "p")
    with pytest.raises(PromptRenderError, match="missing variable\\(s\\) city"):
        prompt.render({"name": "Layla"})
    with pytest.raises(PromptRenderError, match="unknown variable\\(s\\) citty"):
        prompt.render({"name": "Layla", "city": "Dubai", "citty": "x"})
    assert prompt.render({"name": "Layla", "city": "Dubai"}) == "Hi Layla from Dubai"


def test_render_does_not_expand_placeholders_inside_values():
    prompt = parse_prompt({**BASE, "template": "Q: {{ q }} / {{ r }}", "variables": ["q", "r"]}, "p")
    assert prompt.render({"q": "{{ r }}", "r": "x"}) == "Q: {{ r }} / x"


def test_content_hash_ignores_yaml_styling_but_not_content():
    a = parse_prompt({**BASE, "template": "Hi {{ name }}", "variables": ["name"]}, "p")
    b = parse_prompt({"variables": [{"name": "name"}], "template": "Hi {{ name }}", **BASE}, "p")
    c = parse_prompt({**BASE, "template": "Hello {{ name }}", "variables": ["name"]}, "p")
    assert a.content_hash() == b.content_hash() != c.content_hash()


def test_yaml_rendering_keeps_multiline_templates_readable():
    prompt = load_prompt_file(next(p for p in EXAMPLES if "banking" in p.name))
    text = to_yaml(prompt)
    assert "content: |" in text and "\\n" not in text


def test_the_example_in_the_docs_is_valid():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "prompts.md").read_text()
    block = docs.split("```yaml\n", 1)[1].split("```", 1)[0]
    prompt = parse_prompt(yaml.safe_load(block), "docs/prompts.md")
    assert [v.name for v in prompt.variables] == ["customer_first_name", "question"]


def test_unknown_parameters_are_refused_with_the_nearest_known_name():
    parameters = {"temprature": 0.2, "max_token": 100, "top_k": 40, "frobnicate": 1}
    lines = problems({**BASE, "template": "hi", "parameters": parameters})
    assert lines[:2] == [
        "  parameters.temprature: unknown parameter; did you mean temperature?",
        "  parameters.max_token: unknown parameter; did you mean max_tokens?",
    ]
    assert lines[2].startswith("  parameters.frobnicate: unknown parameter; known: temperature, top_p,")
    assert len(lines) == 3, "top_k is a vLLM sampling parameter"


def test_parameter_problems_come_with_the_other_problems():
    lines = problems({**BASE, "template": "Hi {{ who }}", "parameters": {"temprature": 0.2}})
    assert lines == [
        "  parameters.temprature: unknown parameter; did you mean temperature?",
        "  template: uses undeclared variable 'who'; declare it under `variables`",
    ]


def test_a_stored_version_with_a_parameter_refused_since_still_loads():
    """Stored versions are read back with PromptFile.model_validate (the client): they keep serving."""
    data = {**BASE, "template": "hi", "parameters": {"user": "x"}}
    assert PromptFile.model_validate(data).parameters == {"user": "x"}
    with pytest.raises(LlmopsError, match=r"parameters\.user: unknown parameter"):
        parse_prompt(data, "p.yaml")


def test_allowed_parameters_are_what_litellm_sends_to_a_vllm_route():
    """Against LiteLLM itself (the gateway's release): every allowed OpenAI parameter is one its
    hosted_vllm provider supports and sends as is, even with drop_params on (as the gateway runs);
    vLLM's own sampling parameters reach vLLM in the request body."""
    import litellm
    from litellm.llms.hosted_vllm.chat.transformation import HostedVLLMChatConfig
    from litellm.utils import get_optional_params

    supported = set(HostedVLLMChatConfig().get_supported_openai_params("any-model"))
    assert set(OPENAI_PARAMETERS) <= supported & set(litellm.constants.OPENAI_CHAT_COMPLETION_PARAMS)
    values = {
        "temperature": 0.1,
        "top_p": 0.9,
        "max_tokens": 10,
        "max_completion_tokens": 10,
        "n": 1,
        "stop": ["</summary>"],
        "seed": 7,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.1,
        "logprobs": True,
        "top_logprobs": 2,
        "reasoning_effort": "low",
    }
    assert set(values) == set(OPENAI_PARAMETERS)
    sent = get_optional_params(model="m", custom_llm_provider="hosted_vllm", drop_params=True, **values)
    assert {k: sent.get(k) for k in values} == values
    extras = {"top_k": 40, "min_p": 0.05, "repetition_penalty": 1.1}
    assert set(extras) == set(VLLM_PARAMETERS)
    sent = get_optional_params(model="m", custom_llm_provider="hosted_vllm", drop_params=True, **extras)
    assert sent["extra_body"] == extras
