"""The Kubernetes objects of one vLLM model: plain dicts, built from its validated settings.

vLLM flags follow `vllm serve --help` of the pinned image (llmops/versions.py VLLM_IMAGE);
the Run:ai model streamer reads safetensors straight from S3 into GPU memory
(docs.vllm.ai/en/stable/models/extensions/runai_model_streamer).
"""

from __future__ import annotations

from typing import Any

import pulumi

from components import hardening, names
from components.gpu_pools import GPU_TAINT, POOL_LABEL
from components.observability import MetricsSource
from llmops.settings.serving import ModelSettings

VLLM_UID = 10001  # the image declares no user; any UID works with a name, HOME and /tmp writable
VLLM_USER = "vllm"  # no passwd entry for the UID: getpass.getuser() (torch) reads USER / LOGNAME
HOME = "/home/vllm"
# Scale from zero: while a model has no replica, vLLM exports no queue depth, so the wake-up
# signal is the gateway's request counter for the model (LiteLLM's Prometheus metric, scraped
# from pods labelled llmops.io/scrape=true). The gateway falls back while the model starts.
GATEWAY_DEMAND_QUERY = 'sum(rate(litellm_proxy_total_requests_metric_total{{requested_model="{name}"}}[2m]))'


def startup_seconds(model: ModelSettings) -> int:
    """Time allowed from container start to /health: node image pull is done by then, but
    weights streaming, CUDA graph capture and torch.compile grow with model size
    (about 10 min for one GPU, 20 min more per extra 4 GPUs)."""
    return 600 + 300 * model.gpus


def labels(model: ModelSettings) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": names.VLLM_APP,
        "app.kubernetes.io/instance": model.name,
        "app.kubernetes.io/part-of": "llmops",
        "llmops.io/model": model.name,
    }


def selector(model: ModelSettings) -> dict[str, str]:
    return {"app.kubernetes.io/name": names.VLLM_APP, "llmops.io/model": model.name}


def vllm_args(model: ModelSettings, weights_uri: pulumi.Input[str]) -> list[pulumi.Input[str]]:
    args: list[pulumi.Input[str]] = [
        weights_uri,
        "--served-model-name",
        model.served,
        "--tensor-parallel-size",
        str(model.gpus),
        "--max-model-len",
        str(model.max_model_len),
        "--enable-prefix-caching",
        "--host",
        "0.0.0.0",
        "--port",
        str(names.VLLM_PORT),
    ]
    if model.s3_prefix:
        args += ["--load-format", "runai_streamer"]
    return args + list(model.extra_args)


def _env(model: ModelSettings, api_key_secret: str, region: str) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {
            "name": "VLLM_API_KEY",
            "valueFrom": {"secretKeyRef": {"name": api_key_secret, "key": "VLLM_API_KEY"}},
        },
        {"name": "HOME", "value": HOME},
        {"name": "USER", "value": VLLM_USER},
        {"name": "LOGNAME", "value": VLLM_USER},
        {"name": "HF_HOME", "value": f"{HOME}/.cache/huggingface"},
        # Compile caches on the writable home volume, whatever torch would derive from the user.
        {"name": "TORCHINDUCTOR_CACHE_DIR", "value": f"{HOME}/.cache/torchinductor"},
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},  # no telemetry leaves the cluster
        {"name": "DO_NOT_TRACK", "value": "1"},
    ]
    if model.s3_prefix:
        # Weights and tokenizer come from S3; never fall back to the Hugging Face Hub.
        env.append({"name": "HF_HUB_OFFLINE", "value": "1"})
    # The streamer's S3 client finds Pod Identity credentials by itself; it needs the region.
    env += [{"name": "AWS_REGION", "value": region}, {"name": "AWS_DEFAULT_REGION", "value": region}]
    return env


def model_objects(
    model: ModelSettings,
    *,
    weights_uri: pulumi.Input[str],
    api_key_secret: str,
    metrics: MetricsSource,
    trigger_auth: str | None,
    region: str,
) -> dict[str, dict[str, Any]]:
    """ServiceAccount, Deployment, Service, PodDisruptionBudget and ScaledObject arguments."""
    ns = names.MODELS_NAMESPACE
    meta = {"name": model.name, "namespace": ns, "labels": labels(model)}
    probe = {"httpGet": {"path": "/health", "port": "http"}}
    memory = f"{model.replica_memory_gib}Gi"
    container = {
        "name": "vllm",
        "image": model.image,
        "imagePullPolicy": "Always",
        "command": ["vllm", "serve"],
        "args": vllm_args(model, weights_uri),
        "env": _env(model, api_key_secret, region),
        "ports": [{"name": "http", "containerPort": names.VLLM_PORT, "protocol": "TCP"}],
        "resources": hardening.resources(model.replica_cpu, memory, gpus=model.gpus),
        "startupProbe": {**probe, "periodSeconds": 10, "failureThreshold": startup_seconds(model) // 10},
        "readinessProbe": {**probe, "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 3},
        "livenessProbe": {**probe, "periodSeconds": 15, "timeoutSeconds": 5, "failureThreshold": 4},
        "securityContext": hardening.container_security(VLLM_UID),
        "volumeMounts": [
            {"name": "shm", "mountPath": "/dev/shm"},
            {"name": "home", "mountPath": HOME},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    pod = {
        "metadata": {"labels": labels(model)},
        "spec": {
            "serviceAccountName": f"vllm-{model.name}",
            "automountServiceAccountToken": False,  # Pod Identity mounts its own token
            "enableServiceLinks": False,
            "nodeSelector": {POOL_LABEL: model.pool},
            "tolerations": [
                {
                    "key": GPU_TAINT["key"],
                    "operator": "Equal",
                    "value": GPU_TAINT["value"],
                    "effect": "NoSchedule",
                }
            ],
            "securityContext": hardening.pod_security(VLLM_UID),
            "terminationGracePeriodSeconds": 60,  # in-flight requests finish
            "containers": [container],
            "volumes": [
                # NCCL and vLLM's workers exchange tensors through shared memory.
                {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{2 * model.gpus}Gi"}},
                {"name": "home", "emptyDir": {"sizeLimit": "20Gi"}},  # compile and kernel caches
                {"name": "tmp", "emptyDir": {"sizeLimit": "5Gi"}},
            ],
        },
    }
    deployment = {
        "metadata": meta,
        "spec": {
            "replicas": model.min_replicas,
            "selector": {"matchLabels": selector(model)},
            # A GPU replica needs a whole node's GPUs: surge one, never drop below the floor.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": pod,
        },
    }
    service = {
        "metadata": meta,
        "spec": {
            "type": "ClusterIP",
            "selector": selector(model),
            "ports": [{"name": "http", "port": names.VLLM_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    pdb = {"metadata": meta, "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(model)}}}
    return {
        "service_account": {
            "metadata": {"name": f"vllm-{model.name}", "namespace": ns, "labels": labels(model)},
            "automount_service_account_token": False,
        },
        "deployment": deployment,
        "service": service,
        "pdb": pdb,
        "scaled_object": {"metadata": meta, "spec": scaled_object_spec(model, metrics, trigger_auth)},
    }


def scaled_object_spec(model: ModelSettings, metrics: MetricsSource, trigger_auth: str | None) -> dict:
    """KEDA: replicas = waiting requests / target per replica, between min and max."""

    def trigger(name: str, query: str, threshold: str) -> dict:
        meta: dict[str, Any] = {
            "serverAddress": metrics.query_url,
            "query": query,
            "threshold": threshold,
            "activationThreshold": "0",
            "ignoreNullValues": "true",  # no series yet (no replica) counts as zero
        }
        out: dict[str, Any] = {"type": "prometheus", "name": name, "metadata": meta}
        if metrics.aws_region:
            meta["awsRegion"] = metrics.aws_region
            out["authenticationRef"] = {"name": trigger_auth}
        return out

    triggers = [
        trigger(
            "queue-depth",
            f'sum(vllm:num_requests_waiting{{namespace="{names.MODELS_NAMESPACE}",model="{model.name}"}})',
            str(model.target_waiting_requests),
        )
    ]
    if model.min_replicas == 0:
        # Large threshold: this trigger only wakes the model; queue depth sizes it.
        triggers.append(trigger("gateway-demand", GATEWAY_DEMAND_QUERY.format(name=model.name), "1000"))
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": model.name},
        "minReplicaCount": model.min_replicas,
        "maxReplicaCount": model.max_replicas,
        "pollingInterval": 15,
        "cooldownPeriod": model.scale_to_zero_after_seconds,
        "advanced": {
            "horizontalPodAutoscalerConfig": {
                # A new replica takes minutes: scale down slowly so bursts do not thrash GPUs.
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}}
            }
        },
        "triggers": triggers,
    }
