"""The network component: subnet maths, NAT per settings, endpoints, encrypted flow logs."""

from __future__ import annotations

import ipaddress
import textwrap

import pytest
from conftest import inputs_of, only

from components.network import plan_subnets


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


def test_dev_shares_one_nat_over_two_azs(plans):
    dev = plans["dev"]
    assert len(inputs_of(dev, "aws:ec2/natGateway:NatGateway")) == 1
    tables = [
        t
        for t in inputs_of(dev, "aws:ec2/routeTable:RouteTable")
        if any("natGatewayId" in r for r in t.get("routes", []))
    ]
    assert len(tables) == 2 and len({t["routes"][0]["natGatewayId"] for t in tables}) == 1


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
