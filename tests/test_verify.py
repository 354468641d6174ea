"""`llmops verify`: every shipped plan meets every contract, and every contract catches a plan
broken on purpose, naming the broken resource (the consumer end)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable

import pytest
import yaml

from llmops import cli
from llmops.verify import CONTRACTS, verify_plan


@pytest.fixture(scope="module")
def docs(plans) -> dict[str, dict]:
    return {name: result.plan.to_dict() for name, result in plans.items()}


def by_name(doc: dict, name: str) -> dict:
    (found,) = [r for r in doc["resources"] if r["name"] == name]
    return found


def broken(doc: dict, *changes: tuple[str, Callable[[dict], None]]) -> list:
    """The findings of a copy of the plan with each named resource changed (or removed: fn None)."""
    doc = copy.deepcopy(doc)
    for name, change in changes:
        if change is None:
            doc["resources"] = [r for r in doc["resources"] if r["name"] != name]
        else:
            change(by_name(doc, name))
    return verify_plan(doc)


def assert_flags(findings: list, contract: str, resource: str, *words: str) -> None:
    hits = [f for f in findings if f.contract == contract and f.resource == resource]
    assert hits, f"{contract} did not flag {resource}; got {[(f.contract, f.resource) for f in findings]}"
    assert any(all(w in f.message for w in words) for f in hits), [f.message for f in hits]


def policy_doc(resource: dict, edit: Callable[[list], list]) -> None:
    document = json.loads(resource["inputs"]["policy"])
    document["Statement"] = edit(document["Statement"])
    resource["inputs"]["policy"] = json.dumps(document)


def gateway_config(resource: dict, edit: Callable[[dict], None]) -> None:
    config = yaml.safe_load(resource["inputs"]["data"]["config.yaml"])
    edit(config)
    resource["inputs"]["data"]["config.yaml"] = yaml.safe_dump(config)


def pod(resource: dict) -> dict:
    spec = resource["inputs"]["spec"]
    return (
        (spec.get("jobTemplate") or {}).get("spec", spec)["template"]["spec"]
        if "jobTemplate" in spec
        else spec["template"]["spec"]
    )


def without_dependency(name: str) -> Callable[[dict], None]:
    def change(resource: dict) -> None:
        resource["dependencies"] = [d for d in resource["dependencies"] if d != name]

    return change


def addon_config(edit: Callable[[dict], None]) -> Callable[[dict], None]:
    def change(resource: dict) -> None:
        config = json.loads(resource["inputs"]["configurationValues"])
        edit(config)
        resource["inputs"]["configurationValues"] = json.dumps(config)

    return change


# -- the shipped plans ------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_shipped_plans_meet_every_contract(docs, stack):
    findings = verify_plan(docs[stack])
    assert findings == [], "\n".join(f"{f.contract} {f.resource}: {f.message}" for f in findings)


def test_docs_list_every_contract():
    from llmops import PROJECT_DIR
    from llmops.verify import contracts_table

    page = (PROJECT_DIR / "docs" / "verify.md").read_text()
    begin, end = (
        page.index("<!-- contracts:begin -->\n") + len("<!-- contracts:begin -->\n"),
        page.index("<!-- contracts:end -->"),
    )
    assert page[begin:end].strip() == contracts_table(), (
        "run: llmops verify --list, paste into docs/verify.md"
    )


def test_contracts_cover_every_area_the_issue_names():
    areas = {c.area for c in CONTRACTS}
    assert {"selectors", "metrics", "network", "permissions", "ordering", "containers", "tls"} <= areas
    assert all(c.description.startswith("Checks whether ") for c in CONTRACTS)


# -- selectors --------------------------------------------------------------------------------


def test_service_selecting_no_pod(docs):
    def change(svc):
        svc["inputs"]["spec"]["selector"]["llmops.io/model"] = "qwen-smal"

    findings = broken(docs["dev"], ("llmops-dev-serving-qwen-small-service", change))
    assert_flags(findings, "selector-service", "llmops-dev-serving-qwen-small-service", "must select pods")


def test_service_target_port_the_pods_do_not_name(docs):
    def change(svc):
        svc["inputs"]["spec"]["ports"][0]["targetPort"] = "metrics"

    findings = broken(docs["prod"], ("llmops-prod-serving-llama-70b-service", change))
    assert_flags(findings, "selector-service", "llmops-prod-serving-llama-70b-service", "'metrics'")


def test_pdb_selecting_no_pod(docs):
    def change(pdb):
        pdb["inputs"]["spec"]["selector"]["matchLabels"] = {"app.kubernetes.io/name": "qdrant-0"}

    findings = broken(docs["prod"], ("llmops-prod-vectordb-pdb", change))
    assert_flags(findings, "selector-pdb", "llmops-prod-vectordb-pdb")


def test_network_policy_peer_selecting_no_client(docs):
    def change(policy):
        policy["inputs"]["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"] = {
            "app.kubernetes.io/name": "gateway"
        }

    findings = broken(docs["prod"], ("llmops-prod-serving-allow-gateway", change))
    assert_flags(findings, "selector-networkpolicy", "llmops-prod-serving-allow-gateway", "selects no pod")
    # ...and the path it opened is closed: the gateway no longer reaches its models (prod's other
    # policy admits only the in-cluster Prometheus).
    assert_flags(
        findings, "network-gateway", "llmops-prod-gateway-deployment", "llama-70b", "NetworkPolicies"
    )


def test_network_policy_selecting_no_pod(docs):
    def change(policy):
        policy["inputs"]["spec"]["podSelector"] = {"matchLabels": {"app.kubernetes.io/name": "qdrnt"}}

    findings = broken(docs["prod"], ("llmops-prod-vectordb-allow-clients", change))
    assert_flags(findings, "selector-networkpolicy", "llmops-prod-vectordb-allow-clients")


def test_scaled_object_targeting_no_deployment(docs):
    def change(scaler):
        scaler["inputs"]["spec"]["scaleTargetRef"]["name"] = "qwen"

    findings = broken(docs["dev"], ("llmops-dev-serving-qwen-small-scaler", change))
    assert_flags(findings, "selector-scale-target", "llmops-dev-serving-qwen-small-scaler", "models/qwen")


def test_hpa_targeting_no_deployment(docs):
    def change(hpa):
        hpa["inputs"]["spec"]["scaleTargetRef"]["name"] = "litellm-proxy"

    findings = broken(docs["prod"], ("llmops-prod-gateway-hpa", change))
    assert_flags(findings, "selector-scale-target", "llmops-prod-gateway-hpa", "litellm-proxy")


def test_two_autoscalers_on_one_deployment(docs):
    def change(hpa):
        hpa["inputs"]["spec"]["scaleTargetRef"] = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "qwen-small",
        }
        hpa["inputs"]["metadata"]["namespace"] = "models"

    findings = broken(docs["prod"], ("llmops-prod-gateway-hpa", change))
    assert any(f.contract == "selector-scale-target" and "one autoscaler" in f.message for f in findings)


def test_trigger_authentication_that_does_not_exist(docs):
    findings = broken(docs["staging"], ("llmops-staging-serving-amp-auth", None))
    assert_flags(findings, "selector-trigger-auth", "llmops-staging-serving-qwen-small-scaler", "amp-sigv4")


def test_security_group_policy_selecting_no_pod(docs):
    def change(policy):
        policy["inputs"]["spec"]["podSelector"]["matchLabels"] = {"app.kubernetes.io/name": "lite-llm"}

    findings = broken(docs["prod"], ("llmops-prod-gateway-pods-sgp", change))
    assert_flags(findings, "selector-security-group-policy", "llmops-prod-gateway-pods-sgp")
    # The gateway pods then keep the node's groups, which the database does not admit.
    assert_flags(findings, "network-gateway", "llmops-prod-gateway-deployment", "database")


def test_object_in_a_namespace_nothing_creates(docs):
    def change(cm):
        cm["inputs"]["metadata"]["namespace"] = "vectordb"

    findings = broken(docs["prod"], ("llmops-prod-vectordb-snapshot-script", change))
    assert_flags(findings, "reference-namespace", "llmops-prod-vectordb-snapshot-script", "vectordb")


def test_pod_identity_association_for_a_service_account_nothing_creates(docs):
    def change(assoc):
        assoc["inputs"]["serviceAccount"] = "litellm-proxy"

    findings = broken(docs["prod"], ("llmops-prod-gateway-identity", change))
    assert_flags(findings, "reference-service-account", "llmops-prod-gateway-identity", "litellm-proxy")
    # ...so the gateway's pods get no role for their spend logs.
    assert_flags(
        findings, "permissions-pods", "llmops-prod-gateway-deployment", "no Pod Identity association"
    )


def test_pod_running_as_a_missing_service_account(docs):
    def change(deployment):
        pod(deployment)["serviceAccountName"] = "vllm-llama"

    findings = broken(docs["prod"], ("llmops-prod-serving-llama-70b-deployment", change))
    assert_flags(
        findings, "reference-service-account", "llmops-prod-serving-llama-70b-deployment", "vllm-llama"
    )


def test_pod_reading_a_missing_secret(docs):
    findings = broken(docs["dev"], ("llmops-dev-serving-api-key-k8s", None))
    assert_flags(findings, "reference-config", "llmops-dev-serving-qwen-small-deployment", "vllm-api-key")


def test_pod_selecting_nodes_no_pool_has(docs):
    def change(deployment):
        pod(deployment)["nodeSelector"] = {"llmops.io/gpu-pool": "h100-spot"}

    findings = broken(docs["prod"], ("llmops-prod-serving-llama-70b-deployment", change))
    assert_flags(findings, "selector-node", "llmops-prod-serving-llama-70b-deployment", "h100-spot")


def test_pod_not_tolerating_its_pool_taint(docs):
    def change(deployment):
        pod(deployment)["tolerations"] = []

    findings = broken(docs["dev"], ("llmops-dev-serving-qwen-small-deployment", change))
    assert_flags(findings, "selector-node", "llmops-dev-serving-qwen-small-deployment", "nvidia.com/gpu")


def test_scrape_job_keeping_no_pod(docs):
    def unlabelled(deployment):
        del deployment["inputs"]["spec"]["template"]["metadata"]["labels"]["llmops.io/scrape"]

    findings = broken(docs["staging"], ("llmops-staging-gateway-deployment", unlabelled))
    assert_flags(findings, "selector-scrape-job", "llmops-staging-observability-scraper", "platform-apps")
    assert_flags(
        findings, "metrics-keda-trigger", "llmops-staging-serving-qwen-small-scaler", "litellm_proxy"
    )


def test_karpenter_release_name_not_the_one_the_job_keeps(docs):
    def change(chart):
        del chart["inputs"]["name"]  # the release defaults to the resource name

    findings = broken(docs["prod"], ("llmops-prod-gpu-karpenter", change))
    assert_flags(findings, "selector-scrape-job", "llmops-prod-observability-prometheus", "karpenter")


# -- metrics ----------------------------------------------------------------------------------


def test_gateway_metrics_off_leaves_scale_from_zero_without_a_signal(docs):
    def change(cm):
        def edit(config):
            del config["litellm_settings"]["callbacks"]

        gateway_config(cm, edit)

    findings = broken(docs["staging"], ("llmops-staging-gateway-config", change))
    for model in ("qwen-small", "llama-8b"):
        assert_flags(
            findings, "metrics-keda-trigger", f"llmops-staging-serving-{model}-scaler", "never fires"
        )


def test_metrics_behind_a_key_are_not_scraped(docs):
    def change(cm):
        gateway_config(cm, lambda c: c["litellm_settings"].pop("require_auth_for_metrics_endpoint"))

    findings = broken(docs["dev"], ("llmops-dev-gateway-config", change))
    assert_flags(findings, "metrics-keda-trigger", "llmops-dev-serving-qwen-small-scaler")


def test_trigger_filtering_on_a_label_value_no_series_has(docs):
    def change(scaler):
        trigger = scaler["inputs"]["spec"]["triggers"][0]
        trigger["metadata"]["query"] = trigger["metadata"]["query"].replace(
            'model="qwen-small"', 'model="qwen"'
        )

    findings = broken(docs["dev"], ("llmops-dev-serving-qwen-small-scaler", change))
    assert_flags(findings, "metrics-keda-trigger", "llmops-dev-serving-qwen-small-scaler", "label model")


def test_trigger_querying_no_store_of_the_plan(docs):
    def change(scaler):
        scaler["inputs"]["spec"]["triggers"][0]["metadata"]["serverAddress"] = "http://prometheus.monitoring"

    findings = broken(docs["prod"], ("llmops-prod-serving-qwen-small-scaler", change))
    assert_flags(findings, "metrics-keda-trigger", "llmops-prod-serving-qwen-small-scaler", "metrics store")


def test_hpa_without_metrics_server(docs):
    findings = broken(docs["dev"], ("llmops-dev-observability-metrics-server", None))
    assert_flags(findings, "metrics-hpa", "llmops-dev-gateway-hpa", "metrics.k8s.io")


def test_hpa_on_cpu_of_containers_requesting_none(docs):
    def change(deployment):
        del pod(deployment)["containers"][0]["resources"]["requests"]["cpu"]

    findings = broken(docs["dev"], ("llmops-dev-gateway-deployment", change))
    assert_flags(findings, "metrics-hpa", "llmops-dev-gateway-hpa", "requests no cpu")


def test_alarm_on_a_dimension_set_the_aggregator_does_not_emit(docs):
    def change(alarm):
        alarm["inputs"]["dimensions"]["Route"] = "external"  # [Environment, Team, Route]: never emitted

    findings = broken(docs["prod"], ("llmops-prod-cost-team-payments-daily-cost", change))
    assert_flags(
        findings, "metrics-cloudwatch-alarm", "llmops-prod-cost-team-payments-daily-cost", "dimensions"
    )


def test_alarm_on_the_age_of_retrieved_documents(docs):
    """The aggregator emits the retrieved-document ages per [Environment, Team] and per
    [Environment, Model, Route], not per model within a team: verify knows every record it writes."""
    alarm = "llmops-prod-cost-team-payments-daily-cost"

    def per_team(resource):
        resource["inputs"]["metricName"] = "RetrievedNewestDocumentAgeSeconds"

    def per_team_and_model(resource):
        per_team(resource)
        resource["inputs"]["dimensions"]["Model"] = "llama-70b"

    findings = broken(docs["prod"], (alarm, per_team))
    assert not [f for f in findings if f.resource == alarm], findings
    findings = broken(docs["prod"], (alarm, per_team_and_model))
    assert_flags(findings, "metrics-cloudwatch-alarm", alarm, "dimensions")


def test_alarm_for_another_environment(docs):
    def change(alarm):
        alarm["inputs"]["dimensions"]["Environment"] = "production"

    findings = broken(docs["prod"], ("llmops-prod-cost-team-payments-daily-cost", change))
    assert_flags(
        findings, "metrics-cloudwatch-alarm", "llmops-prod-cost-team-payments-daily-cost", "Environment"
    )


def test_idle_detector_without_accelerated_compute_metrics(docs):
    """Defect 4: the detector reads node_gpu_utilization, which the add-on publishes only with
    accelerated_compute_metrics on."""

    def off(config):
        config["agent"]["config"]["logs"]["metrics_collected"]["kubernetes"][
            "accelerated_compute_metrics"
        ] = False

    findings = broken(docs["dev"], ("llmops-dev-observability-cloudwatch-observability", addon_config(off)))
    assert_flags(findings, "metrics-lambda-reads", "llmops-dev-cost-gpu-idle", "node_gpu_utilization")


def test_idle_detector_told_another_cluster(docs):
    def change(fn):
        fn["inputs"]["environment"]["variables"]["CLUSTER_NAME"] = "llmops-staging"

    findings = broken(docs["prod"], ("llmops-prod-cost-gpu-idle", change))
    assert_flags(findings, "metrics-lambda-reads", "llmops-prod-cost-gpu-idle", "ClusterName")


# -- network ----------------------------------------------------------------------------------


def test_network_policies_not_enforced(docs):
    findings = broken(
        docs["prod"], ("llmops-prod-cluster-vpc-cni", addon_config(lambda c: c.pop("enableNetworkPolicy")))
    )
    assert_flags(findings, "network-policy-enforced", "llmops-prod-cluster-vpc-cni", "nothing enforces")


def test_database_path_removed(docs):
    def change(sg):
        sg["inputs"]["ingress"] = []

    findings = broken(docs["prod"], ("llmops-prod-gateway-db-sg", change))
    assert_flags(findings, "network-gateway", "llmops-prod-gateway-deployment", "database", "5432")


def test_gateway_pods_without_the_cluster_group_cannot_reach_models(docs):
    def change(policy):
        groups = policy["inputs"]["spec"]["securityGroups"]["groupIds"]
        groups[:] = groups[:1]

    # staging: dev's gateway pods have no security group of their own (in-cluster database).
    findings = broken(docs["staging"], ("llmops-staging-gateway-pods-sgp", change))
    assert_flags(findings, "network-gateway", "llmops-staging-gateway-deployment", "qwen-small", "8000")


def test_strict_security_groups_for_pods_cut_credentials_and_probes(docs):
    """Defect 1: in strict mode the gateway's pods reach neither the Pod Identity agent nor pass
    their kubelet probes."""

    def strict(config):
        config["env"]["POD_SECURITY_GROUP_ENFORCING_MODE"] = "strict"

    findings = broken(docs["staging"], ("llmops-staging-cluster-vpc-cni", addon_config(strict)))
    assert_flags(findings, "network-gateway", "llmops-staging-gateway-deployment", "Pod Identity agent")
    assert_flags(findings, "network-probes", "llmops-staging-gateway-deployment", "probes")


def test_budget_guard_without_a_cloudwatch_endpoint(docs):
    """Defect 5: the guard's group allows HTTPS inside the VPC only, so DescribeAlarms needs the
    monitoring endpoint (staging's: dev has no endpoints and goes through its NAT instance)."""
    findings = broken(docs["staging"], ("llmops-staging-network-monitoring", None))
    assert_flags(findings, "network-lambda", "llmops-staging-cost-budget-guard", "cloudwatch", "HTTPS egress")


def test_budget_guard_blocked_by_its_group(docs):
    def change(sg):
        sg["inputs"]["egress"][0]["fromPort"] = sg["inputs"]["egress"][0]["toPort"] = 80

    findings = broken(docs["prod"], ("llmops-prod-cost-budget-guard-sg", change))
    assert_flags(findings, "network-lambda", "llmops-prod-cost-budget-guard", "secretsmanager")
    assert_flags(findings, "network-lambda", "llmops-prod-cost-budget-guard", "gateway.prod.llmops.internal")


def test_load_balancer_closed_to_the_guard(docs):
    def change(svc):
        svc["inputs"]["spec"]["loadBalancerSourceRanges"] = ["10.0.255.0/24"]

    findings = broken(docs["dev"], ("llmops-dev-gateway-service", change))
    assert_flags(findings, "network-lambda", "llmops-dev-cost-budget-guard", "admits only")


def test_amp_scraper_without_the_cluster_group(docs):
    """Defect 10: a scraper group of its own has no path to the API server."""

    def change(scraper):
        scraper["inputs"]["source"]["eks"]["securityGroupIds"] = ["sg-scraper"]

    findings = broken(docs["staging"], ("llmops-staging-observability-scraper", change))
    assert_flags(findings, "network-scrape", "llmops-staging-observability-scraper", "API server")


def test_scraper_shut_out_by_the_models_network_policy(docs):
    findings = broken(docs["staging"], ("llmops-staging-serving-allow-metrics", None))
    assert_flags(findings, "network-scrape", "llmops-staging-observability-scraper", "NetworkPolicies")


def test_keda_shut_out_of_the_in_cluster_prometheus(docs):
    def deny(policy):
        policy["inputs"]["metadata"]["namespace"] = "monitoring"

    findings = broken(docs["prod"], ("llmops-prod-serving-default-deny", deny))
    assert_flags(findings, "network-autoscaler-metrics", "llmops-prod-serving-keda", "prometheus-server")


def test_external_provider_without_a_route_to_the_internet(docs):
    def add_provider(cm):
        gateway_config(
            cm,
            lambda c: c["model_list"].append(
                {"model_name": "gpt-4o-mini", "litellm_params": {"model": "openai/gpt-4o-mini"}}
            ),
        )

    def no_nat(table):
        table["inputs"]["routes"] = []

    tables = [
        r["name"] for r in docs["dev"]["resources"] if r["name"].startswith("llmops-dev-network-private-rt-")
    ]
    findings = broken(
        docs["dev"], ("llmops-dev-gateway-config", add_provider), *[(t, no_nat) for t in tables]
    )
    assert_flags(findings, "network-gateway", "llmops-dev-gateway-deployment", "gpt-4o-mini", "no route")


# -- permissions ------------------------------------------------------------------------------


def test_lambda_call_its_role_does_not_allow(docs):
    def change(policy):
        policy_doc(policy, lambda st: [s for s in st if "cloudwatch:DescribeAlarms" not in s["Action"]])

    findings = broken(docs["prod"], ("llmops-prod-cost-budget-guard-policy", change))
    assert_flags(
        findings, "permissions-lambda-code", "llmops-prod-cost-budget-guard", "cloudwatch:DescribeAlarms"
    )


@pytest.mark.parametrize(
    ("dropped", "action"),
    [("s3:ListBucket", "s3:ListBucket"), (["s3:GetObject"], "s3:GetObject")],
)
def test_aggregator_reading_eval_records_its_role_does_not_cover(docs, dropped, action):
    """The coverage lookup lists and reads the prompt bucket's eval records (PROMPT_BUCKET)."""

    def change(policy):
        policy_doc(
            policy,
            lambda st: [
                s for s in st if not (s["Action"] in (dropped, [dropped]) and "prompts" in json.dumps(s))
            ],
        )

    findings = broken(docs["prod"], ("llmops-prod-cost-spend-aggregator-policy", change))
    assert_flags(findings, "permissions-lambda-code", "llmops-prod-cost-spend-aggregator", action, "prompts")


def test_lambda_publishing_to_an_encrypted_topic_without_its_key(docs):
    def change(policy):
        policy_doc(
            policy, lambda st: [s for s in st if s["Action"] != ["kms:GenerateDataKey*", "kms:Decrypt"]]
        )

    findings = broken(docs["dev"], ("llmops-dev-cost-gpu-idle-policy", change))
    assert_flags(findings, "permissions-lambda-code", "llmops-dev-cost-gpu-idle", "kms:GenerateDataKey")


def test_aggregator_reading_objects_its_role_does_not_cover(docs):
    def change(policy):
        policy_doc(policy, lambda st: [s for s in st if "s3:GetObject" not in s["Action"]])

    findings = broken(docs["staging"], ("llmops-staging-cost-spend-aggregator-policy", change))
    assert_flags(findings, "permissions-lambda-code", "llmops-staging-cost-spend-aggregator", "s3:GetObject")


def test_s3_notification_without_the_queue_policy(docs):
    findings = broken(docs["prod"], ("llmops-prod-cost-spend-events-policy", None))
    assert_flags(findings, "permissions-delivery", "llmops-prod-cost-spend-log-events", "s3.amazonaws.com")


@pytest.mark.parametrize(
    "stack,key",
    [
        ("staging", "llmops-staging-gpu-queue-key"),
        # Dev's one key (classification internal) must admit every service its separate keys would.
        ("dev", "llmops-dev-stack-key"),
    ],
)
def test_delivery_into_a_queue_whose_key_refuses_the_sender(docs, stack, key):
    def change(key):
        policy_doc(
            key,
            lambda st: [
                {
                    **s,
                    "Principal": {
                        "Service": [p for p in s["Principal"]["Service"] if p != "events.amazonaws.com"]
                    },
                }
                if s.get("Sid") == "ServiceUse"
                else s
                for s in st
            ],
        )

    findings = broken(docs[stack], (key, change))
    assert_flags(
        findings,
        "permissions-delivery",
        f"llmops-{stack}-gpu-spot-interruption-target",
        "events.amazonaws.com",
    )


def test_alarm_action_on_a_topic_cloudwatch_may_not_publish_to(docs):
    def change(policy):
        policy_doc(policy, lambda st: [s for s in st if s.get("Sid") != "cloudwatchPublish"])

    findings = broken(docs["prod"], ("llmops-prod-cost-guard-policy", change))
    assert_flags(
        findings,
        "permissions-delivery",
        "llmops-prod-cost-team-claims-daily-cost",
        "cloudwatch.amazonaws.com",
    )


def test_sns_subscription_without_the_lambda_permission(docs):
    findings = broken(docs["dev"], ("llmops-dev-cost-budget-guard-from-sns", None))
    assert_flags(
        findings, "permissions-delivery", "llmops-dev-cost-budget-guard-subscription", "Lambda permission"
    )


def test_gateway_role_without_its_spend_log_grant(docs):
    def change(policy):
        policy_doc(policy, lambda st: [s for s in st if s["Action"] != ["s3:PutObject"]])

    findings = broken(docs["prod"], ("llmops-prod-gateway-role-policy", change))
    assert_flags(findings, "permissions-pods", "llmops-prod-gateway-deployment", "s3:PutObject")


def test_keda_role_without_amp_query(docs):
    findings = broken(docs["staging"], ("llmops-staging-serving-keda-query", None))
    assert_flags(findings, "permissions-pods", "llmops-staging-serving-keda", "aps:QueryMetrics")


# -- ordering ---------------------------------------------------------------------------------


def test_s3_notification_racing_its_queue_policy(docs):
    """Defect 6."""
    change = without_dependency("llmops-dev-cost-spend-events-policy")
    findings = broken(docs["dev"], ("llmops-dev-cost-spend-log-events", change))
    assert_flags(findings, "ordering-delivery", "llmops-dev-cost-spend-log-events", "spend-events-policy")


def test_budget_racing_its_topic_policy(docs):
    findings = broken(
        docs["prod"], ("llmops-prod-cost-gpu-budget", without_dependency("llmops-prod-cost-alerts-policy"))
    )
    assert_flags(findings, "ordering-delivery", "llmops-prod-cost-gpu-budget", "budgets.amazonaws.com")


def test_node_pool_racing_its_crd(docs):
    def change(pool):
        pool["dependencies"] = [
            d for d in pool["dependencies"] if "karpenter" not in d and "nodeclass" not in d
        ]

    findings = broken(docs["dev"], ("llmops-dev-gpu-a10g-spot", change))
    assert_flags(findings, "ordering-crd", "llmops-dev-gpu-a10g-spot", "CRD")


def test_gateway_starting_before_its_identity(docs):
    """Defect 10 (second half)."""
    change = without_dependency("llmops-dev-gateway-identity")
    findings = broken(docs["dev"], ("llmops-dev-gateway-deployment", change))
    assert_flags(findings, "ordering-pod-identity", "llmops-dev-gateway-deployment", "no AWS credentials")


def test_cluster_created_before_its_role_policies(docs):
    change = without_dependency("llmops-prod-cluster-role-AmazonEKSClusterPolicy")
    findings = broken(docs["prod"], ("llmops-prod-cluster-eks", change))
    assert_flags(findings, "ordering-role-policies", "llmops-prod-cluster-eks", "AmazonEKSClusterPolicy")


# -- containers and TLS -----------------------------------------------------------------------


def test_vllm_without_a_user_name(docs):
    """Defect 13: torch's getpass.getuser() needs USER or LOGNAME for a UID without passwd entry."""

    def change(deployment):
        container = pod(deployment)["containers"][0]
        container["env"] = [e for e in container["env"] if e["name"] not in ("USER", "LOGNAME")]

    findings = broken(docs["prod"], ("llmops-prod-serving-llama-70b-deployment", change))
    assert_flags(
        findings, "containers-writable-paths", "llmops-prod-serving-llama-70b-deployment", "USER or LOGNAME"
    )


def test_litellm_migrations_on_the_read_only_root(docs):
    def change(deployment):
        container = pod(deployment)["containers"][0]
        container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != "migrations"]

    findings = broken(docs["dev"], ("llmops-dev-gateway-deployment", change))
    assert_flags(
        findings, "containers-writable-paths", "llmops-dev-gateway-deployment", "/var/lib/litellm/migrations"
    )


def test_unreviewed_image_with_a_read_only_root(docs):
    def change(cronjob):
        pod(cronjob)["containers"][0]["image"] = "busybox:1.37"

    findings = broken(docs["prod"], ("llmops-prod-vectordb-snapshots", change))
    assert_flags(findings, "containers-writable-paths", "llmops-prod-vectordb-snapshots", "busybox")


def test_gateway_serving_plain_http(docs):
    """Defect 7."""

    def change(deployment):
        container = pod(deployment)["containers"][0]
        container["args"] = [
            a for a in container["args"] if not a.startswith("--ssl") and not a.startswith("/etc/litellm/tls")
        ]

    findings = broken(docs["prod"], ("llmops-prod-gateway-deployment", change))
    assert_flags(findings, "tls-load-balancer", "llmops-prod-gateway-service", "plain HTTP")


def test_guard_calling_the_gateway_over_http(docs):
    def change(fn):
        variables = fn["inputs"]["environment"]["variables"]
        variables["GATEWAY_URL"] = variables["GATEWAY_URL"].replace("https://", "http://")

    findings = broken(docs["dev"], ("llmops-dev-cost-budget-guard", change))
    assert_flags(findings, "tls-gateway-clients", "llmops-dev-cost-budget-guard", "must use https")


def test_guard_trusting_another_ca(docs):
    def change(fn):
        fn["inputs"]["environment"]["variables"]["GATEWAY_CA_CERT"] = "-----BEGIN CERTIFICATE-----\nx\n"

    findings = broken(docs["staging"], ("llmops-staging-cost-budget-guard", change))
    assert_flags(findings, "tls-gateway-clients", "llmops-staging-cost-budget-guard", "must trust the CA")


def test_certificate_not_naming_the_gateway_host(docs):
    def change(request):
        request["inputs"]["dnsNames"] = ["litellm.llmops-gateway.svc"]

    findings = broken(docs["prod"], ("llmops-prod-gateway-tls-request", change))
    assert_flags(
        findings, "tls-gateway-clients", "llmops-prod-cost-budget-guard", "gateway.prod.llmops.internal"
    )


# -- product teams ----------------------------------------------------------------------------
# The team namespaces are empty in the plan: their pods are modelled (llmops/verify/model.py
# tenant_workloads). A second team, written to a temporary copy of the stacks, gives the isolation
# checks something to be isolated from.

TEAM = "llmops-dev-teams-fraud-analytics"
TEAM_NS = f"{TEAM}-namespace"
OTHER = "llmops-dev-teams-risk-scoring"
OTHER_NS = f"{OTHER}-namespace"
RECONCILER = "llmops-dev-teams-reconciler"
RISK_SCORING = """\
name: risk-scoring
owners: [arn:aws:iam::111122223333:role/risk-scoring-engineers]
contact: "#risk-scoring"
costCenter: cc-4412
classification: internal
environments: [dev]
quota: {cpu: "2", memory: 8Gi, gpus: 0}
gateway: {models: [qwen-small], monthlyBudgetUsd: 20}
"""


@pytest.fixture(scope="module")
def two_teams(tmp_path_factory) -> dict:
    """The dev plan with fraud-analytics (Qdrant collections) and risk-scoring (none)."""
    from llmops import PROJECT_DIR
    from llmops import plan as plan_cmd

    root = tmp_path_factory.mktemp("two-teams")
    (root / "teams").mkdir()
    for stack in (PROJECT_DIR / "stacks").glob("Pulumi.*.yaml"):
        (root / stack.name).write_text(stack.read_text())
    for team in (PROJECT_DIR / "stacks" / "teams").glob("*.yaml"):
        (root / "teams" / team.name).write_text(team.read_text())
    (root / "teams" / "risk-scoring.yaml").write_text(RISK_SCORING)
    result = plan_cmd.run(str(root / "Pulumi.dev.yaml"), root / "build")
    assert result.findings == [], [f"{f.contract} {f.resource}: {f.message}" for f in result.findings]
    return result.plan.to_dict()


def secret_arn(doc: dict, name: str) -> str:
    return by_name(doc, name)["outputs"]["arn"]


def team_policy(doc_name: str, edit: Callable[[dict], None]) -> Callable[[dict], None]:
    """Edit the first statement of a policy whose Action list names `doc_name`."""

    def change(policy: dict) -> None:
        def apply(statements: list) -> list:
            edit(next(s for s in statements if doc_name in s["Action"]))
            return statements

        policy_doc(policy, apply)

    return change


def test_team_pods_are_modelled_in_the_tenant_namespace(docs):
    from llmops.verify.model import PlanView

    pods = PlanView(docs["dev"]).tenant_pods("team-fraud-analytics")
    assert [(w.name, w.labels, w.service_account, w.resource) for w in pods] == [
        ("tenant", {}, "workload", TEAM_NS),
        ("tenant-qdrant-client", {"llmops.io/qdrant-client": "true"}, "workload", TEAM_NS),
    ]
    assert all(w.modelled and w.label.startswith("modelled Pod ") for w in pods)


def test_team_policy_selecting_no_modelled_pod(docs):
    """Modelled pods carry only the labels a team is told to use, so a typo still selects nothing,
    and the finding says the pods are modelled."""

    def typo(policy):
        policy["inputs"]["spec"]["podSelector"]["matchLabels"] = {"llmops.io/qdrant": "true"}

    findings = broken(docs["dev"], (f"{TEAM}-allow-qdrant", typo))
    assert_flags(findings, "selector-networkpolicy", f"{TEAM}-allow-qdrant", "must select pods", "modelled")
    assert_flags(findings, "network-team-paths", TEAM_NS, "tenant-qdrant-client", "Qdrant", "6333")


def test_coredns_add_on_serves_the_team_dns_policy(docs):
    """The coredns add-on's pods (upstream.py) are what allow-dns admits; without the add-on the
    policy selects nothing and team pods have no DNS."""
    from llmops.verify.model import PlanView

    dns = PlanView(docs["dev"]).workload_named("Deployment", "kube-system", "coredns")
    assert dns is not None and dns.labels["k8s-app"] == "kube-dns" and (("dns", 53) in dns.ports())
    findings = broken(docs["dev"], ("llmops-dev-cluster-coredns", None))
    assert_flags(findings, "selector-networkpolicy", f"{TEAM}-allow-dns", "selects no pod")
    assert_flags(findings, "network-team-paths", TEAM_NS, "cluster DNS", "no pod of the plan serves it")


def test_team_dns_over_tcp_only(docs):
    def tcp_only(policy):
        policy["inputs"]["spec"]["egress"][0]["ports"] = [{"port": 53, "protocol": "TCP"}]

    findings = broken(docs["staging"], ("llmops-staging-teams-fraud-analytics-allow-dns", tcp_only))
    assert_flags(
        findings,
        "network-team-paths",
        "llmops-staging-teams-fraud-analytics-namespace",
        "53/udp",
        "allow-dns",
    )
    assert not [f for f in findings if "53/tcp" in f.message]


def test_team_without_its_gateway_egress(docs):
    findings = broken(docs["prod"], ("llmops-prod-teams-fraud-analytics-allow-gateway", None))
    assert_flags(
        findings,
        "network-team-paths",
        "llmops-prod-teams-fraud-analytics-namespace",
        "gateway's pods",
        "4000",
        "no egress",
    )


def test_team_without_its_qdrant_egress(docs):
    findings = broken(docs["dev"], (f"{TEAM}-allow-qdrant", None))
    assert_flags(findings, "network-team-paths", TEAM_NS, "llmops.io/qdrant-client", "Qdrant", "6333")


def test_qdrant_admitting_other_clients_than_team_pods(docs):
    """The server's side counts too: Qdrant's own policy must admit the team's client pods."""

    def other_label(policy):
        policy["inputs"]["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"] = {"app": "x"}

    findings = broken(docs["dev"], ("llmops-dev-vectordb-allow-clients", other_label))
    assert_flags(
        findings,
        "network-team-paths",
        TEAM_NS,
        "Qdrant",
        "NetworkPolicies selecting StatefulSet vector-db/qdrant",
    )


def test_team_without_https_egress_loses_credentials_and_secrets(docs):
    findings = broken(docs["dev"], (f"{TEAM}-allow-aws", None))
    assert_flags(findings, "network-team-paths", TEAM_NS, "Pod Identity agent", "169.254.170.23")
    assert_flags(findings, "network-team-paths", TEAM_NS, "Secrets Manager (through the NAT)", "443")


def test_team_reaching_the_model_servers(docs):
    """In staging the models' policy admits the VPC on 8000 (the AMP scraper): only the team's
    egress keeps its pods from vLLM."""

    def open_8000(policy):
        policy["inputs"]["spec"]["egress"][0]["ports"].append({"port": 8000, "protocol": "TCP"})

    team = "llmops-staging-teams-fraud-analytics"
    findings = broken(docs["staging"], (f"{team}-allow-aws", open_8000))
    assert_flags(
        findings, "network-team-isolation", f"{team}-namespace", "must not reach the model server", "8000"
    )


def test_team_isolation_without_enforced_policies(docs):
    findings = broken(
        docs["staging"],
        ("llmops-staging-cluster-vpc-cni", addon_config(lambda c: c.update(enableNetworkPolicy="false"))),
    )
    assert_flags(
        findings,
        "network-team-isolation",
        "llmops-staging-teams-fraud-analytics-namespace",
        "must not reach",
        "not enforced",
    )


def test_other_namespaces_reaching_team_pods(docs):
    findings = broken(docs["dev"], (f"{TEAM}-default-deny", None), (f"{TEAM}-allow-team", None))
    assert_flags(
        findings, "network-team-isolation", TEAM_NS, "Deployment llmops-gateway/litellm", "must not reach"
    )


def test_two_teams_are_isolated(two_teams):
    from llmops.verify.model import PlanView

    assert set(PlanView(two_teams).tenant_namespaces) == {"team-fraud-analytics", "team-risk-scoring"}
    assert [
        f for f in verify_plan(two_teams) if f.contract.startswith(("network-team", "permissions-team"))
    ] == []


def test_team_admitting_every_namespace(two_teams):
    """fraud-analytics may send HTTPS anywhere in the VPC (allow-aws): risk-scoring's ingress
    policy is what keeps it out."""

    def any_namespace(policy):
        policy["inputs"]["spec"]["ingress"][0]["from"] = [{"namespaceSelector": {}}]

    findings = broken(two_teams, (f"{OTHER}-allow-team", any_namespace))
    assert_flags(findings, "network-team-isolation", TEAM_NS, "pods of team risk-scoring", "must not reach")


def test_team_without_collections_reaching_qdrant(two_teams):
    def into_risk_scoring(policy):
        policy["inputs"]["metadata"]["namespace"] = "team-risk-scoring"

    findings = broken(two_teams, (f"{TEAM}-allow-qdrant", into_risk_scoring))
    assert_flags(findings, "network-team-isolation", OTHER_NS, "owns no collections", "6333")


def test_team_role_without_its_gateway_key(docs):
    findings = broken(docs["dev"], (f"{TEAM}-read-gateway-key", None))
    assert_flags(
        findings, "permissions-team-workload", TEAM_NS, "secretsmanager:GetSecretValue", f"{TEAM}-gateway-key"
    )


def test_team_role_without_the_key_of_its_secrets(docs):
    def no_kms(policy):
        policy_doc(policy, lambda st: [s for s in st if s["Action"] != ["kms:Decrypt"]])

    # Staging: separate keys (in dev one key serves the prompts too, which the role may decrypt).
    team = "llmops-staging-teams-fraud-analytics"
    findings = broken(
        docs["staging"], (f"{team}-read-gateway-key", no_kms), (f"{team}-read-qdrant-token", no_kms)
    )
    assert_flags(
        findings, "permissions-team-workload", f"{team}-namespace", "kms:Decrypt", "is encrypted with it"
    )


def test_team_role_without_its_prompts(docs):
    findings = broken(
        docs["prod"], ("llmops-prod-prompts-read-llmops-prod-teams-fraud-analytics-workload-role", None)
    )
    assert_flags(
        findings,
        "permissions-team-workload",
        "llmops-prod-teams-fraud-analytics-namespace",
        "s3:GetObject",
        "prompts/fraud-analytics--",
    )


def test_team_service_account_without_its_role(docs):
    findings = broken(docs["dev"], (f"{TEAM}-workload-identity", None))
    assert_flags(findings, "permissions-team-workload", TEAM_NS, "no AWS credentials")


def test_team_role_reading_a_platform_secret(docs):
    def wildcard(statement):
        statement["Resource"] = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:llmops-dev-*"

    findings = broken(
        docs["dev"], (f"{TEAM}-read-gateway-key", team_policy("secretsmanager:GetSecretValue", wildcard))
    )
    assert_flags(
        findings, "permissions-team-workload", TEAM_NS, "must not read the platform's secret", "master-key"
    )


def test_team_role_reading_another_teams_secret(two_teams):
    other_key = secret_arn(two_teams, f"{OTHER}-gateway-key")

    def add_other(statement):
        statement["Resource"] = [statement["Resource"], other_key]

    findings = broken(
        two_teams, (f"{TEAM}-read-gateway-key", team_policy("secretsmanager:GetSecretValue", add_other))
    )
    assert_flags(findings, "permissions-team-workload", TEAM_NS, "team risk-scoring's secret")


def test_team_role_reading_another_teams_prompts(two_teams):
    def every_prompt(statement):
        statement["Resource"] = [r.replace("fraud-analytics--*", "*") for r in statement["Resource"]]

    findings = broken(
        two_teams,
        (f"llmops-dev-prompts-read-{TEAM}-workload-role", team_policy("s3:GetObject", every_prompt)),
    )
    assert_flags(findings, "permissions-team-workload", TEAM_NS, "team risk-scoring's prompts")


# -- the team reconciler: where its SecretIds come from ----------------------------------------


def test_reconciler_secret_ids_come_from_its_desired_state():
    from llmops import PROJECT_DIR
    from llmops.verify.lambda_source import scan

    calls = scan(PROJECT_DIR / "lambdas" / "team_reconciler").calls
    puts = [c for c in calls if c.operation == "PutSecretValue"]
    assert puts and all(
        [str(d) for d in c.documents("SecretId")] == ["desired.json:teams.*.key.secret_id"] for c in puts
    )
    gets = {tuple(c.origins("SecretId")) for c in calls if c.operation == "GetSecretValue"}
    assert ("env:GATEWAY_SECRET_ID",) in gets and ("doc:desired.json:teams.*.key.secret_id",) in gets


def test_value_origins_through_calls_documents_and_overrides(tmp_path):
    from llmops.verify.lambda_source import scan

    (tmp_path / "handler.py").write_text(
        """
import json
import os
from functools import cache
from pathlib import Path

import boto3

@cache
def _sm():
    return boto3.client("secretsmanager")

def load():
    path = Path(os.environ.get("STATE_PATH") or Path(__file__).with_name("state.json"))
    return json.loads(path.read_text())

def put(secret_id, value):
    _sm().put_secret_value(SecretId=secret_id, SecretString=value)

def handler(event, context):
    state = load()
    for _, item in enumerate(state["items"]):
        target = item.get("target") or {}
        put(target["arn"], "x")
    master = os.environ["MASTER"]
    _sm().get_secret_value(SecretId=master)
    _sm().get_secret_value(SecretId=event["id"])
"""
    )
    put, master, from_event = scan(tmp_path).calls
    (document,) = put.documents("SecretId")
    assert (document.file, document.path, document.overrides) == (
        "state.json",
        ("items", "*", "target", "arn"),
        ("STATE_PATH",),
    )
    assert master.env("SecretId") == "MASTER"
    assert from_event.origins("SecretId") == []


def test_reconciler_role_without_put_secret_value(docs):
    """The reconciler stores each team's key (PutSecretValue on the secret_ids of desired.json,
    which the plan knows as the code archive's dependencies): without the grant it is a finding
    naming the team's key secret, not the gateway's master key."""

    def get_only(statement):
        statement["Action"] = ["secretsmanager:GetSecretValue"]

    findings = broken(
        docs["dev"], (f"{RECONCILER}-policy", team_policy("secretsmanager:PutSecretValue", get_only))
    )
    key = secret_arn(docs["dev"], f"{TEAM}-gateway-key")
    assert_flags(
        findings, "permissions-lambda-code", RECONCILER, "secretsmanager:PutSecretValue", key, "desired.json"
    )
    assert not [f for f in findings if "master-key" in f.message]


def test_reconciler_role_missing_one_teams_key(two_teams):
    other_key = secret_arn(two_teams, f"{OTHER}-gateway-key")

    def drop_other(statement):
        statement["Resource"] = [r for r in statement["Resource"] if r != other_key]

    findings = broken(
        two_teams, (f"{RECONCILER}-policy", team_policy("secretsmanager:PutSecretValue", drop_other))
    )
    assert_flags(findings, "permissions-lambda-code", RECONCILER, "PutSecretValue", other_key)


def test_reconciler_desired_state_naming_the_master_key(docs):
    """Where the plan records the desired state's text, its secret_ids are what the code acts on."""
    master = secret_arn(docs["dev"], "llmops-dev-gateway-master-key")
    text = json.dumps({"teams": [{"key": {"secret_id": master}}]})

    def record(function):
        function["inputs"]["code"]["archive"]["team_reconciler/desired.json"] = {
            "StringAsset": {"text": text}
        }

    findings = broken(docs["dev"], (RECONCILER, record))
    assert_flags(findings, "permissions-lambda-code", RECONCILER, "PutSecretValue", master)


def test_reconciler_desired_state_computed_from_the_master_key(docs):
    """When a plan does not record the desired state's text (older plans: "(inline)"), its secret ids
    are the resources the engine says the code archive was computed from."""

    def inline(function):
        function["inputs"]["code"]["archive"]["team_reconciler/desired.json"] = {"StringAsset": "(inline)"}

    def depends(function):
        inline(function)
        function["propertyDependencies"]["code"].append("llmops-dev-gateway-master-key")

    assert [
        f for f in broken(docs["dev"], (RECONCILER, inline)) if f.contract == "permissions-lambda-code"
    ] == []

    findings = broken(docs["dev"], (RECONCILER, depends))
    assert_flags(findings, "permissions-lambda-code", RECONCILER, "PutSecretValue", "master-key")


def test_reconciler_told_to_read_another_desired_state(docs):
    """An environment override of the desired state's path makes its secret ids unknown: the call
    needs the action on some resource only."""

    def override(function):
        function["inputs"]["environment"]["variables"]["DESIRED_STATE_PATH"] = "/tmp/desired.json"

    assert [
        f for f in broken(docs["dev"], (RECONCILER, override)) if f.contract == "permissions-lambda-code"
    ] == []


# -- the command ------------------------------------------------------------------------------


def test_verify_command_exits_1_naming_the_broken_resource(docs, tmp_path, capsys):
    doc = copy.deepcopy(docs["dev"])
    by_name(doc, "llmops-dev-serving-qwen-small-service")["inputs"]["spec"]["selector"]["llmops.io/model"] = (
        "x"
    )
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(doc))
    assert cli.main(["verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert "selector-service  llmops-dev-serving-qwen-small-service" in out and "fix:" in out
    assert cli.main(["verify", str(path), "--json"]) == 1
    (finding,) = [
        f for f in json.loads(capsys.readouterr().out)["findings"] if f["contract"] == "selector-service"
    ]
    assert (
        finding["resource"] == "llmops-dev-serving-qwen-small-service" and finding["peer"] and finding["fix"]
    )


def test_verify_command_passes_a_shipped_plan(plans, capsys):
    assert cli.main(["verify", str(plans["prod"].out_dir / "plan.json")]) == 0
    assert "0 broken contract(s)" in capsys.readouterr().out


def test_plan_fails_on_a_broken_contract(monkeypatch, capsys, tmp_path):
    """`llmops plan` runs verify and exits 1 on a broken contract, like a mandatory policy."""
    from llmops import plan as plan_cmd
    from llmops.verify import Finding

    broken_contract = Finding("selector-service", "svc", "pods", "Service x must select pods.", "fix it")
    monkeypatch.setattr(plan_cmd.verify, "verify_plan", lambda doc: [broken_contract])
    assert cli.main(["plan", "dev", "--build-dir", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "Service x must select pods." in captured.out
    assert "1 broken contract(s) between components" in captured.err


def test_a_stack_without_nat_gets_the_endpoints_its_paths_need(tmp_path, plan_stack_file):
    """Without NAT, KEDA's AMP queries and the budget guard's CloudWatch calls go through interface
    endpoints the network component adds whatever interfaceEndpoints says; the plan verifies."""
    from llmops import PROJECT_DIR

    text = (
        (PROJECT_DIR / "stacks" / "Pulumi.staging.yaml")
        .read_text()
        .replace("natGateways: single", "natGateways: none")
    )
    result = plan_stack_file(tmp_path, "nonat", text)
    services = {
        r["inputs"]["serviceName"].rsplit(".", 1)[-1]
        for r in result.plan.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    }
    assert {"aps-workspaces", "monitoring"} <= services
    assert not result.plan.of_type("aws:ec2/natGateway:NatGateway")
    assert result.findings == [], [f.message for f in result.findings]
    doc = copy.deepcopy(result.plan.to_dict())
    doc["resources"] = [r for r in doc["resources"] if not r["name"].endswith("-network-aps-workspaces")]
    assert_flags(
        verify_plan(doc), "network-autoscaler-metrics", "llmops-staging-serving-keda", "no aps-workspaces"
    )


# -- the NAT instance (dev's cheap network) ----------------------------------------------------

NAT_ENI = "llmops-dev-network-nat-eni"
PRIVATE_TABLES = ("llmops-dev-network-private-rt-eu-west-1a", "llmops-dev-network-private-rt-eu-west-1b")


def test_private_routes_without_the_nat_instance(docs):
    """Dev has no interface endpoints: with its default routes gone, every AWS call of the budget
    guard, the reconciler and the team's pods has no path."""

    def no_route(table):
        table["inputs"]["routes"] = []

    findings = broken(docs["dev"], *[(t, no_route) for t in PRIVATE_TABLES])
    assert_flags(findings, "network-lambda", "llmops-dev-cost-budget-guard", "cloudwatch", "no NAT route")
    assert_flags(findings, "network-lambda", RECONCILER, "secretsmanager", "no NAT route")
    assert_flags(findings, "network-team-paths", TEAM_NS, "Secrets Manager", "no NAT route")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda eni: eni["inputs"].pop("sourceDestCheck"), "source/destination check on"),
        (lambda eni: eni["inputs"].update(sourceDestCheck=True), "source/destination check on"),
        (lambda eni: eni["inputs"].update(securityGroups=[]), "do not admit the VPC"),
    ],
)
def test_nat_instance_that_forwards_nothing(docs, change, words):
    """A route through an interface whose source/dest check is on (the EC2 default) or whose groups
    drop the VPC's traffic carries nothing: the route table is flagged, and so is each path."""
    findings = broken(docs["dev"], (NAT_ENI, change))
    for table in PRIVATE_TABLES:
        assert_flags(findings, "network-nat-instance", table, words)
    assert_flags(findings, "network-lambda", "llmops-dev-cost-budget-guard", "cloudwatch", words)


def test_nat_instance_without_its_address_or_instance(docs):
    findings = broken(docs["dev"], ("llmops-dev-network-nat-eip-eu-west-1a", None))
    assert_flags(findings, "network-nat-instance", PRIVATE_TABLES[0], "no public IPv4 address")
    findings = broken(docs["dev"], ("llmops-dev-network-nat-eu-west-1a", None))
    assert_flags(findings, "network-nat-instance", PRIVATE_TABLES[0], "no instance uses")


def test_budget_guard_narrowed_to_the_vpc_without_endpoints(docs):
    """Dev's guard reaches CloudWatch and Secrets Manager through the NAT: egress to the VPC only,
    with no endpoint there, leaves it no path."""

    def vpc_only(sg):
        sg["inputs"]["egress"] = [r for r in sg["inputs"]["egress"] if r["cidrBlocks"] != ["0.0.0.0/0"]]

    findings = broken(docs["dev"], ("llmops-dev-cost-budget-guard-sg", vpc_only))
    assert_flags(
        findings, "network-lambda", "llmops-dev-cost-budget-guard", "cloudwatch", "via the NAT instance"
    )
    assert_flags(findings, "network-lambda", "llmops-dev-cost-budget-guard", "secretsmanager", "HTTPS egress")


def test_team_pods_narrowed_to_the_vpc_without_a_secrets_manager_endpoint(docs):
    def vpc_only(policy):
        spec = policy["inputs"]["spec"]
        spec["egress"] = [r for r in spec["egress"] if r["to"] != [{"ipBlock": {"cidr": "0.0.0.0/0"}}]]

    findings = broken(docs["dev"], (f"{TEAM}-allow-aws", vpc_only))
    assert_flags(
        findings, "network-team-paths", TEAM_NS, "Secrets Manager (through the NAT)", "allow it no egress"
    )


# -- retrieval freshness (components/retrieval_freshness.py) ---------------------------------------

FRESH = "llmops-dev-retrieval"
FRESH_JOB = f"{FRESH}-cronjob"
FRESH_ALARM = f"{FRESH}-platform-docs-index-age"


def exporter_env(edit: Callable[[dict], None]) -> Callable[[dict], None]:
    def change(job: dict) -> None:
        [exporter] = [c for c in pod(job)["containers"] if c["name"] == "exporter"]
        env = {e["name"]: e for e in exporter["env"]}
        edit(env)
        exporter["env"] = list(env.values())

    return change


def test_declared_collection_without_its_alarm(docs):
    findings = broken(docs["dev"], (FRESH_ALARM, None))
    assert_flags(findings, "freshness-alarms", FRESH_JOB, "platform-docs", "no alarm of the plan watches it")


def test_exporter_told_a_collection_nothing_alarms_on(docs):
    def more(env):
        declared = json.loads(env["COLLECTIONS_JSON"]["value"])
        env["COLLECTIONS_JSON"]["value"] = json.dumps([*declared, {**declared[0], "name": "new-kb"}])

    findings = broken(docs["dev"], (FRESH_JOB, exporter_env(more)))
    assert_flags(findings, "freshness-alarms", FRESH_JOB, "new-kb", "LLMOps/Retrieval/IndexAgeSeconds")


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("treatMissingData", "notBreaching", ("missing data as breaching",)),
        ("threshold", 3600, ("maxAgeHours 48",)),
        ("period", 300, ("exporter's interval (1800 s)",)),
        ("alarmActions", ["arn:aws:sns:eu-west-1:111122223333:nobody"], ("reach nobody",)),
    ],
)
def test_alarm_off_its_collections_objective(docs, key, value, words):
    def change(alarm):
        alarm["inputs"][key] = value

    assert_flags(broken(docs["dev"], (FRESH_ALARM, change)), "freshness-alarms", FRESH_ALARM, *words)


def test_alarm_on_a_metric_the_exporter_does_not_emit(docs):
    """The names come from the exporter's own metric_data: a renamed metric has no producer."""

    def change(alarm):
        alarm["inputs"]["metricName"] = "IndexAge"

    findings = broken(docs["dev"], (FRESH_ALARM, change))
    assert_flags(findings, "freshness-alarms", FRESH_JOB, "platform-docs")
    assert_flags(findings, "metrics-cloudwatch-alarm", FRESH_ALARM, "no producer of LLMOps/Retrieval")


def test_exporter_publishing_to_another_namespace(docs):
    def elsewhere(env):
        env["METRIC_NAMESPACE"]["value"] = "LLMOps/Other"

    findings = broken(docs["dev"], (FRESH_JOB, exporter_env(elsewhere)))
    assert_flags(findings, "freshness-alarms", FRESH_JOB, "LLMOps/Other/IndexAgeSeconds")
    assert_flags(findings, "freshness-exporter-permissions", FRESH_JOB, "cloudwatch:namespace")
    assert_flags(findings, "metrics-cloudwatch-alarm", FRESH_ALARM, "LLMOps/Retrieval")


def test_exporter_pods_without_the_qdrant_client_label(docs):
    def unlabelled(job):
        labels = job["inputs"]["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
        labels.pop("llmops.io/qdrant-client")

    findings = broken(docs["dev"], (FRESH_JOB, unlabelled))
    assert_flags(findings, "freshness-exporter-paths", FRESH_JOB, "Qdrant", "allow-qdrant-clients")


def test_exporter_pods_denied_egress(docs):
    def deny_egress(policy):
        policy["inputs"]["spec"]["policyTypes"] = ["Ingress", "Egress"]

    findings = broken(docs["dev"], ("llmops-dev-vectordb-default-deny", deny_egress))
    for what in ("CloudWatch for PutMetricData", "Pod Identity agent", "Qdrant"):
        assert_flags(findings, "freshness-exporter-paths", FRESH_JOB, what, "no egress")


def test_exporter_pointed_at_no_qdrant(docs):
    def wrong(env):
        env["QDRANT_URL"]["value"] = "http://qdrant.vector-db.svc.cluster.local:7333"

    findings = broken(docs["dev"], (FRESH_JOB, exporter_env(wrong)))
    assert_flags(findings, "freshness-exporter-paths", FRESH_JOB, "Qdrant")


@pytest.mark.parametrize(
    ("action", "words"),
    [
        ("cloudwatch:PutMetricData", ("cloudwatch:PutMetricData",)),
        ("s3:GetObject", ("s3:GetObject", "deps-aarch64.zip")),
        ("kms:Decrypt", ("kms:Decrypt", "encrypted with it")),
    ],
)
def test_exporter_role_without_what_it_does(docs, action, words):
    change = (
        "llmops-dev-retrieval-policy",
        lambda p: policy_doc(p, lambda s: [x for x in s if action not in x["Action"]]),
    )
    assert_flags(broken(docs["dev"], change), "freshness-exporter-permissions", FRESH_JOB, *words)


def test_exporter_role_scoped_to_another_namespace(docs):
    def other(statements):
        for s in statements:
            if "cloudwatch:PutMetricData" in s["Action"]:
                s["Condition"] = {"StringEquals": {"cloudwatch:namespace": "LLMOps"}}
        return statements

    findings = broken(docs["dev"], ("llmops-dev-retrieval-policy", lambda p: policy_doc(p, other)))
    assert_flags(findings, "freshness-exporter-permissions", FRESH_JOB, "cloudwatch:namespace condition")


def test_exporter_service_account_without_its_role(docs):
    findings = broken(docs["dev"], ("llmops-dev-retrieval-identity", None))
    assert_flags(findings, "freshness-exporter-permissions", FRESH_JOB, "no Pod Identity association")


def test_packages_for_the_nodes_architecture_not_uploaded(docs):
    """Dev's system nodes are Graviton (AL2023_ARM_64_STANDARD): the pod fetches the aarch64 zip."""
    findings = broken(docs["dev"], (f"{FRESH}-deps-aarch64", None))
    assert_flags(findings, "freshness-exporter-deps", FRESH_JOB, "deps-aarch64.zip", "aarch64 nodes")
    assert not [
        f for f in broken(docs["dev"], (f"{FRESH}-deps-x86_64", None)) if f.contract.startswith("fresh")
    ]

    def other_key(obj):
        obj["inputs"]["key"] = obj["inputs"]["key"].replace("deps-", "packages-")

    findings = broken(docs["dev"], (f"{FRESH}-deps-aarch64", other_key))
    assert_flags(findings, "freshness-exporter-deps", FRESH_JOB, "does not upload")


# -- the gateway's response cache (staging caches qwen-small in ElastiCache Serverless for Valkey) --

GATEWAY_DEPLOYMENT = "llmops-staging-gateway-deployment"


def test_gateway_cache_closed_to_the_gateway_pods(docs):
    def closed(sg):
        sg["inputs"]["ingress"] = [r for r in sg["inputs"]["ingress"] if r["fromPort"] != 6379]

    findings = broken(docs["staging"], ("llmops-staging-gateway-cache-sg", closed))
    words = ("response cache", "no ingress rule", "6379")
    assert_flags(findings, "network-gateway-cache", GATEWAY_DEPLOYMENT, *words)


def test_gateway_pointed_at_no_cache_of_the_plan(docs):
    def elsewhere(deployment):
        for env in pod(deployment)["containers"][0]["env"]:
            if env["name"] == "GATEWAY_CACHE_HOST":
                env["value"] = "cache.example.internal"

    findings = broken(docs["staging"], (GATEWAY_DEPLOYMENT, elsewhere))
    assert_flags(findings, "network-gateway-cache", GATEWAY_DEPLOYMENT, "cache.example.internal", "none of")


def test_gateway_cache_without_tls_or_its_password(docs):
    def plain(config):
        config["litellm_settings"]["cache_params"]["ssl"] = False

    findings = broken(docs["staging"], ("llmops-staging-gateway-config", lambda c: gateway_config(c, plain)))
    assert_flags(findings, "network-gateway-cache", GATEWAY_DEPLOYMENT, "over TLS")

    def no_password(secret):
        secret["inputs"]["stringData"].pop("GATEWAY_CACHE_PASSWORD")

    findings = broken(docs["staging"], ("llmops-staging-gateway-env", no_password))
    assert_flags(findings, "network-gateway-cache", GATEWAY_DEPLOYMENT, "GATEWAY_CACHE_PASSWORD")


# -- the gateway's in-cluster database (dev) ---------------------------------------------------


def test_gateway_database_admitting_other_pods_than_the_gateway(docs):
    def change(policy):
        policy["inputs"]["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"] = {
            "app.kubernetes.io/name": "litellm-proxy"
        }

    findings = broken(docs["dev"], ("llmops-dev-gateway-db-netpol", change))
    assert_flags(findings, "selector-networkpolicy", "llmops-dev-gateway-db-netpol", "selects no pod")
    # ...and the gateway no longer reaches its database through the namespace's default deny.
    assert_flags(
        findings, "network-gateway", "llmops-dev-gateway-deployment", "litellm-postgres", "NetworkPolicies"
    )


def test_gateway_database_policy_on_another_port(docs):
    def change(policy):
        policy["inputs"]["spec"]["ingress"][0]["ports"] = [{"protocol": "TCP", "port": 5433}]

    findings = broken(docs["dev"], ("llmops-dev-gateway-db-netpol", change))
    assert_flags(findings, "network-gateway", "llmops-dev-gateway-deployment", "litellm-postgres", "5432")


def test_gateway_database_service_selecting_no_pod(docs):
    def change(svc):
        svc["inputs"]["spec"]["selector"] = {"app.kubernetes.io/name": "postgres"}

    findings = broken(docs["dev"], ("llmops-dev-gateway-db-service", change))
    assert_flags(findings, "selector-service", "llmops-dev-gateway-db-service", "must select pods")
    assert_flags(findings, "network-gateway", "llmops-dev-gateway-deployment", "resolves to no pods")


def test_postgres_socket_directory_on_the_read_only_root(docs):
    def change(sts):
        container = pod(sts)["containers"][0]
        container["volumeMounts"] = [
            m for m in container["volumeMounts"] if m["mountPath"] != "/var/run/postgresql"
        ]

    findings = broken(docs["dev"], ("llmops-dev-gateway-db-statefulset", change))
    assert_flags(
        findings, "containers-writable-paths", "llmops-dev-gateway-db-statefulset", "/var/run/postgresql"
    )
