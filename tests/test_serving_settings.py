"""Models, observability and vector DB settings: defaults, and every rule failing clearly."""

from pathlib import Path

import pytest

from llmops.settings import SettingsError, from_config, load_stack_file
from llmops.versions import QDRANT_IMAGE, VLLM_IMAGE

STACKS = Path(__file__).resolve().parent.parent / "stacks"
POOLS = [
    {"name": "l4-spot", "instanceFamilies": ["g6"], "capacityTypes": ["spot"], "maxGpus": 8},
    {"name": "l40s", "instanceTypes": ["g6e.xlarge"], "maxGpus": 4},
]
MODEL = {"name": "chat", "s3Prefix": "org/chat", "pool": "l4-spot", "tokensPerSecond": 100}


def settings(models=None, **extra):
    config = {
        "aws:region": "us-east-1",  # offers every type of POOLS (llmops/pricing/us-east-1.yaml)
        "llmops:environment": "test",
        "llmops:dataClassification": "internal",
        "llmops:gpuPools": POOLS,
        "llmops:models": models if models is not None else [MODEL],
    }
    config.update({f"llmops:{k}": v for k, v in extra.items()})
    return from_config(config, source="test")


def problems(models=None, **extra) -> list[str]:
    with pytest.raises(SettingsError) as err:
        settings(models, **extra)
    return err.value.problems


def test_model_defaults():
    model = settings().models[0]
    assert model.gpus == 1 and model.min_replicas == 1 and model.max_replicas == 2
    assert model.image == VLLM_IMAGE and model.served == "chat"
    assert model.s3_prefix == "org/chat/"  # normalised to a directory prefix
    assert (model.replica_cpu, model.replica_memory_gib) == (3, 12)


def test_observability_and_vector_db_defaults():
    s = settings()
    assert s.observability.metrics_source == "amp"
    assert s.vector_db.image == QDRANT_IMAGE and s.vector_db.replication_factor == 1
    assert s.serving.allow_hugging_face_downloads is False


def test_fails_when_gpu_count_does_not_fit_the_pool():
    found = problems([{**MODEL, "pool": "l40s", "gpus": 4}])
    assert len(found) == 1
    assert found[0].startswith(
        "llmops:models[0].gpus: 4 GPUs per replica do not fit any instance of pool l40s"
    )
    assert "g6e.xlarge (1)" in found[0]


def test_fails_when_pool_is_unknown():
    found = problems([MODEL, {**MODEL, "name": "other", "pool": "h100"}])
    assert found == ["llmops:models[1].pool: 'h100' is not a GPU pool of this stack (l4-spot, l40s)"]


def test_fails_when_min_above_max_and_names_repeat():
    found = problems([{**MODEL, "minReplicas": 3, "maxReplicas": 2}])
    assert found == ["llmops:models[0]: minReplicas (3) must not be above maxReplicas (2)"]
    found = problems([MODEL, MODEL])
    assert found == ["llmops:models[1].name: 'chat' is used by another model"]


def test_fails_when_replicas_exceed_the_pool_limit():
    found = problems([{**MODEL, "pool": "l40s", "maxReplicas": 5}])
    assert found[0].startswith("llmops:models[0].maxReplicas: 5 replicas x 1 GPUs exceed pool l40s")


def test_every_problem_is_reported_at_once():
    found = problems(
        [{**MODEL, "pool": "nope"}, {**MODEL, "name": "big", "gpus": 8, "pool": "l40s"}],
    )
    assert [p.split(":")[1].split(" ")[0] for p in found] == ["models[0].pool", "models[1].gpus"]


def test_tensor_parallel_sizes_and_managed_flags():
    assert problems([{**MODEL, "gpus": 3}]) == [
        "llmops:models[0].gpus: 3 GPUs: tensor parallelism needs 1, 2, 4 or 8 GPUs per replica"
    ]
    found = problems([{**MODEL, "extraArgs": ["--tensor-parallel-size=2", "--enforce-eager"]}])
    assert found[0].startswith("llmops:models[0].extraArgs: --tensor-parallel-size=2: set by the component")


def test_hugging_face_needs_the_stack_to_allow_egress():
    hf = {**MODEL, "s3Prefix": None, "huggingFaceId": "Qwen/Qwen2.5-1.5B-Instruct"}
    assert "downloads from Hugging Face are off" in problems([hf])[0]
    allowed = settings([hf], serving={"allowHuggingFaceDownloads": True})
    assert allowed.models[0].hugging_face_id == "Qwen/Qwen2.5-1.5B-Instruct"
    no_nat = problems([hf], serving={"allowHuggingFaceDownloads": True}, network={"natGateways": "none"})
    assert "no NAT gateways" in no_nat[0]


def test_weights_source_is_exactly_one_and_well_formed():
    assert problems([{**MODEL, "s3Prefix": None}]) == [
        "llmops:models[0]: set exactly one of s3Prefix or huggingFaceId"
    ]
    assert "no s3://" in problems([{**MODEL, "s3Prefix": "s3://bucket/x"}])[0]


def test_images_must_be_pinned():
    assert "must be pinned" in problems([{**MODEL, "image": "vllm/vllm-openai:latest"}])[0]
    assert "must be pinned" in problems(vectorDb={"image": "qdrant/qdrant"})[0]


def test_vector_db_replication_and_schedule():
    assert problems(vectorDb={"snapshotSchedule": "daily"}) == [
        "llmops:vectorDb.snapshotSchedule: 'daily' must be a 5-field cron schedule like '15 2 * * *'"
    ]
    assert problems(vectorDb={"replicas": 1, "replicationFactor": 2}) == [
        "llmops:vectorDb: replicationFactor (2) must not be above replicas (1)"
    ]


def test_vector_db_memory_comes_in_128_mib_steps_from_half_a_gib():
    assert settings(vectorDb={"memoryGib": 0.5}).vector_db.memory_gib == 0.5
    assert problems(vectorDb={"memoryGib": 0.25})[0].startswith("llmops:vectorDb.memoryGib: ")
    assert problems(vectorDb={"memoryGib": 0.3})[0].startswith("llmops:vectorDb.memoryGib: ")


def test_qdrant_requests_the_memory_its_setting_names(plans):
    """dev's memoryGib 0.5 reaches the StatefulSet as 512Mi, requested and limited alike."""
    (sts,) = [
        r for r in plans["dev"].plan.of_type("kubernetes:apps/v1:StatefulSet") if "vectordb" in r["name"]
    ]
    (qdrant,) = sts["inputs"]["spec"]["template"]["spec"]["containers"]
    assert qdrant["resources"]["requests"]["memory"] == qdrant["resources"]["limits"]["memory"] == "512Mi"


def test_shipped_stacks():
    dev, staging, prod = (load_stack_file(STACKS / f"Pulumi.{s}.yaml") for s in ("dev", "staging", "prod"))
    assert len(dev.models) == 1 and dev.models[0].min_replicas == 0  # scales to zero
    assert len(staging.models) >= 1
    assert len(prod.models) >= 2 and len({m.pool for m in prod.models}) >= 2
    assert prod.vector_db.replication_factor >= 2


def test_plan_refuses_a_stack_whose_model_does_not_fit(tmp_path, capsys):
    import yaml

    from llmops.cli import main

    doc = yaml.safe_load((STACKS / "Pulumi.prod.yaml").read_text())
    doc["config"]["llmops:models"][1]["gpus"] = 8  # g6.48xlarge holds 8, but 4 replicas x 8 > maxGpus 8
    doc["config"]["llmops:models"].append({**doc["config"]["llmops:models"][1], "name": "x", "pool": "a100"})
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["plan", str(path), "--build-dir", str(tmp_path / "build")]) == 2
    err = capsys.readouterr().err
    assert "llmops:models[1].maxReplicas: 4 replicas x 8 GPUs exceed pool l4-spot's maxGpus (8)" in err
    assert "llmops:models[2].pool: 'a100' is not a GPU pool of this stack" in err
    assert "models[0]" not in err
    assert "Traceback" not in err and not (tmp_path / "build").exists()
