"""Monthly cost of a plan: every line that bills, at minimum scale (idle) and at maximum scale.

Read from the recorded plan (not the settings), so any plan.json can be estimated. Prices come
from the stack region's tables in llmops/pricing/ (each line names its table's source and date);
a region without a table is not priced at all. Usage comes from `llmops:costAssumptions`
(recorded in the plan's settings; llmops/settings/cost_assumptions.py has the defaults).

- Minimum scale: idle. Every GPU pool at zero except the models' floors (minReplicas), system
  node groups at minSize, traffic-driven lines at 0 requests; time-driven lines (hours, storage,
  logs the control plane writes anyway, metrics scraped from idle targets) still count.
- Maximum scale: every GPU pool at its GPU limit, filled with the type it allows (and the region
  offers) that costs most per GPU; node groups at maxSize; traffic at the assumptions.
Spot and reserved capacity are priced at On-Demand (an upper bound).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from llmops import instances
from llmops.settings.cost_assumptions import CostAssumptions

MONTH = instances.HOURS_PER_MONTH
MINUTES_PER_MONTH = MONTH * 60
SECONDS_PER_MONTH = MONTH * 3600
DAYS_PER_MONTH = MONTH / 24
SCHEMA = "llmops.cost/v1"
NODEPOOL = "kubernetes:karpenter.sh/v1:NodePool"
NODECLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
GPU = "nvidia.com/gpu"
# Metrics the spend aggregator emits per dimension combination (lambdas/spend_aggregator).
AGGREGATOR_METRICS = 5


@dataclass
class Line:
    label: str
    kind: str  # fixed | scale (node counts) | traffic | gpu-floor | gpu-pool
    quantity_min: float
    quantity_max: float
    unit: str
    unit_usd: float
    source: str
    assumption: str
    verified: bool = True

    @property
    def key(self) -> str:
        """The label without its counts, so the same line matches across two plans."""
        key = re.sub(r"\s*\([^)]*\)", "", self.label)
        key = re.sub(r"\s+x\d+(-\d+)?\b", "", key)
        return re.sub(r":\s*\d+ x ", ": ", key)

    @property
    def monthly_min(self) -> float:
        return self.quantity_min * self.unit_usd

    @property
    def monthly_max(self) -> float:
        return self.quantity_max * self.unit_usd

    def to_dict(self, region: str) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "kind": self.kind,
            "quantity": {"minimum": round(self.quantity_min, 6), "maximum": round(self.quantity_max, 6)},
            "unit": self.unit,
            "unitPriceUsd": self.unit_usd,
            "monthlyUsd": {"minimum": round(self.monthly_min, 2), "maximum": round(self.monthly_max, 2)},
            "region": region,
            "source": self.source,
            "verified": self.verified,
            "assumption": self.assumption,
        }


@dataclass
class Estimate:
    region: str
    priced: bool  # False: the region has no price table; no line is priced
    lines: list[Line] = field(default_factory=list)
    unpriced: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def minimum(self) -> float:
        return round(sum(line.monthly_min for line in self.lines), 2)

    @property
    def maximum(self) -> float:
        return round(sum(line.monthly_max for line in self.lines), 2)

    @property
    def fixed(self) -> float:
        """The platform without GPUs, idle."""
        return round(sum(line.monthly_min for line in self.lines if not line.kind.startswith("gpu")), 2)

    @property
    def floor_lines(self) -> list[tuple[str, float]]:
        return [(line.label, line.monthly_min) for line in self.lines if line.kind == "gpu-floor"]

    @property
    def unverified(self) -> list[str]:
        return [line.label for line in self.lines if not line.verified]

    def line(self, label_start: str) -> Line:
        return next(line for line in self.lines if line.label.startswith(label_start))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "region": self.region,
            "priced": self.priced,
            "currency": "USD",
            "hoursPerMonth": MONTH,
            "totals": {"minimum": self.minimum, "maximum": self.maximum},
            "scales": {
                "minimum": "idle: GPU pools at the models' floors, node groups at minSize, no traffic",
                "maximum": "GPU pools at their limits (dearest GPU-hour per pool), node groups at maxSize, "
                "traffic at llmops:costAssumptions",
            },
            "lines": [line.to_dict(self.region) for line in self.lines],
            "unpriced": self.unpriced,
            "warnings": self.warnings,
            "excluded": EXCLUDED,
        }


EXCLUDED = [
    "data transfer out of AWS and between AZs",
    "S3 storage and requests (spend logs: one PUT per request), SQS, SNS, DynamoDB, Lambda invocations",
    "CloudWatch log storage, dashboards, API calls; AMP storage and queries",
    "KMS and Secrets Manager API calls",
    "EBS snapshots (Qdrant snapshots go to S3), RDS backups beyond the free allowance",
    "external LLM provider calls (priced per token by the gateway, not here)",
    "taxes, support plans, Savings Plans and Reserved Instance discounts",
]


class _Pricer:
    """Looks up the region's unit prices; a missing one is reported as not priced."""

    def __init__(self, region: str, est: Estimate):
        self.table = instances.region_prices(region)
        self.region = region
        self.est = est

    def get(self, table: str, key: str, what: str) -> instances.Price | None:
        found = self.table.price(table, key) if self.table else None
        if found is None and self.table is not None:
            self.est.unpriced.append(f"{what}: no {table}/{key} price for {self.region}")
        return found

    def instance(self, name: str, what: str) -> instances.Price | None:
        if self.table and name in instances.INSTANCE_TYPES and not self.table.offered(name):
            self.est.warnings.append(f"{what}: {name} is not offered in {self.region}")
        found = self.table.instance(name) if self.table else None
        if found is None and self.table is not None:
            self.est.unpriced.append(f"{what}: {name} has no price in {self.region}")
        return found

    def add(self, label, kind, qmin, qmax, unit, price: instances.Price | None, assumption):
        if price is None:
            return
        self.est.lines.append(
            Line(label, kind, qmin, qmax, unit, price.usd, price.cite, assumption, price.verified)
        )

    def each(self, found: list, label: str, unit: str, price: tuple[str, str, str], assumption: str,
             hourly: bool = True) -> None:  # fmt: skip
        """One fixed line for `found` resources billing alike: each 730 hours a month (hourly) or
        one unit a month; `price` is the (table, key, what) looked up only when there are any."""
        if found:
            n = len(found)
            quantity = n * MONTH if hourly else n
            self.add(f"{label} x{n}", "fixed", quantity, quantity, unit, self.get(*price), assumption)


def _of(resources, type_: str, predicate=lambda r: True) -> list[dict]:
    return [r for r in resources if r["type"] == type_ and predicate(r)]


def _gib(value: Any) -> float:
    """A Kubernetes quantity (200Gi, 20G, 512Mi) or a number of GiB, in GiB."""
    if isinstance(value, int | float):
        return float(value)
    match = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]i?)?\s*", str(value or "0"))
    if not match:
        return 0.0
    number, suffix = float(match.group(1)), match.group(2) or "G"
    scale = {"Ki": 2**-20, "Mi": 2**-10, "Gi": 1, "Ti": 1024, "K": 1e3 / 2**30, "M": 1e6 / 2**30}
    return number * scale.get(suffix, {"G": 1e9 / 2**30, "T": 1e12 / 2**30}.get(suffix, 1.0))


def _name(resource: dict) -> str:
    return (resource["inputs"].get("metadata") or {}).get("name") or resource["name"]


def _region(plan: dict) -> str:
    region = (plan.get("settings") or {}).get("region")
    if region:
        return region
    for provider in _of(plan["resources"], "pulumi:providers:aws"):
        if provider["inputs"].get("region"):
            return provider["inputs"]["region"]
    return "unknown"


def _assumptions(plan: dict) -> CostAssumptions:
    return CostAssumptions.model_validate((plan.get("settings") or {}).get("costAssumptions") or {})


def estimate(plan: dict) -> Estimate:
    resources = plan["resources"]
    region = _region(plan)
    est = Estimate(region, instances.region_prices(region) is not None)
    if not est.priced:
        est.unpriced.append(
            f"region {region}: no price table in llmops/pricing/ "
            f"(priced: {', '.join(instances.PRICED_REGIONS)})"
        )
        return est
    a = _assumptions(plan)
    p = _Pricer(region, est)
    pools = _pools(resources, region, est)
    floors = _floors(resources, pools, region, est)
    system = _node_groups(resources, p)
    gpu_nodes_min = sum(n for _, _, n in floors)
    gpu_nodes_max = sum(pool["nodes_max"] for pool in pools.values())
    _control_plane(resources, p)
    _network(resources, p, a)
    _gateway_lb(resources, p, est, a)
    _observability(resources, p, a, pools, system, gpu_nodes_min, gpu_nodes_max)
    _keys_and_alarms(resources, p, a)
    _logs(resources, p, a)
    _storage(resources, p, system, pools, floors)
    _databases(resources, p, est, a)
    _gpu_lines(pools, floors, p, est)
    return est


# --- compute ---------------------------------------------------------------------------------


def _node_groups(resources, p: _Pricer) -> dict[str, tuple[int, int, float]]:
    """System node groups at minSize and maxSize. Returns name -> (min, max, root GiB per node)."""
    templates = {t["name"]: t["inputs"] for t in _of(resources, "aws:ec2/launchTemplate:LaunchTemplate")}
    out = {}
    for group in _of(resources, "aws:eks/nodeGroup:NodeGroup"):
        inputs = group["inputs"]
        scaling = inputs.get("scalingConfig") or {}
        low, high = int(scaling.get("minSize", 0)), int(scaling.get("maxSize", scaling.get("minSize", 0)))
        type_name = (inputs.get("instanceTypes") or ["?"])[0]
        price = p.instance(type_name, f"node group {group['name']}")
        p.add(
            f"System nodes {type_name} x{low}-{high}",
            "scale",
            low * MONTH,
            high * MONTH,
            "instance-hour",
            price,
            f"node group {group['name']}: minSize {low} at minimum, maxSize {high} at maximum, On-Demand",
        )
        template = _group_template(inputs, templates)
        out[group["name"]] = (low, high, _system_volume(inputs, template))
        standard = ((template or {}).get("creditSpecification") or {}).get("cpuCredits") == "standard"
        _surplus_credits(p, type_name, high, standard, f"node group {group['name']}")
    return out


def _surplus_credits(p: _Pricer, type_name: str, count: int, standard: bool, what: str) -> None:
    """A burstable type in unlimited mode bills every vCPU-hour above its baseline: 0 while idle
    (an average under the baseline), every vCPU busy all month at maximum."""
    baseline = instances.BURSTABLE_BASELINE.get(type_name)
    if baseline is None or standard or not count:
        return
    vcpus = instances.INSTANCE_TYPES[type_name].vcpus
    family = type_name.split(".", 1)[0]
    p.add(
        f"CPU credits above baseline: {type_name} x{count}",
        "scale",
        0,
        count * vcpus * (1 - baseline) * MONTH,
        "vCPU-hour",
        p.get("cpu-credits", family, f"{what} surplus credits"),
        f"{what}: unlimited mode (T4g's default; no credit specification says standard); 0 while "
        f"the 24-hour average stays under the {baseline:.0%} baseline per vCPU, {count} x {vcpus} "
        "vCPUs busy all month at maximum",
    )


def _group_template(group: dict, templates: dict[str, dict]) -> dict | None:
    """The launch template a node group names (by id), or the plan's one template."""
    template_id = (group.get("launchTemplate") or {}).get("id")
    for template in templates.values():
        if template_id and template.get("id") not in (None, template_id):
            continue
        return template
    return None


def _system_volume(group: dict, template: dict | None) -> float:
    if group.get("diskSize"):
        return float(group["diskSize"])
    if template is None:
        return 20.0  # EKS managed node groups default to 20 GiB
    return sum(
        float((m.get("ebs") or {}).get("volumeSize") or 0) for m in template.get("blockDeviceMappings") or []
    )


def _pools(resources, region: str, est: Estimate) -> dict[str, dict]:
    """Each NodePool: its types offered in the region, the dearest per GPU, nodes at its limit."""
    out = {}
    for pool in _of(resources, NODEPOOL):
        spec = pool["inputs"].get("spec") or {}
        name = _name(pool)
        max_gpus = int((spec.get("limits") or {}).get(GPU, 0))
        allowed = _pool_types(spec)
        offered = instances.offered_in(allowed, region)
        capacity = _requirement(spec, "karpenter.sh/capacity-type") or ["on-demand"]
        if not offered:
            est.unpriced.append(
                f"NodePool {name}: none of {', '.join(t.name for t in allowed) or 'its types'} "
                f"is offered in {region}"
            )
            out[name] = {"types": [], "max_gpus": max_gpus, "nodes_max": 0, "capacity": capacity}
            continue
        dearest = max(offered, key=lambda t: (t.usd_per_gpu_hour(region), -t.gpus))
        out[name] = {
            "types": offered,
            "max_gpus": max_gpus,
            "dearest": dearest,
            "nodes_max": math.ceil(max_gpus / dearest.gpus) if max_gpus else 0,
            "capacity": capacity,
        }
    return out


def _requirement(spec: dict, key: str) -> list[str]:
    for req in (spec.get("template") or {}).get("spec", {}).get("requirements") or []:
        if req.get("key") == key:
            return list(req.get("values") or [])
    return []


def _pool_types(spec: dict) -> list[instances.InstanceType]:
    names = _requirement(spec, "node.kubernetes.io/instance-type")
    families = _requirement(spec, "karpenter.k8s.aws/instance-family")
    return instances.types_in_pool(names, families)


def _floors(resources, pools: dict[str, dict], region: str, est: Estimate) -> list[tuple[str, Any, int]]:
    """Each GPU Deployment's initial replicas (its minimum) on the cheapest offered type of its
    pool that holds one replica: (deployment, instance type, nodes)."""
    out = []
    for deployment in _of(resources, "kubernetes:apps/v1:Deployment"):
        spec = deployment["inputs"].get("spec") or {}
        pod = (spec.get("template") or {}).get("spec") or {}
        pool = (pod.get("nodeSelector") or {}).get("llmops.io/gpu-pool")
        gpus = sum(
            int(((c.get("resources") or {}).get("limits") or {}).get(GPU, 0))
            for c in pod.get("containers") or []
        )
        replicas = int(spec.get("replicas", 1))
        if not pool or not gpus or not replicas:
            continue
        fits = [t for t in (pools.get(pool) or {}).get("types", []) if t.gpus >= gpus]
        if not fits:
            est.unpriced.append(f"model {_name(deployment)} (pool {pool}): no offered type holds {gpus} GPUs")
            continue
        out.append((_name(deployment), min(fits, key=lambda t: t.usd_per_hour(region)), replicas))
    return out


def _gpu_lines(pools: dict[str, dict], floors, p: _Pricer, est: Estimate) -> None:
    for model, instance, replicas in floors:
        price = p.instance(instance.name, f"model {model}")
        p.add(
            f"Model {model}: {replicas} x {instance.name}",
            "gpu-floor",
            replicas * MONTH,
            0,  # at maximum scale its pool's limit line covers it
            "instance-hour",
            price,
            f"minReplicas {replicas} on the cheapest offered type of its pool holding one replica; "
            "at maximum scale inside the pool's limit",
        )
    for name, pool in sorted(pools.items()):
        if not pool["types"]:
            continue
        dearest = pool["dearest"]
        price = p.instance(dearest.name, f"NodePool {name}")
        if price is None:
            continue
        spot = "spot priced at On-Demand (upper bound); " if "spot" in pool["capacity"] else ""
        est.lines.append(
            Line(
                f"GPU pool {name} at its limit ({pool['max_gpus']} GPUs on {dearest.name})",
                "gpu-pool",
                0,
                pool["max_gpus"] * MONTH,
                "GPU-hour",
                price.usd / dearest.gpus,
                price.cite,
                f"{spot}limit {pool['max_gpus']} GPUs filled with {dearest.name}, the dearest per GPU of the "
                f"{len(pool['types'])} offered types it allows ({price.usd:g} USD/h for {dearest.gpus} GPU); "
                "0 at minimum (scales to zero)",
                price.verified,
            )
        )


# --- fixed platform --------------------------------------------------------------------------


def _control_plane(resources, p: _Pricer) -> None:
    p.each(
        _of(resources, "aws:eks/cluster:Cluster"),
        "EKS control plane",
        "cluster-hour",
        ("eks", "cluster_hour", "EKS control plane"),
        "always on; standard support (extended support bills more)",
    )


def _network(resources, p: _Pricer, a: CostAssumptions) -> None:
    nats = _of(resources, "aws:ec2/natGateway:NatGateway")
    p.each(nats, "NAT gateways", "gateway-hour", ("vpc", "nat_gateway_hour", "NAT gateway"), "always on")
    nat_instances = _of(resources, "aws:ec2/instance:Instance")
    for instance in nat_instances:
        inputs = instance["inputs"]
        type_name = inputs.get("instanceType", "?")
        p.add(
            f"NAT instance {type_name} ({instance['name']})",
            "fixed",
            MONTH,
            MONTH,
            "instance-hour",
            p.instance(type_name, f"instance {instance['name']}"),
            "always on, On-Demand",
        )
        standard = (inputs.get("creditSpecification") or {}).get("cpuCredits") == "standard"
        _surplus_credits(p, type_name, 1, standard, f"instance {instance['name']}")
    if nats or nat_instances:
        p.add(
            "NAT data processed",
            "traffic",
            0,
            a.nat_gb_per_month,
            "GB",
            p.get("vpc", "nat_gateway_gb", "NAT data") if nats else None,
            f"{a.nat_gb_per_month:g} GB/month at maximum (costAssumptions.natGbPerMonth), 0 idle",
        )
    eips = _of(resources, "aws:ec2/eip:Eip")
    public = [i for i in nat_instances if i["inputs"].get("associatePublicIpAddress")]
    addresses = len(eips) + max(0, len(public) - sum(1 for e in eips if e["inputs"].get("instance")))
    if addresses:
        p.add(
            f"Public IPv4 addresses x{addresses}",
            "fixed",
            addresses * MONTH,
            addresses * MONTH,
            "address-hour",
            p.get("public-ipv4", "address_hour", "public IPv4"),
            "Elastic IPs (NAT) and instances with a public address, billed in use or idle",
        )
    endpoints = _of(
        resources,
        "aws:ec2/vpcEndpoint:VpcEndpoint",
        lambda r: r["inputs"].get("vpcEndpointType") == "Interface",
    )
    azs = sum(len(r["inputs"].get("subnetIds") or []) for r in endpoints)
    if azs:
        p.add(
            f"Interface endpoints ({len(endpoints)} endpoints, {azs} endpoint-AZs)",
            "fixed",
            azs * MONTH,
            azs * MONTH,
            "endpoint-AZ-hour",
            p.get("vpc", "interface_endpoint_az_hour", "interface endpoints"),
            "always on, one ENI per subnet",
        )
        p.add(
            "Interface endpoint data processed",
            "traffic",
            0,
            a.endpoint_gb_per_month,
            "GB",
            p.get("vpc", "interface_endpoint_gb", "interface endpoint data"),
            f"{a.endpoint_gb_per_month:g} GB/month at maximum (costAssumptions.endpointGbPerMonth), 0 idle",
        )
    p.each(
        _of(resources, "aws:route53/zone:Zone"),
        "Route 53 hosted zones",
        "zone-month",
        ("route53", "hosted_zone_month", "Route 53 zones"),
        "first 25 zones of the account",
        hourly=False,
    )


def _gateway_lb(resources, p: _Pricer, est: Estimate, a: CostAssumptions) -> None:
    services = _of(
        resources,
        "kubernetes:core/v1:Service",
        lambda r: (r["inputs"].get("spec") or {}).get("type") == "LoadBalancer",
    )
    for svc in services:
        annotations = (svc["inputs"].get("metadata") or {}).get("annotations") or {}
        kind = annotations.get("service.beta.kubernetes.io/aws-load-balancer-type", "")
        if kind not in ("nlb", "external", "nlb-ip"):
            est.unpriced.append(f"Service {_name(svc)}: a load balancer of type {kind or 'classic'}")
            continue
        p.add(
            f"Network Load Balancer ({_name(svc)})",
            "fixed",
            MONTH,
            MONTH,
            "NLB-hour",
            p.get("elb", "nlb_hour", "NLB"),
            "LoadBalancer Service, always on",
        )
        # TCP NLCU: the largest of 800 new flows/s, 100,000 active flows, 1 GB/hour processed.
        gb_hour = a.requests_per_day * a.kib_per_request / 2**20 / 24
        flows = a.requests_per_day / 86400 / 800
        nlcu = max(gb_hour, flows)
        p.add(
            f"NLB capacity units ({_name(svc)})",
            "traffic",
            0,
            nlcu * MONTH,
            "NLCU-hour",
            p.get("elb", "nlcu_hour", "NLB NLCU"),
            f"{a.requests_per_day:,} requests/day x {a.kib_per_request:g} KiB (costAssumptions), 0 idle",
        )


def _observability(resources, p, a: CostAssumptions, pools, system, gpu_min, gpu_max) -> None:
    gpus_max = sum(pool["max_gpus"] for pool in pools.values() if pool["types"])
    scrapers = _of(resources, "aws:amp/scraper:Scraper")
    if _of(resources, "aws:amp/workspace:Workspace"):
        interval = min(
            (_scrape_interval(s["inputs"].get("scrapeConfiguration")) for s in scrapers), default=30
        )
        per_series = SECONDS_PER_MONTH / interval
        low = a.idle_metric_series
        high = low + a.metric_series_per_gpu * gpus_max
        p.add(
            "AMP samples ingested",
            "scale",
            low * per_series / 1e7,
            high * per_series / 1e7,
            "10M samples",
            p.get("amp", "samples_ingested_10m", "AMP ingestion"),
            f"{low:,} active series idle (costAssumptions.idleMetricSeries), "
            f"+{a.metric_series_per_gpu} per GPU "
            f"at maximum ({gpus_max} GPUs), scraped every {interval:g}s; first-tier price",
        )
    p.each(
        scrapers,
        "AMP managed collectors",
        "collector-hour",
        ("amp", "collector_hour", "AMP collector"),
        "always on, scraping idle targets too",
    )
    addons = _of(
        resources,
        "aws:eks/addon:Addon",
        lambda r: r["inputs"].get("addonName") == "amazon-cloudwatch-observability",
    )
    if addons:
        nodes_min = sum(low for low, _, _ in system.values()) + gpu_min
        nodes_max = sum(high for _, high, _ in system.values()) + gpu_max
        per_node = a.observations_per_node_minute + a.pods_per_node * a.observations_per_pod_minute
        p.add(
            "Container Insights observations (enhanced)",
            "scale",
            nodes_min * per_node * MINUTES_PER_MONTH / 1e6,
            nodes_max * per_node * MINUTES_PER_MONTH / 1e6,
            "million observations",
            p.get("cloudwatch", "container_insights_million_observations", "Container Insights"),
            f"{nodes_min} nodes idle, {nodes_max} at maximum; {a.observations_per_node_minute}/node + "
            f"{a.pods_per_node} pods x {a.observations_per_pod_minute}/pod a minute (costAssumptions)",
        )


def _scrape_interval(config: Any) -> float:
    try:
        text = (yaml.safe_load(config or "") or {}).get("global", {}).get("scrape_interval", "30s")
    except yaml.YAMLError:
        return 30.0
    match = re.fullmatch(r"(\d+)(s|m)", str(text))
    return float(match.group(1)) * (60 if match.group(2) == "m" else 1) if match else 30.0


def _keys_and_alarms(resources, p: _Pricer, a: CostAssumptions) -> None:
    p.each(
        _of(resources, "aws:kms/key:Key"),
        "KMS keys",
        "key-month",
        ("kms", "key_month", "KMS"),
        "customer managed keys, before API calls",
        hourly=False,
    )
    p.each(
        _of(resources, "aws:secretsmanager/secret:Secret"),
        "Secrets Manager secrets",
        "secret-month",
        ("secrets-manager", "secret_month", "Secrets Manager"),
        "before API calls",
        hourly=False,
    )
    alarms = _of(resources, "aws:cloudwatch/metricAlarm:MetricAlarm")
    if alarms:
        metrics = sum(_alarm_metrics(alarm["inputs"]) for alarm in alarms)
        bands = sum(1 for alarm in alarms if _bands(alarm["inputs"]))
        p.add(
            f"CloudWatch alarms x{len(alarms)} ({metrics} metrics)",
            "fixed",
            metrics,
            metrics,
            "alarm metric-month",
            p.get("cloudwatch", "alarm_metric_month", "alarms"),
            f"standard resolution, billed per metric read; {bands} anomaly band(s) bill three each",
        )
    teams = len(_of(resources, "llmops:tenancy:Team")) + 1  # "unassigned" too
    models = _gateway_models(resources)
    if models and _of(resources, "aws:lambda/function:Function"):
        combos = teams + teams * models + 2 * models
        metrics = AGGREGATOR_METRICS * combos
        p.add(
            f"Custom metrics from the spend aggregator ({metrics})",
            "traffic",
            0,
            metrics,
            "metric-month",
            p.get("cloudwatch", "custom_metric_month", "custom metrics"),
            f"{AGGREGATOR_METRICS} metrics x ({teams} teams + teams x {models} models + 2 routes x models) "
            "dimension sets, all active at maximum; none without traffic",
        )


def _gateway_models(resources) -> int:
    for cm in _of(resources, "kubernetes:core/v1:ConfigMap"):
        labels = (cm["inputs"].get("metadata") or {}).get("labels") or {}
        if labels.get("app.kubernetes.io/name") == "litellm":
            try:
                config = yaml.safe_load((cm["inputs"].get("data") or {}).get("config.yaml") or "") or {}
            except yaml.YAMLError:
                return 0
            return len({m.get("model_name") for m in config.get("model_list") or []})
    return 0


def _bands(alarm: dict) -> int:
    return sum(
        1 for q in alarm.get("metricQueries") or [] if "ANOMALY_DETECTION_BAND" in (q.get("expression") or "")
    )


def _alarm_metrics(alarm: dict) -> int:
    """Metrics an alarm is billed for: each metric it reads (metric math reads several); an
    anomaly band counts as three (the metric and the band's upper and lower bounds)."""
    queries = alarm.get("metricQueries") or []
    if not queries:
        return 1
    bands = _bands(alarm)
    metrics = sum(1 for q in queries if q.get("metric"))
    return metrics - bands + bands * 3 if bands else metrics


def _logs(resources, p: _Pricer, a: CostAssumptions) -> None:
    groups = _of(resources, "aws:cloudwatch/logGroup:LogGroup")
    names = [(g["inputs"].get("name") or "", g["name"]) for g in groups]
    control = sum(1 for name, _ in names if name.startswith("/aws/eks/"))
    flows = len(_of(resources, "aws:ec2/flowLog:FlowLog"))
    lambdas = sum(1 for name, _ in names if name.startswith("/aws/lambda/"))
    gb = control * a.control_plane_log_gb_per_month + flows * a.flow_log_gb_per_month
    gb += lambdas * a.lambda_log_gb_per_month
    if gb:
        p.add(
            "CloudWatch Logs ingested",
            "fixed",
            gb,
            gb,
            "GB",
            p.get("cloudwatch", "logs_ingested_gb", "logs"),
            f"{control} control-plane group x {a.control_plane_log_gb_per_month:g} GB + {flows} flow log x "
            f"{a.flow_log_gb_per_month:g} GB + {lambdas} Lambda groups x "
            f"{a.lambda_log_gb_per_month:g} GB a month "
            "(costAssumptions), idle or busy",
        )


# --- storage and databases ------------------------------------------------------------------


def _storage(resources, p: _Pricer, system, pools, floors) -> None:
    gp3 = p.get("ebs", "gp3_gb_month", "EBS gp3")
    sys_min = sum(low * gib for low, _, gib in system.values())
    sys_max = sum(high * gib for _, high, gib in system.values())
    if system:
        p.add(
            "EBS gp3: system node volumes",
            "scale",
            sys_min,
            sys_max,
            "GB-month",
            gp3,
            "root volume of each system node (launch template) at minSize and maxSize",
        )
    for instance in _of(resources, "aws:ec2/instance:Instance"):
        size = float((instance["inputs"].get("rootBlockDevice") or {}).get("volumeSize") or 8)
        p.add(
            f"EBS gp3: {instance['name']} root volume",
            "fixed",
            size,
            size,
            "GB-month",
            gp3,
            "the instance's root volume (8 GiB when unset)",
        )
    per_node, extra_throughput = 0.0, 0.0
    for node_class in _of(resources, NODECLASS):
        for mapping in (node_class["inputs"].get("spec") or {}).get("blockDeviceMappings") or []:
            ebs = mapping.get("ebs") or {}
            per_node += _gib(ebs.get("volumeSize"))
            extra_throughput += max(0.0, float(ebs.get("throughput") or 125) - 125)
    nodes_min = sum(n for _, _, n in floors)
    nodes_max = sum(pool["nodes_max"] for pool in pools.values())
    if per_node and (nodes_min or nodes_max):
        p.add(
            "EBS gp3: GPU node volumes",
            "scale",
            nodes_min * per_node,
            nodes_max * per_node,
            "GB-month",
            gp3,
            f"{per_node:g} GiB per node (EC2NodeClass) x {nodes_min} floor nodes idle, "
            f"{nodes_max} nodes with every "
            "pool at its limit",
        )
        if extra_throughput:
            p.add(
                "EBS gp3: GPU node volume throughput",
                "scale",
                nodes_min * extra_throughput,
                nodes_max * extra_throughput,
                "MiB/s-month",
                p.get("ebs", "gp3_throughput_mibps_month", "gp3 throughput"),
                f"{extra_throughput:g} MiB/s above the included 125 per node",
            )
    for sts in _of(resources, "kubernetes:apps/v1:StatefulSet"):
        spec = sts["inputs"].get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        size = sum(
            _gib(((t.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage"))
            for t in spec.get("volumeClaimTemplates") or []
        )
        if size:
            p.add(
                f"EBS gp3: {_name(sts)} volumes",
                "fixed",
                replicas * size,
                replicas * size,
                "GB-month",
                gp3,
                f"{replicas} replicas x {size:g} GiB (volumeClaimTemplates), kept while idle",
            )
    for pvc in _of(resources, "kubernetes:core/v1:PersistentVolumeClaim"):
        size = _gib(
            ((pvc["inputs"].get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage")
        )
        p.add(f"EBS gp3: PVC {_name(pvc)}", "fixed", size, size, "GB-month", gp3, "requested size")
    for chart in _of(resources, "kubernetes:helm.sh/v4:Chart"):
        server = ((chart["inputs"].get("values") or {}).get("server") or {}).get("persistentVolume") or {}
        if chart["inputs"].get("chart") == "prometheus" and server.get("enabled"):
            size = _gib(server.get("size"))
            p.add(
                "EBS gp3: Prometheus volume",
                "fixed",
                size,
                size,
                "GB-month",
                gp3,
                "in-cluster Prometheus server volume (chart values)",
            )


def _databases(resources, p: _Pricer, est: Estimate, a: CostAssumptions) -> None:
    for db in _of(resources, "aws:rds/instance:Instance"):
        inputs = db["inputs"]
        klass = inputs.get("instanceClass", "?")
        if inputs.get("engine") != "postgres":
            est.unpriced.append(f"database {db['name']} ({inputs.get('engine')})")
            continue
        copies = 2 if inputs.get("multiAz") else 1
        az = " Multi-AZ" if copies == 2 else ""
        p.add(
            f"RDS {klass}{az}",
            "fixed",
            copies * MONTH,
            copies * MONTH,
            "instance-hour",
            p.get("rds", klass, f"database {db['name']}"),
            "always on" + (", standby billed too" if copies == 2 else ""),
        )
        size = float(inputs.get("allocatedStorage") or 0) * copies
        p.add(
            f"RDS gp3 storage{az}",
            "fixed",
            size,
            size,
            "GB-month",
            p.get("rds", "gp3_gb_month", "RDS storage"),
            f"allocatedStorage {inputs.get('allocatedStorage')} GiB x {copies} (autoscaling up to "
            f"{inputs.get('maxAllocatedStorage') or 'off'} not assumed)",
        )
    clusters = _of(resources, "aws:rds/cluster:Cluster")
    for cluster in clusters:
        inputs = cluster["inputs"]
        scaling = inputs.get("serverlessv2ScalingConfiguration") or {}
        members = [
            i
            for i in _of(resources, "aws:rds/clusterInstance:ClusterInstance")
            if i["inputs"].get("instanceClass") == "db.serverless"
        ]
        n = len(members) or 1
        low, high = float(scaling.get("minCapacity", 0.5)), float(scaling.get("maxCapacity", 1))
        p.add(
            f"Aurora Serverless v2 ({n} instance{'s' if n > 1 else ''})",
            "scale",
            n * low * MONTH,
            n * high * MONTH,
            "ACU-hour",
            p.get("aurora", "acu_hour", "Aurora"),
            f"minCapacity {low:g} ACU idle{' (pauses at 0)' if low == 0 else ''}, "
            f"maxCapacity {high:g} at maximum",
        )
        p.add(
            "Aurora storage",
            "fixed",
            a.aurora_storage_gb,
            a.aurora_storage_gb,
            "GB-month",
            p.get("aurora", "storage_gb_month", "Aurora storage"),
            f"{a.aurora_storage_gb:g} GB used (costAssumptions.auroraStorageGb)",
        )
    for cache in _of(resources, "aws:elasticache/serverlessCache:ServerlessCache"):
        gb = max(a.cache_stored_gb, 0.1)
        p.add(
            f"ElastiCache Serverless {cache['inputs'].get('engine', 'valkey')} data",
            "fixed",
            gb * MONTH,
            gb * MONTH,
            "GB-hour",
            p.get("elasticache", "valkey_gb_hour", "ElastiCache"),
            f"{gb:g} GB stored (costAssumptions.cacheStoredGb; 100 MB metered at least)",
        )
        ecpu = a.requests_per_day * DAYS_PER_MONTH * a.cache_ecpu_per_request / 1e6
        p.add(
            "ElastiCache ECPUs",
            "traffic",
            0,
            ecpu,
            "million ECPU",
            p.get("elasticache", "valkey_million_ecpu", "ElastiCache ECPU"),
            f"{a.requests_per_day:,} requests/day x {a.cache_ecpu_per_request:g} ECPU, 0 idle",
        )
    for group in _of(resources, "aws:elasticache/replicationGroup:ReplicationGroup"):
        est.unpriced.append(f"ElastiCache replication group {group['name']} (node types not in the tables)")


# --- output ----------------------------------------------------------------------------------


def render(est: Estimate) -> list[str]:
    out = [f"Estimated monthly cost (USD), {est.region}:"]
    if not est.priced:
        out.append(f"  not priced: region {est.region} (no price table in llmops/pricing/; none borrowed)")
        out += [f"  not priced: {item}" for item in est.unpriced[1:]]
        return out
    out.append(f"  {'line':<62} {'unit price':>22} {'minimum':>9} {'maximum':>9}")
    for line in est.lines:
        price = f"{line.unit_usd:.4g}/{line.unit}"
        flag = "" if line.verified else " *"
        out.append(
            f"  {line.label + flag:<62} {price:>22} {line.monthly_min:>9,.0f} {line.monthly_max:>9,.0f}"
        )
        out.append(f"      {line.assumption}")
    out.append(f"  {'total at minimum scale (idle: model floors, no traffic)':<95} {est.minimum:>12,.2f}")
    out.append(
        f"  {'total at maximum scale (GPU limits, traffic at costAssumptions)':<95} {est.maximum:>12,.2f}"
    )
    out += [f"  not priced: {item}" for item in est.unpriced]
    out += [f"  warning: {item}" for item in est.warnings]
    if est.unverified:
        out.append("  * unit price not verified against its source (see llmops/pricing/)")
    out.append(
        f"  prices: llmops/pricing/{est.region}.yaml (sources and dates per table); spot priced at On-Demand"
    )
    out.append(f"  excludes: {'; '.join(EXCLUDED)}")
    return out
