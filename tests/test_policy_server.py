"""The pack as the Pulumi CLI runs it (`python -u -m pulumi.policy ENGINE PACK_DIR`, what the CLI's
pulumi-analyzer-policy-python does): policies/__main__.py serves the analyzer gRPC protocol on
127.0.0.1; this test plays the engine (GetAnalyzerInfo, Configure, Analyze, AnalyzeStack)."""

from __future__ import annotations

import json
import subprocess
import sys

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2 as proto
from pulumi.runtime.proto import analyzer_pb2_grpc
from pulumi_policy.proxy import UNKNOWN_BOOLEAN_VALUE

from llmops.policy.catalogue import config_path
from llmops.policy.engine import POLICIES_DIR, pack

LEVELS = {"advisory": proto.ADVISORY, "mandatory": proto.MANDATORY, "disabled": proto.DISABLED}


def struct(value: dict) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(value)
    return out


@pytest.fixture(scope="module")
def analyzer():
    server = subprocess.Popen(
        [sys.executable, "__main__.py"],
        cwd=POLICIES_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(server.stdout.readline().strip() or 0)
        assert port, server.stderr.read()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        server.terminate()
        server.wait(timeout=10)


def configure(stub, env: str) -> None:
    config = json.loads(config_path(env).read_text())
    request = proto.ConfigureAnalyzerRequest()
    for name, entry in config.items():
        props = {k: v for k, v in entry.items() if k != "enforcementLevel"}
        request.policyConfig[name].CopyFrom(
            proto.PolicyConfig(enforcementLevel=LEVELS[entry["enforcementLevel"]], properties=struct(props))
        )
    stub.Configure(request)


def test_info_lists_every_policy_with_its_metadata(analyzer):
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    rules = {r.name: r for r in pack().rules()}
    assert info.name == "llmops-policies" and {p.name for p in info.policies} == set(rules)
    for policy in info.policies:
        rule = rules[policy.name]
        assert policy.remediation_steps == rule.remediation_steps and policy.framework.reference == rule.id
        assert rule.remediation in policy.remediation_steps
        assert all(key in policy.remediation_steps for key in rule.setting)
        assert "dataClassification" in policy.configSchema.properties


def test_analyze_reports_at_the_configured_level_and_skips_unknowns(analyzer):
    configure(analyzer, "prod")
    urn = "urn:pulumi:prod::llmops::aws:lb/loadBalancer:LoadBalancer::gw"
    public = analyzer.Analyze(
        proto.AnalyzeRequest(
            type="aws:lb/loadBalancer:LoadBalancer",
            name="gw",
            urn=urn,
            properties=struct({"internal": False}),
        )
    )
    hits = [d for d in public.diagnostics if d.policyName == "load-balancers-internal"]
    assert [d.enforcementLevel for d in hits] == [proto.MANDATORY]
    assert "Load balancer gw must be internal" in hits[0].message
    unknown = analyzer.Analyze(
        proto.AnalyzeRequest(
            type="aws:lb/loadBalancer:LoadBalancer",
            name="gw",
            urn=urn,
            properties=struct({"internal": UNKNOWN_BOOLEAN_VALUE}),
        )
    )
    assert [d for d in unknown.diagnostics if d.policyName == "load-balancers-internal"] == []


def test_analyze_stack_links_v7_bucket_resources(analyzer):
    configure(analyzer, "dev")
    bucket = "urn:pulumi:dev::llmops::aws:s3/bucket:Bucket::logs"
    resources = [
        proto.AnalyzerResource(
            type="aws:s3/bucket:Bucket",
            name="logs",
            urn=bucket,
            properties=struct({"bucket": "logs-7f3a", "arn": "arn:aws:s3:::logs-7f3a"}),
        ),
        proto.AnalyzerResource(
            type="aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            name="logs-pab",
            urn="urn:pulumi:dev::llmops::aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock::logs-pab",
            properties=struct(
                {
                    "bucket": "logs-7f3a",
                    "blockPublicAcls": True,
                    "blockPublicPolicy": False,
                    "ignorePublicAcls": True,
                    "restrictPublicBuckets": True,
                }
            ),
        ),
    ]
    response = analyzer.AnalyzeStack(proto.AnalyzeStackRequest(resources=resources))
    hits = [d for d in response.diagnostics if d.policyName == "s3-public-access-blocked"]
    assert len(hits) == 1 and "blockPublicPolicy" in hits[0].message and hits[0].urn.endswith("::logs-pab")
    assert hits[0].enforcementLevel == proto.MANDATORY  # internal: exposure rules stay mandatory
