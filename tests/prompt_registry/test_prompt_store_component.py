"""The prompt_store component under Pulumi's mocks: security invariants of what it declares."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws
import pytest
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components.context import AwsContext
from components.prompt_store import PromptStore, PromptStoreArgs
from llmops.prompts.registry import RegistryConfig
from llmops.settings import StackSettings

ACCOUNT = "111122223333"
OIDC = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
SUBJECT = "repo:acme/prompts:ref:refs/heads/main"


class Recorder(pulumi.runtime.Mocks):
    """Records every resource; returns the few computed outputs the component reads."""

    def __init__(self):
        self.resources: dict[str, dict] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        outputs = dict(args.inputs)
        rid = f"{args.name}-id"
        if args.typ == "aws:s3/bucket:Bucket":
            rid = args.inputs.get("bucket") or args.inputs["bucketPrefix"] + "0a1b2c3d"
            outputs.update(bucket=rid, arn=f"arn:aws:s3:::{rid}")
        elif args.typ == "aws:kms/key:Key":
            rid = "0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6"
            outputs.update(arn=f"arn:aws:kms:me-central-1:{ACCOUNT}:key/{rid}", keyId=rid)
        elif args.typ == "aws:iam/role:Role":
            rid = args.inputs["name"]
            outputs["arn"] = f"arn:aws:iam::{ACCOUNT}:role/{rid}"
        self.resources[args.name] = {"type": args.typ, "inputs": args.inputs}
        return rid, outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        raise AssertionError(f"the component must not invoke {args.token}")


def declare(
    classification: str = "regulated",
    stack: dict | None = None,
    routes: tuple[str, ...] | None = ("qwen-small", "gpt-4o-mini"),
    **prompt_store,
) -> tuple[dict[str, dict], dict[str, dict]]:
    """Run the component alone under mocks: (resources by name, {parent, protect} by name)."""
    settings = StackSettings.model_validate(
        {
            "environment": "prod",
            "dataClassification": classification,
            "region": "me-central-1",
            "promptStore": prompt_store,
            **(stack or {}),
        }
    )
    recorder, parents = Recorder(), {}

    def record_parent(args: pulumi.ResourceTransformationArgs):
        parent = args.opts.parent if args.opts else None
        parents[args.name] = {
            "parent": parent.pulumi_resource_name if parent else None,
            "protect": bool(args.opts and args.opts.protect),
        }

    def program():
        pulumi.runtime.register_stack_transformation(record_parent)
        provider = aws.Provider("aws", region=settings.region)
        identity = aws.GetCallerIdentityResult(
            account_id=ACCOUNT, arn=f"arn:aws:iam::{ACCOUNT}:role/deploy", id=ACCOUNT, user_id="AROAEXAMPLE"
        )
        logs = aws.s3.Bucket("platform-access-logs", bucket="llmops-prod-access-logs")
        ctx = AwsContext(settings, provider, identity, "aws", "amazonaws.com", access_logs=logs)
        subjects = settings.prompt_store.writer_github_subjects
        PromptStore("store", PromptStoreArgs(ctx, OIDC, subjects, gateway_routes=routes))

    pulumi_mocks.set_mocks(recorder, project="llmops", stack="test", preview=False)
    _sync_await(run_pulumi_func(program))
    return recorder.resources, parents


@pytest.fixture(scope="module")
def regulated():
    return declare("regulated", writerGithubSubjects=[SUBJECT])


@pytest.fixture(scope="module")
def internal():
    return declare(
        "internal",
        noncurrentVersionExpirationDays=90,
        protectedAliases=["production", "staging"],
        minPassRate=0.85,
        writerGithubSubjects=[SUBJECT],
    )


@pytest.fixture(scope="module")
def no_subjects():
    return declare("internal")


def of_type(resources, type_):
    return {name: r["inputs"] for name, r in resources.items() if r["type"] == type_}


BUCKET = "llmops-prod-prompts-0a1b2c3d"
BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"


def test_every_child_is_parented_to_the_component(regulated):
    resources, parents = regulated
    children = [
        n
        for n, r in resources.items()
        if not r["type"].startswith(("llmops:", "pulumi:providers")) and n != "platform-access-logs"
    ]
    orphans = [n for n in children if parents[n]["parent"] != "store"]
    assert not orphans, f"not children of the component: {orphans}"
    assert all(n.startswith("store-") for n in children)


def test_prompt_bucket_is_versioned_kms_encrypted_private_and_logged(regulated):
    resources, _ = regulated
    assert resources["store-bucket"]["inputs"]["bucketPrefix"] == "llmops-prod-prompts-"
    assert resources["store-bucket"]["inputs"]["forceDestroy"] is False
    assert resources["store-bucket-versioning"]["inputs"]["versioningConfiguration"] == {"status": "Enabled"}
    rule = resources["store-bucket-encryption"]["inputs"]["rules"][0]
    assert rule["applyServerSideEncryptionByDefault"] == {
        "sseAlgorithm": "aws:kms",
        "kmsMasterKeyId": f"arn:aws:kms:me-central-1:{ACCOUNT}:key/0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6",
    }
    assert rule["bucketKeyEnabled"] is True
    assert resources["store-key"]["inputs"]["enableKeyRotation"] is True
    block = resources["store-bucket-public-access"]["inputs"]
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    assert all(block[f] is True for f in flags), block
    assert resources["store-bucket-ownership"]["inputs"]["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    deny = json.loads(resources["store-bucket-tls-only"]["inputs"]["policy"])["Statement"][0]
    assert (deny["Effect"], deny["Principal"]) == ("Deny", "*")
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert resources["store-bucket-access-logging"]["inputs"]["targetBucket"] == "llmops-prod-access-logs"


def test_regulated_stack_locks_objects_and_keeps_every_version(regulated):
    resources, _ = regulated
    assert resources["store-bucket"]["inputs"]["objectLockEnabled"] is True
    lock = resources["store-bucket-object-lock"]["inputs"]
    assert lock["rule"]["defaultRetention"] == {"mode": "GOVERNANCE", "days": 365}
    rules = resources["store-bucket-lifecycle"]["inputs"]["rules"]
    assert not any("noncurrentVersionExpiration" in r or "expiration" in r for r in rules), rules


def test_other_stacks_skip_object_lock_and_may_expire_old_versions(internal):
    resources, _ = internal
    assert "store-bucket-object-lock" not in resources
    assert not resources["store-bucket"]["inputs"].get("objectLockEnabled")
    rules = resources["store-bucket-lifecycle"]["inputs"]["rules"]
    assert [r["noncurrentVersionExpiration"] for r in rules if "noncurrentVersionExpiration" in r] == [
        {"noncurrentDays": 90}
    ]
    assert not any("expiration" in r for r in rules), "current prompts never expire"


def test_registry_config_carries_the_gate_settings_and_the_gateway_routes(regulated, internal):
    expected = [
        (regulated, {"protected_aliases": ["production"], "min_pass_rate": None}),
        (internal, {"protected_aliases": ["production", "staging"], "min_pass_rate": 0.85}),
    ]
    for (resources, _), gate in expected:
        config = resources["store-registry-config"]["inputs"]
        assert config["key"] == "_registry/config.json"
        assert json.loads(config["content"]) == {**gate, "models": ["qwen-small", "gpt-4o-mini"]}
        assert config["serverSideEncryption"] == "aws:kms" and config["kmsKeyId"].startswith("arn:aws:kms:")
    resources, _ = declare("internal", routes=None)
    assert json.loads(resources["store-registry-config"]["inputs"]["content"])["models"] is None


def test_registry_config_is_what_the_registry_reads(internal):
    resources, _ = internal
    content = json.loads(resources["store-registry-config"]["inputs"]["content"])
    config = RegistryConfig.parse(content, "plan")
    assert config == RegistryConfig(("production", "staging"), ("qwen-small", "gpt-4o-mini"), 0.85)


def test_writer_is_assumable_only_by_the_named_github_workflows(regulated):
    resources, _ = regulated
    trust = json.loads(resources["store-writer"]["inputs"]["assumeRolePolicy"])["Statement"]
    assert trust == [
        {
            "Effect": "Allow",
            "Principal": {"Federated": OIDC},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"},
                "StringLike": {"token.actions.githubusercontent.com:sub": [SUBJECT]},
            },
        }
    ]


def test_reader_is_a_pod_identity_role(regulated):
    resources, _ = regulated
    trust = json.loads(resources["store-reader"]["inputs"]["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert sorted(trust["Action"]) == ["sts:AssumeRole", "sts:TagSession"]


def test_grants_give_what_the_registry_needs_and_nothing_more(regulated):
    resources, _ = regulated

    def actions(name):
        statements = json.loads(resources[name]["inputs"]["policy"])["Statement"]
        return {a: s["Resource"] for s in statements for a in s["Action"]}

    read = actions("store-read-store-reader")
    write = actions("store-write-store-writer")
    assert set(read) == {"s3:ListBucket", "s3:GetObject", "kms:Decrypt"}
    assert read["s3:GetObject"] == [f"{BUCKET_ARN}/prompts/*", f"{BUCKET_ARN}/_registry/config.json"]
    assert read["kms:Decrypt"].startswith("arn:aws:kms:")
    assert {"s3:PutObject", "s3:ListBucketVersions", "s3:GetObjectVersion", "kms:GenerateDataKey"} <= set(
        write
    )
    assert write["s3:PutObject"] == f"{BUCKET_ARN}/prompts/*", "CI must not rewrite the registry config"
    forbidden = {"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention", "s3:*"}
    assert not forbidden & set(write)


def test_stateful_resources_are_protected(regulated):
    resources, options = regulated
    # Stack transformations outlive a run: keep this run's resources only.
    protected = sorted(n for n, o in options.items() if o["protect"] and n in resources)
    assert protected == ["store-bucket", "store-key"]


def test_deletion_protection_off_unprotects_them():
    _, options = declare("internal", stack={"deletionProtection": False})
    assert not any(o["protect"] for o in options.values())


def test_no_github_subject_means_no_writer_role(no_subjects):
    resources, _ = no_subjects
    assert "store-writer" not in resources
    assert not [n for n in resources if n.startswith("store-write-")]
    assert "store-reader" in resources and "store-read-store-reader" in resources
