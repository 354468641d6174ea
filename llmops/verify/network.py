"""Network paths: every client-to-server edge the platform wires is allowed by security groups and
NetworkPolicies and has a route (VPC endpoint, NAT gateway or NAT instance), and NetworkPolicies are
enforced when any exist. Like Reachability Analyzer, a finding names the blocking component.

The model follows the AWS and EKS documentation:
- the EKS cluster security group admits everything from itself and allows all egress
  (docs.aws.amazon.com/eks/latest/userguide/sec-group-reqs.html);
- pods run with their node's security groups unless a SecurityGroupPolicy selects them; then, in
  the VPC CNI's `standard` mode, traffic to other hosts in the VPC uses the pod's groups and traffic
  leaving the VPC the node's, and in the default `strict` mode every packet uses the pod's groups,
  so they cannot reach the Pod Identity agent on their node, and kubelet probes need
  DISABLE_TCP_EARLY_DEMUX (aws/amazon-vpc-cni-k8s v1.20.4 README, POD_SECURITY_GROUP_ENFORCING_MODE;
  security-groups-for-pods.html);
- NetworkPolicies are enforced only with the vpc-cni add-on's `enableNetworkPolicy` "true"
  (cni-network-policy.html); a path between pods needs the client's egress policies and the
  server's ingress policies to allow it (Kubernetes' NetworkPolicy semantics: a pod selected by any
  policy of a direction is isolated in that direction, and allowed what the union of their rules
  allows);
- an internal NLB made by the cloud controller opens the nodes' security group to the Service's
  loadBalancerSourceRanges (0.0.0.0/0 when unset) on its node ports (kubernetes/cloud-provider-aws
  pkg/providers/v1/aws.go, updateInstanceSecurityGroupsForNLB);
- a route through a network interface reaches the internet only when an instance uses it, its
  source/destination check is off (an instance otherwise drops what is neither from nor to
  itself), its security groups pass the traffic, it has a public IPv4 address and its subnet routes
  to an internet gateway (VPC user guide, NAT instances: VPC_NAT_Instance.html).
Security groups created by the plan have no egress unless they declare it (the Terraform-based AWS
provider removes AWS's default allow-all egress rule).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from llmops.verify import scrape
from llmops.verify.contracts import Finding, contract
from llmops.verify.lambda_source import ENDPOINT_SERVICE, GATEWAY_ENDPOINT_SERVICES, scan, source_folder
from llmops.verify.model import (
    QDRANT_CLIENT_LABELS,
    PlanView,
    Workload,
    as_list,
    name_of,
    namespace_of,
    selects,
)
from llmops.verify.selectors import peer_pods

ANYWHERE = "0.0.0.0/0"
HTTPS = 443
POD_IDENTITY_AGENT = "169.254.170.23"


@dataclass
class Endpoint:
    """One end of a path: its security groups, the address ranges it sends from, and, for pods,
    the workload (NetworkPolicies) and the node groups it leaves the VPC through."""

    label: str
    resource: str
    groups: set[str]
    ranges: list[str]
    pod: Workload | None = None
    node_groups: set[str] = field(default_factory=set)  # egress out of the VPC (standard mode)


def _rules(plan: PlanView) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Security group id -> {ingress: [...], egress: [...]} with every rule the plan declares."""
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for sg in plan.of_type("aws:ec2/securityGroup:SecurityGroup"):
        groups[sg["id"]] = {
            "ingress": list(sg["inputs"].get("ingress") or []),
            "egress": list(sg["inputs"].get("egress") or []),
        }
    cluster_sg = plan.cluster_security_group
    if cluster_sg:
        groups[cluster_sg] = {
            "ingress": [{"protocol": "-1", "fromPort": 0, "toPort": 0, "self": True}],
            "egress": [{"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": [ANYWHERE]}],
        }
    standalone = {
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "ingress",
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "egress",
    }
    for rtype, direction in standalone.items():
        for rule in plan.of_type(rtype):
            i = rule["inputs"]
            groups.setdefault(i.get("securityGroupId"), {"ingress": [], "egress": []})[direction].append(
                {
                    "protocol": i.get("ipProtocol"),
                    "fromPort": i.get("fromPort", 0),
                    "toPort": i.get("toPort", 0),
                    "cidrBlocks": [i["cidrIpv4"]] if i.get("cidrIpv4") else [],
                    "securityGroups": [i["referencedSecurityGroupId"]]
                    if i.get("referencedSecurityGroupId")
                    else [],
                }
            )
    return groups


PROTOCOL_NUMBERS = {"tcp": "6", "udp": "17"}


def _port_in(rule: dict[str, Any], port: int | None, protocol: str = "tcp") -> bool:
    """Whether a security group rule covers the port (None: some port) of the protocol."""
    if str(rule.get("protocol")) in ("-1", "all"):
        return True
    protocol = protocol.lower()
    if str(rule.get("protocol")).lower() not in (protocol, PROTOCOL_NUMBERS.get(protocol)):
        return False
    return port is None or int(rule.get("fromPort") or 0) <= port <= int(rule.get("toPort") or 0)


def port_text(port: int | None, protocol: str = "TCP") -> str:
    return f"{port}/{protocol.lower()}" if port is not None else f"any {protocol.upper()} port"


def _covers(cidrs: list[str], ranges: list[str]) -> bool:
    """Whether every range is inside one of the CIDRs."""
    nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]
    return bool(ranges) and all(
        any(ipaddress.ip_network(r, strict=False).subnet_of(n) for n in nets) for r in ranges
    )


def sg_allows(
    groups,
    own: set[str],
    other_groups: set[str],
    other_ranges: list[str],
    port: int | None,
    direction: str,
    protocol: str = "tcp",
) -> bool:
    """Whether any of `own` groups has a `direction` rule admitting the other end on the port."""
    for sg in own:
        for rule in (groups.get(sg) or {}).get(direction, []):
            if not _port_in(rule, port, protocol):
                continue
            if rule.get("self") and sg in other_groups:
                return True
            if set(rule.get("securityGroups") or []) & other_groups:
                return True
            if _covers(rule.get("cidrBlocks") or [], other_ranges):
                return True
    return False


class Network:
    def __init__(self, plan: PlanView):
        self.plan = plan
        self.groups = _rules(plan)
        self.subnets = {s["id"]: s for s in plan.of_type("aws:ec2/subnet:Subnet")}
        vpcs = plan.of_type("aws:ec2/vpc:Vpc")
        self.vpc_cidr = vpcs[0]["inputs"].get("cidrBlock") if vpcs else None
        cni = plan.addon_config("vpc-cni")
        self.cni_env = cni.get("env") or {}
        self.policies_enforced = str(cni.get("enableNetworkPolicy", "false")).lower() == "true"
        self.sg_mode = self.cni_env.get("POD_SECURITY_GROUP_ENFORCING_MODE", "strict")
        self.nat_blocks = {
            eni: nat_instance_block(plan, self, eni) for eni in routed_interfaces(plan)
        }  # interface id -> why it forwards nothing (None: it is a working NAT instance)

    # -- who is where ------------------------------------------------------------------------

    def _ranges(self, subnet_ids: list[str]) -> list[str]:
        return [self.subnets[s]["inputs"]["cidrBlock"] for s in subnet_ids if s in self.subnets]

    def node_placement(self, w: Workload) -> tuple[set[str], list[str]]:
        """(security groups, subnets) of the nodes a workload's pods land on."""
        selector = w.pod.get("nodeSelector") or {}
        for pool in self.plan.objects("NodePool"):
            template = (pool["inputs"].get("spec") or {}).get("template") or {}
            labels = {
                **((template.get("metadata") or {}).get("labels") or {}),
                "karpenter.sh/nodepool": name_of(pool),
            }
            if selector and selects(selector, labels):
                ref = ((template.get("spec") or {}).get("nodeClassRef") or {}).get("name")
                for cls in self.plan.objects("EC2NodeClass"):
                    if name_of(cls) == ref:
                        spec = cls["inputs"].get("spec") or {}
                        sgs = {
                            t.get("id") for t in spec.get("securityGroupSelectorTerms") or [] if t.get("id")
                        }
                        subnets = [t.get("id") for t in spec.get("subnetSelectorTerms") or [] if t.get("id")]
                        return sgs, subnets
        for group in self.plan.of_type("aws:eks/nodeGroup:NodeGroup"):
            if not selector or selects(selector, group["inputs"].get("labels") or {}):
                template = self.plan.resolve((group["inputs"].get("launchTemplate") or {}).get("id"))
                sgs = set((template or {}).get("inputs", {}).get("vpcSecurityGroupIds") or [])
                return (sgs or {self.plan.cluster_security_group} - {None}), list(
                    group["inputs"].get("subnetIds") or []
                )
        return set(), []

    def pod_groups(self, w: Workload) -> set[str] | None:
        """Security groups of the pods' branch ENIs when a SecurityGroupPolicy selects them."""
        for policy in self.plan.objects("SecurityGroupPolicy", w.namespace):
            spec = policy["inputs"].get("spec") or {}
            if selects(spec.get("podSelector"), w.labels):
                return set((spec.get("securityGroups") or {}).get("groupIds") or [])
        return None

    def pod(self, w: Workload) -> Endpoint:
        node_sgs, subnets = self.node_placement(w)
        own = self.pod_groups(w)
        return Endpoint(
            w.label, w.resource, own if own is not None else node_sgs, self._ranges(subnets), w, node_sgs
        )

    # -- checks ------------------------------------------------------------------------------

    def sg_block(
        self, client: Endpoint, server: Endpoint, port: int | None, protocol: str = "tcp"
    ) -> str | None:
        what = port_text(port, protocol)
        if not sg_allows(self.groups, client.groups, server.groups, server.ranges, port, "egress", protocol):
            groups = sorted(client.groups)
            return f"no egress rule of {client.label}'s security groups {groups} allows {what} to it"
        if not sg_allows(self.groups, server.groups, client.groups, client.ranges, port, "ingress", protocol):
            groups = sorted(server.groups)
            return f"no ingress rule of its security groups {groups} admits {client.label} on {what}"
        return None

    def policy_block(
        self, client: Endpoint, server_pod: Workload, port: int | None, protocol: str = "TCP"
    ) -> str | None:
        """Why NetworkPolicies stop the client reaching the pod's port (ingress at the server)."""
        if not self.policies_enforced:
            return None
        selecting = self._selecting(server_pod, "Ingress")
        if not selecting:
            return None
        for p in selecting:
            for rule in (p["inputs"].get("spec") or {}).get("ingress") or []:
                if not _policy_port(rule.get("ports"), server_pod, port, protocol):
                    continue
                peers = rule.get("from")
                if not peers or any(self._peer_matches(peer, client, server_pod.namespace) for peer in peers):
                    return None
        names = ", ".join(name_of(p) for p in selecting)
        on = port if port is not None and protocol.upper() == "TCP" else port_text(port, protocol)
        return (
            f"the NetworkPolicies selecting {server_pod.label} ({names}) admit no traffic from "
            f"{client.label} on {on}"
        )

    def _selecting(self, pod: Workload, direction: str) -> list[dict[str, Any]]:
        """The NetworkPolicies of the pod's namespace that select it for Ingress or Egress (policyTypes
        unset: Ingress, and Egress when the policy has egress rules)."""
        found = []
        for p in self.plan.objects("NetworkPolicy", pod.namespace):
            spec = p["inputs"].get("spec") or {}
            types = spec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in spec else ["Ingress"])
            if direction in types and selects(spec.get("podSelector") or {}, pod.labels):
                found.append(p)
        return found

    def egress_block(
        self, client: Endpoint, server: Endpoint, port: int | None, protocol: str = "TCP"
    ) -> str | None:
        """Why the NetworkPolicies of the client's namespace stop its pod sending to the server's
        port (egress at the client); None for clients that are not pods."""
        if not self.policies_enforced or client.pod is None:
            return None
        selecting = self._selecting(client.pod, "Egress")
        if not selecting:
            return None
        for p in selecting:
            for rule in (p["inputs"].get("spec") or {}).get("egress") or []:
                if not _policy_port(rule.get("ports"), server.pod, port, protocol):
                    continue
                peers = rule.get("to")
                if not peers or any(self._peer_matches(peer, server, client.pod.namespace) for peer in peers):
                    return None
        names = ", ".join(name_of(p) for p in selecting)
        return (
            f"the NetworkPolicies selecting {client.pod.label} ({names}) allow it no egress to "
            f"{server.label} on {port_text(port, protocol)}"
        )

    def pod_path_block(
        self, client_pod: Workload, server_pod: Workload, port: int | None, protocol: str = "TCP"
    ) -> str | None:
        """Why a pod cannot reach another pod's port: egress NetworkPolicies at the client, ingress
        ones at the server (both only when enforced), then both ends' security groups."""
        client, server = self.pod(client_pod), self.pod(server_pod)
        return (
            self.egress_block(client, server, port, protocol)
            or self.policy_block(client, server_pod, port, protocol)
            or self.sg_block(client, server, port, protocol)
        )

    def _peer_matches(self, peer: dict[str, Any], other: Endpoint, namespace: str) -> bool:
        """Whether a NetworkPolicy peer (`from` of an ingress rule, `to` of an egress rule) admits
        the other end: its addresses for an ipBlock, its pod for pod and namespace selectors."""
        if "ipBlock" in peer:
            block = peer["ipBlock"]
            return _covers([block.get("cidr", "")], other.ranges) and not any(
                _covers([e], other.ranges) for e in block.get("except") or []
            )
        if other.pod is None:
            return False
        pods = peer_pods(self.plan, peer, namespace) or []
        return any(
            p is other.pod or (p.resource, p.name) == (other.pod.resource, other.pod.name) for p in pods
        )

    def api_block(self, client: Endpoint, service: str) -> str | None:
        """Why the client cannot reach an AWS API (None when it can), by endpoint or NAT."""
        endpoint_name = ENDPOINT_SERVICE.get(service, service)
        for vpce in self.plan.of_type("aws:ec2/vpcEndpoint:VpcEndpoint"):
            i = vpce["inputs"]
            if not str(i.get("serviceName", "")).endswith(f".{endpoint_name}"):
                continue
            if i.get("vpcEndpointType") == "Interface" and i.get("privateDnsEnabled"):
                sgs = set(i.get("securityGroupIds") or [])
                server = Endpoint(
                    f"the {endpoint_name} endpoint", vpce["name"], sgs, self._ranges(i.get("subnetIds") or [])
                )
                block = self.sg_block(client, server, HTTPS)
                return f"through {vpce['name']}: {block}" if block else None
            tables = set(i.get("routeTableIds") or [])
            if (
                i.get("vpcEndpointType") == "Gateway"
                and service in GATEWAY_ENDPOINT_SERVICES
                and self._routed(client, lambda route, tables=tables: route[1] in tables)
            ):
                return self._egress_out(client, f"{endpoint_name} gateway endpoint")
        via = self._nat(client)
        if via:
            return self._egress_out(client, via)
        return (
            f"no {endpoint_name} interface endpoint and no NAT route from its subnets{self._dead_nat(client)}"
        )

    def internet_block(self, client: Endpoint) -> str | None:
        via = self._nat(client)
        if via:
            return self._egress_out(client, via)
        return (
            "its subnets have no route to the internet (natGateways none): use a VPC endpoint or a proxy"
            f"{self._dead_nat(client)}"
        )

    def _to_nat(self, route: tuple[dict, str]) -> str | None:
        """What a route table entry sends to the internet through, if it does: "NAT gateway", "NAT
        instance" (a working one, see nat_instance_block), else None."""
        entry = route[0]
        if entry.get("cidrBlock") != ANYWHERE:
            return None
        if entry.get("natGatewayId"):
            return "NAT gateway"
        eni = entry.get("networkInterfaceId")
        if eni and eni in self.nat_blocks and self.nat_blocks[eni] is None:
            return "NAT instance"
        return None

    def _nat(self, client: Endpoint) -> str | None:
        """The NAT every subnet of the client routes the internet through, or None."""
        found: set[str] = set()

        def wanted(route) -> bool:
            via = self._to_nat(route)
            if via:
                found.add(via)
            return via is not None

        return " or ".join(sorted(found)) if self._routed(client, wanted) else None

    def _dead_nat(self, client: Endpoint) -> str:
        """Why the client's route through a network interface carries nothing, if it has one."""
        dead: list[str] = []

        def wanted(route) -> bool:
            eni = route[0].get("networkInterfaceId")
            if route[0].get("cidrBlock") == ANYWHERE and self.nat_blocks.get(eni):
                dead.append(f"{eni}: {self.nat_blocks[eni]}")
            return False

        self._routed(client, wanted)
        return f" (its default route goes to {dead[0]})" if dead else ""

    def _egress_out(self, client: Endpoint, via: str) -> str | None:
        """Egress to addresses outside the VPC: SGP pods in standard mode leave through the node."""
        groups = (
            client.node_groups if client.pod is not None and self.sg_mode == "standard" else client.groups
        )
        if sg_allows(self.groups, groups, set(), [ANYWHERE], HTTPS, "egress"):
            return None
        return f"its security groups {sorted(groups)} allow no HTTPS egress out of the VPC (via the {via})"

    def _routed(self, client: Endpoint, wanted) -> bool:
        """Whether every subnet the client sends from has a route satisfying `wanted((route, table_id))`."""
        tables: dict[str, list[tuple[dict, str]]] = {}
        for assoc in self.plan.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation"):
            table = self.plan.resolve(assoc["inputs"].get("routeTableId"))
            if table:
                routes = [(r, table["id"]) for r in table["inputs"].get("routes") or []]
                tables[assoc["inputs"].get("subnetId")] = routes or [({}, table["id"])]
        subnets = [sid for sid, s in self.subnets.items() if s["inputs"].get("cidrBlock") in client.ranges]
        return bool(subnets) and all(any(wanted(r) for r in tables.get(s, [])) for s in subnets)


def _policy_port(
    ports: list[dict[str, Any]] | None, pod: Workload | None, port: int | None, protocol: str = "TCP"
) -> bool:
    """Whether a NetworkPolicy rule's ports cover the port (None: some port) of the protocol; named
    ports are the destination pod's."""
    if not ports:
        return True
    for p in ports:
        if str(p.get("protocol") or "TCP").upper() != protocol.upper():
            continue
        if port is None or p.get("port") is None:
            return True
        if pod is not None:
            number = pod.port_number(p["port"])
        else:
            number = int(p["port"]) if str(p["port"]).isdigit() else None
        if number == port or (
            number is not None and p.get("endPort") and number <= port <= int(p["endPort"])
        ):
            return True
    return False


# -- NAT instances -------------------------------------------------------------------------------


def routed_interfaces(plan: PlanView) -> list[str]:
    """Network interface ids that some route table sends 0.0.0.0/0 to."""
    found = []
    for table in plan.of_type("aws:ec2/routeTable:RouteTable"):
        for route in table["inputs"].get("routes") or []:
            eni = route.get("networkInterfaceId")
            if route.get("cidrBlock") == ANYWHERE and eni and eni not in found:
                found.append(eni)
    return found


def _interface_instance(plan: PlanView, eni_id: str) -> dict[str, Any] | None:
    for instance in plan.of_type("aws:ec2/instance:Instance"):
        i = instance["inputs"]
        attached = [(i.get("primaryNetworkInterface") or {}).get("networkInterfaceId")]
        attached += [n.get("networkInterfaceId") for n in i.get("networkInterfaces") or []]
        if eni_id in attached:
            return instance
    return None


def nat_instance_block(plan: PlanView, net: Network, eni_id: str) -> str | None:
    """Why the interface forwards nothing to the internet (None: a working NAT instance)."""
    eni = plan.resolve(eni_id, "aws:ec2/networkInterface:NetworkInterface")
    if eni is None:
        return "no network interface of the plan has that id"
    i = eni["inputs"]
    instance = _interface_instance(plan, eni_id)
    if instance is None:
        return f"no instance uses network interface {eni['name']}"
    if i.get("sourceDestCheck", True) is not False:
        return (
            f"network interface {eni['name']} keeps its source/destination check on, so its instance "
            "drops every packet that is neither from nor to itself"
        )
    groups = set(i.get("securityGroups") or [])
    if not sg_allows(net.groups, groups, set(), [net.vpc_cidr] if net.vpc_cidr else [], HTTPS, "ingress"):
        return f"its security groups {sorted(groups)} do not admit the VPC on {HTTPS}/tcp"
    if not sg_allows(net.groups, groups, set(), [ANYWHERE], HTTPS, "egress"):
        return f"its security groups {sorted(groups)} allow no HTTPS to the internet"
    public = instance["inputs"].get("associatePublicIpAddress") is True or any(
        e["inputs"].get("networkInterface") == eni_id or e["inputs"].get("instance") == instance["id"]
        for e in plan.of_type("aws:ec2/eip:Eip")
    )
    if not public:
        return (
            f"network interface {eni['name']} has no public IPv4 address (an Elastic IP), so nothing it "
            "sends to the internet comes back"
        )
    subnet = i.get("subnetId")
    gateways = {g["id"] for g in plan.of_type("aws:ec2/internetGateway:InternetGateway")}
    to_igw = any(
        assoc["inputs"].get("subnetId") == subnet
        and any(
            r.get("cidrBlock") == ANYWHERE and r.get("gatewayId") in gateways
            for r in ((plan.resolve(assoc["inputs"].get("routeTableId")) or {}).get("inputs") or {}).get(
                "routes"
            )
            or []
        )
        for assoc in plan.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
    )
    if not to_igw:
        return f"its subnet {subnet} has no route to an internet gateway"
    return None


@contract(
    "network-nat-instance",
    "network",
    "Checks whether every route to a network interface reaches the internet: an instance uses the interface, "
    "its source/destination check is off, its security groups admit the VPC and reach the internet, it has "
    "a public IPv4 address and its subnet routes to an internet gateway.",
)
def nat_instances(plan: PlanView) -> Iterator[Finding]:
    net = Network(plan)
    for table in plan.of_type("aws:ec2/routeTable:RouteTable"):
        for route in table["inputs"].get("routes") or []:
            eni = route.get("networkInterfaceId")
            block = net.nat_blocks.get(eni) if route.get("cidrBlock") == ANYWHERE else None
            if block:
                yield Finding(
                    "network-nat-instance",
                    table["name"],
                    eni,
                    f"Route table {table['name']} sends 0.0.0.0/0 to {eni}, which carries nothing: {block}.",
                    "Route to a NAT instance's interface with source_dest_check False, a security group "
                    "admitting the VPC with egress to the internet, an Elastic IP and a public subnet.",
                )


# -- the edges the platform wires ----------------------------------------------------------------


def gateway_pods(plan: PlanView) -> list[Workload]:
    return [
        w for w in plan.workloads if any("berriai/litellm" in str(c.get("image", "")) for c in w.containers)
    ]


def service_target(plan: PlanView, host: str, port: int) -> tuple[list[Workload], int | None, str]:
    """Pods and pod port behind `<svc>.<ns>.svc(.cluster.local)` on a Service port."""
    parts = host.split(".")
    if len(parts) < 3 or parts[2] != "svc":
        return [], None, ""
    name, ns = parts[0], parts[1]
    for svc_ns, svc_name, selector, ports in scrape.services(plan):
        if (svc_ns, svc_name) == (ns, name):
            pods = plan.pods_of(selector, ns)
            for p in ports:
                if int(p.get("port", 0)) == port and pods:
                    return (
                        pods,
                        pods[0].port_number(p.get("targetPort", p.get("port"))),
                        f"Service {ns}/{name}",
                    )
            return pods, None, f"Service {ns}/{name}"
    return [], None, f"Service {ns}/{name}"


def _finding(contract_id: str, client: Endpoint, server: str, what: str, why: str, fix: str) -> Finding:
    return Finding(contract_id, client.resource, server, f"{client.label} must reach {what}, but {why}.", fix)


@contract(
    "network-policy-enforced",
    "network",
    "Checks whether NetworkPolicies are enforced (the vpc-cni add-on's enableNetworkPolicy) whenever the "
    "plan "
    "declares any.",
)
def policies_enforced(plan: PlanView) -> Iterator[Finding]:
    policies = plan.objects("NetworkPolicy")
    if policies and not Network(plan).policies_enforced:
        addon = plan.addon("vpc-cni")
        yield Finding(
            "network-policy-enforced",
            addon["name"] if addon else "vpc-cni",
            policies[0]["name"],
            f"The plan declares {len(policies)} NetworkPolicies, which nothing enforces: the vpc-cni "
            "add-on must "
            'set enableNetworkPolicy "true" (otherwise every pod accepts traffic from every other).',
            'Set configuration_values {"enableNetworkPolicy": "true"} on the vpc-cni add-on.',
        )


@contract(
    "network-gateway",
    "network",
    "Checks whether the gateway's pods reach every self-hosted model, its database, S3, its credentials and "
    "the external APIs it routes to.",
)
def gateway_paths(plan: PlanView) -> Iterator[Finding]:
    net = Network(plan)
    config = plan.gateway_config or {}
    for w in gateway_pods(plan):
        client = net.pod(w)
        for entry in config.get("model_list") or []:
            params = entry.get("litellm_params") or {}
            base = str(params.get("api_base", ""))
            if ".svc" in base:
                yield from _to_service(
                    plan, net, client, base, f"model {entry.get('model_name')}", "network-gateway"
                )
            elif str(params.get("model", "")).startswith("bedrock/"):
                block = net.api_block(client, "bedrock-runtime")
                if block:
                    yield _finding(
                        "network-gateway",
                        client,
                        "bedrock-runtime",
                        f"Bedrock for {entry.get('model_name')}",
                        block,
                        "Add a bedrock-runtime interface endpoint, or a NAT route.",
                    )
            else:
                block = net.internet_block(client)
                if block:
                    yield _finding(
                        "network-gateway",
                        client,
                        "internet",
                        f"the external API of {entry.get('model_name')}",
                        block,
                        "Give the private subnets a NAT route, or remove the external provider.",
                    )
        for db in plan.of_type("aws:rds/instance:Instance"):
            group = plan.resolve(db["inputs"].get("dbSubnetGroupName"), "aws:rds/subnetGroup:SubnetGroup")
            ranges = net._ranges((group or {}).get("inputs", {}).get("subnetIds") or [])
            server = Endpoint(
                f"database {db['name']}",
                db["name"],
                set(db["inputs"].get("vpcSecurityGroupIds") or []),
                ranges,
            )
            port = int(db["inputs"].get("port") or (db.get("outputs") or {}).get("port") or 5432)
            block = net.sg_block(client, server, port)
            if block:
                yield _finding(
                    "network-gateway",
                    client,
                    db["name"],
                    f"its database {db['name']} on {port}",
                    block,
                    "Admit the gateway pods' security group in the database's security group.",
                )
        for service in gateway_database_services(plan, w):
            ns, port = namespace_of(service), _service_port(service)
            url = f"postgresql://{name_of(service)}.{ns}.svc:{port}"
            what = f"its database {name_of(service)}"
            yield from _to_service(plan, net, client, url, what, "network-gateway")
        settings = config.get("litellm_settings") or {}
        if "s3_v2" in (settings.get("success_callback") or []):
            block = net.api_block(client, "s3")
            if block:
                yield _finding(
                    "network-gateway",
                    client,
                    "s3",
                    "S3 for its spend logs",
                    block,
                    "Route the pods' subnets to the S3 gateway endpoint and allow HTTPS egress.",
                )
        yield from _credentials(plan, net, w, client)


def gateway_database_services(plan: PlanView, w: Workload) -> list[dict[str, Any]]:
    """Services the gateway's DATABASE_URL is built from (an in-cluster database): the plan records
    which resources each Secret's stringData derives from."""
    found = []
    for c in w.containers:
        for ref in c.get("envFrom") or []:
            name = (ref.get("secretRef") or {}).get("name")
            for secret in plan.objects("Secret", w.namespace):
                keys = secret["inputs"].get("stringData") or {}
                if name_of(secret) != name or "DATABASE_URL" not in keys:
                    continue
                deps = (secret.get("propertyDependencies") or {}).get("stringData") or []
                found += [
                    plan.by_name[d]
                    for d in deps
                    if d in plan.by_name and plan.by_name[d]["type"] == "kubernetes:core/v1:Service"
                ]
    return found


def _service_port(service: dict[str, Any]) -> int:
    ports = (service["inputs"].get("spec") or {}).get("ports") or []
    return int(ports[0].get("port", 0)) if ports else 0


def _credentials(plan: PlanView, net: Network, w: Workload, client: Endpoint) -> Iterator[Finding]:
    """Pod Identity credentials come from an agent on the pod's node (link-local)."""
    has_identity = any(
        (a["inputs"].get("namespace"), a["inputs"].get("serviceAccount")) == (w.namespace, w.service_account)
        for a in plan.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    )
    if not has_identity:
        return
    if plan.addon("eks-pod-identity-agent") is None:
        yield _finding(
            "network-gateway",
            client,
            "eks-pod-identity-agent",
            "the EKS Pod Identity agent",
            "the add-on is not installed",
            "Install the eks-pod-identity-agent add-on.",
        )
    if net.pod_groups(w) is not None and net.sg_mode != "standard":
        yield _finding(
            "network-gateway",
            client,
            plan.addon("vpc-cni")["name"] if plan.addon("vpc-cni") else "vpc-cni",
            f"the Pod Identity agent ({POD_IDENTITY_AGENT}) on its node",
            f"its pods use security groups for pods in {net.sg_mode} mode, where traffic to the node's own "
            "link-local agent goes through the branch ENI and never arrives",
            "Set POD_SECURITY_GROUP_ENFORCING_MODE=standard in the vpc-cni add-on's env.",
        )


def _to_service(
    plan: PlanView, net: Network, client: Endpoint, url: str, what: str, contract_id: str
) -> Iterator[Finding]:
    parts = urlsplit(url)
    pods, port, label = service_target(
        plan, parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    )
    if not pods or port is None:
        yield _finding(
            contract_id,
            client,
            label or url,
            what,
            f"{url} resolves to no pods of the plan",
            "Point the URL at an existing Service and port.",
        )
        return
    for pod in pods:
        server = net.pod(pod)
        block = net.policy_block(client, pod, port) or net.sg_block(client, server, port)
        if block:
            yield _finding(
                contract_id,
                client,
                pod.resource,
                f"{what} ({label}, pod port {port})",
                block,
                "Admit the client in the server's NetworkPolicy and security groups.",
            )


@contract(
    "network-probes",
    "network",
    "Checks whether kubelet probes reach pods that use security groups for pods (standard mode, or TCP early "
    "demux disabled).",
)
def probes(plan: PlanView) -> Iterator[Finding]:
    net = Network(plan)
    demux_off = (
        str(
            ((plan.addon_config("vpc-cni").get("init") or {}).get("env") or {}).get(
                "DISABLE_TCP_EARLY_DEMUX", ""
            )
        ).lower()
        == "true"
    )
    for w in plan.workloads:
        probed = any(
            c.get(p) for c in w.containers for p in ("livenessProbe", "readinessProbe", "startupProbe")
        )
        if probed and net.pod_groups(w) is not None and net.sg_mode != "standard" and not demux_off:
            yield Finding(
                "network-probes",
                w.resource,
                plan.addon("vpc-cni")["name"] if plan.addon("vpc-cni") else "vpc-cni",
                f"{w.label} has probes and security groups for pods in {net.sg_mode} mode: the kubelet's TCP "
                "connections to its branch ENI are dropped, so the pods never become ready.",
                "Set POD_SECURITY_GROUP_ENFORCING_MODE=standard (or init.env.DISABLE_TCP_EARLY_DEMUX true) "
                "on vpc-cni.",
            )


def _lambda_endpoint(plan: PlanView, net: Network, function: dict[str, Any]) -> Endpoint | None:
    config = function["inputs"].get("vpcConfig") or {}
    if not config.get("subnetIds"):
        return None
    return Endpoint(
        f"Lambda {function['name']}",
        function["name"],
        set(config.get("securityGroupIds") or []),
        net._ranges(config["subnetIds"]),
    )


@contract(
    "network-lambda",
    "network",
    "Checks whether every Lambda in the VPC reaches the AWS APIs its code calls and the URLs its environment "
    "points it at (the gateway's load balancer).",
)
def lambda_paths(plan: PlanView) -> Iterator[Finding]:
    net = Network(plan)
    for function in plan.of_type("aws:lambda/function:Function"):
        client = _lambda_endpoint(plan, net, function)
        folder = source_folder(function)
        if client is None or folder is None:
            continue
        for service in sorted(scan(folder).services):
            block = net.api_block(client, service)
            if block:
                yield _finding(
                    "network-lambda",
                    client,
                    service,
                    f"the {service} API its code calls",
                    block,
                    f"Add a {ENDPOINT_SERVICE.get(service, service)} interface endpoint, or let its "
                    "security group reach the NAT.",
                )
        env = (function["inputs"].get("environment") or {}).get("variables") or {}
        for name, url in sorted(env.items()):
            if name.endswith("_URL") and str(url).startswith(("http://", "https://")):
                yield from lambda_to_gateway(plan, net, client, str(url))


def load_balancer_of(plan: PlanView, host: str) -> dict[str, Any] | None:
    """The LoadBalancer Service answering `host`: its own NLB name, or a DNS record pointing at it."""
    targets = {host}
    for record in plan.of_type("aws:route53/record:Record"):
        if record["inputs"].get("name") == host:
            targets |= set(as_list(record["inputs"].get("records")))
            targets |= {a.get("name") for a in as_list(record["inputs"].get("aliases"))}
    for svc in plan.objects("Service"):
        ingress = (((svc.get("outputs") or {}).get("status") or {}).get("loadBalancer") or {}).get(
            "ingress"
        ) or []
        if {i.get("hostname") for i in ingress} & targets:
            return svc
    return None


def lambda_to_gateway(plan: PlanView, net: Network, client: Endpoint, url: str) -> Iterator[Finding]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    svc = load_balancer_of(plan, parts.hostname or "")
    if svc is None:
        return  # not a load balancer of the plan (the TLS contract checks the gateway's URL)
    spec = svc["inputs"].get("spec") or {}
    listener = next((p for p in spec.get("ports") or [] if int(p.get("port", 0)) == port), None)
    if listener is None:
        yield _finding(
            "network-lambda",
            client,
            svc["name"],
            url,
            f"Service {namespace_of(svc)}/{name_of(svc)} listens on no port {port}",
            "Use the Service's port in the URL.",
        )
        return
    vpc = [net.vpc_cidr] if net.vpc_cidr else []
    nlb = Endpoint(f"the load balancer of Service {name_of(svc)}", svc["name"], set(), vpc)
    if not sg_allows(net.groups, client.groups, set(), vpc, port, "egress"):
        yield _finding(
            "network-lambda",
            client,
            svc["name"],
            url,
            f"its security groups allow no egress to the VPC on {port}",
            f"Allow {port}/tcp to the VPC CIDR in the function's security group.",
        )
    sources = spec.get("loadBalancerSourceRanges") or [ANYWHERE]
    if not _covers(sources, client.ranges):
        yield _finding(
            "network-lambda",
            client,
            svc["name"],
            url,
            f"the Service admits only {sources} at its load balancer",
            "Add the function's subnets to loadBalancerSourceRanges.",
        )
    for pod in plan.pods_of(spec.get("selector"), namespace_of(svc)):
        target = pod.port_number(listener.get("targetPort", port))
        server = net.pod(pod)
        # kube-proxy forwards from the node the NLB picked, with that node's address and groups
        # (externalTrafficPolicy Cluster): taken as the groups of the nodes the pods run on.
        nodes = Endpoint(
            "the nodes forwarding the load balancer's traffic", svc["name"], server.node_groups, server.ranges
        )
        block = (
            net.policy_block(nodes, pod, target) if target else "the Service's targetPort is not a pod port"
        )
        if (
            not block
            and target
            and not sg_allows(net.groups, server.groups, nodes.groups, server.ranges, target, "ingress")
        ):
            block = f"its security groups {sorted(server.groups)} do not admit the nodes on {target}"
        if block:
            yield _finding(
                "network-lambda",
                nlb,
                pod.resource,
                f"{pod.label} on {target}",
                block,
                "Admit the node subnets (load balancer traffic after kube-proxy) on the pod port.",
            )


@contract(
    "network-scrape",
    "network",
    "Checks whether every metrics scraper reaches the targets it keeps (security groups and NetworkPolicies) "
    "and, for the AMP scraper, the cluster's API server.",
)
def scrape_paths(plan: PlanView) -> Iterator[Finding]:
    net = Network(plan)
    for store in scrape.stores(plan):
        if store.scraper is not None:
            source = (store.scraper["inputs"].get("source") or {}).get("eks") or {}
            client = Endpoint(
                f"AMP scraper {store.scraper['name']}",
                store.scraper["name"],
                set(source.get("securityGroupIds") or []),
                net._ranges(source.get("subnetIds") or []),
            )
            api = Endpoint(
                "the EKS API server",
                (plan.cluster or {}).get("name", "cluster"),
                {plan.cluster_security_group} - {None},
                net._ranges(source.get("subnetIds") or []),
            )
            block = net.sg_block(client, api, HTTPS)
            if block:
                yield _finding(
                    "network-scrape",
                    client,
                    api.resource,
                    "the EKS API server (service discovery)",
                    block,
                    "Give the scraper the cluster security group, as the AMP docs do.",
                )
        else:
            render = [r for c, r in plan.renders if c["name"] == store.resource]
            servers = render[0].workloads if render else []
            workloads = [plan.workload_named(w.kind, w.namespace, w.name) for w in servers]
            client = net.pod(workloads[0]) if workloads and workloads[0] else None
            if client is None:
                continue
        for target in store.targets:
            if target.port is None or not scrape.served(target):
                continue
            server = net.pod(target.workload)
            block = net.policy_block(client, target.workload, target.port) or net.sg_block(
                client, server, target.port
            )
            if block:
                yield _finding(
                    "network-scrape",
                    client,
                    target.workload.resource,
                    f"{target.workload.label} on {target.port} (job {target.job})",
                    block,
                    "Admit the scraper in the target's NetworkPolicy and security groups.",
                )


@contract(
    "network-autoscaler-metrics",
    "network",
    "Checks whether KEDA's operator reaches the metrics store its triggers query.",
)
def autoscaler_paths(plan: PlanView) -> Iterator[Finding]:
    net = Network(plan)
    operator = next((w for w in plan.workloads if (w.namespace, w.name) == ("keda", "keda-operator")), None)
    if operator is None:
        return
    client = net.pod(operator)
    seen = set()
    for scaler in plan.objects("ScaledObject"):
        for trigger in (scaler["inputs"].get("spec") or {}).get("triggers") or []:
            address = str((trigger.get("metadata") or {}).get("serverAddress", ""))
            if not address or address in seen:
                continue
            seen.add(address)
            host = urlsplit(address).hostname or ""
            if host.startswith("aps-workspaces."):
                block = net.api_block(client, "aps-workspaces")
                if block:
                    yield _finding(
                        "network-autoscaler-metrics",
                        client,
                        "aps-workspaces",
                        f"the AMP query API ({address})",
                        block,
                        "Add an aps-workspaces interface endpoint or a NAT route.",
                    )
            elif ".svc" in host:
                yield from _to_service(
                    plan, net, client, address, "the in-cluster Prometheus", "network-autoscaler-metrics"
                )


# -- product teams (tenant namespaces) -----------------------------------------------------------

PATHS, ISOLATION = "network-team-paths", "network-team-isolation"


def qdrant_pods(plan: PlanView) -> list[Workload]:
    return [
        w for w in plan.workloads if any(str(c.get("image", "")).startswith("qdrant/") for c in w.containers)
    ]


def model_pods(plan: PlanView) -> list[Workload]:
    return [
        w for w in plan.workloads if any(str(c.get("image", "")).startswith("vllm/") for c in w.containers)
    ]


def cluster_dns(plan: PlanView) -> list[Workload]:
    """The pods behind Service kube-system/kube-dns, the cluster DNS every pod's resolv.conf names."""
    for ns, name, selector, _ in scrape.services(plan):
        if (ns, name) == ("kube-system", "kube-dns"):
            return plan.pods_of(selector, ns)
    return []


def owns_collections(plan: PlanView, namespace_resource: dict[str, Any]) -> bool:
    """Whether the plan gives the team a Qdrant token (components/team.py declares one, a secret named
    .../qdrant-token-, only for a team with vectorCollections)."""
    return any(
        "qdrant" in str(s["inputs"].get("name") or s["inputs"].get("namePrefix") or s["name"])
        for s in plan.tenant_secrets(namespace_resource)
    )


def _modelled(pod: Workload) -> str:
    labels = f"labels {pod.labels}" if pod.labels else "no particular labels"
    return f"{pod.label} (a pod the team may run, with {labels}, as service account {pod.service_account})"


def _unreachable(team_ns: dict[str, Any], client: Workload, server: str, what: str, why: str, fix: str):
    return Finding(PATHS, team_ns["name"], server, f"{_modelled(client)} must reach {what}, but {why}.", fix)


@contract(
    PATHS,
    "network",
    "Checks whether every team's pods (modelled in its tenant namespace) reach the gateway's pods, the "
    "cluster DNS (UDP and TCP), the Pod Identity agent and Secrets Manager for their credentials and "
    "secrets, and Qdrant from a pod labelled llmops.io/qdrant-client=true when the team owns collections, "
    "through both ends' NetworkPolicies and security groups.",
)
def team_paths(plan: PlanView) -> Iterator[Finding]:
    net = Network(plan)
    for ns, (_, obj) in sorted(plan.tenant_namespaces.items()):
        pods = plan.tenant_pods(ns)
        plain = next((w for w in pods if not w.labels), None)
        if plain is None:
            continue
        yield from _team_gateway(plan, net, obj, plain)
        yield from _team_dns(plan, net, obj, plain)
        yield from _team_credentials(plan, net, obj, plain)
        client = next((w for w in pods if w.labels == QDRANT_CLIENT_LABELS), None)
        if client is not None and owns_collections(plan, obj):
            yield from _team_qdrant(plan, net, obj, client)


def _team_gateway(plan: PlanView, net: Network, obj: dict[str, Any], pod: Workload) -> Iterator[Finding]:
    gateways = gateway_pods(plan)
    if not gateways:
        yield _unreachable(
            obj, pod, "gateway", "the gateway", "the plan has no gateway pods", "Deploy the gateway."
        )
    for gw in gateways:
        for port in sorted({number for _, number in gw.ports()}):
            block = net.pod_path_block(pod, gw, port)
            if block:
                yield _unreachable(
                    obj,
                    pod,
                    gw.resource,
                    f"the gateway's pods ({gw.label}) on {port}",
                    block,
                    "Allow egress to the gateway's pods in the team's NetworkPolicies (allow-gateway), and "
                    "admit the team in the gateway's.",
                )


def _team_dns(plan: PlanView, net: Network, obj: dict[str, Any], pod: Workload) -> Iterator[Finding]:
    servers = cluster_dns(plan)
    if not servers:
        yield _unreachable(
            obj,
            pod,
            "coredns",
            "the cluster DNS (Service kube-system/kube-dns)",
            "no pod of the plan serves it",
            "Install the coredns add-on.",
        )
    for server in servers:
        for protocol in ("UDP", "TCP"):
            block = net.pod_path_block(pod, server, 53, protocol)
            if block:
                yield _unreachable(
                    obj,
                    pod,
                    server.resource,
                    f"the cluster DNS ({server.label}) on 53/{protocol.lower()}",
                    block,
                    "Allow egress to kube-system's k8s-app=kube-dns pods on 53/UDP and 53/TCP (allow-dns).",
                )


def _team_qdrant(plan: PlanView, net: Network, obj: dict[str, Any], pod: Workload) -> Iterator[Finding]:
    servers = qdrant_pods(plan)
    if not servers:
        yield _unreachable(obj, pod, "qdrant", "Qdrant", "the plan has no Qdrant pods", "Deploy Qdrant.")
    for server in servers:
        port = server.port_number("http") or 6333
        block = net.pod_path_block(pod, server, port)
        if block:
            yield _unreachable(
                obj,
                pod,
                server.resource,
                f"Qdrant ({server.label}) on {port}, where the team's collections are",
                block,
                "Allow egress to Qdrant's pods for pods labelled llmops.io/qdrant-client=true "
                "(allow-qdrant), and admit them in Qdrant's NetworkPolicy.",
            )


def _team_credentials(plan: PlanView, net: Network, obj: dict[str, Any], pod: Workload) -> Iterator[Finding]:
    """Credentials from the Pod Identity agent (link-local, on the pod's node), secrets from Secrets
    Manager (its interface endpoint, or the NAT) on 443."""
    client = net.pod(pod)
    associated = any(
        (a["inputs"].get("namespace"), a["inputs"].get("serviceAccount"))
        == (pod.namespace, pod.service_account)
        for a in plan.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    )
    if associated:
        agent = Endpoint(
            "the EKS Pod Identity agent", "eks-pod-identity-agent", set(), [f"{POD_IDENTITY_AGENT}/32"]
        )
        if plan.addon("eks-pod-identity-agent") is None:
            yield _unreachable(
                obj, pod, agent.resource, agent.label, "the add-on is not installed", "Install the add-on."
            )
        block = net.egress_block(client, agent, 80)
        if block:
            yield _unreachable(
                obj,
                pod,
                agent.resource,
                f"{agent.label} ({POD_IDENTITY_AGENT}:80) for its role's credentials",
                block,
                f"Allow egress to {POD_IDENTITY_AGENT}/32 on 80/TCP (allow-aws).",
            )
    if not plan.tenant_secrets(obj):
        return
    endpoint = next(
        (
            v
            for v in plan.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
            if str(v["inputs"].get("serviceName", "")).endswith(".secretsmanager")
            and v["inputs"].get("vpcEndpointType") == "Interface"
            and v["inputs"].get("privateDnsEnabled")
        ),
        None,
    )
    server = (
        Endpoint(
            "the secretsmanager endpoint",
            endpoint["name"],
            set(endpoint["inputs"].get("securityGroupIds") or []),
            net._ranges(endpoint["inputs"].get("subnetIds") or []),
        )
        if endpoint
        else Endpoint("Secrets Manager (through the NAT)", "secretsmanager", set(), [ANYWHERE])
    )
    block = net.egress_block(client, server, HTTPS) or net.api_block(client, "secretsmanager")
    if block:
        yield _unreachable(
            obj,
            pod,
            server.resource,
            f"{server.label} on 443 for the team's secrets",
            block,
            "Allow HTTPS egress to the VPC (its interface endpoints) in allow-aws, with a secretsmanager "
            "interface endpoint.",
        )


def _reachable(
    net: Network, team_ns: dict[str, Any], client: str, server: str, peer: str, what: str, fix: str
):
    enforced = (
        "" if net.policies_enforced else " (NetworkPolicies are not enforced: vpc-cni enableNetworkPolicy)"
    )
    return Finding(
        ISOLATION,
        team_ns["name"],
        peer,
        f"{client} must not reach {server}, but nothing stops it on {what}{enforced}.",
        fix,
    )


@contract(
    ISOLATION,
    "network",
    "Checks whether every team's pods (modelled in its tenant namespace) are kept from the model servers, "
    "from other teams' pods and, without collections of their own, from Qdrant, and pods of other "
    "namespaces from them, by both ends' NetworkPolicies (enforced) or security groups.",
)
def team_isolation(plan: PlanView) -> Iterator[Finding]:
    net = Network(plan)
    tenants = plan.tenant_namespaces
    for ns, (_, obj) in sorted(tenants.items()):
        pods = plan.tenant_pods(ns)
        for pod in pods:
            for server in model_pods(plan):
                for port in sorted({number for _, number in server.ports()}):
                    if net.pod_path_block(pod, server, port) is None:
                        yield _reachable(
                            net,
                            obj,
                            _modelled(pod),
                            f"the model server {server.label}",
                            server.resource,
                            port_text(port),
                            "Limit the team's egress to the gateway, DNS and AWS (allow-gateway, allow-dns, "
                            "allow-aws), and admit only the gateway in the models' NetworkPolicies.",
                        )
            for other_ns, (other_team, other_obj) in sorted(tenants.items()):
                for other in plan.tenant_pods(other_ns) if other_ns != ns else []:
                    if net.pod_path_block(pod, other, None) is None:
                        yield _reachable(
                            net,
                            obj,
                            _modelled(pod),
                            f"pods of team {other_team} ({other.label})",
                            other_obj["name"],
                            port_text(None),
                            "Keep default-deny and allow-team (the team's own namespace) in every team's "
                            "namespace.",
                        )
            if pod.labels == QDRANT_CLIENT_LABELS and not owns_collections(plan, obj):
                for server in qdrant_pods(plan):
                    port = server.port_number("http") or 6333
                    if net.pod_path_block(pod, server, port) is None:
                        yield _reachable(
                            net,
                            obj,
                            _modelled(pod),
                            f"Qdrant ({server.label}), as the team owns no collections",
                            server.resource,
                            port_text(port),
                            "Declare allow-qdrant only for teams with vectorCollections.",
                        )
        for client in plan.workloads:
            if client.namespace in tenants:
                continue  # the team's own pods, and other teams' (checked as their egress above)
            for pod in pods:
                if net.pod_path_block(client, pod, None) is None:
                    yield _reachable(
                        net,
                        obj,
                        f"{client.label} (namespace {client.namespace})",
                        _modelled(pod),
                        client.resource,
                        port_text(None),
                        "Keep default-deny and allow-team (ingress from the team's own pods only) in the "
                        "team's namespace.",
                    )
