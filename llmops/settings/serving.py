"""Settings of self-hosted models (vLLM), platform observability and the vector database.

Models are checked against the stack's GPU pools by `check_models`, which the root settings
call on whatever validated (also when other settings are invalid), so its problems come with
every field problem, each with its path (`llmops:models[1].gpus: ...`), all at once.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from llmops import versions
from llmops.settings.base import Settings, dns_label
from llmops.settings.infra import ControllerRequests, GpuPool

HUGGING_FACE_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
S3_PREFIX = re.compile(r"^[A-Za-z0-9][\w.!*'()/-]*$")
CRON = re.compile(r"^(\S+\s+){4}\S+$")
# Tensor parallelism splits attention heads evenly over GPUs: model head counts are powers of two
# times small factors, so vLLM deployments use 1, 2, 4 or 8 GPUs (one node at most).
TENSOR_PARALLEL_SIZES = (1, 2, 4, 8)
# vLLM flags the component sets from the model's settings; extraArgs must not fight them.
MANAGED_FLAGS = (
    "--model",
    "--served-model-name",
    "--tensor-parallel-size",
    "--max-model-len",
    "--load-format",
    "--port",
    "--host",
    "--api-key",
    "--download-dir",
)
# Defaults per GPU that fit the smallest instance of every GPU family in llmops/instances.py
# (g5/g6.xlarge: 4 vCPUs and 16 GiB, less what the kubelet reserves).
CPU_PER_GPU = 3
MEMORY_GIB_PER_GPU = 12


def _pinned_image(value: str) -> str:
    name, _, tag = value.rpartition(":")
    if "@sha256:" not in value and (not name or "/" in tag or tag in ("", "latest")):
        raise ValueError(f"{value!r} must be pinned to a version tag or digest (not latest)")
    return value


class ModelSettings(Settings):
    name: Annotated[str, AfterValidator(dns_label)]
    """The name clients ask the gateway for; also the Deployment, Service and S3 role name.
    Renaming replaces the model's resources."""
    s3_prefix: str | None = None
    """Key prefix of the weights in the platform's model-artifacts bucket (safetensors and the
    tokenizer, as `huggingface-cli download` writes them), e.g. `meta-llama/Llama-3.1-8B-Instruct/`.
    Weights are streamed from S3 straight to GPU memory. Set this or huggingFaceId."""
    hugging_face_id: str | None = None
    """A Hugging Face model id (org/name), downloaded at every start. Only where
    serving.allowHuggingFaceDownloads is true: the pods then need internet egress."""
    served_name: str | None = None
    """vLLM's --served-model-name, the model name the gateway sends. Defaults to name."""
    pool: Annotated[str, AfterValidator(dns_label)]
    """The GPU pool (gpuPools[].name) the replicas run on."""
    gpus: int = 1
    """GPUs per replica; vLLM's tensor-parallel size follows. 1, 2, 4 or 8, within one instance."""
    max_model_len: int = Field(8192, ge=256)
    """Longest prompt plus completion in tokens; bounds the KV cache each sequence may take."""
    min_replicas: int = Field(1, ge=0)
    """Replicas kept running. 0 scales to zero when idle: no GPU cost, but the first request
    after a quiet period waits for a node and the weights (minutes); the gateway falls back
    meanwhile."""
    max_replicas: int = Field(2, ge=1)
    """Upper bound of queue-depth autoscaling."""
    target_waiting_requests: int = Field(5, ge=1)
    """Scale out when more than this many requests wait in a replica's queue
    (vllm:num_requests_waiting, averaged over replicas)."""
    scale_to_zero_after_seconds: int = Field(900, ge=60)
    """Quiet period before the last replica goes away (models with minReplicas 0)."""
    extra_args: list[str] = Field(default_factory=list)
    """Further vLLM flags, e.g. ["--gpu-memory-utilization", "0.92"]. Flags the component sets
    itself (model, served name, tensor parallel, max length, load format, port) are refused."""
    image: Annotated[str, AfterValidator(_pinned_image)] = versions.VLLM_IMAGE
    """The vLLM server image, pinned. Defaults to the one in llmops/versions.py."""
    cpu: float | None = Field(None, gt=0)
    """vCPUs requested and allowed per replica. Defaults to 3 per GPU."""
    memory_gib: int | None = Field(None, ge=4)
    """Memory per replica (requested = limit), including the in-memory /dev/shm. Defaults to
    12 GiB per GPU."""
    tokens_per_second: float = Field(gt=0)
    """Generated tokens per second one replica sustains at your batch sizes (measure with
    `vllm bench serve`). The gateway turns the replica's GPU-hour price into per-token prices
    with it, so no default is assumed."""

    @field_validator("s3_prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith(("s3://", "/")) or not S3_PREFIX.match(value) or "//" in value:
            raise ValueError(
                f"{value!r} must be a key prefix inside the model-artifacts bucket, like "
                "meta-llama/Llama-3.1-8B-Instruct/ (no s3:// and no bucket name)"
            )
        return value if value.endswith("/") else value + "/"

    @field_validator("hugging_face_id")
    @classmethod
    def _hf(cls, value: str | None) -> str | None:
        if value is not None and not HUGGING_FACE_ID.match(value):
            raise ValueError(f"{value!r} must be a Hugging Face model id like Qwen/Qwen2.5-1.5B-Instruct")
        return value

    @field_validator("gpus")
    @classmethod
    def _gpus(cls, value: int) -> int:
        if value not in TENSOR_PARALLEL_SIZES:
            raise ValueError(f"{value} GPUs: tensor parallelism needs 1, 2, 4 or 8 GPUs per replica")
        return value

    @field_validator("extra_args")
    @classmethod
    def _extra(cls, value: list[str]) -> list[str]:
        managed = [a for a in value if a.split("=", 1)[0] in MANAGED_FLAGS]
        if managed:
            raise ValueError(
                f"{', '.join(managed)}: set by the component from the model's settings; remove them"
            )
        return value

    @model_validator(mode="after")
    def _shape(self):
        if (self.s3_prefix is None) == (self.hugging_face_id is None):
            raise ValueError("set exactly one of s3Prefix or huggingFaceId")
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas ({self.min_replicas}) must not be above maxReplicas ({self.max_replicas})"
            )
        return self

    @property
    def served(self) -> str:
        return self.served_name or self.name

    @property
    def replica_cpu(self) -> float:
        return self.cpu if self.cpu is not None else CPU_PER_GPU * self.gpus

    @property
    def replica_memory_gib(self) -> int:
        return self.memory_gib if self.memory_gib is not None else MEMORY_GIB_PER_GPU * self.gpus


class ServingSettings(Settings):
    allow_hugging_face_downloads: bool = False
    """Models may name a huggingFaceId and download weights from the internet at start. Off:
    weights come only from the platform's own S3 bucket (reviewed, no egress needed)."""


class ObservabilitySettings(Settings):
    metrics_source: Literal["amp", "prometheus"] = "amp"
    """Where metrics go and where autoscaling reads them: amp (Amazon Managed Service for
    Prometheus with an AWS-managed scraper) or prometheus (an in-cluster Prometheus, for regions
    without AMP)."""
    scrape_interval_seconds: int = Field(30, ge=10, le=300)
    """How often vLLM, DCGM exporter and Karpenter metrics are scraped; autoscaling reacts no
    faster than this."""
    prometheus_retention_days: int = Field(15, ge=1)
    """Retention of the in-cluster Prometheus (metricsSource prometheus). AMP keeps 150 days."""
    prometheus_volume_gib: int = Field(50, ge=10)
    """Encrypted gp3 volume of the in-cluster Prometheus."""
    prometheus_server: ControllerRequests = ControllerRequests(
        cpu="500m", memory_mib=2048, cpu_limit="2", memory_limit_mib=2048
    )
    """Requests and limits of the in-cluster Prometheus server (on the system nodes); its memory
    grows with the active series (about 1,500 in an idle dev stack)."""
    container_insights: bool = True
    """Install the CloudWatch observability add-on: Container Insights metrics and container
    logs in CloudWatch."""


# Qdrant takes most names; these also work as a CloudWatch dimension value, an alarm and JWT claim.
COLLECTION_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# Qdrant's distance functions (qdrant-client models.Distance values).
Distance = Literal["Cosine", "Dot", "Euclid", "Manhattan"]
# Exporter runs evenly spaced in the hour (cron */N), so an alarm period can match the interval.
EXPORTER_INTERVALS = (5, 10, 15, 20, 30, 60)


def collection_name(value: str) -> str:
    if not COLLECTION_NAME.match(value):
        raise ValueError(
            f"{value!r} must be a collection name of lower-case letters, digits, '_' and '-' "
            "(at most 63, starting with a letter or digit)"
        )
    return value


def _model_name(value: str) -> str:
    if not value.strip() or value != value.strip():
        raise ValueError(f"{value!r} must name the embedding model, without surrounding spaces")
    return value


class CollectionSpec(Settings):
    """A Qdrant collection the platform creates and watches (docs/retrieval.md)."""

    name: Annotated[str, AfterValidator(collection_name)]
    """The collection's name in Qdrant and its Collection dimension in CloudWatch."""
    vector_size: int = Field(ge=1, le=65535)
    """Dimensions of the embedding model's vectors (e.g. 1024); Qdrant's default limit is 65535."""
    distance: Distance = "Cosine"
    """Qdrant's distance function for the vectors."""
    embedding_model: Annotated[str, AfterValidator(_model_name)]
    """The model that embeds the collection's points (collection metadata `embedding_model`); points
    embedded with another count as drift."""
    max_age_hours: float = Field(gt=0, le=8760, allow_inf_nan=False)
    """Freshness objective: the newest `indexed_at` may be at most this old; older points count as
    stale. The collection's alarm fires above it."""


class CollectionSettings(CollectionSpec):
    owner_team: Annotated[str, AfterValidator(dns_label)] | None = None
    """The team that owns the collection (metadata `owner_team`). A team with a file in stacks/teams/
    gets the collection in its Qdrant token and the freshness alarm on its topic. Unset: the platform's."""


def _unique_collections(value: list[CollectionSpec]) -> list[CollectionSpec]:
    names = [c.name for c in value]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"collection names must be unique; repeated: {', '.join(dupes)}")
    return value


class VectorDbSettings(Settings):
    replicas: int = Field(1, ge=1, le=9)
    """Qdrant nodes (StatefulSet replicas). 3 gives a quorum that survives one node."""
    replication_factor: int = Field(1, ge=1)
    """Copies of each shard for new collections; at most replicas. 2 or more survives a node."""
    volume_gib: int = Field(50, ge=10)
    """Encrypted gp3 volume per node; kept when the StatefulSet or the claim is deleted."""
    cpu: float = Field(1, gt=0)
    """vCPUs requested and allowed per node."""
    memory_gib: float = Field(4, ge=0.5, multiple_of=0.125)
    """Memory per node (requested = limit), in steps of 128 MiB. Qdrant holds vectors in memory
    unless a collection keeps them on disk: about points x dimensions x 4 bytes x 1.5 (Qdrant's
    capacity-planning rule) above its own ~100 MiB."""
    image: Annotated[str, AfterValidator(_pinned_image)] = versions.QDRANT_IMAGE
    snapshot_schedule: str = "15 2 * * *"
    """Cron schedule (UTC) of the snapshot CronJob uploading collection snapshots to S3."""
    snapshot_retention_days: int = Field(30, ge=1)
    """Snapshots older than this are expired from the backups bucket (noncurrent versions too)."""
    collections: Annotated[list[CollectionSettings], AfterValidator(_unique_collections)] = Field(
        default_factory=list
    )
    """Collections the platform creates (vector size, distance, datetime indexes on `indexed_at` and
    `source_updated_at`) and whose freshness it measures, each with an alarm at its maxAgeHours.
    Team files may declare more (`collections`). Any collection: the freshness exporter runs."""
    freshness_interval_minutes: int = 15
    """How often the freshness exporter measures the collections (5, 10, 15, 20, 30 or 60); the
    alarms' period. An alarm fires after two periods over the objective or without data."""

    @field_validator("snapshot_schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        if not CRON.match(value.strip()):
            raise ValueError(f"{value!r} must be a 5-field cron schedule like '15 2 * * *'")
        return value

    @field_validator("freshness_interval_minutes")
    @classmethod
    def _interval(cls, value: int) -> int:
        if value not in EXPORTER_INTERVALS:
            raise ValueError(f"{value} must be one of {', '.join(map(str, EXPORTER_INTERVALS))} (minutes)")
        return value

    @model_validator(mode="after")
    def _replication(self):
        if self.replication_factor > self.replicas:
            raise ValueError(
                f"replicationFactor ({self.replication_factor}) must not be above replicas ({self.replicas})"
            )
        return self


def _problem(loc: tuple, message: str, value) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError("value_error", message), loc=loc, input=value)


def check_models(
    models: Sequence[ModelSettings | None],
    pools: Sequence[GpuPool],
    serving: ServingSettings | None,
    egress: bool | None,
    invalid_pools: Collection[str] = (),
) -> list[InitErrorDetails]:
    """Cross-checks of models against the stack: every broken rule, each at its path.

    Also runs on a stack with invalid settings, on the parts that are valid: a model that is
    invalid itself is None (skipped, the others keep their index); serving or egress is None
    when those settings are invalid (the Hugging Face checks are skipped); invalid_pools names
    the pools that exist but are invalid (their models are not checked against them)."""
    problems: list[InitErrorDetails] = []
    by_name = {p.name: p for p in pools}
    known = ", ".join([*by_name, *(n for n in invalid_pools if n not in by_name)]) or "none are configured"
    seen: set[str] = set()
    for i, model in enumerate(models):
        if model is None:
            continue
        if model.name in seen:
            problems.append(
                _problem(("models", i, "name"), f"{model.name!r} is used by another model", model.name)
            )
        seen.add(model.name)
        if model.hugging_face_id and serving is not None and not serving.allow_hugging_face_downloads:
            problems.append(
                _problem(
                    ("models", i, "huggingFaceId"),
                    "downloads from Hugging Face are off in this stack: upload the weights to the "
                    "model-artifacts bucket and set s3Prefix, or set serving.allowHuggingFaceDownloads",
                    model.hugging_face_id,
                )
            )
        elif model.hugging_face_id and serving is not None and egress is False:
            problems.append(
                _problem(
                    ("models", i, "huggingFaceId"),
                    "the network has no NAT gateways (natGateways: none), so pods cannot reach "
                    "Hugging Face: use s3Prefix",
                    model.hugging_face_id,
                )
            )
        pool = by_name.get(model.pool)
        if pool is None and model.pool in invalid_pools:
            continue  # the pool's own problems are reported; fitting the model to it waits
        if pool is None:
            problems.append(
                _problem(
                    ("models", i, "pool"),
                    f"{model.pool!r} is not a GPU pool of this stack ({known})",
                    model.pool,
                )
            )
            continue
        largest = max(t.gpus for t in pool.types())
        if model.gpus > largest:
            fits = ", ".join(f"{t.name} ({t.gpus})" for t in pool.types())
            problems.append(
                _problem(
                    ("models", i, "gpus"),
                    f"{model.gpus} GPUs per replica do not fit any instance of pool {pool.name} "
                    f"({fits}): lower gpus or use a pool with larger instances",
                    model.gpus,
                )
            )
        elif model.gpus * model.max_replicas > pool.max_gpus:
            problems.append(
                _problem(
                    ("models", i, "maxReplicas"),
                    f"{model.max_replicas} replicas x {model.gpus} GPUs exceed pool {pool.name}'s "
                    f"maxGpus ({pool.max_gpus}): lower maxReplicas or raise the pool's maxGpus",
                    model.max_replicas,
                )
            )
    return problems
