"""The gateway component, through the offline engine's recorded plan of each shipped stack."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest
import yaml

from components.model_serving import self_hosted_models
from llmops import versions
from llmops.gateway.config import render_config
from llmops.offline import SECRET_MASK, run_program
from llmops.settings import from_config, read_stack_file

STACKS = Path(__file__).parent.parent / "stacks"
_plans: dict[str, object] = {}


def plan_of(stack: str, **gateway):
    key = stack + json.dumps(gateway, sort_keys=True)
    if key not in _plans:
        config = copy.deepcopy(read_stack_file(STACKS / f"Pulumi.{stack}.yaml"))
        if gateway:
            config["llmops:gateway"] = gateway
        _plans[key] = (run_program(stack, config, config["aws:region"]), config)
    return _plans[key]


def one(plan, type_: str, suffix: str) -> dict:
    matches = [r for r in plan.of_type(type_) if r["name"].endswith(suffix) and "gateway" in r["name"]]
    assert len(matches) == 1, f"expected one {type_} named *{suffix}, found {[m['name'] for m in matches]}"
    return matches[0]


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_gateway_children_belong_to_the_component(stack):
    plan, _ = plan_of(stack)
    (component,) = plan.of_type("llmops:gateway:Gateway")
    children = [r for r in plan.resources if r["name"].startswith(component["name"] + "-")]
    assert len(children) > 20
    for r in children:
        assert r["parent"] == component["name"], f"{r['name']} is not parented to the gateway"


def test_prod_database_is_encrypted_multi_az_protected_and_private():
    plan, _ = plan_of("prod")
    db = one(plan, "aws:rds/instance:Instance", "-db")["inputs"]
    assert db["storageEncrypted"] is True and db["kmsKeyId"].startswith("arn:aws:kms:")
    assert db["multiAz"] is True, "prod database must be Multi-AZ"
    assert db["deletionProtection"] is True and db["skipFinalSnapshot"] is False
    assert db["backupRetentionPeriod"] >= 7 and db["publiclyAccessible"] is False
    assert db["password"] == SECRET_MASK


def test_dev_database_is_single_az_and_destroyable():
    plan, _ = plan_of("dev", database={"engine": "rds"})  # dev ships the in-cluster database
    db = one(plan, "aws:rds/instance:Instance", "-db")["inputs"]
    assert db["multiAz"] is False and db["deletionProtection"] is False and db["skipFinalSnapshot"] is True


def test_database_admits_only_the_gateway_pods_security_group():
    plan, _ = plan_of("prod")
    (rule,) = one(plan, "aws:ec2/securityGroup:SecurityGroup", "-db-sg")["inputs"]["ingress"]
    pods_sg = one(plan, "aws:ec2/securityGroup:SecurityGroup", "-pods-sg")
    sgp = one(plan, "kubernetes:vpcresources.k8s.aws/v1beta1:SecurityGroupPolicy", "-pods-sgp")["inputs"]
    assert rule["fromPort"] == rule["toPort"] == 5432 and "cidrBlocks" not in rule
    assert rule["securityGroups"] == [sgp["spec"]["securityGroups"]["groupIds"][0]]
    assert pods_sg["inputs"]["description"].startswith("LiteLLM gateway pods")
    assert sgp["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "litellm"}


def test_no_gateway_load_balancer_is_internet_facing():
    for stack in ("dev", "staging", "prod"):
        plan, _ = plan_of(stack)
        for svc in plan.of_type("kubernetes:core/v1:Service"):
            if svc["inputs"]["spec"].get("type") == "LoadBalancer" and "gateway" in svc["name"]:
                notes = svc["inputs"]["metadata"]["annotations"]
                assert notes["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internal", svc["name"]
                assert notes["service.beta.kubernetes.io/aws-load-balancer-internal"] == "true", svc["name"]


@pytest.mark.parametrize("stack,locked", [("prod", True), ("staging", False)])
def test_logs_bucket_is_encrypted_private_tls_only_and_locked_when_regulated(stack, locked):
    plan, _ = plan_of(stack)
    sse_type = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    (rule,) = one(plan, sse_type, "-logs-encryption")["inputs"]["rules"]
    logs_key = one(plan, "aws:kms/key:Key", "-logs-key")
    assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    assert logs_key["inputs"]["enableKeyRotation"] is True
    block = one(plan, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "-logs-public-access")[
        "inputs"
    ]
    assert all(
        block[k]
        for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    policy = json.loads(one(plan, "aws:s3/bucketPolicy:BucketPolicy", "-logs-tls-only")["inputs"]["policy"])
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert one(plan, "aws:s3/bucketVersioning:BucketVersioning", "-logs-versioning")["inputs"][
        "versioningConfiguration"
    ] == {"status": "Enabled"}
    bucket = one(plan, "aws:s3/bucket:Bucket", "-logs")["inputs"]
    locks = [r for r in plan.of_type("aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")]
    assert bucket.get("objectLockEnabled", False) is locked and bool(locks) is locked
    logging = one(plan, "aws:s3/bucketLogging:BucketLogging", "-logs-access-logging")["inputs"]
    assert logging["targetBucket"].startswith(f"llmops-{stack}-access-logs-")


def test_pod_identity_role_writes_only_spend_logs_with_the_logs_key():
    plan, _ = plan_of("prod")
    policy = json.loads(one(plan, "aws:iam/rolePolicy:RolePolicy", "-role-policy")["inputs"]["policy"])
    bucket = one(plan, "aws:s3/bucket:Bucket", "-logs")
    bucket_name = next(
        r["inputs"]["bucket"]
        for r in plan.of_type("aws:s3/bucketVersioning:BucketVersioning")
        if "gateway" in r["name"]
    )
    assert bucket["inputs"]["bucketPrefix"] in bucket_name
    s3, kms = policy["Statement"]
    assert s3["Action"] == ["s3:PutObject"] and s3["Resource"] == f"arn:aws:s3:::{bucket_name}/spend-logs/*"
    assert set(kms["Action"]) == {"kms:GenerateDataKey", "kms:Encrypt"} and kms["Resource"].startswith(
        "arn:aws:kms:"
    )
    trust = json.loads(one(plan, "aws:iam/role:Role", "-role")["inputs"]["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assoc = one(plan, "aws:eks/podIdentityAssociation:PodIdentityAssociation", "-identity")["inputs"]
    assert (assoc["namespace"], assoc["serviceAccount"]) == ("llmops-gateway", "litellm")


def test_config_map_holds_the_generated_config_and_no_secret():
    plan, config = plan_of("prod")
    cm = one(plan, "kubernetes:core/v1:ConfigMap", "-config")["inputs"]
    assert cm["metadata"]["labels"]["app.kubernetes.io/name"] == "litellm"
    text = cm["data"]["config.yaml"]
    settings = from_config(config)
    assert yaml.safe_load(text) == render_config(settings, self_hosted_models(settings))
    # The guardrail module LiteLLM imports from the config's directory ships beside config.yaml.
    hooks = (Path(__file__).parent.parent / "llmops/gateway/hooks.py").read_text()
    assert cm["data"]["llmops.gateway.hooks.py"] == hooks
    guardrail = yaml.safe_load(text)["guardrails"][0]["litellm_params"]["guardrail"]
    assert guardrail.startswith("llmops.gateway.hooks.")
    deployment = one(plan, "kubernetes:apps/v1:Deployment", "-deployment")["inputs"]
    checksum = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    expected = hashlib.sha256((text + hooks).encode()).hexdigest()
    assert checksum == expected, "a change of the config or of the module must roll the pods"
    # LiteLLM looks for the module at <config dir>/llmops/gateway/hooks.py (module path as directories).
    (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "config"]
    assert {"key": "llmops.gateway.hooks.py", "path": "llmops/gateway/hooks.py"} in volume["configMap"][
        "items"
    ]
    assert {"key": "config.yaml", "path": "config.yaml"} in volume["configMap"]["items"]
    secret = one(plan, "kubernetes:core/v1:Secret", "-env")["inputs"]
    keys = ("LITELLM_MASTER_KEY", "DATABASE_URL", "VLLM_API_KEY")
    assert secret["stringData"] == dict.fromkeys(keys, SECRET_MASK)
    for r in plan.of_type("aws:secretsmanager/secretVersion:SecretVersion"):
        assert r["inputs"]["secretString"] == SECRET_MASK, r["name"]


def test_deployment_is_pinned_probed_limited_and_hardened():
    plan, _ = plan_of("prod")
    spec = one(plan, "kubernetes:apps/v1:Deployment", "-deployment")["inputs"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["image"] == versions.LITELLM_IMAGE and ":v1.100.5" in container["image"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "https", probe
        assert container[probe]["httpGet"]["scheme"] == "HTTPS", probe  # the proxy serves TLS only
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    hardening = container["securityContext"]
    assert hardening["allowPrivilegeEscalation"] is False and hardening["readOnlyRootFilesystem"] is True
    assert hardening["capabilities"] == {"drop": ["ALL"]}
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] >= 10000
    netpol = one(plan, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "-netpol")["inputs"]["spec"]
    assert netpol["policyTypes"] == ["Ingress"]
    assert netpol["ingress"] == [
        {"from": [{"ipBlock": {"cidr": "10.0.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 4000}]}
    ]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True" and env["SPEND_LOGS_BUCKET"].startswith(
        "llmops-prod-"
    )
    assert container["envFrom"] == [{"secretRef": {"name": "litellm-env"}}]
    hpa = one(plan, "kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "-hpa")["inputs"]["spec"]
    pdb = one(plan, "kubernetes:policy/v1:PodDisruptionBudget", "-pdb")["inputs"]["spec"]
    assert hpa["minReplicas"] == 2 and hpa["maxReplicas"] >= hpa["minReplicas"]
    assert pdb["maxUnavailable"] == 1


def test_external_providers_get_keys_from_secrets_manager_and_bedrock_access():
    gateway = {
        "externalProviders": [
            {
                "name": "openai",
                "kind": "openai",
                "apiKeySecret": "llmops/openai",
                "models": [{"name": "gpt-4o-mini"}],
            },
            {
                "name": "bedrock",
                "kind": "bedrock",
                "models": [{"name": "claude", "model": "anthropic.claude"}],
            },
        ]
    }
    plan, _ = plan_of("dev", **gateway)
    assert any(i["token"] == "aws:secretsmanager/getSecretVersion:getSecretVersion" for i in plan.invokes)
    assert "offline-fake" not in json.dumps(plan.resources), "a key leaked into the plan"
    policy = json.loads(one(plan, "aws:iam/rolePolicy:RolePolicy", "-role-policy")["inputs"]["policy"])
    bedrock = policy["Statement"][2]
    assert bedrock["Resource"] == ["arn:aws:bedrock:eu-west-1::foundation-model/*"]


def test_plan_writes_the_gateway_config_without_secrets(tmp_path):
    from llmops.plan import write_outputs

    plan, config = plan_of("prod")
    write_outputs(plan, tmp_path / "prod")
    text = (tmp_path / "prod" / "gateway" / "config.yaml").read_text()
    settings = from_config(config)
    assert yaml.safe_load(text) == render_config(settings, self_hosted_models(settings))
    assert SECRET_MASK not in text and "postgresql://" not in text


def test_estimate_prices_the_gateway_database():
    from llmops.estimate import estimate

    plan, _ = plan_of("prod")
    est = estimate(plan.to_dict())
    # Multi-AZ bills the standby too: two instances all month and twice the 20 GiB of gp3.
    assert est.region == "me-central-1"
    assert est.line("RDS db.t4g.medium Multi-AZ").quantity_max == 2 * 730
    assert est.line("RDS gp3 storage Multi-AZ").quantity_max == 2 * 20
