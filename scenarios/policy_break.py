"""Helpers of scenarios/policy_break.sh.

policy_break.py break BREAK PLAN OUT CONFIG   writes the broken plan, prints the names to report
policy_break.py verdict BASELINE REPORT NAMES POLICY
    exit 0 and print the violation when REPORT has a new mandatory POLICY violation naming one
    of NAMES (comma-separated), else exit 1
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
WORKLOADS = (
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:apps/v1:DaemonSet",
    "kubernetes:batch/v1:CronJob",
    "kubernetes:batch/v1:Job",
)


def of(plan: dict[str, Any], *types: str) -> list[dict[str, Any]]:
    return [r for r in plan["resources"] if r["type"] in types]


def root(plan: dict[str, Any]) -> str | None:
    return next(
        (r["name"] for r in plan["resources"] if r.get("parent") is None and r["type"].startswith("llmops:")),
        None,
    )


def inject(plan: dict[str, Any], rtype: str, name: str, inputs: dict[str, Any], **extra: Any) -> str:
    plan["resources"].append({"type": rtype, "name": name, "parent": root(plan), "inputs": inputs, **extra})
    print(f"  (no {rtype.rsplit(':', 1)[-1]} in the plan: added {name})", file=sys.stderr)
    return name


def bucket_of(plan: dict[str, Any], sub: dict[str, Any]) -> str:
    value = sub["inputs"].get("bucket")
    for b in of(plan, "aws:s3/bucket:Bucket"):
        if value in (b["name"], b.get("id"), b["inputs"].get("bucket")) or sub["name"].startswith(
            b["name"] + "-"
        ):
            return b["name"]
    return sub["name"]


def public_bucket(plan: dict[str, Any]) -> list[str]:
    blocks = of(plan, PAB)
    if blocks:
        for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"):
            blocks[0]["inputs"][flag] = False
        return [blocks[0]["name"], bucket_of(plan, blocks[0])]
    bucket = inject(plan, "aws:s3/bucket:Bucket", "broken-public-bucket", {}, id="broken-public-bucket")
    inject(
        plan,
        PAB,
        "broken-public-bucket-pab",
        {
            "bucket": bucket,
            "blockPublicAcls": False,
            "blockPublicPolicy": False,
            "ignorePublicAcls": False,
            "restrictPublicBuckets": False,
        },
    )
    return [bucket, "broken-public-bucket-pab"]


def unencrypted_bucket(plan: dict[str, Any]) -> list[str]:
    # A bucket encrypted with a customer key today (access-log targets may use SSE-S3 by design).
    configs = [
        c for c in of(plan, SSE)
        if any(r.get("applyServerSideEncryptionByDefault", {}).get("sseAlgorithm") == "aws:kms"
               for r in c["inputs"].get("rules", []))
    ]  # fmt: skip
    if configs:
        for rule in configs[0]["inputs"].get("rules", []):
            rule["applyServerSideEncryptionByDefault"] = {"sseAlgorithm": "AES256"}
        return [configs[0]["name"], bucket_of(plan, configs[0])]
    bucket = inject(plan, "aws:s3/bucket:Bucket", "broken-plain-bucket", {}, id="broken-plain-bucket")
    inject(
        plan,
        SSE,
        "broken-plain-bucket-sse",
        {"bucket": bucket, "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]},
    )
    return [bucket, "broken-plain-bucket-sse"]


def open_endpoint(plan: dict[str, Any]) -> list[str]:
    clusters = of(plan, "aws:eks/cluster:Cluster")
    name = clusters[0]["name"] if clusters else inject(plan, "aws:eks/cluster:Cluster", "broken-cluster", {})
    cluster = next(r for r in plan["resources"] if r["name"] == name)
    vpc = cluster["inputs"].setdefault("vpcConfig", {})
    vpc.update({"endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]})
    return [name]


def internet_facing_service(plan: dict[str, Any]) -> list[str]:
    services = [
        s
        for s in of(plan, "kubernetes:core/v1:Service")
        if s["inputs"].get("spec", {}).get("type") == "LoadBalancer"
    ]
    if services:
        notes = services[0]["inputs"].setdefault("metadata", {}).setdefault("annotations", {})
        notes["service.beta.kubernetes.io/aws-load-balancer-scheme"] = "internet-facing"
        return [services[0]["name"], services[0]["inputs"]["metadata"].get("name", services[0]["name"])]
    name = inject(
        plan,
        "kubernetes:core/v1:Service",
        "broken-public-svc",
        {
            "metadata": {
                "name": "broken-public-svc",
                "namespace": "default",
                "annotations": {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing"},
            },
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
        },
    )
    return [name]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["inputs"].setdefault("spec", {})
    if workload["type"] == "kubernetes:batch/v1:CronJob":
        spec = spec.setdefault("jobTemplate", {}).setdefault("spec", {})
    return spec.setdefault("template", {}).setdefault("spec", {})


def privileged_container(plan: dict[str, Any]) -> list[str]:
    workloads = [w for w in of(plan, *WORKLOADS) if pod_spec(w).get("containers")]
    if not workloads:
        inject(
            plan,
            "kubernetes:apps/v1:Deployment",
            "broken-privileged",
            {
                "metadata": {"name": "broken-privileged", "namespace": "default"},
                "spec": {
                    "template": {"spec": {"containers": [{"name": "app", "image": "public.ecr.aws/x/y:1"}]}}
                },
            },
        )
        workloads = of(plan, "kubernetes:apps/v1:Deployment")[-1:]
    container = pod_spec(workloads[0])["containers"][0]
    container.setdefault("securityContext", {})["privileged"] = True
    return [
        workloads[0]["name"],
        workloads[0]["inputs"].get("metadata", {}).get("name", workloads[0]["name"]),
    ]


def outside_region(plan: dict[str, Any], config: dict[str, Any]) -> list[str]:
    allowed = next((v.get("allowedRegions") for v in config.values() if isinstance(v, dict)), None) or []
    region = next(r for r in ("us-east-1", "eu-west-1", "me-central-1") if r not in allowed)
    subnets = of(plan, "aws:ec2/subnet:Subnet")
    if subnets:
        subnets[0]["inputs"]["availabilityZone"] = f"{region}a"
        return [subnets[0]["name"]]
    providers = of(plan, "pulumi:providers:aws")
    if providers:
        providers[0]["inputs"]["region"] = region
        return [providers[0]["name"]]
    return [inject(plan, "aws:sqs/queue:Queue", "broken-far-queue", {"region": region})]


def resource_region(plan: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """pulumi-aws v7: a regional resource's own region input overrides its provider's."""
    allowed = next((v.get("allowedRegions") for v in config.values() if isinstance(v, dict)), None) or []
    region = next(r for r in ("eu-west-1", "us-east-1", "me-central-1") if r not in allowed)
    buckets = of(plan, "aws:s3/bucket:Bucket")
    if buckets:
        buckets[0]["inputs"]["region"] = region
        return [buckets[0]["name"]]
    return [inject(plan, "aws:sqs/queue:Queue", "broken-far-queue", {"region": region})]


def gateway_stores_prompts(plan: dict[str, Any]) -> list[str]:
    import yaml

    maps = [
        m
        for m in of(plan, "kubernetes:core/v1:ConfigMap")
        if m["inputs"].get("metadata", {}).get("labels", {}).get("app.kubernetes.io/name") == "litellm"
    ]
    if maps:
        data = maps[0]["inputs"]["data"]
        cfg = yaml.safe_load(data["config.yaml"]) or {}
        cfg.setdefault("general_settings", {})["store_prompts_in_spend_logs"] = True
        data["config.yaml"] = yaml.safe_dump(cfg)
        return [maps[0]["name"]]
    return [
        inject(
            plan,
            "kubernetes:core/v1:ConfigMap",
            "broken-gateway-config",
            {
                "metadata": {
                    "name": "litellm-config",
                    "namespace": "gateway",
                    "labels": {"app.kubernetes.io/name": "litellm"},
                },
                "data": {
                    "config.yaml": yaml.safe_dump(
                        {
                            "model_list": [],
                            "general_settings": {
                                "master_key": "os.environ/LITELLM_MASTER_KEY",
                                "store_prompts_in_spend_logs": True,
                            },
                        }
                    )
                },
            },
        )
    ]


def verdict(baseline: str, report: str, names: str, policy: str) -> int:
    def key(v: dict[str, Any]) -> tuple[str, str, str]:
        return v["policy"], v["resource"], v["message"]

    base = {key(v) for v in json.loads(Path(baseline).read_text())["violations"]}
    new = [
        v
        for v in json.loads(Path(report).read_text())["violations"]
        if key(v) not in base and v["level"] == "mandatory"
    ]
    wanted = names.split(",")
    hit = [v for v in new if v["resource"] in wanted or any(n in v["message"] for n in wanted)]
    mine = [v for v in hit if v["policy"] == policy]
    others = sorted({v["id"] for v in hit} - {v["id"] for v in mine})
    if not mine:
        print(
            f"no new mandatory {policy} violation naming it"
            + (f" (only {', '.join(others)})" if others else "")
        )
        return 1
    also = f" (also {', '.join(others)})" if others else ""
    print(f"{mine[0]['id']} {mine[0]['policy']}: {mine[0]['message']}{also}")
    return 0


def main() -> int:
    if sys.argv[1] == "verdict":
        return verdict(*sys.argv[2:6])
    brk, src, out, config_path = sys.argv[2:6]
    plan = json.loads(Path(src).read_text())
    config = json.loads(Path(config_path).read_text())
    breaks = {
        "public-bucket": public_bucket,
        "unencrypted-bucket": unencrypted_bucket,
        "open-endpoint": open_endpoint,
        "internet-facing-service": internet_facing_service,
        "privileged-container": privileged_container,
        "gateway-stores-prompts": gateway_stores_prompts,
    }
    regional = {"outside-region": outside_region, "resource-region": resource_region}
    names = regional[brk](plan, config) if brk in regional else breaks[brk](plan)
    Path(out).write_text(json.dumps(plan))
    print(",".join(dict.fromkeys(names)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
