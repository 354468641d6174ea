"""TLS to the gateway: every port of a load-balanced Service reaches a container that serves TLS
(LiteLLM's --ssl_certfile_path / --ssl_keyfile_path from a mounted Secret, or a certificate on the
NLB listener), and every client the plan points at the gateway uses https, a name the served
certificate covers, a DNS record for it in the client's VPC, and the CA that issued it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from llmops.verify.contracts import Finding, contract
from llmops.verify.model import PlanView, Workload, as_list, name_of, namespace_of
from llmops.verify.network import load_balancer_of

NLB_CERTIFICATE = "service.beta.kubernetes.io/aws-load-balancer-ssl-cert"


def _tls_files(container: dict[str, Any]) -> tuple[str, str] | None:
    args = [str(a) for a in container.get("args") or []]
    if "--ssl_certfile_path" in args and "--ssl_keyfile_path" in args:
        return args[args.index("--ssl_certfile_path") + 1], args[args.index("--ssl_keyfile_path") + 1]
    return None


def _secret_of(pod: Workload, container: dict[str, Any], path: str) -> str | None:
    """The Secret a file of the container comes from (a mounted secret volume), if any."""
    volumes = {v.get("name"): v for v in pod.pod.get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        root = mount.get("mountPath", "").rstrip("/")
        if path.startswith(root + "/") and "secret" in volumes.get(mount.get("name"), {}):
            return volumes[mount["name"]]["secret"].get("secretName")
    return None


def served_certificate(plan: PlanView, pod: Workload, port: int) -> tuple[dict[str, Any] | None, str | None]:
    """(the Secret holding the certificate a pod serves on `port`, why none) for TLS-serving pods."""
    for c in pod.containers:
        ports = [int(p["containerPort"]) for p in c.get("ports") or [] if "containerPort" in p]
        if port not in ports:
            continue
        files = _tls_files(c)
        if files is None:
            return None, f"container {c.get('name')} serves plain HTTP on {port}"
        secret_name = _secret_of(pod, c, files[0])
        secret = next((s for s in plan.objects("Secret", pod.namespace) if name_of(s) == secret_name), None)
        if secret is None:
            return None, f"its certificate file {files[0]} comes from no Secret of the plan"
        return secret, None
    return None, f"no container listens on {port}"


def certificate_names(plan: PlanView, secret: dict[str, Any]) -> tuple[set[str], dict[str, Any] | None]:
    """(DNS names, issuing CA resource) of the certificate a Secret holds, through the plan's
    dependency records (the Secret's data comes from a pulumi-tls certificate)."""
    for dep in secret.get("dependencies") or []:
        cert = plan.by_name.get(dep)
        if not cert or cert["type"] != "tls:index/locallySignedCert:LocallySignedCert":
            continue
        names: set[str] = set()
        for req in cert.get("dependencies") or []:
            request = plan.by_name.get(req)
            if request and request["type"] == "tls:index/certRequest:CertRequest":
                names |= set(request["inputs"].get("dnsNames") or [])
        ca = next(
            (
                plan.by_name[d]
                for d in cert.get("dependencies") or []
                if d in plan.by_name and plan.by_name[d]["type"] == "tls:index/selfSignedCert:SelfSignedCert"
            ),
            None,
        )
        return names, ca
    return set(), None


@contract(
    "tls-load-balancer",
    "tls",
    "Checks whether every port of a LoadBalancer Service is TLS: a certificate on the load balancer, or a "
    "container that terminates TLS with a certificate from a Secret.",
)
def load_balancers(plan: PlanView) -> Iterator[Finding]:
    for svc in plan.objects("Service"):
        spec = svc["inputs"].get("spec") or {}
        if spec.get("type") != "LoadBalancer":
            continue
        annotations = (svc["inputs"].get("metadata") or {}).get("annotations") or {}
        if annotations.get(NLB_CERTIFICATE):
            continue
        pods = plan.pods_of(spec.get("selector"), namespace_of(svc))
        for port in spec.get("ports") or []:
            for pod in pods:
                target = pod.port_number(port.get("targetPort", port.get("port")))
                _, why = served_certificate(plan, pod, target) if target else (None, "no pod port")
                if why:
                    yield Finding(
                        "tls-load-balancer",
                        svc["name"],
                        pod.resource,
                        f"Service {namespace_of(svc)}/{name_of(svc)} port {port.get('port')} must carry "
                        "TLS, but "
                        f"{why} and the load balancer has no certificate: clients would send keys and "
                        "prompts in "
                        "clear.",
                        "Terminate TLS in the pod (gateway_tls.py) or put an ACM certificate on the "
                        "listener.",
                    )


def _clients(plan: PlanView) -> Iterator[tuple[dict[str, Any], str, str, str | None]]:
    """(resource, where, URL, CA PEM it trusts) of everything the plan points at a load balancer."""
    for function in plan.of_type("aws:lambda/function:Function"):
        env = (function["inputs"].get("environment") or {}).get("variables") or {}
        for name, url in sorted(env.items()):
            if name.endswith("_URL") and isinstance(url, str) and "://" in url:
                ca = env.get(name.removesuffix("_URL") + "_CA_CERT")
                yield function, f"{name} of Lambda {function['name']}", url, ca
    root = next((r for r in plan.resources if r["type"] == "llmops:platform:Platform"), None)
    for key, value in (plan.doc.get("outputs") or {}).items():
        if key.endswith("Url") and isinstance(value, str) and "://" in value and root:
            yield (
                root,
                f"stack output {key}",
                value,
                (plan.doc.get("outputs") or {}).get(key.removesuffix("Url") + "CaCertificate"),
            )


@contract(
    "tls-gateway-clients",
    "tls",
    "Checks whether every client the plan points at a load-balanced Service (Lambda URLs, stack outputs) "
    "uses https to a name the served certificate covers, resolvable in the VPC, trusting the issuing CA.",
)
def gateway_clients(plan: PlanView) -> Iterator[Finding]:
    zones = {z.get("id"): z for z in plan.of_type("aws:route53/zone:Zone")}
    for client, where, url, ca_pem in _clients(plan):
        parts = urlsplit(url)
        host = parts.hostname or ""
        svc = load_balancer_of(plan, host)
        if svc is None:
            if host.endswith(".elb.amazonaws.com") or any(
                r["inputs"].get("name") == host for r in plan.of_type("aws:route53/record:Record")
            ):
                yield Finding(
                    "tls-gateway-clients",
                    client["name"],
                    host,
                    f"{where} points at {host}, which is no load balancer of the plan.",
                    "Point it at the gateway's DNS name.",
                )
            continue
        label = f"{where} ({url})"
        if parts.scheme != "https":
            yield Finding(
                "tls-gateway-clients",
                client["name"],
                svc["name"],
                f"{label} must use https: keys and prompts would cross the VPC in clear.",
                "Use https://<the gateway's hostname>.",
            )
        record = next(
            (r for r in plan.of_type("aws:route53/record:Record") if r["inputs"].get("name") == host), None
        )
        if record is None:
            yield Finding(
                "tls-gateway-clients",
                client["name"],
                svc["name"],
                f"{label} names the load balancer's own host, which no certificate of the plan can name "
                "(it is known only after creation).",
                "Use the gateway's DNS name (a record in the private zone).",
            )
            continue
        zone = zones.get(record["inputs"].get("zoneId")) or next(
            (
                z
                for z in zones.values()
                if (z.get("outputs") or {}).get("zoneId") == record["inputs"].get("zoneId")
            ),
            None,
        )
        vpcs = {v.get("vpcId") for v in as_list((zone or {}).get("inputs", {}).get("vpcs"))}
        if zone is None or not vpcs:
            yield Finding(
                "tls-gateway-clients",
                client["name"],
                record["name"],
                f"{label}: {host} must be in a private hosted zone associated with the VPC.",
                "Associate the zone with the VPC.",
            )
        spec = svc["inputs"].get("spec") or {}
        for pod in plan.pods_of(spec.get("selector"), namespace_of(svc)):
            listener = next(
                (p for p in spec.get("ports") or [] if int(p.get("port", 0)) == (parts.port or 443)), None
            )
            target = pod.port_number(listener.get("targetPort", listener.get("port"))) if listener else None
            secret = served_certificate(plan, pod, target)[0] if target else None
            if secret is None:
                continue  # tls-load-balancer reports a plain listener
            names, ca = certificate_names(plan, secret)
            if host not in names:
                yield Finding(
                    "tls-gateway-clients",
                    client["name"],
                    secret["name"],
                    f"{label}: the certificate {pod.label} serves names {sorted(names) or 'nothing'}, not "
                    f"{host}: "
                    "verification fails.",
                    "Add the host to the certificate's dnsNames.",
                )
            issuing = (ca or {}).get("outputs", {}).get("certPem")
            if issuing and ca_pem != issuing:
                yield Finding(
                    "tls-gateway-clients",
                    client["name"],
                    ca["name"],
                    f"{label} must trust the CA that issued the gateway's certificate ({ca['name']}); it "
                    "is given "
                    f"{'another certificate' if ca_pem else 'none'}.",
                    "Pass the CA's certificate (gatewayCaCertificate) next to the URL.",
                )
            break
