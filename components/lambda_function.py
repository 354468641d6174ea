"""A Python Lambda the platform's way: packaged from lambdas/<folder>, arm64, its own role with
only what it calls, a KMS-encrypted log group with retention, a dead-letter queue for failed
asynchronous invocations, reserved concurrency, and optionally a place in the VPC whose security
group allows HTTPS inside the VPC (VPC endpoints and the gateway's load balancer) and, only when an
AWS API it calls has no endpoint, HTTPS out through the NAT."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import iam
from components.context import AwsContext
from llmops import PROJECT_DIR

LAMBDAS = PROJECT_DIR / "lambdas"
LAMBDA_DEPS = PROJECT_DIR / "build" / "lambda-deps"  # `make lambda-deps` builds them here
RUNTIME = "python3.13"  # the handlers need 3.11+; Makefile LAMBDA_PLATFORM builds packages for it
DLQ_RETENTION_SECONDS = 14 * 86400


@dataclass(frozen=True)
class VpcPlacement:
    vpc_id: pulumi.Input[str]
    vpc_cidr: str
    subnet_ids: list[pulumi.Input[str]]
    https_out: bool = False
    """HTTPS to any address too: an AWS API the function calls has no interface endpoint in the
    VPC, so the NAT carries it (AWS publishes no address list of one service's API to narrow to)."""


def lambda_code(folder: str, extra: dict[str, str] | None = None) -> pulumi.AssetArchive:
    """The zip of lambdas/<folder>: the folder's Python files under <folder>/ (so the handler's
    relative imports work, see lambdas/__init__.py) and, at the zip's root where Lambda's
    sys.path looks, the packages of its requirements.txt as `make lambda-deps` built them for
    the Lambda's platform. No bytecode caches: the zip is the same on every machine, so a
    deploy from elsewhere does not update the function."""
    sources = sorted((LAMBDAS / folder).glob("*.py"))
    assets: dict[str, pulumi.Asset | pulumi.Archive] = {
        f"{folder}/{path.name}": pulumi.FileAsset(str(path)) for path in sources
    }
    # Generated files (a reconciler's desired state), as text: part of the code, so a change
    # updates the function.
    assets.update({f"{folder}/{name}": pulumi.StringAsset(text) for name, text in (extra or {}).items()})
    requirements = LAMBDAS / folder / "requirements.txt"
    if requirements.exists():
        built = LAMBDA_DEPS / folder
        stamp = built / requirements.name  # the requirements file the build was made from
        if not stamp.exists() or stamp.read_bytes() != requirements.read_bytes():
            raise pulumi.RunError(
                f"lambdas/{folder}/requirements.txt: the Lambda's packages are not built, or were built "
                f"from another version of the file; run `make lambda-deps`"
            )
        for path in sorted(built.iterdir()):
            if path.is_dir():
                assets[path.name] = pulumi.FileArchive(str(path))
            elif path != stamp:
                assets[path.name] = pulumi.FileAsset(str(path))
    return pulumi.AssetArchive(assets)


def python_function(
    parent: pulumi.Resource,
    name: str,
    function_name: str,
    folder: str,
    statements: list,
    environment: dict,
    *,
    ctx: AwsContext,
    key: aws.kms.Key,
    log_retention_days: int,
    reserved: int,
    timeout: int = 30,
    memory_size: int = 256,
    vpc: VpcPlacement | None = None,
    extra_files: pulumi.Input[dict[str, str]] | None = None,
) -> aws.lambda_.Function:
    """The function `function_name` from lambdas/<folder>, its resources named `name-*`.

    `statements` are what its code calls beyond logging, its DLQ and `key` (which encrypts the log
    group, the DLQ and the environment); `extra_files` are added to the zip under <folder>/."""
    child = pulumi.ResourceOptions(parent=parent)
    log_group = aws.cloudwatch.LogGroup(
        f"{name}-logs",
        name=f"/aws/lambda/{function_name}",
        retention_in_days=log_retention_days,
        kms_key_id=key.arn,
        opts=child,
    )
    dlq = aws.sqs.Queue(
        f"{name}-dlq", kms_master_key_id=key.arn, message_retention_seconds=DLQ_RETENTION_SECONDS, opts=child
    )
    role = aws.iam.Role(
        f"{name}-role",
        assume_role_policy=iam.service_trust("lambda.amazonaws.com", ctx.account_id),
        opts=child,
    )
    base = [
        iam.allow(["logs:CreateLogStream", "logs:PutLogEvents"], log_group.arn.apply(lambda a: f"{a}:*")),
        iam.allow(["sqs:SendMessage"], dlq.arn),
        iam.allow(["kms:GenerateDataKey*", "kms:Decrypt"], key.arn),  # the DLQ and environment
    ]
    policy = aws.iam.RolePolicy(
        f"{name}-policy", role=role.id, policy=iam.document_output(*base, *statements), opts=child
    )
    depends: list[pulumi.Resource] = [log_group, policy]
    vpc_config = None
    if vpc is not None:
        depends.append(
            aws.iam.RolePolicyAttachment(
                f"{name}-vpc",
                role=role.name,
                policy_arn=f"arn:{ctx.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
                opts=child,
            )
        )
        group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            description=f"{function_name}: HTTPS to the gateway's load balancer and to VPC endpoints",
            vpc_id=vpc.vpc_id,
            ingress=[],
            egress=[
                {"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": [vpc.vpc_cidr]},
                *(
                    [{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0"]}]
                    if vpc.https_out
                    else []
                ),
            ],
            opts=child,
        )
        vpc_config = {"subnet_ids": vpc.subnet_ids, "security_group_ids": [group.id]}
    return aws.lambda_.Function(
        name,
        name=function_name,
        role=role.arn,
        runtime=RUNTIME,
        architectures=["arm64"],
        handler=f"{folder}.handler.handler",
        code=pulumi.Output.from_input(extra_files).apply(lambda extra: lambda_code(folder, extra))
        if extra_files is not None
        else lambda_code(folder),
        timeout=timeout,
        memory_size=memory_size,
        environment={"variables": {"ENVIRONMENT": ctx.settings.environment, **environment}},
        kms_key_arn=key.arn,
        logging_config={"log_format": "Text", "log_group": log_group.name},
        dead_letter_config={"target_arn": dlq.arn},
        reserved_concurrent_executions=reserved,
        vpc_config=vpc_config,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=depends),
    )


def on_schedule(parent: pulumi.Resource, name: str, function: aws.lambda_.Function, expression: str) -> None:
    """Run the function on an EventBridge schedule (`rate(15 minutes)`, `cron(...)`); resources
    named `name-schedule`, `name-from-events`, `name-target`."""
    child = pulumi.ResourceOptions(parent=parent)
    rule = aws.cloudwatch.EventRule(f"{name}-schedule", schedule_expression=expression, opts=child)
    aws.lambda_.Permission(
        f"{name}-from-events",
        action="lambda:InvokeFunction",
        function=function.name,
        principal="events.amazonaws.com",
        source_arn=rule.arn,
        opts=child,
    )
    aws.cloudwatch.EventTarget(f"{name}-target", rule=rule.name, arn=function.arn, opts=child)
