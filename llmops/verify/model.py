"""The plan as the contracts read it: resources by name and by the ids and ARNs others use to
refer to them, the dependency graph, IAM and key policies, and the Kubernetes side, including
what the pinned Helm charts and EKS add-ons create (llmops/verify/upstream.py), which the plan
records only as values.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from llmops.verify import upstream

K8S_NOT_OBJECTS = ("kubernetes:helm.sh/", "pulumi:providers:")
# Namespaces every EKS cluster has before the program runs.
BUILTIN_NAMESPACES = {"default", "kube-system", "kube-public", "kube-node-lease"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet", "Pod"}
# Tenant namespaces: a product team's namespace (components/team.py, docs/teams.md) carries this
# label with the team's name. The plan declares no pods there (teams deploy their own later); their
# pods run as the namespace's `workload` service account, which has the team's Pod Identity role.
TENANT_LABEL = "llmops.io/team"
TENANT_SERVICE_ACCOUNT = "workload"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by Kubernetes on every namespace
# The label Qdrant's NetworkPolicy admits clients by, in any namespace (components/vector_db.py
# CLIENT_LABEL, docs/serving.md): a team pod that uses the team's collections carries it.
QDRANT_CLIENT_LABELS = {"llmops.io/qdrant-client": "true"}


@dataclass
class Workload:
    """Pods of one controller (declared in the plan, or rendered by a chart or add-on)."""

    kind: str
    namespace: str
    name: str
    resource: str  # the plan resource that declares it (the object, the chart or the add-on)
    labels: dict[str, str]
    annotations: dict[str, str] = field(default_factory=dict)
    pod: dict[str, Any] = field(default_factory=dict)  # the pod spec (may be partial for charts)
    produces: tuple[upstream.MetricFamily, ...] = ()  # metric families its containers serve
    modelled: str = ""  # why the plan's pods are assumed here though nothing declares them (tenants)

    @property
    def label(self) -> str:
        prefix = "modelled " if self.modelled else ""
        return f"{prefix}{self.kind} {self.namespace}/{self.name}"

    @property
    def containers(self) -> list[dict[str, Any]]:
        return [*(self.pod.get("initContainers") or []), *(self.pod.get("containers") or [])]

    @property
    def service_account(self) -> str:
        return self.pod.get("serviceAccountName") or "default"

    def ports(self) -> list[tuple[str | None, int]]:
        """(name, containerPort) of every container port."""
        return [
            (p.get("name"), int(p["containerPort"]))
            for c in self.pod.get("containers") or []
            for p in c.get("ports") or []
            if "containerPort" in p
        ]

    def port_number(self, port: int | str) -> int | None:
        """A Service targetPort (number or name) resolved against the pods' ports."""
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        return next((number for name, number in self.ports() if name == port), None)


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels/matchExpressions, or a plain map) against labels."""
    if selector is None:
        return False
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        selector = {"matchLabels": selector}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if (
            (op == "In" and labels.get(key) not in values)
            or (op == "NotIn" and labels.get(key) in values)
            or (op == "Exists" and key not in labels)
            or (op == "DoesNotExist" and key in labels)
        ):
            return False
    return True


def statements(document: Any) -> list[dict[str, Any]]:
    """The statements of an IAM or key policy (a JSON string or a dict), as a list."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return []
    if not isinstance(document, dict):
        return []
    found = document.get("Statement") or []
    return [s for s in (found if isinstance(found, list) else [found]) if isinstance(s, dict)]


def as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


class PlanView:
    def __init__(self, plan: dict[str, Any]):
        self.doc = plan
        self.resources: list[dict[str, Any]] = plan.get("resources") or []
        self.settings: dict[str, Any] = plan.get("settings") or {}
        self.by_name = {r["name"]: r for r in self.resources}
        self._closure: dict[str, set[str]] = {}

    # -- resources ---------------------------------------------------------------------------

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["type"] in types]

    @cached_property
    def _refs(self) -> dict[str, dict[str, Any]]:
        """Every value another resource may use to refer to a resource: its id, ARN, URL, name."""
        refs: dict[str, dict[str, Any]] = {}
        for r in self.resources:
            outputs = r.get("outputs") or {}
            for value in (r.get("id"), outputs.get("arn"), outputs.get("url")):
                if isinstance(value, str) and value:
                    refs.setdefault(value, r)
        return refs

    def resolve(self, ref: Any, *types: str) -> dict[str, Any] | None:
        """The resource an input refers to by id, ARN or URL (optionally of the given types)."""
        found = self._refs.get(ref) if isinstance(ref, str) else None
        if found is None and isinstance(ref, str):  # a name given where AWS takes a name or an ARN
            found = next((r for r in self.resources if (r.get("inputs") or {}).get("name") == ref), None)
        if found is not None and types and found["type"] not in types:
            return None
        return found

    def arn(self, resource: dict[str, Any]) -> str | None:
        return (resource.get("outputs") or {}).get("arn")

    def waits_for(self, name: str, other: str) -> bool:
        """Whether the engine creates `other` before `name` (a direct or transitive dependency)."""
        seen = self._closure.get(name)
        if seen is None:
            seen, todo = set(), list(self.by_name.get(name, {}).get("dependencies") or [])
            while todo:
                dep = todo.pop()
                if dep not in seen:
                    seen.add(dep)
                    todo.extend(self.by_name.get(dep, {}).get("dependencies") or [])
            self._closure[name] = seen
        return other in seen

    # -- IAM and KMS -------------------------------------------------------------------------

    def role_of(self, ref: Any) -> dict[str, Any] | None:
        return self.resolve(ref, "aws:iam/role:Role")

    def role_statements(self, role: dict[str, Any]) -> list[dict[str, Any]]:
        """Allow and Deny statements of the role's inline policies (managed ones are named only)."""
        keys = {
            role.get("id"),
            (role.get("inputs") or {}).get("name"),
            (role.get("outputs") or {}).get("name"),
        }
        found = []
        for policy in self.of_type("aws:iam/rolePolicy:RolePolicy"):
            if (policy.get("inputs") or {}).get("role") in keys - {None}:
                found += statements(policy["inputs"].get("policy"))
        return found

    def role_policies(self, role: dict[str, Any]) -> list[dict[str, Any]]:
        """The RolePolicy and RolePolicyAttachment resources of a role."""
        keys = {
            role.get("id"),
            (role.get("inputs") or {}).get("name"),
            (role.get("outputs") or {}).get("name"),
        }
        return [
            p
            for p in self.of_type(
                "aws:iam/rolePolicy:RolePolicy", "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
            )
            if (p.get("inputs") or {}).get("role") in keys - {None}
        ]

    def managed_policies(self, role: dict[str, Any]) -> list[str]:
        return [
            p["inputs"].get("policyArn", "")
            for p in self.role_policies(role)
            if p["type"] == "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
        ]

    def key_statements(self, key_ref: Any) -> list[dict[str, Any]] | None:
        """The key policy of a customer key in the plan; None for AWS-managed or unknown keys."""
        key = self.resolve(key_ref, "aws:kms/key:Key")
        return statements(key["inputs"].get("policy")) if key else None

    # -- EKS ---------------------------------------------------------------------------------

    @cached_property
    def cluster(self) -> dict[str, Any] | None:
        found = self.of_type("aws:eks/cluster:Cluster")
        return found[0] if found else None

    @cached_property
    def cluster_security_group(self) -> str | None:
        if not self.cluster:
            return None
        return ((self.cluster.get("outputs") or {}).get("vpcConfig") or {}).get("clusterSecurityGroupId")

    def addon(self, name: str) -> dict[str, Any] | None:
        return next(
            (a for a in self.of_type("aws:eks/addon:Addon") if a["inputs"].get("addonName") == name), None
        )

    def addon_config(self, name: str) -> dict[str, Any]:
        addon = self.addon(name)
        raw = (addon or {}).get("inputs", {}).get("configurationValues") or "{}"
        try:
            config = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            return {}
        return config if isinstance(config, dict) else {}

    # -- Kubernetes --------------------------------------------------------------------------

    @cached_property
    def k8s_objects(self) -> list[dict[str, Any]]:
        """Kubernetes objects declared one by one (inputs are the manifest)."""
        return [
            r
            for r in self.resources
            if r["type"].startswith("kubernetes:") and not r["type"].startswith(K8S_NOT_OBJECTS)
        ]

    def objects(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [
            r
            for r in self.k8s_objects
            if r["inputs"].get("kind") == kind and (namespace is None or namespace_of(r) == namespace)
        ]

    @cached_property
    def renders(self) -> list[tuple[dict[str, Any], upstream.Render]]:
        """What each chart and add-on of the plan puts in the cluster, per upstream.py."""
        out = []
        for chart in self.of_type("kubernetes:helm.sh/v4:Chart"):
            render = upstream.render_chart(chart)
            if render is not None:
                out.append((chart, render))
        for addon in self.of_type("aws:eks/addon:Addon"):
            render = upstream.render_addon(addon["inputs"].get("addonName", ""), self.addon_config_of(addon))
            if render is not None:
                out.append((addon, render))
        return out

    def addon_config_of(self, addon: dict[str, Any]) -> dict[str, Any]:
        return self.addon_config(addon["inputs"].get("addonName", ""))

    @cached_property
    def workloads(self) -> list[Workload]:
        found = []
        for obj in self.k8s_objects:
            kind = obj["inputs"].get("kind")
            if kind not in WORKLOAD_KINDS:
                continue
            template = pod_template(obj["inputs"])
            meta = template.get("metadata") or {}
            found.append(
                Workload(
                    kind=kind,
                    namespace=namespace_of(obj),
                    name=name_of(obj),
                    resource=obj["name"],
                    labels=dict(meta.get("labels") or {}),
                    annotations=dict(meta.get("annotations") or {}),
                    pod=template.get("spec") or {},
                    produces=upstream.families_of_pod(template.get("spec") or {}, self.gateway_config),
                )
            )
        for source, render in self.renders:
            for w in render.workloads:
                found.append(
                    Workload(
                        w.kind, w.namespace, w.name, source["name"], dict(w.labels), {}, w.pod, w.produces
                    )
                )
        return found + self.tenant_workloads

    @cached_property
    def tenant_namespaces(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """Tenant namespace -> (team name, the Namespace resource)."""
        found = {}
        for obj in self.objects("Namespace"):
            team = ((obj["inputs"].get("metadata") or {}).get("labels") or {}).get(TENANT_LABEL)
            if team:
                found[name_of(obj)] = (str(team), obj)
        return found

    @cached_property
    def tenant_workloads(self) -> list[Workload]:
        """The pods a team may run in its namespace, which the plan cannot declare: one with no
        particular labels and one labelled as a Qdrant client (QDRANT_CLIENT_LABELS, the one label the
        platform gives meaning to in a team's namespace), both running as the namespace's `workload`
        service account. Modelled, so the team's NetworkPolicies and the paths the platform promises
        teams can be checked before any team deploys. Labels are not derived from the policies that
        select them, so a selector no team pod is told to carry still selects nothing."""
        found = []
        for ns, (team, obj) in sorted(self.tenant_namespaces.items()):
            why = (
                f"tenant namespace of team {team} (label {TENANT_LABEL}): the team deploys its pods later, "
                f"as service account {TENANT_SERVICE_ACCOUNT}"
            )
            for name, labels in (("tenant", {}), ("tenant-qdrant-client", QDRANT_CLIENT_LABELS)):
                pod = {"serviceAccountName": TENANT_SERVICE_ACCOUNT}
                found.append(Workload("Pod", ns, name, obj["name"], dict(labels), pod=pod, modelled=why))
        return found

    def tenant_pods(self, namespace: str) -> list[Workload]:
        return [w for w in self.tenant_workloads if w.namespace == namespace]

    def tenant_secrets(self, namespace_resource: dict[str, Any]) -> list[dict[str, Any]]:
        """The Secrets Manager secrets of a team: those its component (the parent of its Namespace)
        declares, i.e. its gateway key and its Qdrant token (components/team.py)."""
        return self.children_of(namespace_resource, "aws:secretsmanager/secret:Secret")

    def children_of(self, resource: dict[str, Any], *types: str) -> list[dict[str, Any]]:
        """Resources the same component declares as `resource` (its siblings), of the given types."""
        parent = resource.get("parent")
        return [r for r in self.resources if parent and r.get("parent") == parent and r["type"] in types]

    @cached_property
    def namespace_labels(self) -> dict[str, dict[str, str]]:
        """Namespace -> labels, with the kubernetes.io/metadata.name label Kubernetes sets on each."""
        labels = {ns: {NAMESPACE_NAME_LABEL: ns} for ns in self.namespaces}
        for obj in self.objects("Namespace"):
            ns = name_of(obj)
            labels[ns] = {**((obj["inputs"].get("metadata") or {}).get("labels") or {}), **labels.get(ns, {})}
            labels[ns][NAMESPACE_NAME_LABEL] = ns
        return labels

    def workloads_in(self, namespace: str) -> list[Workload]:
        return [w for w in self.workloads if w.namespace == namespace]

    def workload_named(self, kind: str, namespace: str, name: str) -> Workload | None:
        return next(
            (w for w in self.workloads if (w.kind, w.namespace, w.name) == (kind, namespace, name)), None
        )

    @cached_property
    def namespaces(self) -> dict[str, str]:
        """namespace -> what creates it."""
        found = {ns: "EKS" for ns in BUILTIN_NAMESPACES}
        for obj in self.objects("Namespace"):
            found[name_of(obj)] = obj["name"]
        for chart in self.of_type("kubernetes:helm.sh/v4:Chart"):
            if chart["inputs"].get("createNamespace"):
                found.setdefault(chart["inputs"].get("namespace"), chart["name"])
        for source, render in self.renders:
            for ns in render.namespaces:
                found.setdefault(ns, source["name"])
        return found

    @cached_property
    def service_accounts(self) -> dict[tuple[str, str], str]:
        """(namespace, name) -> what creates it; every namespace has `default`."""
        found = {(ns, "default"): "Kubernetes" for ns in self.namespaces}
        for obj in self.objects("ServiceAccount"):
            found[(namespace_of(obj), name_of(obj))] = obj["name"]
        for source, render in self.renders:
            for key in render.service_accounts:
                found.setdefault(key, source["name"])
        return found

    @cached_property
    def crd_installers(self) -> dict[tuple[str, str], str]:
        """(apiVersion, kind) of custom resources -> what installs the CRD ("EKS" for built-ins)."""
        found = dict.fromkeys(upstream.EKS_CRDS, "EKS")
        for source, render in self.renders:
            for key in render.crds:
                found.setdefault(key, source["name"])
        return found

    @cached_property
    def apis(self) -> dict[str, str]:
        """Aggregated APIs served in the cluster (metrics.k8s.io, external.metrics.k8s.io) -> server."""
        found: dict[str, str] = {}
        for source, render in self.renders:
            for api in render.apis:
                found.setdefault(api, source["name"])
        return found

    @cached_property
    def gateway_config(self) -> dict[str, Any] | None:
        """The LiteLLM config the plan mounts into the gateway (its ConfigMap's config.yaml)."""
        import yaml

        for obj in self.objects("ConfigMap"):
            labels = (obj["inputs"].get("metadata") or {}).get("labels") or {}
            if labels.get("app.kubernetes.io/name") == "litellm":
                try:
                    config = yaml.safe_load((obj["inputs"].get("data") or {}).get("config.yaml") or "")
                except yaml.YAMLError:
                    return None
                return config if isinstance(config, dict) else None
        return None

    def pods_of(self, selector: dict[str, Any] | None, namespace: str) -> list[Workload]:
        return [w for w in self.workloads_in(namespace) if selects(selector, w.labels)]

    def iter_containers(self) -> Iterator[tuple[Workload, dict[str, Any]]]:
        for w in self.workloads:
            for c in w.containers:
                yield w, c


def namespace_of(obj: dict[str, Any]) -> str:
    meta = obj["inputs"].get("metadata") or {}
    return meta.get("namespace") or ("" if obj["inputs"].get("kind") == "Namespace" else "default")


def name_of(obj: dict[str, Any]) -> str:
    meta = obj["inputs"].get("metadata") or {}
    return meta.get("name") or ((obj.get("outputs") or {}).get("metadata") or {}).get("name") or obj["name"]


def pod_template(manifest: dict[str, Any]) -> dict[str, Any]:
    """The pod template (metadata + spec) of a workload manifest."""
    kind, spec = manifest.get("kind"), manifest.get("spec") or {}
    if kind == "Pod":
        return {"metadata": manifest.get("metadata") or {}, "spec": spec}
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return spec.get("template") or {}
