"""The settings schema: secure defaults, and every mistake reported with its path."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from llmops.settings import SettingsError, StackSettings, from_config

MINIMAL = {"llmops:environment": "test", "llmops:dataClassification": "internal", "aws:region": "eu-west-1"}


def settings(**extra) -> StackSettings:
    return from_config({**MINIMAL, **{f"llmops:{k}": v for k, v in extra.items()}})


def problems(**extra) -> list[str]:
    with pytest.raises(SettingsError) as err:
        settings(**extra)
    return err.value.problems


def test_defaults_are_secure():
    s = settings()
    assert s.cluster.endpoint_public_access is False
    assert s.cluster.public_access_cidrs == []
    assert s.deletion_protection is True
    assert s.network.nat_gateways == "perAz"
    assert s.network.az_count == 3
    assert {"sts", "ecr.api", "ecr.dkr", "logs"} <= set(s.network.interface_endpoints)
    assert s.gpu_nodes.ami_family == "Bottlerocket"
    assert s.gpu_pools == []


def test_default_tags_carry_classification_and_owner():
    tags = settings(owner="ml-team", costCenter="cc-42", tags={"project": "x"}).default_tags()
    assert tags == {
        "project": "x",
        "environment": "test",
        "data-classification": "internal",
        "owner": "ml-team",
        "cost-center": "cc-42",
        "managed-by": "pulumi",
    }


def test_fails_when_region_outside_allowlist():
    assert problems(allowedRegions=["me-central-1"]) == [
        "aws:region: eu-west-1 is outside allowedRegions (me-central-1): data residency"
    ]


def test_fails_when_public_endpoint_has_no_allowlist():
    (problem,) = problems(cluster={"endpointPublicAccess": True})
    assert problem.startswith("llmops:cluster: endpointPublicAccess needs publicAccessCidrs")


def test_fails_when_endpoint_open_to_the_world():
    (problem,) = problems(cluster={"endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]})
    assert problem.startswith("llmops:cluster.publicAccessCidrs: 0.0.0.0/0 opens the API")


@pytest.mark.parametrize(
    ("pool", "expected"),
    [
        (
            {"name": "p", "instanceFamilies": ["g6"], "maxGpus": 0},
            "llmops:gpuPools[0].maxGpus: Input should be greater",
        ),
        (
            {"name": "p", "instanceFamilies": ["m7i"], "maxGpus": 2},
            "llmops:gpuPools[0]: m7i: not a known GPU",
        ),
        (
            {"name": "p", "maxGpus": 2},
            "llmops:gpuPools[0]: set exactly one of instanceFamilies or instanceTypes",
        ),
        (
            {"name": "p", "instanceTypes": ["p5.48xlarge"], "maxGpus": 4},
            "llmops:gpuPools[0]: maxGpus (4) is below",
        ),
        (
            {"name": "P_1", "instanceFamilies": ["g6"], "maxGpus": 1},
            "llmops:gpuPools[0].name: 'P_1' must be a DNS",
        ),
        (
            {"name": "p", "instanceFamilies": ["g6"], "maxGpus": 1, "capacityTypes": ["reserved"]},
            "llmops:gpuPools[0]: capacityTypes includes reserved",
        ),
        (
            {"name": "p", "instanceFamilies": ["g6"], "maxGpus": 1, "gpus": 2},
            "llmops:gpuPools[0].gpus: unknown setting",
        ),
    ],
)
def test_fails_on_bad_gpu_pool(pool, expected):
    (problem,) = problems(gpuPools=[pool])
    assert problem.startswith(expected), problem


def test_fails_on_duplicate_pool_names():
    pool = {"name": "a", "instanceFamilies": ["g5"], "maxGpus": 1}  # offered in eu-west-1
    assert problems(gpuPools=[pool, pool]) == ["llmops:gpuPools: pool names must be unique; repeated: a"]


def test_fails_when_snapshot_given_for_al2023():
    (problem,) = problems(gpuNodes={"amiFamily": "AL2023", "dataVolumeSnapshotId": "snap-0123"})
    assert "needs amiFamily Bottlerocket" in problem


def test_structured_values_arrive_as_json_strings_from_pulumi():
    s = from_config({**MINIMAL, "llmops:network": '{"azCount": 2, "natGateways": "single"}'})
    assert (s.network.az_count, s.network.nat_gateways) == (2, "single")


BROKEN_STACK = textwrap.dedent(
    """\
    config:
      aws:region: eu-west-1
      llmops:environment: prod
      llmops:dataClassification: regulated
      llmops:allowedRegions: [me-central-1]
      llmops:colour: blue
      llmops:network:
        azCount: three
      llmops:cluster:
        systemNodes: {minSize: 5, maxSize: 2}
      llmops:gpuPools:
        - name: big
          instanceTypes: [g6e.12xlarge]
          maxGpus: 0
    """
)


def test_cli_lists_every_mistake_with_exit_2(tmp_path):
    path = tmp_path / "Pulumi.broken.yaml"
    path.write_text(BROKEN_STACK)
    proc = subprocess.run(
        [sys.executable, "-m", "llmops", "plan", str(path), "--build-dir", str(tmp_path / "build")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line.strip() for line in proc.stderr.splitlines()[1:]]
    assert lines == [
        "aws:region: eu-west-1 is outside allowedRegions (me-central-1): data residency",
        "llmops:network.azCount: Input should be a valid integer, unable to parse string as an integer "
        "(got 'three')",
        "llmops:cluster.systemNodes: minSize (5) must not be above maxSize (2)",
        "llmops:gpuPools[0].maxGpus: Input should be greater than or equal to 1 (got 0)",
        "llmops:colour: unknown setting (check the spelling against the README's settings table)",
    ]
    assert "5 problem(s)" in proc.stderr.splitlines()[0]
    assert not (tmp_path / "build").exists(), "nothing may be written for invalid settings"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plan", "nosuch"], "no stack 'nosuch': choose one of dev, prod, staging"),
        (["plan", "missing/Pulumi.x.yaml"], "missing/Pulumi.x.yaml: no such stack file"),
        (["plan"], "the following arguments are required: stack"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_cli_usage_errors_exit_2(argv, message):
    proc = subprocess.run([sys.executable, "-m", "llmops", *argv], capture_output=True, text=True)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_rejects_non_yaml_stack_file(tmp_path):
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text("config: [unclosed\n")
    proc = subprocess.run([sys.executable, "-m", "llmops", "plan", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "not valid YAML" in proc.stderr and "Traceback" not in proc.stderr


POOL = {"name": "a", "instanceFamilies": ["g5"], "maxGpus": 4}  # offered in eu-west-1
MODEL = {"name": "m", "s3Prefix": "org/m/", "pool": "a", "tokensPerSecond": 100}


def test_field_and_cross_field_problems_are_reported_together():
    found = problems(
        gpuPools=[{**POOL, "maxGpus": 0}, {**POOL, "name": "b"}],
        models=[
            {**MODEL, "pool": "nope"},
            {**MODEL, "name": "on-the-bad-pool"},
            {**MODEL, "name": "n", "pool": "b"},
        ],
    )
    assert found == [
        "llmops:gpuPools[0].maxGpus: Input should be greater than or equal to 1 (got 0)",
        "llmops:models[0].pool: 'nope' is not a GPU pool of this stack (b, a)",
    ], "a model on an invalid pool waits for the pool's fix; a model on an unknown pool does not"


def test_cross_field_rules_skip_invalid_models_and_keep_the_indexes():
    found = problems(
        gpuPools=[POOL],
        models=[
            {**MODEL, "gpus": 3},
            {**MODEL, "name": "far", "pool": "b"},
            {**MODEL, "name": "big", "gpus": 8},
        ],
        network={"cidr": "nonsense"},
    )
    assert [p.split(": ")[0] for p in found] == [
        "llmops:network.cidr",
        "llmops:models[0].gpus",
        "llmops:models[1].pool",
        "llmops:models[2].maxReplicas",
    ]
    assert "'b' is not a GPU pool" in found[2] and "2 replicas x 8 GPUs exceed pool a's maxGpus" in found[3]


def test_hugging_face_rules_wait_for_valid_serving_and_network_settings():
    hf = {**MODEL, "s3Prefix": None, "huggingFaceId": "Qwen/Qwen2.5-1.5B-Instruct"}
    (found,) = problems(gpuPools=[POOL], models=[hf], serving={"allowHuggingFaceDownloads": "perhaps"})
    assert found.startswith("llmops:serving.allowHuggingFaceDownloads: Input should be a valid boolean")
    found = problems(gpuPools=[POOL], models=[hf], owner=7)
    assert found[0].startswith("llmops:owner:") and found[1].startswith(
        "llmops:models[0].huggingFaceId: downloads"
    )


def test_gateway_rules_are_reported_with_gateway_field_problems():
    found = problems(dataClassification="confidential", gateway={"numRetries": 99, "piiGuardrail": False})
    assert found == [
        "llmops:gateway.numRetries: Input should be less than or equal to 10 (got 99)",
        "llmops:gateway: piiGuardrail: cannot be false in a confidential stack (masking is mandatory)",
    ]


def test_each_gateway_rule_is_its_own_problem_beside_other_settings_problems():
    found = problems(
        dataClassification="regulated",
        gateway={"piiGuardrail": False, "messageLogging": True},
        gpuPools=[{**POOL, "maxGpus": 0}],
    )
    assert found == [
        "llmops:gpuPools[0].maxGpus: Input should be greater than or equal to 1 (got 0)",
        "llmops:gateway: piiGuardrail: cannot be false in a regulated stack (masking is mandatory)",
        "llmops:gateway: messageLogging: cannot be true in a regulated stack (prompts must not reach logs)",
    ]


def test_a_gateway_rule_about_an_invalid_setting_is_left_to_that_setting():
    openai = {"name": "openai", "kind": "openai", "apiKeySecret": "k", "models": [{"name": "gpt"}]}
    found = problems(
        dataClassification="regulated",
        gateway={"externalProviders": [openai], "allowExternalProviders": "maybe"},
    )
    assert found == [
        "llmops:gateway.allowExternalProviders: Input should be a valid boolean, unable to interpret input "
        "(got 'maybe')"
    ]


def test_no_cross_field_rule_runs_on_an_unknown_classification():
    found = problems(dataClassification="secret", gateway={"piiGuardrail": False})
    assert len(found) == 1 and found[0].startswith("llmops:dataClassification: Input should be")
