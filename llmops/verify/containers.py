"""Containers with a read-only root filesystem: every path the image's software writes to is a
writable volume, and every variable it needs to run as an arbitrary non-root UID is set.

The needs are recorded per image below with their source; an image with a read-only root and no
record is a finding too, so a new image is reviewed before it ships.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from llmops.verify.contracts import Finding, contract
from llmops.verify.model import PlanView


@dataclass(frozen=True)
class ImageNeeds:
    prefix: str  # image reference prefix (registry/repository)
    writable: tuple[str, ...]  # paths, "$VAR" for a path an environment variable gives
    env: tuple[tuple[str, ...], ...] = ()  # each tuple: one of these variables must be set
    source: str = ""
    only_if: Callable[[PlanView], bool] | None = None  # the needs apply only when this holds


def _gateway_uses_database(plan: PlanView) -> bool:
    return bool(((plan.gateway_config or {}).get("general_settings") or {}).get("database_url"))


NEEDS = [
    ImageNeeds(
        "vllm/vllm-openai:",
        # Caches: vLLM ~/.cache/vllm, Triton ~/.triton, Hugging Face $HF_HOME, torch inductor
        # $TORCHINDUCTOR_CACHE_DIR (else /tmp/torchinductor_<user>); NCCL and workers share /dev/shm.
        ("$HOME", "/tmp", "/dev/shm", "$HF_HOME", "$TORCHINDUCTOR_CACHE_DIR"),
        # The image has no passwd entry for a non-root UID: getpass.getuser() (torch's inductor cache
        # dir in the torch vLLM v0.11.0 ships; guarded only from later torch releases) raises unless
        # USER or LOGNAME is set (docs.python.org/3/library/getpass.html#getpass.getuser).
        (("USER", "LOGNAME"), ("HOME",)),
        source="vllm v0.11.0 vllm/envs.py (VLLM_CACHE_ROOT default ~/.cache/vllm); "
        "torch/_inductor/runtime/cache_dir_utils.py",
    ),
    ImageNeeds("ghcr.io/berriai/litellm", ("/tmp",), source="uvicorn and prisma scratch space"),
    ImageNeeds(
        "ghcr.io/berriai/litellm",
        # With a database, start-up copies the migrations next to the schema it applies; on a
        # read-only root they must go where LITELLM_MIGRATION_DIR points (litellm-proxy-extras
        # utils.py ProxyExtrasDBManager._get_prisma_dir; docs.litellm.ai/docs/proxy/prod).
        ("$LITELLM_MIGRATION_DIR",),
        (("LITELLM_MIGRATION_DIR",),),
        source="litellm_proxy_extras/utils.py (litellm 1.100.5)",
        only_if=_gateway_uses_database,
    ),
    ImageNeeds(
        "qdrant/qdrant:",
        ("$QDRANT__STORAGE__STORAGE_PATH", "$QDRANT__STORAGE__SNAPSHOTS_PATH", "$QDRANT_INIT_FILE_PATH/.."),
        source="qdrant v1.15 config/config.yaml storage.storage_path ./storage, snapshots_path ./snapshots; "
        "QDRANT_INIT_FILE_PATH (docs/guides/installation: read-only file system)",
    ),
    ImageNeeds(
        "postgres:",
        # initdb and the server write PGDATA; the server puts its socket and lock file in
        # /var/run/postgresql (the image's DEFAULT_PGSOCKET_DIR); the entrypoint's temporary
        # server and nss_wrapper (for a uid without a passwd entry) use /tmp.
        ("$PGDATA", "/var/run/postgresql", "/tmp"),
        source="docker-library/postgres 17/alpine3.22 Dockerfile (PGDATA /var/lib/postgresql/data, "
        "/var/run/postgresql) and docker-entrypoint.sh",
    ),
    ImageNeeds("python:", ("/tmp",), source="tempfile.gettempdir()"),
    ImageNeeds(
        "amazon/aws-cli:",
        ("$HOME", "/tmp"),
        (("HOME",),),
        source="AWS CLI v2 writes ~/.aws/cli/cache "
        "(docs.aws.amazon.com/cli/latest/userguide/cli-configure-files.html)",
    ),
]
# Defaults the images use when the variable is unset (their Dockerfiles).
IMAGE_DEFAULTS = {
    "QDRANT__STORAGE__STORAGE_PATH": "/qdrant/storage",
    "QDRANT__STORAGE__SNAPSHOTS_PATH": "/qdrant/snapshots",
    "PGDATA": "/var/lib/postgresql/data",
}


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: str(e["value"]) for e in container.get("env") or [] if "name" in e and "value" in e}


def _writable(path: str, mounts: list[dict[str, Any]]) -> bool:
    path = posixpath.normpath(path)
    for m in mounts:
        if m.get("readOnly") or m.get("subPath"):
            continue
        root = posixpath.normpath(m.get("mountPath", ""))
        if path == root or path.startswith(root.rstrip("/") + "/"):
            return True
    return False


@contract(
    "containers-writable-paths",
    "containers",
    "Checks whether every container with a read-only root filesystem has writable volumes where its image "
    "writes, and the variables it needs to run as an arbitrary non-root UID.",
)
def writable_paths(plan: PlanView) -> Iterator[Finding]:
    for w, c in plan.iter_containers():
        if not (c.get("securityContext") or {}).get("readOnlyRootFilesystem"):
            continue
        image = str(c.get("image", ""))
        records = [n for n in NEEDS if image.startswith(n.prefix) and (n.only_if is None or n.only_if(plan))]
        where = f"container {c.get('name')} of {w.label}"
        if not any(image.startswith(n.prefix) for n in NEEDS):
            yield Finding(
                "containers-writable-paths",
                w.resource,
                image,
                f"{where} has a read-only root filesystem, but llmops/verify/containers.py records nothing "
                f"about where image {image} writes.",
                "Record the image's writable paths and required variables (with their source) in NEEDS.",
            )
            continue
        env = _env(c)
        for need in records:
            for options in need.env:
                if not any(env.get(v) for v in options):
                    yield Finding(
                        "containers-writable-paths",
                        w.resource,
                        " or ".join(options),
                        f"{where} must set {' or '.join(options)} ({need.source}).",
                        f"Add {options[0]} to the container's env.",
                    )
            for path in need.writable:
                resolved = _resolve(path, env)
                if resolved is None:
                    continue  # the variable is unset: the env check above reports what matters
                if not _writable(resolved, c.get("volumeMounts") or []):
                    yield Finding(
                        "containers-writable-paths",
                        w.resource,
                        resolved,
                        f"{where} writes to {resolved} ({need.source}), which is on its read-only root: "
                        "mount a "
                        "writable volume there.",
                        f"Mount an emptyDir (or a volume) at {resolved}.",
                    )


def _resolve(path: str, env: dict[str, str]) -> str | None:
    if not path.startswith("$"):
        return path
    name, _, rest = path[1:].partition("/")
    value = env.get(name) or IMAGE_DEFAULTS.get(name)
    if not value:
        return None
    return posixpath.normpath(posixpath.join(value, rest)) if rest else value
