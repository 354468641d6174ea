"""Team files (stacks/teams/<name>.yaml): the schema, overrides per environment, the rules
against the stack, and every problem of every file reported at once with its file and path."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml
from stack_plans import SHIPPED_STACKS

from llmops import PROJECT_DIR
from llmops.errors import EXIT_USAGE
from llmops.settings import (
    SettingsError,
    StackSettings,
    TeamSettings,
    from_config,
    load_stack_file,
    load_teams,
    reference,
    team,
)

EXAMPLE = PROJECT_DIR / "stacks" / "teams" / "fraud-analytics.yaml"
# The example without its overrides, internal: valid in every shipped stack as it is.
BASE = {**yaml.safe_load(EXAMPLE.read_text()), "classification": "internal"}
del BASE["overrides"]


def stack(env: str) -> StackSettings:
    return load_stack_file(PROJECT_DIR / "stacks" / f"Pulumi.{env}.yaml")


@pytest.fixture
def teams_dir(tmp_path, monkeypatch) -> Path:
    """An empty stacks/teams/ beside copies of the shipped stack files; messages show paths
    relative to tmp_path as they show them relative to the project."""
    root = tmp_path.resolve()
    (root / "stacks" / "teams").mkdir(parents=True)
    for path in (PROJECT_DIR / "stacks").glob("Pulumi.*.yaml"):
        shutil.copy(path, root / "stacks" / path.name)
    monkeypatch.setattr(team, "PROJECT_DIR", root)
    return root / "stacks" / "teams"


def write(directory: Path, doc, name: str | None = None) -> Path:
    path = directory / f"{name or doc['name']}.yaml"
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    return path


def doc(**changes) -> dict:
    """The example without overrides; a key set to None is removed, `quota`/`gateway`/`prompts`
    changes are merged into the example's."""
    out = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        elif key in ("quota", "gateway", "prompts") and isinstance(value, dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def problems(directory: Path, env: str = "dev") -> list[str]:
    with pytest.raises(SettingsError) as err:
        load_teams(stack(env), directory)
    assert err.value.exit_code == EXIT_USAGE
    assert "problem(s) in the team files" in str(err.value).splitlines()[0]
    return err.value.problems


F = "stacks/teams/fraud-analytics.yaml"


@pytest.mark.parametrize("env", SHIPPED_STACKS)
def test_the_example_team_loads_in_every_shipped_stack(env):
    (loaded,) = load_teams(stack(env))
    assert loaded.name == "fraud-analytics" and loaded.namespace == "team-fraud-analytics"
    assert loaded.gateway.models == ["qwen-small"]
    assert loaded.contact_kind == "slack" and loaded.prompt_prefix == "fraud-analytics--"
    if env == "dev":
        assert (loaded.classification, loaded.quota.gpus, loaded.gateway.monthly_budget_usd) == (
            "internal",
            0,
            50,
        )
    else:
        assert (loaded.classification, loaded.quota.gpus, loaded.gateway.monthly_budget_usd) == (
            "confidential",
            2,
            500,
        )


def test_the_example_is_valid_in_every_stack_it_names():
    environments = TeamSettings.model_validate(yaml.safe_load(EXAMPLE.read_text())).environments
    assert set(environments) == set(SHIPPED_STACKS)


def test_a_missing_teams_directory_means_no_teams(tmp_path):
    assert load_teams(stack("dev"), tmp_path / "nope") == []


def test_files_other_than_yaml_are_ignored(teams_dir):
    (teams_dir / "README.md").write_text("# teams\n")
    (teams_dir / ".fraud.yaml.swp").write_bytes(b"\x00\x01")
    write(teams_dir, doc())
    assert [t.name for t in load_teams(stack("staging"), teams_dir)] == ["fraud-analytics"]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"gateway": {"models": ["qwen-small", "qwen-xl"]}},
            f"{F}: gateway.models[1]: unknown model qwen-xl (the dev stack serves qwen-small)",
        ),
        (
            {"quota": {"gpus": 5}},
            f"{F}: quota.gpus: 5 GPUs are more than the dev stack's GPU pools can hold "
            "(4; maxGpus: a10g-spot 4)",
        ),
        (
            {"gateway": {"monthlyBudgetUsd": 0}},
            f"{F}: gateway.monthlyBudgetUsd: Input should be greater than 0 (got 0)",
        ),
        (
            {"gateway": {"monthlyBudgetUsd": -5}},
            f"{F}: gateway.monthlyBudgetUsd: Input should be greater than 0 (got -5)",
        ),
        (
            {"classification": "regulated"},
            f"{F}: classification: regulated is above the dev stack's dataClassification (internal); "
            "leave dev out of environments or lower the classification in overrides.dev",
        ),
        (
            {"colour": "blue"},
            f"{F}: colour: unknown key (check the spelling against docs/teams.md)",
        ),
        (
            {"quota": {"gpu": 1}},
            f"{F}: quota.gpu: unknown key (check the spelling against docs/teams.md)",
        ),
        (
            {"owners": ["arn:aws:iam::111122223333:user/bob"]},
            f"{F}: owners[0]: 'arn:aws:iam::111122223333:user/bob' must be an IAM role ARN like "
            "arn:aws:iam::111122223333:role/NAME (no users, groups or wildcards)",
        ),
        ({"owners": []}, f"{F}: owners: List should have at least 1 item after validation, not 0"),
        (
            {"contact": "fraud-alerts"},
            f"{F}: contact: 'fraud-alerts' must be a Slack channel like #fraud-alerts (lower-case, quoted "
            "in YAML) or an e-mail address like fraud-oncall@example.com",
        ),
        (
            {"name": "fraud"},
            f"{F}: name: fraud does not match the file name fraud-analytics.yaml: a team file is named "
            "<name>.yaml (rename the file to fraud.yaml or change name)",
        ),
        (
            {"costCenter": " "},
            f"{F}: costCenter: must not be empty: it becomes the cost-center tag of the team's resources",
        ),
        (
            {"environments": ["dev", "qa"]},
            f"{F}: environments[1]: qa is not a stack "
            "(stacks/Pulumi.<env>.yaml exist for dev, prod, staging)",
        ),
        (
            {"overrides": {"qa": {"quota": {"gpus": 0}}}},
            f"{F}: overrides.qa: qa is not one of the team's environments (dev, staging, prod)",
        ),
        (
            {"environments": None, "overrides": {"qa": {}}},
            f"{F}: overrides.qa: qa is not a stack (stacks/Pulumi.<env>.yaml exist for dev, prod, staging)",
        ),
        (
            {"overrides": {"dev": {"name": "other", "quota": {"gpus": 0}}}},
            f"{F}: overrides.dev: name: the same in every environment, set only at the top level",
        ),
        (
            {"prompts": {"githubSubjects": ["*"]}},
            f"{F}: prompts.githubSubjects[0]: '*' must name one repository, like "
            "repo:OWNER/NAME:ref:refs/heads/main; wildcards (* ?) may follow repo:OWNER/NAME: only",
        ),
        ({"quota": None}, f"{F}: quota: required key is missing"),
    ],
)
def test_each_problem_is_reported_with_its_file_and_path(teams_dir, changes, expected):
    write(teams_dir, doc(**changes), name="fraud-analytics")
    assert problems(teams_dir) == [expected]


def test_a_double_hyphen_in_the_name_is_refused(teams_dir):
    write(teams_dir, doc(name="fraud--analytics"))
    assert problems(teams_dir) == [
        "stacks/teams/fraud--analytics.yaml: name: 'fraud--analytics' contains '--', the separator of "
        "the team's prompt names (<team>--<prompt>)"
    ]


def test_team_names_are_unique_across_files(teams_dir):
    write(teams_dir, doc(name="fraud-analytics"))
    write(teams_dir, doc(name="fraud-analytics"), name="payments")
    (teams_dir / "fraud-analytics.yml").write_text(yaml.safe_dump(doc()))
    assert problems(teams_dir) == [
        f"{F}: name: team fraud-analytics is also defined in stacks/teams/fraud-analytics.yml, "
        "stacks/teams/payments.yaml",
        "stacks/teams/fraud-analytics.yml: name: team fraud-analytics is also defined in "
        f"{F}, stacks/teams/payments.yaml",
        "stacks/teams/payments.yaml: name: fraud-analytics does not match the file name payments.yaml: "
        "a team file is named <name>.yaml (rename the file to fraud-analytics.yaml or change name)",
        "stacks/teams/payments.yaml: name: team fraud-analytics is also defined in "
        f"{F}, stacks/teams/fraud-analytics.yml",
    ]


def test_a_vector_collection_has_one_owner(teams_dir):
    write(teams_dir, doc())
    write(teams_dir, doc(name="payments", vectorCollections=["payments", "fraud-cases"], collections=[]))
    assert problems(teams_dir) == [
        "stacks/teams/payments.yaml: vectorCollections[1]: collection fraud-cases is owned by team "
        f"fraud-analytics ({F}) too"
    ]


def test_every_problem_of_every_file_is_reported_in_one_error(teams_dir):
    write(
        teams_dir,
        doc(
            contact="nobody",
            classification="regulated",
            quota={"gpus": 9, "memory": "64GB"},
            gateway={"models": ["qwen-xl"], "monthlyBudgetUsd": 0},
        ),
    )
    write(teams_dir, doc(name="payments", owners=["arn:aws:iam::1:role/x"], vectorCollections=["Bad"]))
    (teams_dir / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(SettingsError) as err:
        load_teams(stack("dev"), teams_dir)
    assert str(err.value).splitlines()[0] == "stacks/teams: 9 problem(s) in the team files:"
    assert [p.split(": ")[:2] for p in err.value.problems] == [
        ["stacks/teams/broken.yaml", "not valid YAML"],
        [F, "contact"],
        [F, "classification"],
        [F, "quota.memory"],
        [F, "quota.gpus"],
        [F, "gateway.models[0]"],
        [F, "gateway.monthlyBudgetUsd"],
        ["stacks/teams/payments.yaml", "owners[0]"],
        ["stacks/teams/payments.yaml", "vectorCollections[0]"],
    ]
    assert all("\n" not in p for p in err.value.problems)


def test_environments_choose_the_stacks_that_include_a_team(teams_dir):
    write(teams_dir, doc(environments=["staging", "prod"], classification="confidential"))
    write(
        teams_dir,
        doc(
            name="everywhere",
            environments=None,
            classification="internal",
            vectorCollections=[],
            collections=[],
        ),
    )
    assert [t.name for t in load_teams(stack("dev"), teams_dir)] == ["everywhere"]
    assert [t.name for t in load_teams(stack("prod"), teams_dir)] == ["everywhere", "fraud-analytics"]
    assert load_teams(stack("prod"), teams_dir)[0].environments is None


def test_a_team_left_out_of_a_stack_is_not_checked_against_it(teams_dir):
    write(teams_dir, doc(environments=["prod"], classification="regulated", quota={"gpus": 32}))
    assert load_teams(stack("dev"), teams_dir) == load_teams(stack("staging"), teams_dir) == []
    (loaded,) = load_teams(stack("prod"), teams_dir)
    assert loaded.quota.gpus == 32, "prod's pools hold 16 + 8 + 8 GPUs"


def test_overrides_merge_over_the_file(teams_dir):
    write(
        teams_dir,
        doc(
            gateway={"tpmLimit": 1000},
            overrides={
                "dev": {"quota": {"gpus": 0}, "gateway": {"models": ["qwen-small"], "tpmLimit": None}},
                "staging": {"gateway": {"models": ["llama-8b", "qwen-small"]}},
            },
        ),
    )
    (dev,) = load_teams(stack("dev"), teams_dir)
    assert (dev.quota.cpu, dev.quota.memory, dev.quota.gpus) == ("16", "64Gi", 0), "mappings merge"
    assert dev.gateway.tpm_limit is None, "null removes a key: its default applies"
    assert dev.gateway.monthly_budget_usd == 500
    (staging,) = load_teams(stack("staging"), teams_dir)
    assert staging.gateway.models == ["llama-8b", "qwen-small"], "lists replace"
    assert (staging.quota.gpus, staging.gateway.tpm_limit) == (2, 1000)
    (prod,) = load_teams(stack("prod"), teams_dir)
    assert prod.gateway.models == ["qwen-small"] and prod.quota.gpus == 2
    assert set(prod.overrides) == {"dev", "staging"}, "the file's overrides are kept as written"


def test_an_override_is_validated_after_merging_and_named_in_the_path(teams_dir):
    write(
        teams_dir,
        doc(
            quota={"gpus": 4},
            overrides={
                "dev": {"quota": {"gpus": 8}, "gateway": {"models": ["llama-70b"]}},
                "prod": {"quota": {"memory": "64GB", "cpus": 2}},
            },
        ),
    )
    assert problems(teams_dir) == [
        f"{F}: overrides.dev.quota.gpus: 8 GPUs are more than the dev stack's GPU pools can hold "
        "(4; maxGpus: a10g-spot 4)",
        f"{F}: overrides.dev.gateway.models[0]: unknown model llama-70b (the dev stack serves qwen-small)",
        f"{F}: overrides.prod.quota.memory: '64GB' must be a Kubernetes memory quantity with a unit, like "
        "64Gi or 512Mi (Ki, Mi, Gi, Ti binary; k, M, G, T decimal; m would mean thousandths of a byte)",
        f"{F}: overrides.prod.quota.cpus: unknown key (check the spelling against docs/teams.md)",
    ], "every environment of the team is validated; the stack rules only against the planned stack"


def test_a_problem_of_the_file_that_an_override_hides_names_its_environments(teams_dir):
    write(
        teams_dir,
        doc(gateway={"monthlyBudgetUsd": 0}, overrides={"dev": {"gateway": {"monthlyBudgetUsd": 50}}}),
    )
    assert problems(teams_dir, "prod") == [
        f"{F}: gateway.monthlyBudgetUsd: Input should be greater than 0 (got 0) (in prod, staging)"
    ]


def test_models_of_external_providers_can_be_called(tmp_path):
    provider = {"name": "openai", "kind": "openai", "apiKeySecret": "k", "models": [{"name": "gpt-4o-mini"}]}
    settings = from_config(
        {
            "llmops:environment": "test",
            "llmops:dataClassification": "internal",
            "aws:region": "eu-west-1",
            "llmops:gateway": {"externalProviders": [provider]},
        }
    )
    write(tmp_path, doc(classification="internal", environments=None, gateway={"models": ["gpt-4o-mini"]}))
    with pytest.raises(SettingsError) as err:
        load_teams(settings, tmp_path)
    assert [p.split(": ", 1)[1] for p in err.value.problems] == [
        "quota.gpus: 2 GPUs are more than the test stack's GPU pools can hold (0; maxGpus: it has none)"
    ], "no stack files beside the directory: environment names are not checked"
    write(
        tmp_path,
        doc(
            classification="internal",
            environments=None,
            gateway={"models": ["gpt-4o-mini"]},
            quota={"gpus": 0},
        ),
    )
    (loaded,) = load_teams(settings, tmp_path)
    assert loaded.gateway.models == ["gpt-4o-mini"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x00\x01\x02binary", "a binary file, not a team file (it contains NUL bytes)"),
        (b"name: [unclosed\n", "not valid YAML: line 2, column 1:"),
        (b"\xff\xfe", "UTF-16 text; save the team file as UTF-8"),
        (b"", "a team file is a mapping (name, owners, contact, ...), not an empty file"),
        (b"- a\n- b\n", "a team file is a mapping (name, owners, contact, ...), not a list"),
    ],
)
def test_unreadable_files_give_one_line_each(teams_dir, content, expected):
    (teams_dir / "bad.yaml").write_bytes(content)
    write(teams_dir, doc(contact="nobody"))
    found = problems(teams_dir)
    assert len(found) == 2 and all("\n" not in p for p in found)
    assert found[0].startswith(f"stacks/teams/bad.yaml: {expected}"), found[0]
    assert found[1].startswith(f"{F}: contact:")


def test_quantities():
    quota = team.TeamQuota.model_validate({"cpu": 16, "memory": "512Mi"})
    assert (quota.cpu, quota.cpu_millicores, quota.memory_bytes, quota.gpus) == ("16", 16000, 512 << 20, 0)
    assert team.TeamQuota(cpu="500m", memory="1G").cpu_millicores == 500
    assert team.cpu_millicores("0.5") == 500 and team.memory_bytes("64Gi") == 64 << 30
    for cpu, memory in (("0", "1Gi"), ("16 cores", "1Gi"), ("1", "512m"), ("1", "0Gi"), ("1", "64")):
        with pytest.raises(ValueError):
            team.TeamQuota(cpu=cpu, memory=memory)


@pytest.mark.parametrize(
    ("subject", "ok"),
    [
        ("repo:acme/fraud-prompts:ref:refs/heads/main", True),
        ("repo:acme/fraud-prompts:environment:*", True),
        ("repo:acme/fraud-prompts:*", True),
        ("*", False),
        ("repo:*", False),
        ("repo:acme/*:ref:refs/heads/main", False),
        ("repo:*/fraud-prompts:ref:refs/heads/main", False),
        ("acme/fraud-prompts", False),
    ],
)
def test_github_subjects(subject, ok):
    if ok:
        assert team.TeamPrompts(github_subjects=[subject]).github_subjects == [subject]
    else:
        with pytest.raises(ValueError, match="must name one repository"):
            team.TeamPrompts(github_subjects=[subject])


@pytest.mark.parametrize("contact", ["#fraud-alerts", "#fraud_alerts2", "fraud-oncall@example.com"])
def test_contacts(contact):
    assert TeamSettings.model_validate(doc(contact=contact)).contact == contact


def test_without_a_stack_only_the_files_own_rules_run():
    loaded = TeamSettings.model_validate(doc(classification="regulated", quota={"gpus": 100}, name="x"))
    assert (loaded.classification, loaded.quota.gpus, loaded.includes("dev")) == ("regulated", 100, True)


def test_team_reference_in_docs_matches_the_models():
    text = (PROJECT_DIR / "docs" / "teams.md").read_text()
    begin, end = text.index(reference.TEAM_BEGIN), text.index(reference.TEAM_END) + len(reference.TEAM_END)
    assert text[begin:end] == reference.team_table(), (
        "run: python -m llmops.settings.reference --write docs/teams.md"
    )
    for name, field in TeamSettings.model_fields.items():
        assert field.description, f"{name} needs a docstring: it feeds docs/teams.md"


def test_a_team_with_a_file_has_no_second_budget_in_the_stack(teams_dir):
    # Pulumi.prod.yaml's costAlarms.teamBudgets lists payments: two sources of its alarms.
    write(teams_dir, doc(name="payments", vectorCollections=[]))
    assert problems(teams_dir, "prod") == [
        "stacks/teams/payments.yaml: name: the prod stack's costAlarms.teamBudgets also has team "
        "payments; a team file's gateway.monthlyBudgetUsd sets the team's alarms: remove that "
        "teamBudgets entry"
    ]
