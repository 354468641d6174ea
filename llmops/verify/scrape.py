"""Prometheus scrape jobs evaluated on the plan: Kubernetes service discovery over the plan's pods
and Services, then the job's relabel rules, give the targets each job scrapes and their labels.

Follows the Prometheus configuration reference (prometheus.io/docs/prometheus/latest/configuration/
configuration/#kubernetes_sd_config and #relabel_config): pod role, one target per declared
container port; endpoints role, one target per Service port and backing pod; relabel actions
keep, drop, replace, labelmap, labeldrop, labelkeep; regexes anchored at both ends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from llmops.verify.model import PlanView, Workload, name_of, namespace_of
from llmops.verify.upstream import render_chart

POD_IP = "10.0.0.10"  # a stand-in address; only its port matters


@dataclass
class Target:
    job: str
    workload: Workload
    port: int | None
    scheme: str
    path: str
    labels: dict[str, str]  # the series labels the job attaches (job, instance, relabelled ones)


@dataclass
class Store:
    """Where scraped metrics land and are queried: an AMP workspace or an in-cluster Prometheus."""

    resource: str  # the scraper or the Prometheus chart
    query_urls: set[str]
    jobs: list[dict[str, Any]]
    targets: list[Target] = field(default_factory=list)
    scraper: dict[str, Any] | None = None  # the AMP scraper resource, when managed


def _sanitize(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _pod_meta(w: Workload) -> dict[str, str]:
    meta = {
        "__meta_kubernetes_namespace": w.namespace,
        "__meta_kubernetes_pod_name": f"{w.name}-0",
        "__meta_kubernetes_pod_ip": POD_IP,
        "__meta_kubernetes_pod_node_name": "node",
        "__meta_kubernetes_pod_controller_kind": w.kind,
        "__meta_kubernetes_pod_controller_name": w.name,
    }
    for key, value in w.labels.items():
        meta[f"__meta_kubernetes_pod_label_{_sanitize(key)}"] = str(value)
        meta[f"__meta_kubernetes_pod_labelpresent_{_sanitize(key)}"] = "true"
    for key, value in w.annotations.items():
        meta[f"__meta_kubernetes_pod_annotation_{_sanitize(key)}"] = str(value)
        meta[f"__meta_kubernetes_pod_annotationpresent_{_sanitize(key)}"] = "true"
    return meta


def _candidates(plan: PlanView, sd: dict[str, Any]) -> list[tuple[Workload, int | None, dict[str, str]]]:
    role = sd.get("role")
    names = ((sd.get("namespaces") or {}).get("names")) or None
    workloads = [w for w in plan.workloads if names is None or w.namespace in names]
    out = []
    if role == "pod":
        for w in workloads:
            ports = w.ports() or [(None, None)]
            for port_name, number in ports:
                meta = _pod_meta(w)
                meta["__address__"] = f"{POD_IP}:{number}" if number else POD_IP
                if number:
                    meta["__meta_kubernetes_pod_container_port_number"] = str(number)
                    meta["__meta_kubernetes_pod_container_port_name"] = port_name or ""
                    meta["__meta_kubernetes_pod_container_port_protocol"] = "TCP"
                out.append((w, number, meta))
    elif role in ("endpoints", "endpointslice", "service"):
        for ns, svc_name, selector, ports in services(plan):
            if names is not None and ns not in names:
                continue
            for w in plan.pods_of(selector, ns):
                for port in ports:
                    number = w.port_number(port.get("targetPort", port.get("port")))
                    meta = _pod_meta(w)
                    meta.update(
                        {
                            "__address__": f"{POD_IP}:{number}",
                            "__meta_kubernetes_service_name": svc_name,
                            "__meta_kubernetes_endpoint_port_name": port.get("name") or "",
                            "__meta_kubernetes_endpointslice_port_name": port.get("name") or "",
                        }
                    )
                    out.append((w, number, meta))
    return out


def services(plan: PlanView) -> list[tuple[str, str, dict[str, Any], list[dict[str, Any]]]]:
    """(namespace, name, selector, ports) of every Service, declared or rendered by a chart."""
    found = [
        (
            namespace_of(s),
            name_of(s),
            (s["inputs"].get("spec") or {}).get("selector") or {},
            (s["inputs"].get("spec") or {}).get("ports") or [],
        )
        for s in plan.objects("Service")
    ]
    for _, render in plan.renders:
        found += [(s.namespace, s.name, s.selector, s.ports) for s in render.services]
    return found


def _expand(match: re.Match, replacement: str) -> str:
    """A relabel replacement with its $1 / ${name} references filled from the match."""

    def group(ref: re.Match) -> str:
        key = ref.group(1) or ref.group(2)
        try:
            return match.group(int(key) if key.isdigit() else key) or ""
        except (IndexError, re.error):
            return ""

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", group, replacement)


def relabel(labels: dict[str, str], rules: list[dict[str, Any]]) -> dict[str, str] | None:
    """Apply relabel_configs; None when the target is dropped."""
    labels = dict(labels)
    for rule in rules or []:
        action = rule.get("action", "replace")
        regex = re.compile(f"^(?:{rule.get('regex', '(.*)')})$")
        value = rule.get("separator", ";").join(labels.get(s, "") for s in rule.get("source_labels") or [])
        if action == "keep" and not regex.match(value):
            return None
        if action == "drop" and regex.match(value):
            return None
        if action == "replace":
            match = regex.match(value)
            if match and rule.get("target_label"):
                result = _expand(match, rule.get("replacement", "$1"))
                if result:
                    labels[rule["target_label"]] = result
                else:
                    labels.pop(rule["target_label"], None)
        elif action == "labelmap":
            for key in list(labels):
                match = regex.match(key)
                if match:
                    labels[_expand(match, rule.get("replacement", "$1"))] = labels[key]
        elif action == "labeldrop":
            labels = {k: v for k, v in labels.items() if not regex.match(k)}
        elif action == "labelkeep":
            labels = {k: v for k, v in labels.items() if k.startswith("__") or regex.match(k)}
    return labels


def job_targets(plan: PlanView, job: dict[str, Any]) -> list[Target]:
    targets = []
    for sd in job.get("kubernetes_sd_configs") or []:
        for w, _, meta in _candidates(plan, sd):
            labels = relabel(meta, job.get("relabel_configs") or [])
            if labels is None:
                continue
            address = labels.get("__address__", "")
            port = (
                int(address.rsplit(":", 1)[1])
                if ":" in address and address.rsplit(":", 1)[1].isdigit()
                else None
            )
            series = {k: v for k, v in labels.items() if not k.startswith("__")}
            series.setdefault("job", job.get("job_name", ""))
            series.setdefault("instance", address)
            targets.append(
                Target(
                    job=job.get("job_name", ""),
                    workload=w,
                    port=port,
                    scheme=labels.get("__scheme__", job.get("scheme", "http")),
                    path=labels.get("__metrics_path__", job.get("metrics_path", "/metrics")),
                    labels=series,
                )
            )
    return targets


def stores(plan: PlanView) -> list[Store]:
    """Every metrics store the plan configures, with the targets of its jobs."""
    found = []
    for scraper in plan.of_type("aws:amp/scraper:Scraper"):
        try:
            config = yaml.safe_load(scraper["inputs"].get("scrapeConfiguration") or "") or {}
        except yaml.YAMLError:
            config = {}
        workspace = plan.resolve(
            ((scraper["inputs"].get("destination") or {}).get("amp") or {}).get("workspaceArn")
        )
        urls = set()
        if workspace:
            endpoint = (workspace.get("outputs") or {}).get("prometheusEndpoint", "")
            urls = {endpoint, endpoint.rstrip("/")}
        found.append(Store(scraper["name"], urls, list(config.get("scrape_configs") or []), scraper=scraper))
    for chart in plan.of_type("kubernetes:helm.sh/v4:Chart"):
        if (chart.get("inputs") or {}).get("chart") != "prometheus":
            continue
        values = chart["inputs"].get("values") or {}
        config = (values.get("serverFiles") or {}).get("prometheus.yml") or {}
        render = render_chart(chart)
        urls = set()
        for svc in render.services if render else []:
            host = f"http://{svc.name}.{svc.namespace}.svc.cluster.local"
            urls |= {host, f"{host}:80"}
        found.append(Store(chart["name"], urls, list(config.get("scrape_configs") or [])))
    for store in found:
        for job in store.jobs:
            store.targets += job_targets(plan, job)
    return found


def served(target: Target):
    """The metric families the target's port serves, in the scheme it is scraped with."""
    return [
        family
        for family in target.workload.produces
        if target.workload.port_number(family.port) == target.port
        and family.scheme == target.scheme
        and target.path == "/metrics"
    ]
