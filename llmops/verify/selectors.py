"""Selectors and references: every Service, PodDisruptionBudget, NetworkPolicy, autoscaler and
SecurityGroupPolicy selects pods that exist; every namespace, service account, ConfigMap, Secret
and node label a pod or an association names exists."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from llmops.verify.contracts import Finding, contract
from llmops.verify.model import PlanView, Workload, name_of, namespace_of, selects

SCALE_KINDS = {"Deployment", "StatefulSet", "ReplicaSet"}


def _pods_text(selector: Any) -> str:
    return f"pods matching {selector}"


@contract("selector-service", "selectors", "Checks whether every Service selects pods, on ports they expose.")
def services(plan: PlanView) -> Iterator[Finding]:
    for svc in plan.objects("Service"):
        spec, ns = svc["inputs"].get("spec") or {}, namespace_of(svc)
        selector = spec.get("selector")
        if not selector:  # ExternalName and manually managed endpoints select nothing on purpose
            continue
        pods = plan.pods_of(selector, ns)
        if not pods:
            yield Finding(
                "selector-service",
                svc["name"],
                _pods_text(selector),
                f"Service {ns}/{name_of(svc)} must select pods: no workload in {ns} has labels {selector}.",
                "Make the Service's spec.selector equal the pod template labels of its workload.",
            )
            continue
        for port in spec.get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            if all(w.port_number(target) is None for w in pods):
                yield Finding(
                    "selector-service",
                    svc["name"],
                    pods[0].label,
                    f"Service {ns}/{name_of(svc)} port {port.get('name') or port.get('port')} must target "
                    "a port "
                    f"the pods expose: no container of {pods[0].label} has a port named {target!r}.",
                    "Name the container port as the Service's targetPort says.",
                )


@contract("selector-pdb", "selectors", "Checks whether every PodDisruptionBudget selects pods.")
def disruption_budgets(plan: PlanView) -> Iterator[Finding]:
    for pdb in plan.objects("PodDisruptionBudget"):
        selector, ns = (pdb["inputs"].get("spec") or {}).get("selector"), namespace_of(pdb)
        if not plan.pods_of(selector, ns):
            yield Finding(
                "selector-pdb",
                pdb["name"],
                _pods_text(selector),
                f"PodDisruptionBudget {ns}/{name_of(pdb)} must select pods: nothing in {ns} matches "
                f"{selector}.",
                "Make spec.selector match the workload it protects.",
            )


def _namespace_labels(plan: PlanView) -> dict[str, dict[str, str]]:
    """Namespace -> labels, with the kubernetes.io/metadata.name label Kubernetes sets on every one."""
    return plan.namespace_labels


def peer_pods(plan: PlanView, peer: dict[str, Any], own_namespace: str) -> list[Workload] | None:
    """Pods a NetworkPolicy peer admits; None for an ipBlock peer (addresses, not pods)."""
    if "ipBlock" in peer:
        return None
    ns_labels = _namespace_labels(plan)
    if "namespaceSelector" in peer:
        namespaces = [ns for ns, labels in ns_labels.items() if selects(peer["namespaceSelector"], labels)]
    else:
        namespaces = [own_namespace]
    pod_selector = peer.get("podSelector", {})
    return [w for ns in namespaces for w in plan.workloads_in(ns) if selects(pod_selector, w.labels)]


def _modelled_note(plan: PlanView, namespace: str) -> str:
    """For a team's namespace, whose pods the plan only models: which pods those are."""
    if namespace not in plan.tenant_namespaces:
        return ""
    shown = "; ".join(f"{w.name} {w.labels or '{}'}" for w in plan.tenant_pods(namespace))
    return f" ({namespace} is a team's namespace; the pods it is checked against are modelled: {shown})"


@contract(
    "selector-networkpolicy",
    "selectors",
    "Checks whether every NetworkPolicy's pod selector and every pod peer it admits select pods.",
)
def network_policies(plan: PlanView) -> Iterator[Finding]:
    for policy in plan.objects("NetworkPolicy"):
        spec, ns, name = policy["inputs"].get("spec") or {}, namespace_of(policy), name_of(policy)
        selector = spec.get("podSelector") or {}
        if (selector.get("matchLabels") or selector.get("matchExpressions")) and not plan.pods_of(
            selector, ns
        ):
            yield Finding(
                "selector-networkpolicy",
                policy["name"],
                _pods_text(selector),
                f"NetworkPolicy {ns}/{name} must select pods: nothing in {ns} matches its podSelector "
                f"{selector}{_modelled_note(plan, ns)}.",
                "Make spec.podSelector match the pods it protects.",
            )
        for direction, key in (("ingress", "from"), ("egress", "to")):
            for rule in spec.get(direction) or []:
                for peer in rule.get(key) or []:
                    pods = peer_pods(plan, peer, ns)
                    if pods is not None and not pods:
                        yield Finding(
                            "selector-networkpolicy",
                            policy["name"],
                            f"peer {peer}",
                            f"NetworkPolicy {ns}/{name} admits {direction} {key} {peer}, which selects no "
                            "pod: "
                            f"the path it is meant to open stays closed{_modelled_note(plan, ns)}.",
                            "Match the peer's namespaceSelector/podSelector to the client's namespace and "
                            "pod labels.",
                        )


def _scale_target(plan: PlanView, ref: dict[str, Any], ns: str) -> Workload | None:
    kind = ref.get("kind", "Deployment")
    return plan.workload_named(kind, ns, ref.get("name", ""))


@contract(
    "selector-scale-target",
    "selectors",
    "Checks whether every HorizontalPodAutoscaler and KEDA ScaledObject scales a workload that exists, "
    "and no workload is scaled by two autoscalers.",
)
def scale_targets(plan: PlanView) -> Iterator[Finding]:
    owners: dict[tuple[str, str, str], list[str]] = {}
    scalers = plan.objects("HorizontalPodAutoscaler") + plan.objects("ScaledObject")
    for scaler in scalers:
        ns, kind = namespace_of(scaler), scaler["inputs"]["kind"]
        ref = (scaler["inputs"].get("spec") or {}).get("scaleTargetRef") or {}
        target = _scale_target(plan, ref, ns)
        if target is None:
            yield Finding(
                "selector-scale-target",
                scaler["name"],
                f"{ref.get('kind', 'Deployment')} {ns}/{ref.get('name')}",
                f"{kind} {ns}/{name_of(scaler)} must scale a workload of the plan: there is no "
                f"{ref.get('kind', 'Deployment')} {ns}/{ref.get('name')}.",
                "Set scaleTargetRef to the workload's kind and metadata.name.",
            )
        elif target.kind not in SCALE_KINDS:
            yield Finding(
                "selector-scale-target",
                scaler["name"],
                target.resource,
                f"{kind} {ns}/{name_of(scaler)} targets {target.label}, which has no scale subresource.",
                "Scale a Deployment or StatefulSet.",
            )
        else:
            owners.setdefault((target.kind, ns, target.name), []).append(scaler["name"])
    for (kind, ns, name), names in owners.items():
        if len(names) > 1:
            yield Finding(
                "selector-scale-target",
                names[0],
                names[1],
                f"{kind} {ns}/{name} must have one autoscaler; {', '.join(names)} all set its replicas.",
                "Keep one HorizontalPodAutoscaler or ScaledObject per workload.",
            )


@contract(
    "selector-trigger-auth",
    "selectors",
    "Checks whether every KEDA trigger's authenticationRef names a TriggerAuthentication of its namespace.",
)
def trigger_authentications(plan: PlanView) -> Iterator[Finding]:
    for scaler in plan.objects("ScaledObject"):
        ns = namespace_of(scaler)
        for trigger in (scaler["inputs"].get("spec") or {}).get("triggers") or []:
            ref = trigger.get("authenticationRef")
            if not ref:
                continue
            kind = ref.get("kind", "TriggerAuthentication")
            found = [
                o
                for o in plan.objects(kind)
                if name_of(o) == ref.get("name")
                and (kind != "TriggerAuthentication" or namespace_of(o) == ns)
            ]
            if not found:
                yield Finding(
                    "selector-trigger-auth",
                    scaler["name"],
                    f"{kind} {ns}/{ref.get('name')}",
                    f"ScaledObject {ns}/{name_of(scaler)} trigger {trigger.get('name')} must authenticate "
                    "with "
                    f"an existing {kind}: {ref.get('name')} is not in the plan.",
                    "Declare the TriggerAuthentication in the ScaledObject's namespace, or fix "
                    "authenticationRef.",
                )


@contract(
    "selector-security-group-policy",
    "selectors",
    "Checks whether every SecurityGroupPolicy selects pods, so the security groups it names apply.",
)
def security_group_policies(plan: PlanView) -> Iterator[Finding]:
    for policy in plan.objects("SecurityGroupPolicy"):
        spec, ns = policy["inputs"].get("spec") or {}, namespace_of(policy)
        pods = plan.pods_of(spec.get("podSelector"), ns) if spec.get("podSelector") else []
        if spec.get("serviceAccountSelector"):
            accounts = {
                name_of(sa)
                for sa in plan.objects("ServiceAccount", ns)
                if selects(
                    spec["serviceAccountSelector"], (sa["inputs"].get("metadata") or {}).get("labels") or {}
                )
            }
            pods += [w for w in plan.workloads_in(ns) if w.service_account in accounts]
        if not pods:
            yield Finding(
                "selector-security-group-policy",
                policy["name"],
                _pods_text(spec.get("podSelector")),
                f"SecurityGroupPolicy {ns}/{name_of(policy)} must select pods: none in {ns} match, so their "
                "traffic gets the node's security groups instead.",
                "Match spec.podSelector to the pod template labels.",
            )


@contract(
    "reference-namespace",
    "selectors",
    "Checks whether every namespaced object, chart and Pod Identity association names a namespace that "
    "exists.",
)
def namespaces(plan: PlanView) -> Iterator[Finding]:
    for obj in plan.k8s_objects:
        if obj["inputs"].get("kind") in {
            "Namespace",
            "ClusterRole",
            "ClusterRoleBinding",
            "StorageClass",
            "NodePool",
            "EC2NodeClass",
            "PersistentVolume",
        }:
            continue
        ns = namespace_of(obj)
        if ns not in plan.namespaces:
            yield Finding(
                "reference-namespace",
                obj["name"],
                f"Namespace {ns}",
                f"{obj['inputs'].get('kind')} {ns}/{name_of(obj)} must live in a namespace of the plan: {ns} "
                "is created by nothing.",
                f"Declare Namespace {ns}, or move the object.",
            )
    refs = [
        (c, (c.get("inputs") or {}).get("namespace")) for c in plan.of_type("kubernetes:helm.sh/v4:Chart")
    ]
    refs += [
        (a, a["inputs"].get("namespace"))
        for a in plan.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    ]
    for res, ns in refs:
        if ns and ns not in plan.namespaces:
            yield Finding(
                "reference-namespace",
                res["name"],
                f"Namespace {ns}",
                f"{res['type'].rsplit(':', 1)[-1]} {res['name']} names namespace {ns}, which is created by "
                "nothing.",
                f"Declare Namespace {ns}.",
            )


@contract(
    "reference-service-account",
    "selectors",
    "Checks whether every pod's service account and every Pod Identity association's service account exist, "
    "and associations name the plan's cluster.",
)
def service_accounts(plan: PlanView) -> Iterator[Finding]:
    for w in plan.workloads:
        if w.resource in plan.by_name and plan.by_name[w.resource]["type"].startswith("kubernetes:helm.sh"):
            continue  # a chart creates the accounts its pods use
        if (w.namespace, w.service_account) not in plan.service_accounts:
            yield Finding(
                "reference-service-account",
                w.resource,
                f"ServiceAccount {w.namespace}/{w.service_account}",
                f"{w.label} runs as service account {w.service_account}, which nothing creates in "
                f"{w.namespace}: "
                "its pods are never admitted.",
                "Declare the ServiceAccount, or fix serviceAccountName.",
            )
    cluster = (plan.cluster or {}).get("inputs", {}).get("name") if plan.cluster else None
    for assoc in plan.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation"):
        ns, account = assoc["inputs"].get("namespace"), assoc["inputs"].get("serviceAccount")
        if (ns, account) not in plan.service_accounts:
            yield Finding(
                "reference-service-account",
                assoc["name"],
                f"ServiceAccount {ns}/{account}",
                f"Pod Identity association {assoc['name']} gives a role to {ns}/{account}, which nothing "
                "creates: "
                "no pod gets those credentials.",
                "Point the association at the workload's service account.",
            )
        if cluster and assoc["inputs"].get("clusterName") != cluster:
            yield Finding(
                "reference-service-account",
                assoc["name"],
                f"cluster {assoc['inputs'].get('clusterName')}",
                f"Pod Identity association {assoc['name']} must name cluster {cluster}.",
                "Pass the cluster's name output.",
            )


def _pod_references(pod: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(kind, name) of ConfigMaps and Secrets a pod needs (optional ones excluded)."""
    for volume in pod.get("volumes") or []:
        if "configMap" in volume and not volume["configMap"].get("optional"):
            yield "ConfigMap", volume["configMap"].get("name")
        if "secret" in volume and not volume["secret"].get("optional"):
            yield "Secret", volume["secret"].get("secretName")
    for c in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
        for source in c.get("envFrom") or []:
            for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                if key in source and not source[key].get("optional"):
                    yield kind, source[key].get("name")
        for env in c.get("env") or []:
            ref = env.get("valueFrom") or {}
            for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                if key in ref and not ref[key].get("optional"):
                    yield kind, ref[key].get("name")


@contract(
    "reference-config",
    "selectors",
    "Checks whether every ConfigMap and Secret a pod mounts or reads exists in its namespace.",
)
def config_references(plan: PlanView) -> Iterator[Finding]:
    for w in plan.workloads:
        for kind, name in _pod_references(w.pod):
            if not any(name_of(o) == name for o in plan.objects(kind, w.namespace)):
                yield Finding(
                    "reference-config",
                    w.resource,
                    f"{kind} {w.namespace}/{name}",
                    f"{w.label} needs {kind} {name}, which the plan does not declare in {w.namespace}: its "
                    "pods "
                    "never start.",
                    f"Declare the {kind}, or mark the reference optional.",
                )


def _node_sources(plan: PlanView) -> list[tuple[str, dict[str, str], list[dict[str, Any]]]]:
    """(resource, node labels, taints) of every kind of node the plan creates."""
    sources = []
    for group in plan.of_type("aws:eks/nodeGroup:NodeGroup"):
        taints = [
            {"key": t.get("key"), "value": t.get("value"), "effect": t.get("effect")}
            for t in group["inputs"].get("taints") or []
        ]
        sources.append((group["name"], dict(group["inputs"].get("labels") or {}), taints))
    for pool in plan.objects("NodePool"):
        template = (pool["inputs"].get("spec") or {}).get("template") or {}
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels["karpenter.sh/nodepool"] = name_of(pool)
        sources.append((pool["name"], labels, list((template.get("spec") or {}).get("taints") or [])))
    return sources


def _tolerates(tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    for t in tolerations or []:
        if t.get("effect") not in (None, "", taint.get("effect")):
            continue
        if t.get("operator") == "Exists" and t.get("key") in (None, taint.get("key")):
            return True
        if t.get("key") == taint.get("key") and t.get("value") == taint.get("value"):
            return True
    return False


@contract(
    "selector-node",
    "selectors",
    "Checks whether every pod's nodeSelector matches nodes the plan creates, and the pod tolerates their "
    "taints.",
)
def node_selectors(plan: PlanView) -> Iterator[Finding]:
    sources = _node_sources(plan)
    if not sources:
        return
    for w in plan.workloads:
        selector = w.pod.get("nodeSelector") or {}
        if not selector:
            continue
        matching = [(res, taints) for res, labels, taints in sources if selects(selector, labels)]
        if not matching:
            yield Finding(
                "selector-node",
                w.resource,
                f"nodes labelled {selector}",
                f"{w.label} selects nodes labelled {selector}; no node group or NodePool of the plan has "
                "them, "
                "so its pods stay Pending.",
                "Match nodeSelector to a node group's or NodePool's labels.",
            )
            continue
        for res, taints in matching:
            untolerated = [
                t
                for t in taints
                if t.get("effect") == "NoSchedule" and not _tolerates(w.pod.get("tolerations"), t)
            ]
            if untolerated:
                yield Finding(
                    "selector-node",
                    w.resource,
                    res,
                    f"{w.label} selects nodes of {res} but does not tolerate their taint {untolerated[0]}.",
                    "Add the toleration.",
                )
