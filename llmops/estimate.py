"""Monthly cost of a plan: fixed infrastructure, plus GPUs at minimum and at maximum scale.

Read from the recorded plan (not the settings), so any plan.json can be estimated. Prices
come from llmops/instances.py (source and date there). Excluded, because they depend on
traffic or are small: data transfer, NAT data processing, log ingestion, S3 requests, LLM API
calls, EBS volumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmops import instances as prices

MONTH = prices.HOURS_PER_MONTH


@dataclass
class Estimate:
    lines: list[tuple[str, float]] = field(default_factory=list)  # fixed monthly items
    gpu_min: float = 0.0
    gpu_max: float = 0.0
    gpu_lines: list[tuple[str, int, float]] = field(default_factory=list)  # pool, max GPUs, USD at max
    floor_lines: list[tuple[str, float]] = field(default_factory=list)  # models' minimum replicas
    unpriced: list[str] = field(default_factory=list)

    @property
    def fixed(self) -> float:
        return sum(cost for _, cost in self.lines)

    @property
    def minimum(self) -> float:
        return self.fixed + self.gpu_min

    @property
    def maximum(self) -> float:
        return self.fixed + self.gpu_max


def _count(resources, type_: str, predicate=lambda r: True) -> list[dict]:
    return [r for r in resources if r["type"] == type_ and predicate(r)]


def estimate(plan: dict) -> Estimate:
    resources = plan["resources"]
    est = Estimate()

    clusters = _count(resources, "aws:eks/cluster:Cluster")
    if clusters:
        est.lines.append(
            (f"EKS control plane x{len(clusters)}", len(clusters) * prices.EKS_CONTROL_PLANE_PER_HOUR * MONTH)
        )
    nats = _count(resources, "aws:ec2/natGateway:NatGateway")
    if nats:
        est.lines.append((f"NAT gateways x{len(nats)}", len(nats) * prices.NAT_GATEWAY_PER_HOUR * MONTH))
    endpoint_azs = sum(
        len(r["inputs"].get("subnetIds") or [])
        for r in _count(
            resources,
            "aws:ec2/vpcEndpoint:VpcEndpoint",
            lambda r: r["inputs"].get("vpcEndpointType") == "Interface",
        )
    )
    if endpoint_azs:
        est.lines.append(
            (
                f"Interface endpoints ({endpoint_azs} endpoint-AZs)",
                endpoint_azs * prices.INTERFACE_ENDPOINT_PER_AZ_HOUR * MONTH,
            )
        )
    keys = _count(resources, "aws:kms/key:Key")
    if keys:
        est.lines.append((f"KMS keys x{len(keys)}", len(keys) * prices.KMS_KEY_PER_MONTH))
    secrets = _count(resources, "aws:secretsmanager/secret:Secret")
    if secrets:
        est.lines.append((f"Secrets Manager secrets x{len(secrets)}", len(secrets) * prices.SECRET_PER_MONTH))
    alarms = _count(resources, "aws:cloudwatch/metricAlarm:MetricAlarm")
    if alarms:
        metrics = sum(_alarm_metrics(a["inputs"]) for a in alarms)
        est.lines.append((f"CloudWatch alarms x{len(alarms)}", metrics * prices.ALARM_METRIC_PER_MONTH))

    for group in _count(resources, "aws:eks/nodeGroup:NodeGroup"):
        inputs = group["inputs"]
        size = inputs.get("scalingConfig", {}).get("minSize", 0)
        type_name = (inputs.get("instanceTypes") or ["?"])[0]
        instance = prices.INSTANCE_TYPES.get(type_name)
        if instance is None:
            est.unpriced.append(f"node group {group['name']} ({type_name})")
            continue
        est.lines.append((f"System nodes {size} x {type_name}", size * instance.usd_per_hour * MONTH))

    for db in _count(resources, "aws:rds/instance:Instance"):
        inputs = db["inputs"]
        hourly = prices.RDS_POSTGRES_PER_HOUR.get(inputs.get("instanceClass", ""))
        if hourly is None or inputs.get("engine") != "postgres":
            est.unpriced.append(f"database {db['name']} ({inputs.get('instanceClass')})")
            continue
        copies = 2 if inputs.get("multiAz") else 1
        monthly = copies * (hourly * MONTH + inputs.get("allocatedStorage", 0) * prices.RDS_GP3_PER_GIB_MONTH)
        label = f"Database {inputs['instanceClass']}{' Multi-AZ' if copies == 2 else ''}"
        est.lines.append((label, monthly))

    for pool in _count(resources, "kubernetes:karpenter.sh/v1:NodePool"):
        spec = pool["inputs"].get("spec", {})
        max_gpus = int(spec.get("limits", {}).get("nvidia.com/gpu", 0))
        types = _pool_types(spec)
        if not types:
            est.unpriced.append(f"NodePool {pool['inputs'].get('metadata', {}).get('name', pool['name'])}")
            continue
        # Worst case: the limit filled with the pool's priciest GPUs, at on-demand prices.
        per_gpu_hour = max(t.usd_per_hour / t.gpus for t in types)
        cost = max_gpus * per_gpu_hour * MONTH
        est.gpu_lines.append((pool["inputs"].get("metadata", {}).get("name", pool["name"]), max_gpus, cost))
        est.gpu_max += cost
    # GPU pools scale to zero: at minimum scale only the models' floors (minReplicas) run.
    _model_floors(resources, est)
    return est


def _alarm_metrics(alarm: dict) -> int:
    """Metrics an alarm is billed for: each metric it reads (metric math reads several); an
    anomaly band counts as three."""
    queries = alarm.get("metricQueries") or []
    if not queries:
        return 1
    bands = sum(1 for q in queries if "ANOMALY_DETECTION_BAND" in (q.get("expression") or ""))
    metrics = sum(1 for q in queries if q.get("metric"))
    return metrics - bands + bands * prices.ANOMALY_ALARM_METRICS if bands else metrics


def _model_floors(resources: list[dict], est: Estimate) -> None:
    """Each GPU Deployment's initial replicas (its minimum), on the cheapest instance type of
    its pool that holds one replica's GPUs."""
    pools = {
        p["inputs"].get("metadata", {}).get("name"): p["inputs"].get("spec", {})
        for p in _count(resources, "kubernetes:karpenter.sh/v1:NodePool")
    }
    for deployment in _count(resources, "kubernetes:apps/v1:Deployment"):
        spec = deployment["inputs"].get("spec", {})
        pod = spec.get("template", {}).get("spec", {})
        pool = (pod.get("nodeSelector") or {}).get("llmops.io/gpu-pool")
        gpus = sum(
            int(c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0))
            for c in pod.get("containers", [])
        )
        replicas = int(spec.get("replicas", 1))
        if not pool or not gpus or not replicas:
            continue
        fits = [t for t in _pool_types(pools.get(pool, {})) if t.gpus >= gpus]
        name = deployment["inputs"].get("metadata", {}).get("name", deployment["name"])
        if not fits:
            est.unpriced.append(f"model {name} (pool {pool})")
            continue
        instance = min(fits, key=lambda t: t.usd_per_hour)
        cost = replicas * instance.usd_per_hour * MONTH
        est.floor_lines.append((f"Model {name}: {replicas} x {instance.name}", cost))
        est.gpu_min += cost


def _pool_types(spec: dict) -> list[prices.InstanceType]:
    requirements = spec.get("template", {}).get("spec", {}).get("requirements", [])
    names, families = [], []
    for req in requirements:
        if req.get("key") == "node.kubernetes.io/instance-type":
            names = req.get("values", [])
        elif req.get("key") == "karpenter.k8s.aws/instance-family":
            families = req.get("values", [])
    return prices.types_in_pool(names, families)


def render(est: Estimate) -> list[str]:
    out = ["Estimated monthly cost (USD):"]
    out += [f"  {label:<44} {cost:>10,.0f}" for label, cost in est.lines]
    out.append(f"  {'fixed infrastructure':<44} {est.fixed:>10,.0f}")
    for name, gpus, cost in est.gpu_lines:
        out.append(
            f"  GPU pool {name} at its limit ({gpus} GPUs){'':<{max(0, 14 - len(name))}} {cost:>10,.0f}"
        )
    out += [f"  {label:<44} {cost:>10,.0f}" for label, cost in est.floor_lines]
    out.append(f"  {'total at minimum scale (model floors only)':<44} {est.minimum:>10,.0f}")
    out.append(f"  {'total at maximum GPU scale':<44} {est.maximum:>10,.0f}")
    for item in est.unpriced:
        out.append(f"  not priced: {item}")
    out.append(f"  prices: {prices.PRICE_SOURCE}, recorded {prices.PRICE_DATE}; on-demand, no spot discount;")
    out.append("  excludes traffic-driven costs (data transfer, NAT processing, logs, API calls) and EBS")
    return out
