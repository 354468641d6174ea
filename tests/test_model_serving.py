"""Model serving, observability and Qdrant in the plans of the shipped stacks."""

import json

import pytest
from stack_plans import containers, k8s_objects, pod_spec, stack_plan
from upstream_facts import addon_problems, chart_problems, chart_support_problems, kubernetes_version

from components.model_serving import self_hosted_models
from components.model_workload import startup_seconds
from llmops import PROJECT_DIR, instances

MODELS_NS = "models"


def resource(stack: str, name: str) -> dict:
    return stack_plan(stack).plan.named(name)


def of_type(stack: str, type_: str) -> list[dict]:
    return stack_plan(stack).plan.of_type(type_)


@pytest.mark.parametrize("model", stack_plan("prod").settings.models, ids=lambda m: m.name)
def test_prod_declares_each_model_with_gpus_toleration_and_s3_weights(model):
    deployment = k8s_objects("prod", "Deployment", MODELS_NS)[model.name]
    pod = pod_spec(deployment)
    (vllm,) = pod["containers"]
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == str(model.gpus), model.name
    assert {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert pod["nodeSelector"] == {"llmops.io/gpu-pool": model.pool}
    bucket = stack_plan("prod").plan.outputs["modelArtifactsBucket"]
    assert vllm["args"][0] == f"s3://{bucket}/{model.s3_prefix}"
    args = vllm["args"]
    assert args[args.index("--load-format") + 1] == "runai_streamer"
    assert args[args.index("--tensor-parallel-size") + 1] == str(model.gpus)
    assert args[args.index("--served-model-name") + 1] == model.served
    assert args[args.index("--max-model-len") + 1] == str(model.max_model_len)
    assert "--enable-prefix-caching" in args
    key = next(e for e in vllm["env"] if e["name"] == "VLLM_API_KEY")
    assert key["valueFrom"]["secretKeyRef"]["name"] == "vllm-api-key"
    assert vllm["startupProbe"]["httpGet"]["path"] == "/health"
    assert vllm["startupProbe"]["failureThreshold"] * vllm["startupProbe"]["periodSeconds"] >= 600
    assert vllm["readinessProbe"]["httpGet"]["path"] == vllm["livenessProbe"]["httpGet"]["path"] == "/health"
    shm = next(v for v in pod["volumes"] if v["name"] == "shm")
    assert shm["emptyDir"]["medium"] == "Memory"
    assert vllm["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert vllm["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}

    service = k8s_objects("prod", "Service", MODELS_NS)[model.name]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    pdb = k8s_objects("prod", "PodDisruptionBudget", MODELS_NS)[model.name]
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    scaler = k8s_objects("prod", "ScaledObject", MODELS_NS)[model.name]["spec"]
    assert scaler["scaleTargetRef"]["name"] == model.name
    assert (scaler["minReplicaCount"], scaler["maxReplicaCount"]) == (model.min_replicas, model.max_replicas)
    assert "vllm:num_requests_waiting" in scaler["triggers"][0]["metadata"]["query"]


def test_prod_models_run_on_different_pools():
    pools = {
        pod_spec(d)["nodeSelector"]["llmops.io/gpu-pool"]
        for d in k8s_objects("prod", "Deployment", MODELS_NS).values()
    }
    assert len(pools) >= 2


def test_weights_role_reads_only_its_prefix():
    for model in stack_plan("prod").settings.models:
        policy = json.loads(resource("prod", f"llmops-prod-serving-{model.name}-weights")["inputs"]["policy"])
        get = next(s for s in policy["Statement"] if s["Action"] == ["s3:GetObject"])
        assert get["Resource"].endswith(f"/{model.s3_prefix}*"), model.name
        listing = next(s for s in policy["Statement"] if s["Action"] == ["s3:ListBucket"])
        assert listing["Condition"] == {"StringLike": {"s3:prefix": [f"{model.s3_prefix}*"]}}
        assert not any("s3:PutObject" in s["Action"] for s in policy["Statement"])
        association = resource("prod", f"llmops-prod-serving-{model.name}-identity")["inputs"]
        assert (association["namespace"], association["serviceAccount"]) == (MODELS_NS, f"vllm-{model.name}")


@pytest.mark.parametrize("prefix", ["llmops-prod-serving-artifacts", "llmops-prod-vectordb-backups"])
def test_buckets_are_private_versioned_and_kms_encrypted(prefix):
    rule = resource("prod", f"{prefix}-encryption")["inputs"]["rules"][0]
    assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    assert rule["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"].startswith("arn:aws:kms:")
    assert rule["bucketKeyEnabled"] is True
    assert (
        resource("prod", f"{prefix}-versioning")["inputs"]["versioningConfiguration"]["status"] == "Enabled"
    )
    block = resource("prod", f"{prefix}-public-access")["inputs"]
    assert all(
        block[k]
        for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    deny = json.loads(resource("prod", f"{prefix}-tls-only")["inputs"]["policy"])["Statement"][0]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert (
        resource("prod", f"{prefix}-ownership")["inputs"]["rule"]["objectOwnership"] == "BucketOwnerEnforced"
    )


def test_dev_model_scales_to_zero_and_wakes_on_gateway_demand():
    """The wake-up trigger reads a series the plan produces: the gateway's request counter for the
    model, on pods a scrape job of the store it queries keeps (tests/test_gateway_proxy.py reads the
    same series from the real proxy)."""
    from llmops.verify import metrics, scrape
    from llmops.verify.model import PlanView

    (model,) = stack_plan("dev").settings.models
    scaler = k8s_objects("dev", "ScaledObject", MODELS_NS)[model.name]["spec"]
    assert scaler["minReplicaCount"] == 0
    assert scaler["cooldownPeriod"] == model.scale_to_zero_after_seconds
    demand = next(t for t in scaler["triggers"] if t["name"] == "gateway-demand")
    plan = PlanView(stack_plan("dev").plan.to_dict())
    (store,) = [s for s in scrape.stores(plan) if demand["metadata"]["serverAddress"] in s.query_urls]
    for selector in metrics.selectors(demand["metadata"]["query"]):
        producers = [
            t for t in store.targets for f in scrape.served(t) if selector.metric.startswith(f.prefix)
        ]
        assert producers and all(
            "berriai/litellm" in c["image"] for t in producers for c in t.workload.containers
        )
        assert ("requested_model", "=", model.name) in selector.matchers
    assert not list(metrics.keda_triggers(plan))


def test_amp_stacks_scale_on_amp_with_sigv4_through_pod_identity():
    workspace = of_type("staging", "aws:amp/workspace:Workspace")
    assert len(workspace) == 1
    scraper = of_type("staging", "aws:amp/scraper:Scraper")[0]["inputs"]
    jobs = [job["job_name"] for job in json_or_yaml(scraper["scrapeConfiguration"])["scrape_configs"]]
    assert {"vllm", "karpenter", "platform-apps"} <= set(jobs)
    # The scraper uses the cluster security group (AMP docs): it reaches the API server and the pods.
    vpc_config = of_type("staging", "aws:eks/cluster:Cluster")[0]["outputs"]["vpcConfig"]
    cluster = vpc_config["clusterSecurityGroupId"]
    assert scraper["source"]["eks"]["securityGroupIds"] == [cluster]
    trigger = k8s_objects("staging", "ScaledObject", MODELS_NS)["qwen-small"]["spec"]["triggers"][0]
    assert trigger["metadata"]["awsRegion"] == "eu-west-1"
    assert trigger["metadata"]["serverAddress"].startswith(
        "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/"
    )
    auth = k8s_objects("staging", "TriggerAuthentication", MODELS_NS)[trigger["authenticationRef"]["name"]]
    assert auth["spec"] == {"podIdentity": {"provider": "aws"}}
    keda = resource("staging", "llmops-staging-serving-keda-identity")["inputs"]
    assert (keda["namespace"], keda["serviceAccount"]) == ("keda", "keda-operator")
    policy = resource("staging", "llmops-staging-serving-keda-query")["inputs"]["policy"]
    query = json.loads(policy)["Statement"][0]
    assert "aps:QueryMetrics" in query["Action"] and query["Resource"].startswith("arn:aws:aps:")


def test_prometheus_stacks_keep_metrics_in_cluster():
    assert not of_type("prod", "aws:amp/workspace:Workspace")
    chart = resource("prod", "llmops-prod-observability-prometheus")["inputs"]
    assert not chart_problems(chart, kubernetes_version(stack_plan("prod"))), "see tests/facts/upstream.yaml"
    assert chart["values"]["server"]["persistentVolume"]["storageClass"] == "gp3-encrypted"
    for scaler in k8s_objects("prod", "ScaledObject", MODELS_NS).values():
        trigger = scaler["spec"]["triggers"][0]
        assert trigger["metadata"]["serverAddress"].startswith("http://prometheus-server.monitoring.svc")
        assert "awsRegion" not in trigger["metadata"] and "authenticationRef" not in trigger


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_gpu_metrics_come_from_container_insights(stack):
    """With Container Insights the add-on's own DCGM exporter publishes node_gpu_utilization (the
    agent's accelerated compute metrics, on only with enhanced Container Insights: amazon-cloudwatch-
    agent awsemf/kubernetes.go), so no second exporter runs on the GPUs."""
    kubernetes = kubernetes_version(stack_plan(stack))  # upstream facts: tests/facts/upstream.yaml
    addon = resource(stack, f"llmops-{stack}-observability-cloudwatch-observability")["inputs"]
    problems = addon_problems(addon["addonName"], addon["addonVersion"], kubernetes)
    assert not problems, problems
    assert addon["podIdentityAssociations"][0]["serviceAccount"] == "cloudwatch-agent"
    collected = json.loads(addon["configurationValues"])["agent"]["config"]["logs"]["metrics_collected"]
    assert collected["kubernetes"] == {
        "enhanced_container_insights": True,
        "accelerated_compute_metrics": True,
    }
    assert not [r for r in stack_plan(stack).plan.resources if r["name"].endswith("-dcgm-exporter")]
    (idle,) = [f for f in of_type(stack, "aws:lambda/function:Function") if f["name"].endswith("-gpu-idle")]
    assert idle["inputs"]["environment"]["variables"]["CLUSTER_NAME"] == f"llmops-{stack}"
    keda = resource(stack, f"llmops-{stack}-serving-keda")["inputs"]
    assert not chart_problems(keda, kubernetes), chart_problems(keda, kubernetes)


def test_without_container_insights_gpu_metrics_go_to_prometheus_and_no_idle_detector(
    tmp_path, plan_stack_file
):
    text = (
        (PROJECT_DIR / "stacks" / "Pulumi.dev.yaml")
        .read_text()
        .replace(
            "    scrapeIntervalSeconds: 30\n", "    scrapeIntervalSeconds: 30\n    containerInsights: false\n"
        )
    )
    result = plan_stack_file(tmp_path, "noci", text)
    names = {r["name"] for r in result.plan.resources}
    assert "llmops-dev-observability-cloudwatch-observability" not in names
    assert "llmops-dev-cost-gpu-idle" not in names  # it would read metrics nothing publishes
    dcgm = result.plan.named("llmops-dev-observability-dcgm-exporter")["inputs"]
    assert not chart_problems(dcgm, kubernetes_version(result)), chart_problems(
        dcgm, kubernetes_version(result)
    )
    term = dcgm["values"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["nodeSelectorTerms"][0]["matchExpressions"] == [
        {"key": "llmops.io/gpu-pool", "operator": "Exists"}
    ]
    assert dcgm["values"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    # Dev scrapes with its in-cluster Prometheus (metricsSource prometheus).
    prometheus = result.plan.named("llmops-dev-observability-prometheus")["inputs"]["values"]
    jobs = prometheus["serverFiles"]["prometheus.yml"]["scrape_configs"]
    assert "dcgm-exporter" in [job["job_name"] for job in jobs]
    assert result.findings == [], [f.message for f in result.findings]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_keda_supports_the_cluster_version(stack):
    keda = resource(stack, f"llmops-{stack}-serving-keda")["inputs"]
    problems = chart_support_problems(keda, kubernetes_version(stack_plan(stack)))
    assert not problems, problems


def test_models_namespace_admits_only_the_gateway_and_the_metrics_scraper():
    policies = k8s_objects("prod", "NetworkPolicy", MODELS_NS)
    assert policies["default-deny-ingress"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    source = policies["allow-gateway"]["spec"]["ingress"][0]["from"][0]
    assert source["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "llmops-gateway"}
    assert source["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "litellm"}
    assert set(policies) == {"default-deny-ingress", "allow-gateway", "allow-metrics-scraper"}


def test_gateway_discovers_models_with_their_price_inputs():
    settings = stack_plan("prod").settings
    found = {m.public_name: m for m in self_hosted_models(settings)}
    big = found["llama-70b"]
    assert big.url == "http://llama-70b.models.svc.cluster.local:8000/v1"
    assert big.served_name == "meta-llama/Llama-3.1-70B-Instruct"
    # 4 GPUs fit first on a g6e.12xlarge (4 x L40S), the cheapest of the pool's types that holds
    # them, at the stack region's price: me-central-1 offers g6e but its list price was not found,
    # so an unverified estimate above us-east-1's 10.49264 USD/h (AWS Price List via Karpenter).
    expected = instances.INSTANCE_TYPES["g6e.12xlarge"]
    assert (big.gpu_model, big.gpus_per_replica, big.gpus_per_instance) == ("L40S", 4, 4)
    assert big.instance_usd_per_hour == expected.usd_per_hour("me-central-1") > 10.49264
    # g6.xlarge in me-central-1: 0.98824 USD/h (AWS Price List via instances.vantage.sh, 2026-01-21).
    small = found["qwen-small"]
    assert (small.gpu_model, small.instance_usd_per_hour) == ("L4", pytest.approx(0.98824))
    exported = {m["name"]: m for m in stack_plan("prod").plan.outputs["models"]}
    assert exported["llama-70b"]["url"] == big.url


def test_startup_allowance_grows_with_model_size():
    small, big = sorted(stack_plan("prod").settings.models, key=lambda m: m.gpus)
    assert startup_seconds(big) > startup_seconds(small) >= 600


def test_qdrant_statefulset_volumes_and_services():
    settings = stack_plan("prod").settings.vector_db
    statefulset = k8s_objects("prod", "StatefulSet", "vector-db")["qdrant"]
    spec = statefulset["spec"]
    assert spec["replicas"] == settings.replicas
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "gp3-encrypted"
    assert claim["spec"]["resources"]["requests"]["storage"] == f"{settings.volume_gib}Gi"
    (qdrant,) = containers(statefulset)
    assert qdrant["image"] == settings.image
    env = {e["name"]: e.get("value") for e in qdrant["env"]}
    assert env["QDRANT__STORAGE__COLLECTION__REPLICATION_FACTOR"] == str(settings.replication_factor)
    assert any(m["mountPath"] == "/qdrant/config/local.yaml" for m in qdrant["volumeMounts"])  # the API key
    assert qdrant["securityContext"]["runAsNonRoot"] is True
    assert {"readinessProbe", "livenessProbe", "startupProbe"} <= set(qdrant)
    services = k8s_objects("prod", "Service", "vector-db")
    assert services["qdrant-headless"]["spec"]["clusterIP"] == "None"
    assert spec["serviceName"] == "qdrant-headless"
    assert services["qdrant"]["spec"]["type"] == "ClusterIP"
    assert resource("prod", "llmops-prod-vectordb-api-key")["inputs"]["kmsKeyId"].startswith("arn:aws:kms:")


def test_qdrant_admits_only_labelled_clients():
    policy = k8s_objects("prod", "NetworkPolicy", "vector-db")["allow-qdrant-clients"]["spec"]
    clients = policy["ingress"][0]["from"]
    assert clients == [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"llmops.io/qdrant-client": "true"}}}
    ]
    assert "default-deny-ingress" in k8s_objects("prod", "NetworkPolicy", "vector-db")


def test_qdrant_snapshots_go_to_the_encrypted_backups_bucket():
    cron = k8s_objects("prod", "CronJob", "vector-db")["qdrant-snapshots"]
    assert cron["spec"]["schedule"] == stack_plan("prod").settings.vector_db.snapshot_schedule
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    upload = pod_spec(cron)["containers"][0]
    bucket = stack_plan("prod").plan.outputs["qdrantBackupsBucket"]
    assert f"s3://{bucket}/snapshots/" in upload["args"] and "aws:kms" in upload["args"]
    assert pod_spec(cron)["serviceAccountName"] == "qdrant-snapshots"
    policy = json.loads(resource("prod", "llmops-prod-vectordb-snapshots-write")["inputs"]["policy"])
    put = next(s for s in policy["Statement"] if "s3:PutObject" in s["Action"])
    assert put["Resource"] == f"arn:aws:s3:::{bucket}/snapshots/*"
    assert "llmops.io/qdrant-client" in cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]


def test_stateful_resources_are_protected_in_prod():
    # The offline engine records inputs, not options: protection shows in the settings and in
    # the bucket's force_destroy, which only throw-away stacks turn on.
    assert stack_plan("prod").settings.deletion_protection
    assert resource("prod", "llmops-prod-serving-artifacts")["inputs"]["forceDestroy"] is False
    assert resource("dev", "llmops-dev-serving-artifacts")["inputs"]["forceDestroy"] is True


def json_or_yaml(text: str) -> dict:
    import yaml

    return yaml.safe_load(text)


def test_cost_estimate_counts_model_floors():
    prod = stack_plan("prod").estimate
    floors = dict(prod.floor_lines)
    hourly = instances.INSTANCE_TYPES["g6e.12xlarge"].usd_per_hour("me-central-1")
    assert floors["Model llama-70b: 1 x g6e.12xlarge"] == pytest.approx(hourly * instances.HOURS_PER_MONTH)
    assert floors["Model qwen-small: 1 x g6.xlarge"] == pytest.approx(0.98824 * instances.HOURS_PER_MONTH)
    assert prod.minimum == pytest.approx(prod.fixed + sum(floors.values()))
    dev = stack_plan("dev").estimate  # its only model scales to zero
    assert dev.floor_lines == [] and dev.minimum == dev.fixed
