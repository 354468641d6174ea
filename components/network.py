"""The VPC: private node subnets over the AZs, NAT per settings, VPC endpoints, flow logs."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components import iam
from components.context import AwsContext


@dataclass(frozen=True)
class SubnetPlan:
    az_index: int
    private_cidr: str
    public_cidr: str


def plan_subnets(vpc_cidr: str, az_count: int) -> list[SubnetPlan]:
    """Split the VPC into 4 equal private blocks (one per AZ, VPC CNI gives every pod an IP)
    and small public blocks carved from the last quarter (NAT gateways only).

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
    CloudWatch calls: its security group allows HTTPS inside the VPC only)."""


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    vpc_cidr: str
    private_subnet_ids: list[pulumi.Output[str]]
    availability_zones: list[str]
    s3_cidr_blocks: pulumi.Output[list[str]]
    """S3's address ranges in the region (the gateway endpoint's prefix list): NetworkPolicies
    that admit S3 and not the internet name them."""

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

        nat_ids = self._nat_gateways(name, vpc, plans, zones, net.nat_gateways)
        route_tables = []
        for i, (subnet, zone) in enumerate(zip(private, zones, strict=True)):
            routes = []
            if nat_ids:
                routes.append(
                    {"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat_ids[min(i, len(nat_ids) - 1)]}
                )
            table = aws.ec2.RouteTable(f"{name}-private-rt-{zone}", vpc_id=vpc.id, routes=routes, opts=child)
            aws.ec2.RouteTableAssociation(
                f"{name}-private-rta-{zone}", subnet_id=subnet.id, route_table_id=table.id, opts=child
            )
            route_tables.append(table)

        self._endpoints(name, ctx, vpc, private, route_tables, args.required_endpoints)
        self._flow_logs(name, ctx, vpc)
        self.register_outputs({"vpc_id": self.vpc_id, "private_subnet_ids": self.private_subnet_ids})

    def _nat_gateways(self, name, vpc, plans, zones, mode) -> list[pulumi.Output[str]]:
        """Public subnets exist only to hold NAT gateways; with mode none there are none."""
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
        nat_ids = []
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
            eip = aws.ec2.Eip(f"{name}-nat-eip-{zone}", domain="vpc", opts=child)
            nat = aws.ec2.NatGateway(
                f"{name}-nat-{zone}",
                subnet_id=subnet.id,
                allocation_id=eip.allocation_id,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
            )
            nat_ids.append(nat.id)
        return nat_ids

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
        for service in dict.fromkeys([*ctx.settings.network.interface_endpoints, *required]):
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
