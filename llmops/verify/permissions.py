"""Permissions: every AWS API a Lambda's code calls is granted to its role (with the KMS use the
call implies), every service-to-service delivery has its resource-policy and key-policy
statements, and every pod that calls AWS has a Pod Identity role that allows what it does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from llmops.verify import iam
from llmops.verify.contracts import Finding, contract
from llmops.verify.lambda_source import Call, Document, scan, source_folder
from llmops.verify.model import TENANT_SERVICE_ACCOUNT, PlanView, Workload, as_list, statements

# The keyword naming the resource of an API call, per service.
RESOURCE_KEYWORDS = {
    "sns": "TopicArn",
    "secretsmanager": "SecretId",
    "sqs": "QueueUrl",
    "dynamodb": "TableName",
    "s3": "Bucket",
}
# Amazon S3 operations whose IAM action is named otherwise, and those that act on the bucket rather
# than on an object (Service Authorization Reference, "Actions defined by Amazon S3").
S3_ACTIONS = {
    "ListObjectsV2": "ListBucket",
    "ListObjects": "ListBucket",
    "ListObjectVersions": "ListBucketVersions",
    "HeadObject": "GetObject",
    "HeadBucket": "ListBucket",
}
S3_BUCKET_OPERATIONS = {"ListObjectsV2", "ListObjects", "ListObjectVersions", "HeadBucket"}
RESOURCE_TYPES = {
    "sns": "aws:sns/topic:Topic",
    "secretsmanager": "aws:secretsmanager/secret:Secret",
    "sqs": "aws:sqs/queue:Queue",
    "dynamodb": "aws:dynamodb/table:Table",
    "s3": "aws:s3/bucket:Bucket",
}


def _env(function: dict[str, Any]) -> dict[str, str]:
    return ((function.get("inputs") or {}).get("environment") or {}).get("variables") or {}


def account_root(plan: PlanView, arn: str | None) -> str:
    account = (arn or "").split(":")[4] if arn and arn.count(":") >= 5 else ""
    return f"arn:aws:iam::{account}:root"


def _kms_key_of(plan: PlanView, resource: dict[str, Any] | None) -> str | None:
    """The customer key a resource is encrypted with (topics, queues, secrets, buckets)."""
    if resource is None:
        return None
    inputs = resource.get("inputs") or {}
    if resource["type"] == "aws:s3/bucket:Bucket":
        for config in plan.of_type(
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
        ):
            if config["inputs"].get("bucket") in (resource.get("id"), inputs.get("bucket")):
                for rule in config["inputs"].get("rules") or []:
                    default = rule.get("applyServerSideEncryptionByDefault") or {}
                    if default.get("sseAlgorithm") == "aws:kms":
                        return default.get("kmsMasterKeyId")
        return None
    return inputs.get("kmsMasterKeyId") or inputs.get("kmsKeyId")


def _action(call: Call) -> str:
    if call.service == "s3":
        return f"s3:{S3_ACTIONS.get(call.operation, call.operation)}"
    return call.action


def _kms_for(call: Call) -> list[str]:
    """KMS actions a call needs on the target's key (AWS decrypts or encrypts on the caller's behalf)."""
    op = call.operation
    if call.service == "sns" and op == "Publish":
        return ["kms:GenerateDataKey", "kms:Decrypt"]
    if call.service == "sqs" and op == "SendMessage":
        return ["kms:GenerateDataKey", "kms:Decrypt"]
    if call.service == "sqs" and op == "ReceiveMessage":
        return ["kms:Decrypt"]
    if call.service == "secretsmanager" and op == "GetSecretValue":
        return ["kms:Decrypt"]
    # Changing a secret's value makes Secrets Manager ask KMS for a new data key on the caller's behalf
    # (docs.aws.amazon.com/secretsmanager/latest/userguide/security-encryption.html, "Permissions for
    # the KMS key": kms:GenerateDataKey and kms:Decrypt).
    if call.service == "secretsmanager" and op == "PutSecretValue":
        return ["kms:GenerateDataKey", "kms:Decrypt"]
    if call.service == "s3" and op in ("GetObject", "GetObjectVersion"):
        return ["kms:Decrypt"]
    if call.service == "s3" and op == "PutObject":
        return ["kms:GenerateDataKey"]
    return []


def event_buckets(plan: PlanView, function: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """(bucket, key prefix) whose object events reach the function through an SQS mapping."""
    found = []
    arn = plan.arn(function)
    for mapping in plan.of_type("aws:lambda/eventSourceMapping:EventSourceMapping"):
        if mapping["inputs"].get("functionName") not in (arn, (function["inputs"] or {}).get("name")):
            continue
        queue_arn = mapping["inputs"].get("eventSourceArn")
        for notification in plan.of_type("aws:s3/bucketNotification:BucketNotification"):
            for q in notification["inputs"].get("queues") or []:
                if q.get("queueArn") == queue_arn:
                    bucket = plan.resolve(notification["inputs"].get("bucket"), "aws:s3/bucket:Bucket")
                    if bucket:
                        found.append((bucket, q.get("filterPrefix") or ""))
    return found


def _targets(plan: PlanView, function: dict[str, Any], call: Call) -> list[tuple[str | None, dict | None]]:
    """Every (ARN, resource) the call may act on: from each environment variable and each document
    value its resource keyword comes from; else as `_target` guesses."""
    keyword = RESOURCE_KEYWORDS.get(call.service)
    if not keyword:
        return [_target(plan, function, call)]
    found = [_target(plan, function, call, o[4:]) for o in call.origins(keyword) if o.startswith("env:")]
    for document in call.documents(keyword):
        found += document_targets(plan, function, call, document)
    unique = {(arn, (resource or {}).get("name")): (arn, resource) for arn, resource in found}
    return list(unique.values()) if unique else [_target(plan, function, call)]


def archive_entry(function: dict[str, Any], file: str) -> tuple[str, Any] | None:
    """(key, recorded asset) of a file in the function's code archive, beside its handler.py."""
    archive = ((function.get("inputs") or {}).get("code") or {}).get("archive") or {}
    handler = next((k for k in archive if k.endswith("handler.py")), "")
    folder = handler.rpartition("/")[0]
    key = f"{folder}/{file}" if folder else file
    return (key, archive[key]) if key in archive else None


def _recorded_text(asset: Any) -> str | None:
    """The text of an inline asset if the plan records it ({"StringAsset": {"text": ...}} or
    {"text": ...}); llmops/offline.py records "(inline)" only, so today this is None."""
    if not isinstance(asset, dict):
        return None
    inner = asset.get("StringAsset", asset)
    text = inner.get("text") if isinstance(inner, dict) else None
    return text if isinstance(text, str) else None


def _select(value: Any, path: tuple[str, ...]) -> list[Any]:
    if not path:
        return [value]
    head, rest = path[0], path[1:]
    if head == "*":
        items = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else []
        return [v for item in items for v in _select(item, rest)]
    return _select(value[head], rest) if isinstance(value, dict) and head in value else []


def document_targets(
    plan: PlanView, function: dict[str, Any], call: Call, document: Document
) -> list[tuple[str | None, dict | None]]:
    """What a value read from a document in the function's code archive refers to. The document's
    own values when the plan records its text; otherwise the resources of the call's type that the
    archive's contents were computed from (the engine records them as the `code` property's
    dependencies: the team reconciler's desired.json depends on the teams' key secrets, whose ARNs
    are the secret_ids in it). When the function's environment points the code at another file
    (an override variable is set), or the archive holds no such file, the resource is unknown."""
    types = RESOURCE_TYPES.get(call.service)
    entry = archive_entry(function, document.file)
    if entry is None or any(v in _env(function) for v in document.overrides):
        return [(None, None)]
    text = _recorded_text(entry[1])
    if text is not None:
        try:
            values = _select(json.loads(text), document.path)
        except ValueError:
            return [(None, None)]
        found = []
        for value in values:
            resource = plan.resolve(value, types) if types and isinstance(value, str) else None
            found.append((plan.arn(resource) if resource else str(value), resource))
        return found or [(None, None)]
    names = ((function.get("propertyDependencies") or {}).get("code")) or []
    resources = [plan.by_name[n] for n in names if n in plan.by_name and plan.by_name[n]["type"] == types]
    return [(plan.arn(r), r) for r in resources] or [(None, None)]


def _target(
    plan: PlanView, function: dict[str, Any], call: Call, name: str | None = None
) -> tuple[str | None, dict[str, Any] | None]:
    """(ARN the call acts on, its resource) from the keyword's env var, else the one resource of the
    service's type the function's environment names; (None, None) when the code does not say."""
    env = _env(function)
    keyword = RESOURCE_KEYWORDS.get(call.service)
    name = name or (call.env(keyword) if keyword else None)
    candidates = [env[name]] if name and name in env else list(env.values())
    types = RESOURCE_TYPES.get(call.service)
    resolved = [r for r in (plan.resolve(v, types) for v in candidates if types) if r is not None]
    if call.service == "s3" and name is None:  # the bucket of the function's object events
        buckets = event_buckets(plan, function)
        if buckets:
            bucket, prefix = buckets[0]
            return f"{plan.arn(bucket)}/{prefix}object", bucket
    if len({r["name"] for r in resolved}) == 1:
        arn = plan.arn(resolved[0])
        if call.service == "s3" and call.operation not in S3_BUCKET_OPERATIONS:
            arn = f"{arn}/{call.pattern('Key') or call.literal('Key') or '*'}"
        return arn, resolved[0]
    if name and name in env and str(env[name]).startswith("arn:"):
        return env[name], None
    return None, None


def _why(call: Call) -> str:
    """Where the call is, and where its resource comes from when that is a document in the archive."""
    keyword = RESOURCE_KEYWORDS.get(call.service)
    documents = call.documents(keyword) if keyword else []
    via = f"; {keyword} from {', '.join(map(str, documents))} in its code archive" if documents else ""
    return f"{call.file}:{call.line}{via}"


def _role_findings(
    plan: PlanView,
    contract_id: str,
    owner: dict[str, Any],
    role: dict[str, Any],
    needs: list[tuple[str, str | None, str]],
) -> Iterator[Finding]:
    """Findings for every (action, resource, why) the role's policies do not allow."""
    statements = plan.role_statements(role)
    for action, resource, why in needs:
        if not iam.allows(statements, action, resource):
            on = f" on {resource}" if resource else ""
            yield Finding(
                contract_id,
                owner["name"],
                role["name"],
                f"{owner['name']} calls {action}{on} ({why}), which its role {role['name']} does not allow.",
                f"Grant {action}{on} to {role['name']}.",
            )


def _key_findings(
    plan: PlanView, contract_id: str, owner: dict[str, Any], key: str, actions: list[str], why: str
):
    statements = plan.key_statements(key)
    if statements is None:
        return
    root = account_root(plan, key)
    for action in actions:
        if not iam.key_delegates_to_iam(statements, root, action):
            yield Finding(
                contract_id,
                owner["name"],
                key,
                f"The policy of key {key} must let IAM grant {action} ({why}); it names no account "
                "principal for it.",
                "Keep the AccountAdministration statement in the key policy.",
            )


@contract(
    "permissions-lambda-code",
    "permissions",
    "Checks whether every AWS API call in a Lambda's source, its event source, dead-letter queue and log "
    "group are allowed by its role, with the KMS use each implies.",
)
def lambda_code(plan: PlanView) -> Iterator[Finding]:
    for function in plan.of_type("aws:lambda/function:Function"):
        role = plan.role_of(function["inputs"].get("role"))
        folder = source_folder(function)
        if role is None or folder is None:
            continue
        needs: list[tuple[str, str | None, str]] = []
        keys: list[tuple[str, list[str], str]] = []
        for call in scan(folder).calls:
            for arn, target in _targets(plan, function, call):
                needs.append((_action(call), arn, _why(call)))
                key = _kms_key_of(plan, target)
                for action in _kms_for(call) if key else []:
                    needs.append((action, key, f"{_action(call)} on a resource encrypted with it"))
                    keys.append((key, [action], f"{_action(call)} by {function['name']}"))
        for mapping in plan.of_type("aws:lambda/eventSourceMapping:EventSourceMapping"):
            if mapping["inputs"].get("functionName") in (plan.arn(function), function["inputs"].get("name")):
                queue_arn = mapping["inputs"].get("eventSourceArn")
                for op in ("ReceiveMessage", "DeleteMessage", "GetQueueAttributes"):
                    needs.append((f"sqs:{op}", queue_arn, f"event source mapping {mapping['name']}"))
                key = _kms_key_of(plan, plan.resolve(queue_arn))
                if key:
                    needs.append(("kms:Decrypt", key, "reading the encrypted event queue"))
        dlq = (function["inputs"].get("deadLetterConfig") or {}).get("targetArn")
        if dlq:
            needs.append(("sqs:SendMessage", dlq, "dead-letter queue"))
            key = _kms_key_of(plan, plan.resolve(dlq))
            if key:
                needs += [
                    (a, key, "the encrypted dead-letter queue")
                    for a in ("kms:GenerateDataKey", "kms:Decrypt")
                ]
        group = plan.resolve((function["inputs"].get("loggingConfig") or {}).get("logGroup"))
        if group is not None:
            needs.append(("logs:PutLogEvents", f"{plan.arn(group)}:log-stream:x", "its log group"))
        if function["inputs"].get("vpcConfig") and not any(
            p.endswith("AWSLambdaVPCAccessExecutionRole") for p in plan.managed_policies(role)
        ):
            needs.append(("ec2:CreateNetworkInterface", None, "running in the VPC"))
        yield from _role_findings(plan, "permissions-lambda-code", function, role, needs)
        for key, actions, why in keys:
            yield from _key_findings(plan, "permissions-lambda-code", function, key, actions, why)


def deliveries(plan: PlanView) -> Iterator[tuple[dict[str, Any], str, dict[str, Any] | None, str]]:
    """(source resource, service principal, target resource, target ARN) of every delivery AWS makes
    into a queue, topic or function of the plan."""
    for notification in plan.of_type("aws:s3/bucketNotification:BucketNotification"):
        for q in notification["inputs"].get("queues") or []:
            yield notification, "s3.amazonaws.com", plan.resolve(q.get("queueArn")), q.get("queueArn")
        for t in notification["inputs"].get("topics") or []:
            yield notification, "s3.amazonaws.com", plan.resolve(t.get("topicArn")), t.get("topicArn")
        for fn in notification["inputs"].get("lambdaFunctions") or []:
            yield (
                notification,
                "s3.amazonaws.com",
                plan.resolve(fn.get("lambdaFunctionArn")),
                fn.get("lambdaFunctionArn"),
            )
    for target in plan.of_type("aws:cloudwatch/eventTarget:EventTarget"):
        yield (
            target,
            "events.amazonaws.com",
            plan.resolve(target["inputs"].get("arn")),
            target["inputs"].get("arn"),
        )
    for alarm in plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        actions = {*as_list(alarm["inputs"].get("alarmActions")), *as_list(alarm["inputs"].get("okActions"))}
        for arn in sorted(a for a in actions if str(a).startswith("arn:")):
            yield alarm, "cloudwatch.amazonaws.com", plan.resolve(arn), arn
    for budget in plan.of_type("aws:budgets/budget:Budget"):
        arns = {
            a
            for n in budget["inputs"].get("notifications") or []
            for a in n.get("subscriberSnsTopicArns") or []
        }
        for arn in sorted(arns):
            yield budget, "budgets.amazonaws.com", plan.resolve(arn), arn
    for subscription in plan.of_type("aws:costexplorer/anomalySubscription:AnomalySubscription"):
        for s in subscription["inputs"].get("subscribers") or []:
            if s.get("type") == "SNS":
                yield (
                    subscription,
                    "costalerts.amazonaws.com",
                    plan.resolve(s.get("address")),
                    s.get("address"),
                )
    for subscription in plan.of_type("aws:sns/topicSubscription:TopicSubscription"):
        if subscription["inputs"].get("protocol") == "lambda":
            endpoint = subscription["inputs"].get("endpoint")
            yield subscription, "sns.amazonaws.com", plan.resolve(endpoint), endpoint


def lambda_permission(plan: PlanView, function: dict[str, Any], service: str, source_arn: str | None):
    for permission in plan.of_type("aws:lambda/permission:Permission"):
        inputs = permission["inputs"]
        if inputs.get("function") not in (function["inputs"].get("name"), plan.arn(function)):
            continue
        if inputs.get("principal") == service and inputs.get("sourceArn") in (None, source_arn):
            return permission
    return None


def _source_arn(plan: PlanView, source: dict[str, Any]) -> str | None:
    """The aws:SourceArn a delivery carries: the bucket, the EventBridge rule or the SNS topic."""
    inputs = source["inputs"]
    if source["type"] == "aws:s3/bucketNotification:BucketNotification":
        return plan.arn(plan.resolve(inputs.get("bucket")) or {})
    if source["type"] == "aws:cloudwatch/eventTarget:EventTarget":
        return plan.arn(plan.resolve(inputs.get("rule")) or {})
    if source["type"] == "aws:sns/topicSubscription:TopicSubscription":
        return inputs.get("topic")
    return plan.arn(source)


def delivery_permission(plan: PlanView, source: dict[str, Any], service: str, target: dict[str, Any]):
    """The resource (queue/topic policy, Lambda permission) that authorises the delivery, or None."""
    if target["type"] == "aws:lambda/function:Function":
        return lambda_permission(plan, target, service, _source_arn(plan, source))
    if target["type"] == "aws:sqs/queue:Queue":
        action = "sqs:SendMessage"
        policies = [
            p
            for p in plan.of_type("aws:sqs/queuePolicy:QueuePolicy")
            if p["inputs"].get("queueUrl") == target.get("id")
        ]
    else:
        action = "sns:Publish"
        policies = [
            p
            for p in plan.of_type("aws:sns/topicPolicy:TopicPolicy")
            if p["inputs"].get("arn") == plan.arn(target)
        ]
    for policy in policies:
        if iam.service_allowed(statements(policy["inputs"].get("policy")), service, action, plan.arn(target)):
            return policy
    return None


@contract(
    "permissions-delivery",
    "permissions",
    "Checks whether every delivery AWS makes into the plan's queues, topics and functions (S3 events, "
    "EventBridge rules, alarm actions, Budgets, Cost Anomaly Detection, SNS subscriptions) is allowed by the "
    "target's resource policy and, for encrypted targets, by its key policy.",
)
def delivery_permissions(plan: PlanView) -> Iterator[Finding]:
    for source, service, target, _ in deliveries(plan):
        if target is None:
            continue  # a target outside the plan (another account's topic): nothing to check here
        if delivery_permission(plan, source, service, target) is None:
            what = (
                "a Lambda permission"
                if target["type"] == "aws:lambda/function:Function"
                else "a policy statement"
            )
            yield Finding(
                "permissions-delivery",
                source["name"],
                target["name"],
                f"{source['name']} delivers to {target['name']} as {service}, but nothing grants it: "
                f"{target['name']} "
                f"needs {what} allowing {service} (from this source).",
                f"Add the statement to {target['name']}'s resource policy.",
            )
        key = _kms_key_of(plan, target)
        statements = plan.key_statements(key) if key else None
        if statements is not None:
            for action in ("kms:GenerateDataKey", "kms:Decrypt"):
                if not iam.key_allows_service(statements, service, action):
                    yield Finding(
                        "permissions-delivery",
                        source["name"],
                        key,
                        f"{target['name']} is encrypted with {key}, whose policy must let {service} use "
                        f"{action}: "
                        f"without it deliveries from {source['name']} are dropped.",
                        f"Add {service} to the key's service-use statement.",
                    )


def _association_role(plan: PlanView, namespace: str, account: str) -> dict[str, Any] | None:
    for assoc in plan.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation"):
        if (assoc["inputs"].get("namespace"), assoc["inputs"].get("serviceAccount")) == (namespace, account):
            return plan.role_of(assoc["inputs"].get("roleArn"))
    for addon in plan.of_type("aws:eks/addon:Addon"):
        for assoc in addon["inputs"].get("podIdentityAssociations") or []:
            if assoc.get("serviceAccount") == account:
                return plan.role_of(assoc.get("roleArn"))
    return None


def _container_env(container: dict[str, Any]) -> dict[str, Any]:
    return {e.get("name"): e.get("value") for e in container.get("env") or [] if "value" in e}


def pod_aws_needs(plan: PlanView, w: Workload) -> list[tuple[str, str | None, str]]:
    """(action, resource, why) the pods of a workload call AWS for, from their configuration."""
    needs: list[tuple[str, str | None, str]] = []
    for c in w.containers:
        image, env, args = str(c.get("image", "")), _container_env(c), [str(a) for a in c.get("args") or []]
        if "berriai/litellm" in image:
            params = ((plan.gateway_config or {}).get("litellm_settings") or {}).get(
                "s3_callback_params"
            ) or {}
            callbacks = ((plan.gateway_config or {}).get("litellm_settings") or {}).get(
                "success_callback"
            ) or []
            if "s3_v2" in callbacks and params:
                bucket = _env_ref(params.get("s3_bucket_name"), env)
                key = _env_ref(params.get("s3_sse_kms_key_id"), env)
                needs.append(
                    (
                        "s3:PutObject",
                        f"arn:aws:s3:::{bucket}/{params.get('s3_path', '')}/x",
                        "spend logs (s3_v2)",
                    )
                )
                if key:
                    needs.append(("kms:GenerateDataKey", key, "SSE-KMS spend logs"))
        if image.startswith("vllm/vllm-openai:") and args and args[0].startswith("s3://"):
            bucket, _, prefix = args[0][5:].partition("/")
            needs.append(
                ("s3:GetObject", f"arn:aws:s3:::{bucket}/{prefix}x", "model weights (runai_streamer)")
            )
            needs.append(("s3:ListBucket", f"arn:aws:s3:::{bucket}", "model weights (runai_streamer)"))
            key = _kms_key_of(plan, plan.resolve(bucket, "aws:s3/bucket:Bucket"))
            if key:
                needs.append(("kms:Decrypt", key, "encrypted model weights"))
    return needs


def _env_ref(value: Any, env: dict[str, Any]) -> Any:
    if isinstance(value, str) and value.startswith("os.environ/"):
        return env.get(value.removeprefix("os.environ/"))
    return value


@contract(
    "permissions-pods",
    "permissions",
    "Checks whether every pod that calls AWS (gateway spend logs, model weights, KEDA's AMP queries) gets a "
    "Pod Identity role that allows those calls.",
)
def pod_permissions(plan: PlanView) -> Iterator[Finding]:
    for w in plan.workloads:
        needs = pod_aws_needs(plan, w)
        if w.namespace == "keda" and w.name == "keda-operator":
            for scaler in plan.objects("ScaledObject"):
                for trigger in (scaler["inputs"].get("spec") or {}).get("triggers") or []:
                    address = str((trigger.get("metadata") or {}).get("serverAddress", ""))
                    if "aps-workspaces" in address and (trigger.get("metadata") or {}).get("awsRegion"):
                        workspace = next(
                            (
                                r
                                for r in plan.of_type("aws:amp/workspace:Workspace")
                                if (r.get("outputs") or {}).get("prometheusEndpoint", "").rstrip("/")
                                == address.rstrip("/")
                            ),
                            None,
                        )
                        needs.append(
                            (
                                "aps:QueryMetrics",
                                plan.arn(workspace) if workspace else None,
                                f"trigger {trigger.get('name')} of {scaler['name']}",
                            )
                        )
        if not needs:
            continue
        role = _association_role(plan, w.namespace, w.service_account)
        owner = plan.by_name.get(w.resource, {"name": w.resource})
        if role is None:
            yield Finding(
                "permissions-pods",
                w.resource,
                f"ServiceAccount {w.namespace}/{w.service_account}",
                f"{w.label} calls AWS ({needs[0][2]}) but its service account {w.service_account} has no Pod "
                "Identity association: the calls fail without credentials.",
                "Associate a role with the service account.",
            )
            continue
        yield from _role_findings(plan, "permissions-pods", owner, role, sorted(set(needs), key=str))


# -- product teams --------------------------------------------------------------------------------

TEAM_WORKLOAD = "permissions-team-workload"
PROMPT_STORE = "llmops:prompts:PromptStore"


def prompt_store_bucket(plan: PlanView) -> dict[str, Any] | None:
    """The bucket of the plan's prompt store component (components/prompt_store.py)."""
    stores = {r["name"] for r in plan.of_type(PROMPT_STORE)}
    return next((b for b in plan.of_type("aws:s3/bucket:Bucket") if b.get("parent") in stores), None)


def prompt_objects(bucket: dict[str, Any], plan: PlanView, team: str) -> list[str]:
    """ARNs of objects of a prompt the team owns (`<team>--<prompt>`), where the registry keeps them
    (llmops/prompts/layout.py: a version and an alias record)."""
    from llmops.prompts import layout

    name = f"{team}--example"
    return [
        f"{plan.arn(bucket)}/{k}" for k in (layout.version_key(name, 1), layout.alias_key(name, "production"))
    ]


def _team_finding(obj: dict[str, Any], peer: str, message: str, fix: str) -> Finding:
    return Finding(TEAM_WORKLOAD, obj["name"], peer, message, fix)


@contract(
    TEAM_WORKLOAD,
    "permissions",
    "Checks whether every team's `workload` service account has a Pod Identity association whose role reads "
    "the team's secrets (with kms:Decrypt of their key) and its prompts (s3:GetObject under the prompt "
    "store's `<team>--` prefix), and no other secret of the plan and no other team's prompts.",
)
def team_workload_permissions(plan: PlanView) -> Iterator[Finding]:
    bucket = prompt_store_bucket(plan)
    tenants = plan.tenant_namespaces
    secrets = plan.of_type("aws:secretsmanager/secret:Secret")
    for ns, (team, obj) in sorted(tenants.items()):
        who = f"pods of team {team} (service account {ns}/{TENANT_SERVICE_ACCOUNT})"
        role = _association_role(plan, ns, TENANT_SERVICE_ACCOUNT)
        if role is None:
            yield _team_finding(
                obj,
                f"ServiceAccount {ns}/{TENANT_SERVICE_ACCOUNT}",
                f"{who} must get the team's role through a Pod Identity association; the plan has none, so "
                "they get no AWS credentials.",
                "Associate the team's workload role with the service account.",
            )
            continue
        statements = plan.role_statements(role)
        needs: list[tuple[str, str | None, str]] = []
        keys: list[tuple[str, str]] = []
        own = plan.tenant_secrets(obj)
        for secret in own:
            needs.append(("secretsmanager:GetSecretValue", plan.arn(secret), f"its secret {secret['name']}"))
            key = _kms_key_of(plan, secret)
            if key:
                needs.append(("kms:Decrypt", key, f"its secret {secret['name']} is encrypted with it"))
                keys.append((key, f"reading {secret['name']}"))
        if bucket is not None:
            for arn in prompt_objects(bucket, plan, team):
                needs.append(("s3:GetObject", arn, f"its prompts (names {team}--*)"))
            key = _kms_key_of(plan, bucket)
            if key:
                needs.append(("kms:Decrypt", key, "its prompts are encrypted with it"))
                keys.append((key, "reading prompts"))
        for action, resource, why in needs:
            if not iam.allows(statements, action, resource):
                yield _team_finding(
                    obj,
                    role["name"],
                    f"{who} must be allowed {action} on {resource} ({why}); their role {role['name']} does "
                    "not allow it.",
                    f"Grant {action} on {resource} to {role['name']}.",
                )
        for key, why in dict.fromkeys(keys):
            yield from _key_findings(plan, TEAM_WORKLOAD, obj, key, ["kms:Decrypt"], why)
        own_names = {s["name"] for s in own}
        for secret in secrets:
            if secret["name"] not in own_names and iam.allows(
                statements, "secretsmanager:GetSecretValue", plan.arn(secret)
            ):
                owner = next(
                    (f"team {t}'s" for t, o in tenants.values() if secret in plan.tenant_secrets(o)),
                    "the platform's",
                )
                yield _team_finding(
                    obj,
                    secret["name"],
                    f"{who} must not read {owner} secret {secret['name']}, but their role {role['name']} "
                    "allows secretsmanager:GetSecretValue on it.",
                    f"Limit {role['name']}'s GetSecretValue to the team's own secrets.",
                )
        for other_ns, (other, _) in sorted(tenants.items()):
            if other_ns == ns or bucket is None:
                continue
            for arn in prompt_objects(bucket, plan, other):
                if iam.allows(statements, "s3:GetObject", arn):
                    yield _team_finding(
                        obj,
                        bucket["name"],
                        f"{who} must not read team {other}'s prompts, but their role {role['name']} allows "
                        f"s3:GetObject on {arn}.",
                        f"Limit {role['name']}'s prompt access to {team}--* (prompt_store.grant_read(role, "
                        "prefix)).",
                    )
                    break
