"""What the cost estimate assumes about usage (`llmops:costAssumptions`, docs/cost.md).

Lines that bill by traffic are priced at these figures at maximum scale and at zero at minimum
scale (idle); time-driven lines (logs the control plane writes anyway, metrics scraped from idle
targets) use their idle figures at both scales. Change them to your own numbers: every line of
`llmops plan` names the assumption it used.
"""

from __future__ import annotations

from pydantic import Field

from llmops.settings.base import Settings


class CostAssumptions(Settings):
    requests_per_day: int = Field(10_000, ge=0)
    """Gateway requests a day at maximum scale (none at minimum scale)."""
    kib_per_request: float = Field(16, ge=0)
    """Bytes through the gateway's load balancer per request (prompt and completion), in KiB."""
    nat_gb_per_month: float = Field(50, ge=0)
    """GB a month through NAT at maximum scale: external LLM APIs, image pulls, package downloads."""
    endpoint_gb_per_month: float = Field(20, ge=0)
    """GB a month through the interface endpoints at maximum scale (ECR layers, logs, STS, ...)."""
    control_plane_log_gb_per_month: float = Field(3, ge=0)
    """EKS control-plane logs ingested a month (all five log types, mostly audit), idle or busy."""
    flow_log_gb_per_month: float = Field(1, ge=0)
    """VPC flow logs ingested a month, idle or busy."""
    lambda_log_gb_per_month: float = Field(0.05, ge=0)
    """Logs each platform Lambda writes a month (scheduled ones run while idle too)."""
    idle_metric_series: int = Field(1500, ge=0)
    """Active Prometheus series scraped while idle (gateway, KEDA, system exporters)."""
    metric_series_per_gpu: int = Field(400, ge=0)
    """More active series per GPU at maximum scale (vLLM and DCGM exporters)."""
    observations_per_node_minute: int = Field(60, ge=0)
    """Container Insights (enhanced observability) observations a node emits a minute."""
    observations_per_pod_minute: int = Field(25, ge=0)
    """Container Insights observations a pod emits a minute, its containers included."""
    pods_per_node: int = Field(15, ge=0)
    """Pods per node the observations are counted for."""
    aurora_storage_gb: float = Field(2, ge=0)
    """Aurora storage used (billed by use, not allocation), when the plan has an Aurora cluster."""
    cache_stored_gb: float = Field(0.1, ge=0)
    """Data held in an ElastiCache Serverless cache (AWS meters at least 100 MB for Valkey)."""
    cache_ecpu_per_request: float = Field(2, ge=0)
    """ElastiCache ECPUs per gateway request (one lookup, one write)."""
