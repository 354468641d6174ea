"""The gateway's in-cluster PostgreSQL (gateway.database.engine in-cluster), as dev ships it."""

from __future__ import annotations

import json

import pytest
from conftest import config_problems, inputs_of
from stack_plans import k8s_objects, pod_spec

from llmops.verify.model import selects

NS = "llmops-gateway"
# docker-library/postgres 17/alpine3.22/Dockerfile: `adduser -u 70 ... postgres`, the socket
# directory /var/run/postgresql (DEFAULT_PGSOCKET_DIR) and PGDATA under /var/lib/postgresql.
POSTGRES_UID = 70


def _stack(classification: str, **gateway) -> dict:
    return {
        "aws:region": "eu-west-1",
        "llmops:environment": "test",
        "llmops:dataClassification": classification,
        "llmops:gateway": json.dumps(gateway),
    }


def _database(plans) -> dict:
    (sts,) = [s for s in k8s_objects("dev", "StatefulSet", NS).values()]
    return sts


def test_dev_runs_postgres_in_the_gateway_namespace_instead_of_rds(plans):
    assert inputs_of(plans["dev"], "aws:rds/instance:Instance") == []
    sts = _database(plans)
    (container,) = pod_spec(sts)["containers"]
    repository, tag = container["image"].split(":")
    assert repository == "postgres" and tag.startswith("17.") and "alpine" in tag  # pinned, multi-arch
    assert [e for e in container["env"] if e["name"] == "POSTGRES_PASSWORD"] == []  # a file, not a value
    # The staging and prod gateways keep RDS.
    for stack in ("staging", "prod"):
        assert len(inputs_of(plans[stack], "aws:rds/instance:Instance")) == 1, stack


def test_postgres_is_hardened_with_writable_volumes_where_it_writes(plans):
    spec = pod_spec(_database(plans))
    (container,) = spec["containers"]
    security = container["securityContext"]
    assert security["runAsUser"] == POSTGRES_UID and security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert spec["securityContext"]["fsGroup"] == POSTGRES_UID  # the volume is writable by postgres
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    for path in ("/var/run/postgresql", "/tmp"):
        assert "emptyDir" in volumes[mounts[path]], path
    pgdata = next(e["value"] for e in container["env"] if e["name"] == "PGDATA")
    data_mount = next(p for p in mounts if pgdata.startswith(p + "/"))
    assert mounts[data_mount] not in volumes  # a volumeClaimTemplate, not a pod volume
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["exec"]["command"][0] == "pg_isready", probe


def test_postgres_volume_is_an_encrypted_retained_gp3_claim(plans):
    sts = _database(plans)
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    (storage_class,) = inputs_of(plans["dev"], "kubernetes:storage.k8s.io/v1:StorageClass")
    assert claim["spec"]["storageClassName"] == storage_class["metadata"]["name"]
    assert storage_class["parameters"]["encrypted"] == "true" and storage_class["parameters"]["type"] == "gp3"
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"  # stacks/Pulumi.dev.yaml
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }


def test_only_the_gateway_pods_reach_postgres(plans):
    sts = _database(plans)
    db_labels = sts["spec"]["template"]["metadata"]["labels"]
    gateway = k8s_objects("dev", "Deployment", NS)["litellm"]
    gateway_labels = gateway["spec"]["template"]["metadata"]["labels"]
    policies = k8s_objects("dev", "NetworkPolicy", NS).values()
    (policy,) = [
        p for p in policies if selects(p["spec"]["podSelector"], db_labels) and p["spec"].get("ingress")
    ]
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 5432}]
    (peer,) = rule["from"]
    assert set(peer) == {"podSelector"}  # this namespace only
    assert selects(peer["podSelector"], gateway_labels)
    assert not selects(peer["podSelector"], db_labels)
    # The gateway's own policy does not select the database's pods (it admits the whole VPC).
    gateway_policy = k8s_objects("dev", "NetworkPolicy", NS)["litellm"]
    assert not selects(gateway_policy["spec"]["podSelector"], db_labels)


def test_gateway_url_points_at_the_database_service(plans):
    plan = plans["dev"].plan
    env = plan.named("llmops-dev-gateway-env")
    service = plan.named("llmops-dev-gateway-db-service")
    assert "DATABASE_URL" in env["inputs"]["stringData"]
    assert service["name"] in env["propertyDependencies"]["stringData"]  # the URL's host is the Service's
    assert selects(
        service["inputs"]["spec"]["selector"], _database(plans)["spec"]["template"]["metadata"]["labels"]
    )
    assert service["inputs"]["spec"]["ports"][0]["port"] == 5432
    # Kept in Secrets Manager as with RDS.
    secrets = inputs_of(plans["dev"], "aws:secretsmanager/secret:Secret")
    assert any("gateway/database-url" in (s.get("namePrefix") or "") for s in secrets)


def test_gateway_pods_need_no_security_group_with_the_in_cluster_database(plans):
    assert inputs_of(plans["dev"], "kubernetes:vpcresources.k8s.aws/v1beta1:SecurityGroupPolicy") == []
    names = [r["name"] for r in plans["dev"].plan.resources]
    assert "llmops-dev-gateway-pods-sg" not in names
    for stack in ("staging", "prod"):  # RDS admits the pods by their own group
        assert inputs_of(plans[stack], "kubernetes:vpcresources.k8s.aws/v1beta1:SecurityGroupPolicy"), stack


def test_the_estimate_prices_the_database_volume_not_rds(plans):
    lines = {line.label: line for line in plans["dev"].estimate.lines}
    volume = next(line for name, line in lines.items() if "litellm-postgres" in name)
    assert volume.quantity_min == 5
    assert not any(name.startswith("RDS") for name in lines)


@pytest.mark.parametrize("classification", ["confidential", "regulated"])
def test_in_cluster_database_is_refused_for_sensitive_data(classification):
    (problem,) = config_problems(_stack(classification, database={"engine": "in-cluster"}))
    assert problem.startswith("llmops:gateway: database.engine: in-cluster is for public and internal")
    assert classification in problem


def test_rds_settings_with_an_in_cluster_database_are_refused():
    (problem,) = config_problems(
        _stack("internal", database={"engine": "in-cluster"}, databaseInstanceClass="db.t4g.micro")
    )
    assert "llmops:gateway" in problem and "databaseInstanceClass" in problem and "in-cluster" in problem


def test_in_cluster_sizing_with_rds_is_refused():
    (problem,) = config_problems(_stack("internal", database={"volumeGib": 5}))
    assert "llmops:gateway.database" in problem and "volumeGib" in problem and "engine in-cluster" in problem
