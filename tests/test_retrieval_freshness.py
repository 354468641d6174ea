"""Retrieval freshness infrastructure (components/retrieval_freshness.py, docs/retrieval.md): the
collections in the stack and team files, the exporter CronJob and its alarms on the recorded
plans, and the real exporter's metrics (a local Qdrant store, CloudWatch in moto) against the
alarms the plan declares."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml
from conftest import inputs_of
from stack_plans import SHIPPED_STACKS, k8s_objects, pod_spec, stack_plan

from llmops import PROJECT_DIR
from llmops.settings import SettingsError, from_config, load_stack_file, load_teams, read_stack_file, team

STACKS = PROJECT_DIR / "stacks"
TEAM_FILE = STACKS / "teams" / "fraud-analytics.yaml"


def stack_doc(env: str) -> dict:
    return yaml.safe_load((STACKS / f"Pulumi.{env}.yaml").read_text())["config"]


def declared_in_files(env: str) -> dict[str, dict]:
    """The collections a stack's file and the team files in it declare, read from the YAML itself."""
    found = {c["name"]: c for c in stack_doc(env)["llmops:vectorDb"].get("collections", [])}
    team_doc = yaml.safe_load(TEAM_FILE.read_text())
    if env in team_doc.get("environments", [env]):
        found |= {c["name"]: {**c, "ownerTeam": team_doc["name"]} for c in team_doc.get("collections", [])}
    return found


def cronjob(env: str) -> dict:
    return k8s_objects(env, "CronJob", "vector-db")["retrieval-freshness"]


def container(obj: dict, name: str) -> dict:
    spec = pod_spec(obj)
    (found,) = [c for c in [*spec.get("initContainers", []), *spec["containers"]] if c["name"] == name]
    return found


def env_of(c: dict) -> dict:
    return {e["name"]: e.get("value") for e in c.get("env", [])}


# -- settings ---------------------------------------------------------------------------------------


def config_with(collections, **vector_db) -> dict:
    config = read_stack_file(STACKS / "Pulumi.dev.yaml")
    return {
        **config,
        "llmops:vectorDb": {**config["llmops:vectorDb"], "collections": collections, **vector_db},
    }


def test_bad_collections_are_reported_each_at_its_path():
    bad = [
        {"name": "Docs", "vectorSize": 0, "distance": "cosine", "embeddingModel": " ", "maxAgeHours": 0},
        {"name": "faq", "vectorSize": 8, "embeddingModel": "m", "maxAgeHours": 1, "owner": "x"},
        {"name": "faq", "vectorSize": 8, "embeddingModel": "m", "maxAgeHours": 1, "ownerTeam": "Team A"},
    ]
    with pytest.raises(SettingsError) as err:
        from_config(config_with(bad, freshnessIntervalMinutes=7))
    text = "\n".join(err.value.problems)
    for path in (
        "llmops:vectorDb.collections[0].name: 'Docs' must be a collection name",
        "llmops:vectorDb.collections[0].vectorSize:",
        "llmops:vectorDb.collections[0].distance: Input should be 'Cosine', 'Dot', 'Euclid' or 'Manhattan'",
        "llmops:vectorDb.collections[0].embeddingModel:",
        "llmops:vectorDb.collections[0].maxAgeHours:",
        "llmops:vectorDb.collections[1].owner: unknown setting",
        "llmops:vectorDb.collections[2].ownerTeam: 'Team A' must be a DNS label",
        "llmops:vectorDb.freshnessIntervalMinutes: 7 must be one of 5, 10, 15, 20, 30, 60",
    ):
        assert path in text, text


def test_collection_names_are_unique_in_the_stack():
    same = {"name": "faq", "vectorSize": 8, "embeddingModel": "m", "maxAgeHours": 1}
    with pytest.raises(SettingsError) as err:
        from_config(config_with([same, same]))
    assert err.value.problems == [
        "llmops:vectorDb.collections: collection names must be unique; repeated: faq"
    ]


@pytest.fixture
def teams_dir(tmp_path, monkeypatch) -> Path:
    root = tmp_path.resolve()
    (root / "stacks" / "teams").mkdir(parents=True)
    for path in STACKS.glob("Pulumi.*.yaml"):
        shutil.copy(path, root / "stacks" / path.name)
    monkeypatch.setattr(team, "PROJECT_DIR", root)
    return root / "stacks" / "teams"


def team_doc(name: str, collections: list[dict], **more) -> dict:
    doc = yaml.safe_load(TEAM_FILE.read_text())
    del doc["overrides"]
    return {**doc, "name": name, "classification": "internal", "collections": collections, **more}


def write(directory: Path, doc: dict) -> None:
    (directory / f"{doc['name']}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def team_problems(directory: Path, env: str = "staging") -> list[str]:
    with pytest.raises(SettingsError) as err:
        load_teams(load_stack_file(directory.parent / f"Pulumi.{env}.yaml"), directory)
    return err.value.problems


def collection(name: str, **more) -> dict:
    return {"name": name, "vectorSize": 384, "embeddingModel": "all-minilm", "maxAgeHours": 24, **more}


def test_a_team_collection_clashing_with_the_stacks_names_both_files(teams_dir):
    # A stack collection owned by team underwriting: that team may list it in vectorCollections (it
    # owns it), but not declare it again; another team may do neither.
    staging = teams_dir.parent / "Pulumi.staging.yaml"
    staging.write_text(staging.read_text().replace("ownerTeam: claims", "ownerTeam: underwriting"))
    owner = team_doc("underwriting", [collection("claims-policies")], vectorCollections=["claims-policies"])
    write(teams_dir, owner)
    write(teams_dir, team_doc("payouts", [], vectorCollections=["claims-policies"]))
    assert team_problems(teams_dir, "staging") == [
        "stacks/teams/payouts.yaml: vectorCollections[0]: collection claims-policies is declared by the "
        "staging stack (ownerTeam underwriting) too (stacks/Pulumi.staging.yaml: "
        "llmops:vectorDb.collections[1])",
        "stacks/teams/underwriting.yaml: collections[0].name: collection claims-policies is declared by "
        "the staging stack (ownerTeam underwriting) too (stacks/Pulumi.staging.yaml: "
        "llmops:vectorDb.collections[1])",
    ]


def test_a_collection_two_teams_declare_names_both_files(teams_dir):
    write(teams_dir, team_doc("alpha", [collection("shared-kb")], vectorCollections=[]))
    write(teams_dir, team_doc("beta", [collection("own"), collection("shared-kb")], vectorCollections=[]))
    assert team_problems(teams_dir) == [
        "stacks/teams/beta.yaml: collections[1].name: collection shared-kb is owned by team alpha "
        "(stacks/teams/alpha.yaml) too"
    ]


def test_team_collections_take_the_stacks_shape_without_an_owner(teams_dir):
    write(teams_dir, team_doc("alpha", [collection("a", ownerTeam="beta")]))
    write(teams_dir, team_doc("beta", [collection("b"), collection("b")], vectorCollections=[]))
    alpha, beta = team_problems(teams_dir)
    assert alpha.startswith("stacks/teams/alpha.yaml: collections[0].ownerTeam: unknown key")
    assert beta == "stacks/teams/beta.yaml: collections: collection names must be unique; repeated: b"


def test_the_exporters_packages_match_the_programs_pins_and_the_server():
    def pins(path: Path) -> dict[str, str]:
        found = {}
        for line in path.read_text().splitlines():
            name, sep, version = line.split("#")[0].split("\\")[0].strip().partition("==")
            if sep:
                found[name.lower()] = version.strip()
        return found

    shipped, program = pins(PROJECT_DIR / "requirements-exporter.txt"), pins(PROJECT_DIR / "requirements.txt")
    assert shipped["qdrant-client"] == program["qdrant-client"] and shipped["boto3"] == program["boto3"]
    from llmops import versions

    # qdrant-client 1.16.2 warns unless the server's minor is within one of its own
    # (qdrant_client/qdrant_remote.py); the platform keeps them equal.
    server = versions.QDRANT_IMAGE.rpartition(":v")[2].split("-")[0]
    assert server.split(".")[:2] == shipped["qdrant-client"].split(".")[:2]


# -- the plan -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_the_exporter_is_told_every_declared_collection(stack):
    exporter = container(cronjob(stack), "exporter")
    told = {c["name"]: c for c in json.loads(env_of(exporter)["COLLECTIONS_JSON"])}
    files = declared_in_files(stack)
    assert told.keys() == files.keys()
    for name, declared in files.items():
        # distance defaults to Cosine (README settings table); ownerTeam unset is the platform's.
        assert told[name] == {"distance": "Cosine", "ownerTeam": None, **declared}


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_the_cronjob_runs_hardened_on_the_system_nodes_as_a_qdrant_client(stack):
    job = cronjob(stack)
    interval = stack_doc(stack)["llmops:vectorDb"].get("freshnessIntervalMinutes", 15)
    assert job["spec"]["schedule"] == (f"*/{interval} * * * *" if interval < 60 else "0 * * * *")
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    template = job["spec"]["jobTemplate"]["spec"]["template"]
    # Qdrant's NetworkPolicy admits pods with this label (components/vector_db.py allow-qdrant-clients).
    [allow] = [
        p for p in k8s_objects(stack, "NetworkPolicy", "vector-db").values() if p["spec"].get("ingress")
    ]
    client_label = allow["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert client_label.items() <= template["metadata"]["labels"].items()
    spec = template["spec"]
    system = [g["labels"] for g in inputs_of(stack_plan(stack), "aws:eks/nodeGroup:NodeGroup")]
    assert any(spec["nodeSelector"].items() <= labels.items() for labels in system)
    assert spec["securityContext"]["runAsNonRoot"] and not spec["automountServiceAccountToken"]
    for c in [*spec["initContainers"], *spec["containers"]]:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"], c["name"]
        assert sc["capabilities"]["drop"] == ["ALL"] and c["resources"]["limits"]["memory"]
    exporter = container(job, "exporter")
    assert exporter["command"] == ["python", "-m", "llmops.rag.exporter"]
    code = k8s_objects(stack, "ConfigMap", "vector-db")["retrieval-freshness-code"]["data"]
    for name in ("freshness.py", "exporter.py"):
        assert code[name] == (PROJECT_DIR / "llmops" / "rag" / name).read_text()


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_the_packages_the_pod_fetches_are_uploaded_encrypted_per_architecture(stack):
    plan = stack_plan(stack).plan
    prefix = env_of(container(cronjob(stack), "fetch"))["DEPS_PREFIX"]
    bucket, _, key_prefix = prefix.removeprefix("s3://").partition("/")
    objects = {o["key"]: o for o in inputs_of(stack_plan(stack), "aws:s3/bucketObjectv2:BucketObjectv2")}
    [backups] = [b for b in plan.of_type("aws:s3/bucket:Bucket") if "vectordb-backups" in b["name"]]
    for arch in ("x86_64", "aarch64"):  # what `uname -m` prints on the two AL2023 node AMIs
        obj = objects[f"{key_prefix}deps-{arch}.zip"]
        assert obj["bucket"] == backups["id"] == bucket
        assert obj["serverSideEncryption"] == "aws:kms" and obj["kmsKeyId"]
        path = PROJECT_DIR / obj["source"]["asset"]["path"]
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
        assert {"qdrant_client/__init__.py", "boto3/__init__.py"} <= names
        suffix = "x86_64" if arch == "x86_64" else "aarch64"
        assert any(n.startswith("grpc/_cython/") and suffix in n for n in names), "wheel of another platform"


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_one_alarm_per_collection_at_its_objective_missing_data_breaching(stack):
    result = stack_plan(stack)
    alarms = {
        a["dimensions"]["Collection"]: a
        for a in inputs_of(result, "aws:cloudwatch/metricAlarm:MetricAlarm")
        if a.get("namespace") == "LLMOps/Retrieval"
    }
    files = declared_in_files(stack)
    assert alarms.keys() == files.keys()
    [alerts] = [t for t in result.plan.of_type("aws:sns/topic:Topic") if t["name"].endswith("-cost-alerts")]
    interval = stack_doc(stack)["llmops:vectorDb"].get("freshnessIntervalMinutes", 15)
    for name, alarm in alarms.items():
        assert alarm["threshold"] == files[name]["maxAgeHours"] * 3600
        assert (
            alarm["treatMissingData"] == "breaching" and alarm["comparisonOperator"] == "GreaterThanThreshold"
        )
        assert alarm["period"] == interval * 60 and alarm["evaluationPeriods"] == 2
        assert alarm["dimensions"] == {"Environment": stack, "Collection": name}
        assert alerts["outputs"]["arn"] in alarm["alarmActions"]


def test_the_role_publishes_only_to_the_exporters_namespace_and_reads_only_its_code():
    plan = stack_plan("staging").plan
    policy = json.loads(plan.named("llmops-staging-retrieval-policy")["inputs"]["policy"])
    namespace = env_of(container(cronjob("staging"), "exporter"))["METRIC_NAMESPACE"]
    by_action = {tuple(s["Action"]): s for s in policy["Statement"]}
    put = by_action[("cloudwatch:PutMetricData",)]
    assert put["Condition"] == {"StringEquals": {"cloudwatch:namespace": namespace}}
    assert by_action[("s3:GetObject",)]["Resource"].endswith("/code/retrieval-exporter/*")
    assert set(by_action) == {("cloudwatch:PutMetricData",), ("s3:GetObject",), ("kms:Decrypt",)}


def test_snapshots_expire_but_the_exporters_code_does_not():
    plan = stack_plan("dev").plan
    [lifecycle] = [
        r
        for r in plan.of_type("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
        if "vectordb-backups" in r["name"]
    ]
    expiring = [r for r in lifecycle["inputs"]["rules"] if r.get("expiration")]
    assert [r["filter"]["prefix"] for r in expiring] == ["snapshots/"]


@pytest.fixture(scope="module")
def email_team_plan(tmp_path_factory, plan_stack_file):
    """dev with a team whose contact is an e-mail address and which declares a collection, and a
    stack collection it owns (ownerTeam)."""
    root = tmp_path_factory.mktemp("freshness-team")
    (root / "teams").mkdir()
    doc = yaml.safe_load(TEAM_FILE.read_text())
    doc.update(name="risk", contact="risk-oncall@example.com", environments=["dev"], vectorCollections=[])
    doc["collections"] = [collection("risk-cases", maxAgeHours=2)]
    (root / "teams" / "risk.yaml").write_text(yaml.safe_dump(doc))
    text = (
        (STACKS / "Pulumi.dev.yaml")
        .read_text()
        .replace(
            "maxAgeHours: 48}",
            "maxAgeHours: 48}\n      - {name: risk-rules, ownerTeam: risk, vectorSize: 8, "
            "embeddingModel: m, maxAgeHours: 1}",
        )
    )
    return plan_stack_file(root, "dev", text)


def test_team_collections_alarm_on_the_teams_topic_and_open_in_its_token(email_team_plan):
    plan = email_team_plan.plan
    topics = {t["name"]: t["outputs"]["arn"] for t in plan.of_type("aws:sns/topic:Topic")}
    alarms = {
        a["inputs"]["dimensions"]["Collection"]: a["inputs"]
        for a in plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if a["inputs"].get("namespace") == "LLMOps/Retrieval"
    }
    assert set(alarms) == {"platform-docs", "risk-cases", "risk-rules"}
    team_topic, alerts = topics["llmops-dev-cost-team-risk"], topics["llmops-dev-cost-alerts"]
    for name in ("risk-cases", "risk-rules"):
        assert set(alarms[name]["alarmActions"]) == {alerts, team_topic}
        assert alarms[name]["threshold"] == (2 if name == "risk-cases" else 1) * 3600
    assert alarms["platform-docs"]["alarmActions"] == [alerts]
    told = json.loads(env_of(container(_cronjob_of(plan), "exporter"))["COLLECTIONS_JSON"])
    assert {c["name"]: c["ownerTeam"] for c in told} == {
        "platform-docs": None,
        "risk-rules": "risk",
        "risk-cases": "risk",
    }
    # The team's Qdrant egress policy exists because it owns collections (components/team.py).
    policies = [r for r in plan.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")]
    assert any(
        p["inputs"]["metadata"] == {"name": "allow-qdrant", "namespace": "team-risk"} for p in policies
    )
    assert [
        f for f in email_team_plan.findings if f.contract.startswith(("freshness-", "network-team"))
    ] == []


def _cronjob_of(plan) -> dict:
    [job] = [
        r["inputs"]
        for r in plan.of_type("kubernetes:batch/v1:CronJob")
        if r["name"].endswith("-retrieval-cronjob")
    ]
    return job


def test_a_stack_without_collections_has_no_exporter(tmp_path, plan_stack_file):
    doc = yaml.safe_load((STACKS / "Pulumi.dev.yaml").read_text())
    doc["config"]["llmops:vectorDb"].pop("collections")
    (tmp_path / "teams").mkdir()
    result = plan_stack_file(tmp_path, "dev", yaml.safe_dump(doc))
    assert not [r for r in result.plan.resources if r["type"] == "llmops:retrieval:RetrievalFreshness"]
    assert not [r for r in result.plan.resources if "-retrieval-" in r["name"]]


def test_a_missing_packages_build_stops_the_plan(tmp_path, monkeypatch):
    from components import retrieval_freshness

    monkeypatch.setattr(retrieval_freshness, "DEPS", tmp_path)
    with pytest.raises(Exception, match=r"not built, or were built from another version.*make exporter-deps"):
        retrieval_freshness.deps_archive("x86_64")


def test_the_packages_zip_is_the_same_on_every_build_without_scripts_or_bytecode(tmp_path):
    from components.retrieval_freshness import write_zip

    site = tmp_path / "site"
    for name in ("pkg/__init__.py", "pkg/_native.so", "pkg/__pycache__/x.pyc", "bin/tool"):
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(f"#!{tmp_path}/python\n" if name.startswith("bin/") else name)
    write_zip(site, tmp_path / "a.zip")
    (site / "pkg" / "__init__.py").touch()  # a later mtime must not change the zip
    write_zip(site, tmp_path / "b.zip")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        assert archive.namelist() == ["pkg/__init__.py", "pkg/_native.so"]


# -- the real exporter against the plan's alarms -----------------------------------------------------


@pytest.fixture
def cloudwatch(monkeypatch):
    import moto

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "me-central-1",
    }.items():
        monkeypatch.setenv(key, value)
    with moto.mock_aws():
        import boto3

        yield boto3.client("cloudwatch")


def test_the_real_exporter_emits_what_every_alarm_of_the_plan_watches(cloudwatch, tmp_path, monkeypatch):
    """The dev CronJob's own environment, pointed at a local store: one collection gets a point,
    the others stay empty (no index age: their alarms see missing data, which breaches)."""
    from qdrant_client import QdrantClient

    from llmops.rag import exporter, index_point, point_payload
    from llmops.verify.freshness import emitted

    job_env = env_of(container(cronjob("staging"), "exporter"))
    for key in ("ENVIRONMENT", "COLLECTIONS_JSON", "METRIC_NAMESPACE"):
        monkeypatch.setenv(key, job_env[key])
    monkeypatch.delenv("QDRANT_URL", raising=False)
    monkeypatch.setenv("QDRANT_PATH", str(tmp_path / "store"))
    assert exporter.main() == 0  # creates the declared collections
    declared = json.loads(job_env["COLLECTIONS_JSON"])
    first = declared[0]
    client = QdrantClient(path=str(tmp_path / "store"))
    client.upsert(
        first["name"],
        [
            index_point(
                1,
                [0.1] * first["vectorSize"],
                point_payload(
                    source_id="kb/1",
                    source_updated_at="2026-01-01T00:00:00Z",
                    embedding_model=first["embeddingModel"],
                ),
            )
        ],
    )
    client.close()
    assert exporter.main() == 0

    seen = {
        (m["Namespace"], m["MetricName"], tuple(sorted((d["Name"], d["Value"]) for d in m["Dimensions"])))
        for m in cloudwatch.list_metrics()["Metrics"]
    }
    alarms = [
        a["inputs"]
        for a in stack_plan("staging").plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if a["inputs"].get("namespace") == job_env["METRIC_NAMESPACE"]
    ]
    assert len(alarms) == len(declared)
    for alarm in alarms:
        watched = (alarm["namespace"], alarm["metricName"], tuple(sorted(alarm["dimensions"].items())))
        if alarm["dimensions"]["Collection"] == first["name"]:
            assert watched in seen  # the alarm of the indexed collection reads real data
        else:  # nothing indexed: no age, so the alarm's missing data breaches; the rest is measured
            assert watched not in seen and any(s[2] == watched[2] for s in seen)
    # What `llmops verify` models the exporter as is what it really emitted.
    metrics, age = emitted()
    assert {s[1] for s in seen} == set(metrics.metrics) and age == alarms[0]["metricName"]
    assert {frozenset(n for n, _ in s[2]) for s in seen} == set(metrics.dimension_sets)
