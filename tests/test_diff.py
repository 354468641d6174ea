"""`llmops diff BASE HEAD`: two real plans of the dev stack, the head planned from a changed stack file
(a bigger GPU pool, a second model, a second system node) or edited as a plan document."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import run_cli
from stack_plans import stack_plan

from llmops import PROJECT_DIR, estimate, plan
from llmops import instances as prices
from llmops.diff.markdown import LIMIT, MARKER, code, markdown
from llmops.diff.model import diff_plans
from llmops.diff.render import as_json, text
from llmops.diff.resources import MISSING, WITHHELD, diff_values
from llmops.errors import EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, LlmopsError
from llmops.offline import SECRET_MASK

MONTH = prices.HOURS_PER_MONTH
NEW_MODEL = """    - name: llama-8b
      servedName: meta-llama/Llama-3.1-8B-Instruct
      s3Prefix: meta-llama/Llama-3.1-8B-Instruct/
      pool: a10g-spot
      gpus: 1
      minReplicas: 1
      maxReplicas: 2
      tokensPerSecond: 900
"""
ADDED = {
    ("aws:eks/podIdentityAssociation:PodIdentityAssociation", "llmops-dev-serving-llama-8b-identity"),
    ("aws:iam/role:Role", "llmops-dev-serving-llama-8b-role"),
    ("aws:iam/rolePolicy:RolePolicy", "llmops-dev-serving-llama-8b-weights"),
    ("kubernetes:apps/v1:Deployment", "llmops-dev-serving-llama-8b-deployment"),
    ("kubernetes:core/v1:Service", "llmops-dev-serving-llama-8b-service"),
    ("kubernetes:core/v1:ServiceAccount", "llmops-dev-serving-llama-8b-sa"),
    ("kubernetes:keda.sh/v1alpha1:ScaledObject", "llmops-dev-serving-llama-8b-scaler"),
    ("kubernetes:policy/v1:PodDisruptionBudget", "llmops-dev-serving-llama-8b-pdb"),
}
CHANGED = {
    ("aws:eks/nodeGroup:NodeGroup", "llmops-dev-cluster-system"),
    # Two nodes: two Karpenter replicas (one per node) and CoreDNS back at its default two.
    ("kubernetes:helm.sh/v4:Chart", "llmops-dev-gpu-karpenter"),
    ("aws:eks/addon:Addon", "llmops-dev-cluster-coredns"),
    ("aws:eks/addon:Addon", "llmops-dev-cluster-aws-ebs-csi-driver"),  # and two EBS CSI controllers
    ("kubernetes:karpenter.sh/v1:NodePool", "llmops-dev-gpu-a10g-spot"),
    ("kubernetes:core/v1:ConfigMap", "llmops-dev-gateway-config"),  # the model in the LiteLLM config
    ("kubernetes:apps/v1:Deployment", "llmops-dev-gateway-deployment"),  # its config checksum
    # metrics-server's requests follow the most nodes the stack can have (7 more).
    ("kubernetes:helm.sh/v4:Chart", "llmops-dev-observability-metrics-server"),
    (
        "aws:s3/bucketObjectv2:BucketObjectv2",
        "llmops-dev-prompts-registry-config",
    ),  # the routes prompts may use
}


def doc_of(result) -> dict:
    """A plan document as `llmops plan` writes it (a copy: the session's plans are shared)."""
    return json.loads(json.dumps(result.plan.to_dict()))


@pytest.fixture(scope="module")
def base() -> dict:
    return doc_of(stack_plan("dev"))  # the session's dev plan, shared with the `plans` fixture


@pytest.fixture(scope="module")
def staging() -> dict:
    """A stack with separate KMS keys and an RDS database (dev shares one key, runs its own)."""
    return doc_of(stack_plan("staging"))


@pytest.fixture(scope="module")
def head(tmp_path_factory) -> dict:
    """The plan of a pull request's head: a copy of stacks/ (team files too) with dev changed."""
    where = tmp_path_factory.mktemp("head")
    shutil.copytree(PROJECT_DIR / "stacks", where / "stacks")
    stack_file = where / "stacks" / "Pulumi.dev.yaml"
    changed = (
        stack_file.read_text()
        .replace("      maxGpus: 4\n", "      maxGpus: 8\n")
        .replace("      tokensPerSecond: 1500\n", "      tokensPerSecond: 1500\n" + NEW_MODEL)
        .replace("      minSize: 1\n      maxSize: 2\n", "      minSize: 2\n      maxSize: 3\n")
    )
    assert changed.count("maxGpus: 8") == 1 and "llama-8b" in changed and "minSize: 2" in changed
    stack_file.write_text(changed)
    return doc_of(plan.run(str(stack_file), where / "build"))


@pytest.fixture(scope="module")
def diff(base, head):
    return diff_plans(base, head)


def named(doc: dict, name: str) -> dict:
    (found,) = [r for r in doc["resources"] if r["name"] == name]
    return found


def write(tmp_path: Path, name: str, doc: dict) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


# --- resources -------------------------------------------------------------------------------


def test_exactly_the_model_s_resources_are_added_and_the_pool_nodes_and_gateway_changed(diff):
    by_action = {a: {(d.type, d.name) for d in diff.resources if d.action == a} for a in ("added", "changed")}
    assert by_action["added"] == ADDED
    assert by_action["changed"] == CHANGED
    assert diff.count("removed") == 0
    assert {d.component for d in diff.resources if d.action == "added"} == {"serving"}
    assert diff.head_resources - diff.base_resources == len(ADDED)


def test_changed_inputs_are_dotted_paths_with_before_and_after(diff):
    changes = {(d.name, c.path): (c.before, c.after) for d in diff.resources for c in d.changes}
    assert changes["llmops-dev-gpu-a10g-spot", 'spec.limits["nvidia.com/gpu"]'] == (4, 8)
    assert changes["llmops-dev-cluster-system", "scalingConfig.minSize"] == (1, 2)
    assert changes["llmops-dev-cluster-system", "scalingConfig.maxSize"] == (2, 3)
    config = changes["llmops-dev-gateway-config", 'data["config.yaml"]']
    assert "llama-8b" in config[1] and "llama-8b" not in config[0]
    components = {d.name: d.component for d in diff.resources}
    assert components["llmops-dev-gpu-a10g-spot"] == "gpu"
    assert components["llmops-dev-cluster-system"] == "cluster"


def test_a_config_map_whose_data_changes_is_flagged_as_replaced(diff):
    (config,) = [d for d in diff.resources if d.name == "llmops-dev-gateway-config"]
    assert any("likely replaced" in note and 'data["config.yaml"]' in note for note in config.attention)


def test_the_same_plan_has_no_diff(base):
    same = diff_plans(base, copy.deepcopy(base))
    assert same.resources == [] and not same.failing
    assert all(same.cost.delta(k) == 0 for k in ("fixed", "minimum", "maximum"))


def test_a_resource_under_a_new_parent_is_changed_not_replaced_by_a_new_one(base):
    head = copy.deepcopy(base)
    pool = named(head, "llmops-dev-gpu-a10g-spot")
    pool["urn"] = pool["urn"].replace("llmops:gpu:GpuPools$", "llmops:serving:ModelServing$")
    (d,) = diff_plans(base, head).resources
    assert (d.action, d.name) == ("changed", "llmops-dev-gpu-a10g-spot")
    assert any(note.startswith("URN changed") for note in d.attention)


# --- cost ------------------------------------------------------------------------------------


def test_cost_delta_is_the_difference_of_the_two_estimates(diff, base, head):
    before, after = estimate.estimate(base), estimate.estimate(head)
    assert diff.cost.delta("minimum") == pytest.approx(after.minimum - before.minimum)
    assert diff.cost.delta("maximum") == pytest.approx(after.maximum - before.maximum)
    lines = {d.key: d for d in diff.cost.lines}
    # A second system node at eu-west-1's t4g.medium price (an unverified estimate in the table).
    system_node = prices.INSTANCE_TYPES["t4g.medium"].usd_per_hour("eu-west-1") * MONTH
    assert lines["System nodes t4g.medium"].delta("minimum") == pytest.approx(system_node)
    # llama-8b's floor: 1 x g5.xlarge, 1.123 USD/h in eu-west-1 (AWS Price List via
    # instances.vantage.sh, 2026-01-21); the pool's 4 more GPUs at g5.16xlarge's 4.57237 per GPU.
    assert lines["Model llama-8b: g5.xlarge"].delta("minimum") == pytest.approx(1.123 * MONTH)
    pool = next(d for key, d in lines.items() if key.startswith("GPU pool a10g-spot"))
    assert pool.delta("maximum") == pytest.approx(4 * 4.57237 * MONTH) and pool.delta("minimum") == 0
    # Every moved line is listed: the totals' deltas are their sums.
    for scale in ("minimum", "maximum"):
        assert diff.cost.delta(scale) == pytest.approx(sum(d.delta(scale) for d in diff.cost.lines), abs=0.05)
    assert f"{diff.cost.delta('maximum'):+,.0f}" in text(diff)
    assert "System nodes t4g.medium" in text(diff)


# --- secrets ---------------------------------------------------------------------------------


def test_a_value_secret_on_either_side_is_never_printed(base):
    head = copy.deepcopy(base)
    # dev's in-cluster database: its password Secret.
    named(head, "llmops-dev-gateway-db-secret")["inputs"]["stringData"]["password"] = "hunter2-plaintext"
    env = named(head, "llmops-dev-gateway-env")["inputs"]["stringData"]
    env["LITELLM_MASTER_KEY"] = "sk-plaintext-master"
    old = copy.deepcopy(base)
    named(old, "llmops-dev-gateway-tls-ca")["inputs"]["privateKeyPem"] = "-----BEGIN OLD KEY-----"
    for before, after in ((base, head), (old, base)):
        diff = diff_plans(before, after)
        for output in (text(diff), markdown(diff), as_json(diff)):
            assert "hunter2" not in output and "sk-plaintext" not in output and "OLD KEY" not in output
            assert SECRET_MASK in output
    (db,) = [d for d in diff_plans(base, head).resources if d.name == "llmops-dev-gateway-db-secret"]
    assert (db.changes[0].before, db.changes[0].after, db.changes[0].secret) == (SECRET_MASK, WITHHELD, True)
    assert any("not masked in the head" in note for note in db.attention)


def test_an_added_list_element_is_withheld_where_the_other_side_masks_that_shape():
    before = {"env": [{"name": "A", "value": SECRET_MASK}]}
    after = {"env": [{"value": "plain-a"}, {"value": "plain-b"}]}  # no names: compared as elements
    changes = diff_values(before, after, "", frozenset({"env[].value"}))
    shown = json.dumps([(c.before, c.after) for c in changes], default=repr)
    assert "plain-a" not in shown and "plain-b" not in shown and WITHHELD in shown


# --- contracts and policy: exit 1 ------------------------------------------------------------


def test_removing_a_queue_policy_is_a_newly_broken_contract_and_exit_1(base, tmp_path, capsys):
    head = copy.deepcopy(base)
    head["resources"] = [r for r in head["resources"] if r["name"] != "llmops-dev-gpu-interruptions-policy"]
    diff = diff_plans(base, head)
    assert diff.contracts.new and diff.failing
    assert {(f.contract, f.peer) for f in diff.contracts.new} == {
        ("permissions-delivery", "llmops-dev-gpu-interruptions")
    }
    assert [(d.action, d.name) for d in diff.resources] == [
        ("removed", "llmops-dev-gpu-interruptions-policy")
    ]
    argv = ["diff", str(write(tmp_path, "base.json", base)), str(write(tmp_path, "head.json", head))]
    code_, out, err = run_cli(argv, capsys)
    assert code_ == EXIT_NOT_FOUND
    assert "Newly broken contracts:" in out and "permissions-delivery" in out
    assert err.startswith("error: the head introduces 0 mandatory policy violation(s) and 4 broken")


def test_a_new_mandatory_violation_is_exit_1_and_called_out(staging, tmp_path, capsys):
    head = copy.deepcopy(staging)
    named(head, "llmops-staging-cluster-ebs-key")["inputs"]["enableKeyRotation"] = False
    diff = diff_plans(staging, head)
    assert [(v.policy, v.resource, v.level) for v in diff.policy.new_mandatory] == [
        ("kms-key-rotation-enabled", "llmops-staging-cluster-ebs-key", "mandatory")
    ]
    assert diff.policy.gone == [] and diff.contracts.new == []
    comment = markdown(diff)
    assert "**New mandatory policy violations**" in comment and "(**1 mandatory**)" in comment
    argv = [
        "diff",
        str(write(tmp_path, "base.json", staging)),
        str(write(tmp_path, "head.json", head)),
        "--json",
    ]
    code_, out, _ = run_cli(argv, capsys)
    assert code_ == EXIT_NOT_FOUND
    doc = json.loads(out)
    assert doc["failing"] is True and doc["policy"]["newMandatory"] == 1
    # The other way round the violation is fixed: exit 0.
    argv = ["diff", argv[2], argv[1]]
    code_, out, _ = run_cli(argv, capsys)
    assert code_ == EXIT_OK and "Fixed policy violations:" in out


def test_protect_flips_and_protected_changes_are_called_out(staging):
    protected = copy.deepcopy(staging)
    named(protected, "llmops-staging-cluster-ebs-key")["protect"] = True
    named(protected, "llmops-staging-prompts-key")["protect"] = True
    named(protected, "llmops-staging-gateway-db")["protect"] = True
    head = copy.deepcopy(protected)
    named(head, "llmops-staging-gateway-db")["inputs"]["username"] = "renamed"
    key = named(head, "llmops-staging-cluster-ebs-key")
    key["protect"], key["inputs"]["deletionWindowInDays"] = False, 7
    named(head, "llmops-staging-prompts-key")["inputs"]["description"] = "changed"
    attention = {d.name: d.attention for d in diff_plans(protected, head).attention}
    assert (
        "protect turned off: it can now be deleted or replaced" in attention["llmops-staging-cluster-ebs-key"]
    )
    assert "protected resource changed: 1 input path(s)" in attention["llmops-staging-prompts-key"]
    assert (
        "likely replaced: changing username forces a new resource; it holds data a replacement does not "
        "carry over; it is protected, so `pulumi up` will fail"
    ) in attention["llmops-staging-gateway-db"]
    comment = markdown(diff_plans(protected, head))
    assert comment.index("**Needs attention**") < comment.index("<details>")
    gone = copy.deepcopy(protected)
    gone["resources"] = [r for r in gone["resources"] if r["name"] != "llmops-staging-prompts-key"]
    (removed,) = [d for d in diff_plans(protected, gone).resources if d.action == "removed"]
    assert removed.protected and removed.attention == [
        "protected: `pulumi up` refuses to delete it until protect is lifted",
        "holds data: deleting it loses what it stores",
    ]


# --- outputs ---------------------------------------------------------------------------------


def test_markdown_starts_with_the_marker_and_the_summary(diff, base, head):
    comment = markdown(diff)
    lines = comment.splitlines()
    assert lines[0] == MARKER
    counts = f"{len(base['resources'])} | {len(head['resources'])}"
    assert f"| resources | {counts} | {len(ADDED)} added, {len(CHANGED)} changed, 0 removed |" in lines
    assert any(line.startswith("| monthly cost at minimum scale (USD) |") for line in lines)
    assert any(line.startswith("| monthly cost at maximum scale (USD) |") for line in lines)
    assert "✅ No new mandatory policy violation or broken contract." in lines
    assert comment.index("| resources |") < comment.index(
        f"<details><summary>cluster (+0 ~{sum('-cluster-' in n for _, n in CHANGED)} -0)</summary>"
    )
    # the cost lines that moved, then one per component touched: cluster, gateway, gpu,
    # observability (metrics-server), prompts (the routes in the registry config), serving
    components = {name.split("-")[2] for _, name in ADDED | CHANGED}
    assert components == {"cluster", "gateway", "gpu", "observability", "prompts", "serving"}
    assert comment.count("<details>") == comment.count("</details>") == 1 + len(components)
    assert comment.index("<details><summary>Cost: ") < comment.index("<details><summary>cluster ")


def test_json_is_everything(diff, head):
    doc = json.loads(as_json(diff))
    assert doc["failing"] is False and doc["base"]["stack"] == "dev"
    assert doc["head"]["resources"] == len(head["resources"])
    pool = next(r for r in doc["resources"] if r["name"] == "llmops-dev-gpu-a10g-spot")
    assert pool["changes"] == [
        {"path": 'spec.limits["nvidia.com/gpu"]', "before": 4, "after": 8, "secret": False}
    ]
    assert doc["cost"]["delta"]["maximum"] == pytest.approx(diff.cost.delta("maximum"))


def test_a_huge_diff_is_cut_below_github_s_limit_with_the_summary_whole(base):
    head = copy.deepcopy(base)
    for i, res in enumerate(head["resources"]):
        res["inputs"].update({f"synthetic{k}": f"value {i} {k} " + "x" * 150 for k in range(30)})
    extra = copy.deepcopy(named(base, "llmops-dev-gpu-a10g-spot"))
    for i in range(3000):
        head["resources"].append({**extra, "name": f"synthetic-{i}", "urn": f"{extra['urn']}-{i}"})
    diff = diff_plans(base, head)
    full, cut = markdown(diff, limit=10**9), markdown(diff)
    assert len(full.encode()) > 10 * LIMIT
    assert len(cut) < LIMIT and len(cut.encode()) < LIMIT
    summary = full[: full.index("<details>")]
    assert cut.startswith(summary) and cut.startswith(MARKER)
    assert cut.count("<details>") == cut.count("</details>") >= 1
    entries = lambda comment: sum(line.startswith("- ") for line in comment[len(summary) :].splitlines())  # noqa: E731
    note = cut.splitlines()[-1]
    assert note.startswith("_Detail entries: ") and "to stay under GitHub's comment limit" in note
    left_out = re.search(r"(\d+) left out", note)
    assert left_out and entries(cut) + int(left_out[1]) == entries(full)
    assert "changed path(s), not shown" in cut  # entries that did not fit whole are shortened first


def test_details_that_do_not_fit_whole_are_shortened_before_any_is_left_out(base):
    head = copy.deepcopy(base)
    for i, res in enumerate(head["resources"]):
        res["inputs"].update({f"synthetic{k}": f"value {i} {k} " + "x" * 150 for k in range(30)})
    diff = diff_plans(base, head)
    cut = markdown(diff)
    assert len(cut.encode()) < LIMIT
    assert cut.count("- **changed** ") == len(diff.resources) == len(base["resources"])  # all listed
    assert re.search(r"_Detail entries: \d+ shown without their changed paths, to stay", cut)


def test_code_spans_hold_backticks():
    assert code("a`b") == "`` a`b ``"  # CommonMark strips one space on each side
    assert code("`x`") == "`` `x` ``"
    assert code("two\nlines") == "`two lines`"


def test_value_paths():
    before = {
        "containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}],
        "policy": json.dumps({"Statement": [{"Action": ["s3:GetObject"]}]}),
        "labels": {"app.kubernetes.io/name": "old"},
        "types": ["g6"],
    }
    after = {
        "containers": [{"name": "b", "image": "y:2"}, {"name": "a", "image": "x:1"}],
        "policy": json.dumps({"Statement": [{"Action": ["s3:GetObject", "s3:PutObject"]}]}),
        "labels": {},
        "types": ["g6", "g6e"],
    }
    assert [(c.path, c.before, c.after) for c in diff_values(before, after, "")] == [
        ("containers(order)", ["a", "b"], ["b", "a"]),
        ("containers[name=b].image", "y:1", "y:2"),
        ('labels["app.kubernetes.io/name"]', "old", MISSING),
        ("policy.Statement[0].Action", ["s3:GetObject"], ["s3:GetObject", "s3:PutObject"]),
        ("types", ["g6"], ["g6", "g6e"]),
    ]


# --- bad input: exit 2 -----------------------------------------------------------------------


def test_plans_of_two_stacks_are_refused_unless_allowed(base):
    other = copy.deepcopy(base)
    other["stack"] = "staging"
    with pytest.raises(LlmopsError, match="--allow-stack-change") as err:
        diff_plans(base, other)
    assert err.value.exit_code == EXIT_USAGE
    assert diff_plans(base, other, allow_stack_change=True).head_stack == "staging"


@pytest.mark.parametrize("side", ["base", "head"])
@pytest.mark.parametrize(
    ("case", "content", "expected"),
    [
        ("missing", None, "no such file"),
        ("directory", "dir", "is a directory"),
        ("not-json", "{not json", "not JSON"),
        ("not-a-plan", '{"resources": {}}', "resources: must be a list"),
    ],
)
def test_bad_plan_files_exit_2_with_one_line(side, case, content, expected, base, tmp_path, capsys):
    good = write(tmp_path, "good.json", {"stack": "dev", "resources": []})
    bad = tmp_path / f"{case}.json"
    if content == "dir":
        bad.mkdir()
    elif content is not None:
        bad.write_text(content)
    argv = ["diff", str(bad), str(good)] if side == "base" else ["diff", str(good), str(bad)]
    code_, out, err = run_cli(argv, capsys)
    assert code_ == EXIT_USAGE and out == ""
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {bad}: ") and expected in err


def test_stacks_that_differ_exit_2_from_the_cli(tmp_path, capsys):
    dev = write(tmp_path, "dev.json", {"stack": "dev", "resources": []})
    prod = write(tmp_path, "prod.json", {"stack": "prod", "resources": []})
    code_, _, err = run_cli(["diff", str(dev), str(prod)], capsys)
    assert code_ == EXIT_USAGE and len(err.splitlines()) == 1 and "--allow-stack-change" in err
    code_, out, _ = run_cli(["diff", str(dev), str(prod), "--allow-stack-change", "--markdown"], capsys)
    assert code_ == EXIT_OK and out.startswith(MARKER + "\n") and "`dev → prod`" in out


def test_limit_shrinks_the_comment_for_one_of_several_stacks(base, head, tmp_path, capsys):
    argv = ["diff", str(write(tmp_path, "base", base)), str(write(tmp_path, "head", head)), "--markdown"]
    code, comment, _ = run_cli([*argv, "--limit", "6000"], capsys)
    assert code == 0 and comment.startswith(MARKER) and len(comment.encode()) < 6000
    assert "| resources |" in comment  # the summary stays whole
    code, _, err = run_cli([*argv, "--limit", "100"], capsys)
    assert code == 2 and "a number of bytes from 4096 to 65536" in err
