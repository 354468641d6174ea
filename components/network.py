"""The VPC: private node subnets over the AZs, NAT per settings (gateways or one NAT instance),
VPC endpoints, flow logs."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components import iam
from components.context import AwsContext
from llmops import versions


@dataclass(frozen=True)
class SubnetPlan:
    az_index: int
    private_cidr: str
    public_cidr: str


def plan_subnets(vpc_cidr: str, az_count: int) -> list[SubnetPlan]:
    """Split the VPC into 4 equal private blocks (one per AZ, VPC CNI gives every pod an IP)
    and small public blocks carved from the last quarter (NAT gateways or the NAT instance only).

    A /16 gives /18 private subnets (16,379 usable addresses each) and /22 public ones.
    """
    vpc = ipaddress.ip_network(vpc_cidr)
    quarters = list(vpc.subnets(prefixlen_diff=2))
    publics = list(quarters[3].subnets(prefixlen_diff=4))
    return [SubnetPlan(i, str(quarters[i]), str(publics[i])) for i in range(az_count)]


@dataclass
class NetworkArgs:
    context: AwsContext
    cluster_name: str
    """Tagged on subnets so Kubernetes places internal load balancers in them."""
    required_endpoints: list[str] = field(default_factory=list)
    """Interface endpoints other components need whatever the settings say (the budget guard's
    CloudWatch calls when its security group allows HTTPS inside the VPC only)."""


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    vpc_cidr: str
    private_subnet_ids: list[pulumi.Output[str]]
    availability_zones: list[str]
    s3_cidr_blocks: pulumi.Output[list[str]]
    """S3's address ranges in the region (the gateway endpoint's prefix list): NetworkPolicies
    that admit S3 and not the internet name them."""
    nat: bool
    """Whether the private subnets route to the internet (NAT gateways or the NAT instance)."""
    interface_endpoints: frozenset[str]
    """The AWS services with an interface endpoint in the VPC."""

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:network:Network", name, None, opts)
        ctx, net = args.context, args.context.settings.network
        child = pulumi.ResourceOptions(parent=self)

        zones = aws.get_availability_zones(state="available", opts=ctx.invoke_opts()).names[: net.az_count]
        if len(zones) < net.az_count:
            raise pulumi.RunError(f"{ctx.region} offers {len(zones)} AZs; network.azCount is {net.az_count}")
        self.availability_zones = zones
        self.vpc_cidr = net.cidr

        vpc = aws.ec2.Vpc(
            f"{name}-vpc", cidr_block=net.cidr, enable_dns_hostnames=True, enable_dns_support=True, opts=child
        )
        # The default security group of a new VPC allows all traffic between members: empty it.
        aws.ec2.DefaultSecurityGroup(f"{name}-default-sg", vpc_id=vpc.id, opts=child)
        self.vpc_id = vpc.id

        plans = plan_subnets(net.cidr, net.az_count)
        private = [
            aws.ec2.Subnet(
                f"{name}-private-{zone}",
                vpc_id=vpc.id,
                cidr_block=plan.private_cidr,
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={
                    "kubernetes.io/role/internal-elb": "1",
                    f"kubernetes.io/cluster/{args.cluster_name}": "shared",
                },
                opts=child,
            )
            for plan, zone in zip(plans, zones, strict=True)
        ]
        self.private_subnet_ids = [s.id for s in private]

        targets = self._nat(name, ctx, vpc, plans, zones, net.nat_gateways)
        self.nat = bool(targets)
        route_tables = []
        for i, (subnet, zone) in enumerate(zip(private, zones, strict=True)):
            routes = []
            if targets:
                routes.append({"cidr_block": "0.0.0.0/0", **targets[min(i, len(targets) - 1)]})
            table = aws.ec2.RouteTable(f"{name}-private-rt-{zone}", vpc_id=vpc.id, routes=routes, opts=child)
            aws.ec2.RouteTableAssociation(
                f"{name}-private-rta-{zone}", subnet_id=subnet.id, route_table_id=table.id, opts=child
            )
            route_tables.append(table)

        self._endpoints(name, ctx, vpc, private, route_tables, args.required_endpoints)
        self._flow_logs(name, ctx, vpc)
        self.register_outputs({"vpc_id": self.vpc_id, "private_subnet_ids": self.private_subnet_ids})

    def needs_nat(self, services: list[str]) -> bool:
        """Whether a client calling these AWS APIs must send HTTPS out of the VPC: one of them has
        no interface endpoint here, so the NAT carries the call."""
        return self.nat and not set(services) <= self.interface_endpoints

    def _nat(self, name, ctx: AwsContext, vpc, plans, zones, mode) -> list[dict]:
        """Public subnets exist only to hold the NAT; with mode none there are none. Returns the
        default-route target of each private subnet's table (the last one serves the rest)."""
        if mode == "none":
            return []
        child = pulumi.ResourceOptions(parent=self)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, opts=child)
        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
            opts=child,
        )
        count = len(zones) if mode == "perAz" else 1
        targets = []
        for plan, zone in list(zip(plans, zones, strict=True))[:count]:
            subnet = aws.ec2.Subnet(
                f"{name}-public-{zone}",
                vpc_id=vpc.id,
                cidr_block=plan.public_cidr,
                availability_zone=zone,
                map_public_ip_on_launch=False,
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-rta-{zone}", subnet_id=subnet.id, route_table_id=public_rt.id, opts=child
            )
            if mode == "instance":
                eni = self._nat_instance(name, ctx, vpc, subnet, zone, igw)
                targets.append({"network_interface_id": eni.id})
                continue
            eip = aws.ec2.Eip(f"{name}-nat-eip-{zone}", domain="vpc", opts=child)
            nat = aws.ec2.NatGateway(
                f"{name}-nat-{zone}",
                subnet_id=subnet.id,
                allocation_id=eip.allocation_id,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
            )
            targets.append({"nat_gateway_id": nat.id})
        return targets

    def _nat_instance(self, name, ctx: AwsContext, vpc, subnet, zone, igw) -> aws.ec2.NetworkInterface:
        """One small Graviton instance forwarding the VPC's traffic to the internet (the fck-nat
        pattern) for about a tenth of a NAT gateway's hourly price. Its network interface is a
        resource of its own: the private routes, the Elastic IP and source/destination check off
        belong to it, so a replacement instance takes them over, and the public address is there
        at first boot (the user data installs from the Amazon Linux repositories). No SSH key and
        no role: replace the instance (`pulumi up --replace`) rather than log in."""
        child = pulumi.ResourceOptions(parent=self)
        cidr = self.vpc_cidr
        group = aws.ec2.SecurityGroup(
            f"{name}-nat-sg",
            description="NAT instance: any traffic from the VPC, out to the internet",
            vpc_id=vpc.id,
            ingress=[{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": [cidr]}],
            egress=[{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"]}],
            opts=child,
        )
        eni = aws.ec2.NetworkInterface(
            f"{name}-nat-eni",
            description="NAT instance: the private subnets' default route",
            subnet_id=subnet.id,
            security_groups=[group.id],
            source_dest_check=False,  # it forwards packets that are neither from nor to itself
            opts=child,
        )
        # The address is on the interface before the instance boots; associating it needs the
        # internet gateway attached to the VPC.
        eip = aws.ec2.Eip(
            f"{name}-nat-eip-{zone}",
            domain="vpc",
            network_interface=eni.id,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
        )
        image = aws.ec2.get_ami(
            owners=[versions.NAT_INSTANCE_AMI_OWNER],
            filters=[
                {"name": "name", "values": [versions.NAT_INSTANCE_AMI_NAME]},
                {"name": "architecture", "values": ["arm64"]},
            ],
            most_recent=True,
            opts=ctx.invoke_opts(),
        )
        instance_type = ctx.settings.network.nat_instance_type
        aws.ec2.Instance(
            f"{name}-nat-{zone}",
            ami=image.id,
            instance_type=instance_type,
            primary_network_interface={"network_interface_id": eni.id},
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",
                "http_put_response_hop_limit": 1,
            },
            root_block_device={
                "volume_type": "gp3",
                "volume_size": 8,
                "encrypted": True,
                "delete_on_termination": True,
            },
            # Simplified automatic recovery: AWS restarts it on healthy hardware when the system
            # status check fails (free; an OS that hangs still needs a reboot or a replace).
            maintenance_options={"auto_recovery": "default"},
            # Burstable types: throttled at the baseline rather than billed for surplus credits.
            credit_specification={"cpu_credits": "standard"} if instance_type.startswith("t") else None,
            user_data=nat_user_data(cidr),
            user_data_replace_on_change=True,  # user data runs at first boot only
            # The interface serves one instance at a time: the old one goes first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[eip], delete_before_replace=True),
        )
        return eni

    def _endpoints(self, name, ctx: AwsContext, vpc, private, route_tables, required: list[str]) -> None:
        child = pulumi.ResourceOptions(parent=self)
        s3 = aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{ctx.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[t.id for t in route_tables],
            opts=child,
        )
        self.s3_cidr_blocks = s3.cidr_blocks
        endpoint_sg = aws.ec2.SecurityGroup(
            f"{name}-endpoints-sg",
            description="HTTPS from inside the VPC to interface endpoints",
            vpc_id=vpc.id,
            ingress=[{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": [self.vpc_cidr]}],
            egress=[],
            opts=child,
        )
        services = list(dict.fromkeys([*ctx.settings.network.interface_endpoints, *required]))
        self.interface_endpoints = frozenset(services)
        for service in services:
            aws.ec2.VpcEndpoint(
                f"{name}-{service.replace('.', '-')}",
                vpc_id=vpc.id,
                service_name=f"com.amazonaws.{ctx.region}.{service}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=[s.id for s in private],
                security_group_ids=[endpoint_sg.id],
                opts=child,
            )

    def _flow_logs(self, name, ctx: AwsContext, vpc) -> None:
        child = pulumi.ResourceOptions(parent=self)
        key = ctx.kms_key(
            f"{name}-flow-logs-key", "VPC flow logs", self, services=["logs.{region}.amazonaws.com"]
        )
        group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            retention_in_days=ctx.settings.network.flow_log_retention_days,
            kms_key_id=key.arn,
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-flow-logs-role",
            assume_role_policy=iam.service_trust("vpc-flow-logs.amazonaws.com", ctx.account_id),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs-write",
            role=role.id,
            policy=iam.document_output(
                iam.allow(
                    ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    [group.arn, pulumi.Output.concat(group.arn, ":*")],
                )
            ),
            opts=child,
        )
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=60,
            opts=child,
        )


def nat_user_data(vpc_cidr: str) -> str:
    """First-boot script of the NAT instance (Amazon Linux 2023): forwarding on, the VPC's traffic
    masqueraded behind the instance's address, nothing else forwarded. Both land in files read at
    every boot (sysctl.d, the iptables service's rules), so they survive reboots. The steps of
    AWS's NAT instance guide (docs.aws.amazon.com/vpc/latest/userguide/work-with-nat-instances.html),
    with rules that name the VPC instead of an interface."""
    return f"""#!/bin/bash
set -euo pipefail
dnf install -y iptables-services
echo 'net.ipv4.ip_forward = 1' > /etc/sysctl.d/90-nat.conf
sysctl --system
cat > /etc/sysconfig/iptables <<'RULES'
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -s {vpc_cidr} ! -d {vpc_cidr} -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -s {vpc_cidr} -j ACCEPT
-A FORWARD -d {vpc_cidr} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
COMMIT
RULES
systemctl enable --now iptables
"""
