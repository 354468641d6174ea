"""The network component: subnet maths, NAT per settings (gateways or a NAT instance), endpoints,
encrypted flow logs."""

from __future__ import annotations

import ipaddress
import re
import subprocess
import textwrap

import pytest
from conftest import inputs_of, only

from components.network import plan_subnets
from llmops import PROJECT_DIR
from llmops.plan import exposure
from llmops.policy import evaluate_plan, pack_config
from llmops.settings import SettingsError, from_config

STACK = {"llmops:environment": "test", "llmops:dataClassification": "internal", "aws:region": "eu-west-1"}


@pytest.mark.parametrize("cidr", ["10.0.0.0/16", "172.20.0.0/18", "10.8.0.0/20"])
@pytest.mark.parametrize("azs", [2, 3])
def test_subnets_fit_the_vpc_and_never_overlap(cidr, azs):
    vpc = ipaddress.ip_network(cidr)
    blocks = [
        ipaddress.ip_network(c) for p in plan_subnets(cidr, azs) for c in (p.private_cidr, p.public_cidr)
    ]
    assert len(blocks) == 2 * azs
    assert all(b.subnet_of(vpc) for b in blocks)
    assert not any(a.overlaps(b) for i, a in enumerate(blocks) for b in blocks[i + 1 :])
    # Private subnets hold every pod IP (VPC CNI): each is a quarter of the VPC.
    assert all(
        ipaddress.ip_network(p.private_cidr).prefixlen == vpc.prefixlen + 2 for p in plan_subnets(cidr, azs)
    )


def test_prod_spreads_over_three_azs_with_a_nat_per_az(plans):
    prod = plans["prod"]
    private = [
        s
        for s in inputs_of(prod, "aws:ec2/subnet:Subnet")
        if "kubernetes.io/role/internal-elb" in (s.get("tags") or {})
    ]
    assert sorted(s["availabilityZone"] for s in private) == [
        "me-central-1a",
        "me-central-1b",
        "me-central-1c",
    ]
    assert all(s["mapPublicIpOnLaunch"] is False for s in inputs_of(prod, "aws:ec2/subnet:Subnet"))
    assert len(inputs_of(prod, "aws:ec2/natGateway:NatGateway")) == 3


def by_name(result, name: str) -> dict:
    return result.plan.named(name)["inputs"]


def by_id(result, rid: str) -> dict:
    (found,) = [r for r in result.plan.resources if r["id"] == rid]
    return found


def test_dev_routes_both_azs_through_one_nat_instance(plans):
    """The cheap profile: no NAT gateway; both private route tables send 0.0.0.0/0 to the network
    interface of one NAT instance, which forwards (source/dest check off), has an Elastic IP and
    sits in the public subnet whose table routes to the internet gateway."""
    dev = plans["dev"]
    assert inputs_of(dev, "aws:ec2/natGateway:NatGateway") == []
    instance = only(dev, "aws:ec2/instance:Instance")
    eni_id = instance["primaryNetworkInterface"]["networkInterfaceId"]
    private_tables = [
        t for t in dev.plan.of_type("aws:ec2/routeTable:RouteTable") if "-private-rt-" in t["name"]
    ]
    assert len(private_tables) == 2
    assert all(
        t["inputs"]["routes"] == [{"cidrBlock": "0.0.0.0/0", "networkInterfaceId": eni_id}]
        for t in private_tables
    )
    eni = by_id(dev, eni_id)
    assert eni["type"] == "aws:ec2/networkInterface:NetworkInterface"
    assert eni["inputs"]["sourceDestCheck"] is False
    assert [e["networkInterface"] for e in inputs_of(dev, "aws:ec2/eip:Eip")] == [eni_id]
    public = by_id(dev, eni["inputs"]["subnetId"])["inputs"]
    assert "kubernetes.io/role/internal-elb" not in (public.get("tags") or {})
    assert public["mapPublicIpOnLaunch"] is False  # the address is the Elastic IP, not a launch one
    (igw,) = dev.plan.of_type("aws:ec2/internetGateway:InternetGateway")
    (assoc,) = [
        a
        for a in inputs_of(dev, "aws:ec2/routeTableAssociation:RouteTableAssociation")
        if a["subnetId"] == eni["inputs"]["subnetId"]
    ]
    assert by_id(dev, assoc["routeTableId"])["inputs"]["routes"] == [
        {"cidrBlock": "0.0.0.0/0", "gatewayId": igw["id"]}
    ]


def test_nat_instance_is_hardened_and_small(plans):
    """IMDSv2 only (hop limit 1), an encrypted small gp3 root volume, the documented default type,
    no SSH key and no role, an arm64 Amazon Linux 2023 image looked up by exact name from Amazon."""
    dev = plans["dev"]
    instance = only(dev, "aws:ec2/instance:Instance")
    assert instance["instanceType"] == "t4g.nano"
    assert instance["metadataOptions"]["httpTokens"] == "required"
    assert instance["metadataOptions"]["httpPutResponseHopLimit"] == 1
    root = instance["rootBlockDevice"]
    assert (root["encrypted"], root["volumeType"]) == (True, "gp3") and root["volumeSize"] <= 8
    assert "keyName" not in instance and "iamInstanceProfile" not in instance
    assert instance["userDataReplaceOnChange"] is True
    (lookup,) = [i["args"] for i in dev.plan.invokes if i["token"] == "aws:ec2/getAmi:getAmi"]
    filters = {f["name"]: f["values"] for f in lookup["filters"]}
    assert lookup["owners"] == ["amazon"]
    # AL2023's naming scheme: al2023-ami-<release>-kernel-<version>-<arch>; one exact name, no wildcard.
    assert re.fullmatch(r"al2023-ami-2023\.\d+\.\d{8}\.\d+-kernel-6\.1-arm64", filters["name"][0])
    assert filters["architecture"] == ["arm64"]
    group = by_id(
        dev,
        by_id(dev, instance["primaryNetworkInterface"]["networkInterfaceId"])["inputs"]["securityGroups"][0],
    )
    assert [r["cidrBlocks"] for r in group["inputs"]["ingress"]] == [[dev.settings.network.cidr]]


def test_nat_instance_user_data_forwards_masquerades_and_survives_reboots(plans):
    """What the kernel and the iptables service read at every boot: forwarding in sysctl.d, the
    rules in /etc/sysconfig/iptables (the file iptables-services restores), the service enabled.
    bash parses the script."""
    script = only(plans["dev"], "aws:ec2/instance:Instance")["userData"]
    cidr = plans["dev"].settings.network.cidr
    assert subprocess.run(["bash", "-n"], input=script, text=True, check=False).returncode == 0
    assert "net.ipv4.ip_forward = 1' > /etc/sysctl.d/" in script
    assert f"-A POSTROUTING -s {cidr} ! -d {cidr} -j MASQUERADE" in script
    assert ":FORWARD DROP" in script and f"-A FORWARD -s {cidr} -j ACCEPT" in script
    assert "cat > /etc/sysconfig/iptables" in script and "systemctl enable --now iptables" in script


def test_dev_has_no_interface_endpoints_and_its_clients_go_out_through_the_nat(plans):
    """Without endpoints, the budget guard's and the reconciler's groups and the team's allow-aws
    policy open HTTPS out of the VPC; staging and prod keep endpoints and VPC-only groups."""
    dev = plans["dev"]
    endpoints = inputs_of(dev, "aws:ec2/vpcEndpoint:VpcEndpoint")
    assert [e["vpcEndpointType"] for e in endpoints] == ["Gateway"]  # S3's, free
    for group in ("llmops-dev-cost-budget-guard-sg", "llmops-dev-teams-reconciler-sg"):
        egress = by_name(dev, group)["egress"]
        assert {"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["0.0.0.0/0"]} in egress, (
            group
        )
    allow_aws = by_name(dev, "llmops-dev-teams-fraud-analytics-allow-aws")["spec"]["egress"]
    assert {
        "to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
        "ports": [{"protocol": "TCP", "port": 443}],
    } in allow_aws
    for stack in ("staging", "prod"):
        result = plans[stack]
        services = {
            e["serviceName"].rsplit(".", 1)[-1] for e in inputs_of(result, "aws:ec2/vpcEndpoint:VpcEndpoint")
        }
        assert {"monitoring", "secretsmanager", "sts"} <= services, stack
        guard = by_name(result, f"llmops-{stack}-cost-budget-guard-sg")["egress"]
        assert [r["cidrBlocks"] for r in guard] == [[result.settings.network.cidr]], stack
        assert inputs_of(result, "aws:ec2/instance:Instance") == [], stack


def test_nat_instance_is_listed_as_exposed_and_refused_by_the_pack_above_internal(plans):
    """`llmops plan` lists it under "Exposed to the internet"; the pack accepts it in an internal
    stack and refuses its interface and address in a confidential one (LLMOPS-PUB-006)."""
    dev = plans["dev"]
    assert any(line.startswith("NAT instance llmops-dev-network-nat-") for line in exposure(dev.plan))
    doc = dev.plan.to_dict()
    rule = "no-public-ip-addresses"
    assert [v for v in evaluate_plan(doc, pack_config("internal", [])) if v.policy == rule] == []
    refused = {v.resource for v in evaluate_plan(doc, pack_config("confidential", [])) if v.policy == rule}
    assert refused == {"llmops-dev-network-nat-eni", "llmops-dev-network-nat-eip-eu-west-1a"}


@pytest.mark.parametrize("classification", ["confidential", "regulated"])
def test_settings_refuse_a_nat_instance_in_sensitive_stacks(classification):
    with pytest.raises(SettingsError) as err:
        from_config(
            {
                **STACK,
                "llmops:dataClassification": classification,
                "llmops:network": {"natGateways": "instance"},
            }
        )
    (problem,) = err.value.problems
    assert (
        problem.startswith("llmops:network: ")
        and "natGateways instance" in problem
        and classification in problem
    )


@pytest.mark.parametrize(
    ("network", "expected"),
    [
        (
            {"natGateways": "none", "interfaceEndpoints": []},
            "interfaceEndpoints must include sts, ecr.api, ecr.dkr",
        ),
        ({"natGateways": "instance", "natInstanceType": "m7i.large"}, "not a Graviton (arm64) instance type"),
        (
            {"natGateways": "single", "natInstanceType": "t4g.micro"},
            "natInstanceType is set but natGateways is single",
        ),
    ],
)
def test_network_settings_mistakes(network, expected):
    with pytest.raises(SettingsError) as err:
        from_config({**STACK, "llmops:network": network})
    (problem,) = err.value.problems
    assert problem.startswith("llmops:network") and expected in problem, problem


def test_a_nat_gateway_stack_may_drop_interface_endpoints(tmp_path, plan_stack_file):
    """natGateways single with interfaceEndpoints []: no interface endpoint at all, and the plan
    still verifies (every AWS call goes through the NAT gateway)."""
    result = plan_stack_file(
        tmp_path,
        "natonly",
        (PROJECT_DIR / "stacks" / "Pulumi.dev.yaml")
        .read_text()
        .replace("natGateways: instance", "natGateways: single"),
    )
    assert len(inputs_of(result, "aws:ec2/natGateway:NatGateway")) == 1
    assert inputs_of(result, "aws:ec2/instance:Instance") == []
    assert [e["vpcEndpointType"] for e in inputs_of(result, "aws:ec2/vpcEndpoint:VpcEndpoint")] == ["Gateway"]
    assert result.findings == [], [f.message for f in result.findings]


def test_endpoints_and_encrypted_flow_logs(plans):
    for name, result in plans.items():
        endpoints = inputs_of(result, "aws:ec2/vpcEndpoint:VpcEndpoint")
        gateway = [e for e in endpoints if e["vpcEndpointType"] == "Gateway"]
        assert [e["serviceName"] for e in gateway] == [f"com.amazonaws.{result.settings.region}.s3"], name
        assert all(e["privateDnsEnabled"] for e in endpoints if e["vpcEndpointType"] == "Interface"), name
        flow = only(result, "aws:ec2/flowLog:FlowLog")
        assert flow["trafficType"] == "ALL", name
        assert flow["logDestination"].startswith(f"arn:aws:logs:{result.settings.region}:"), name
        flow_group = result.plan.named("llmops-" + name + "-network-flow-logs")["inputs"]
        assert flow_group["kmsKeyId"].startswith("arn:aws:kms:"), name
        assert flow_group["retentionInDays"] == result.settings.network.flow_log_retention_days, name


def test_no_nat_means_no_public_subnets_and_no_internet_gateway(tmp_path, plan_stack_file):
    result = plan_stack_file(
        tmp_path,
        "sealed",
        textwrap.dedent(
            """\
            config:
              aws:region: me-central-1
              llmops:environment: sealed
              llmops:dataClassification: regulated
              llmops:network: {natGateways: none}
            """
        ),
    )
    assert inputs_of(result, "aws:ec2/natGateway:NatGateway") == []
    assert inputs_of(result, "aws:ec2/internetGateway:InternetGateway") == []
    assert len(inputs_of(result, "aws:ec2/subnet:Subnet")) == 3
    services = {
        e["serviceName"].rsplit(".", 1)[-1] for e in inputs_of(result, "aws:ec2/vpcEndpoint:VpcEndpoint")
    }
    assert {"s3", "sts", "dkr", "api", "logs", "secretsmanager"} <= services


def test_default_security_group_is_emptied(plans):
    sg = only(plans["prod"], "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert not sg.get("ingress") and not sg.get("egress")
