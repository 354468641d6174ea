"""`llmops plan STACK`: the offline plan of a stack.

Prints what the program declares (per component and type), what is exposed publicly and how the
gateway is reached, the monthly cost estimate, the policy pack's verdicts and the contracts between
components (`llmops verify`); writes build/STACK/plan.json and every Kubernetes object as YAML.
Exits 1 when a mandatory policy is violated or a contract is broken.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import yaml

from llmops import PROJECT_DIR, estimate, policy, verify
from llmops.errors import EXIT_NOT_FOUND, EXIT_OK, LlmopsError
from llmops.offline import SECRET_MASK, RecordedPlan, run_program
from llmops.settings import StackSettings, TeamSettings, from_config, load_teams, read_stack_file
from llmops.settings import bootstrap as bootstrap_settings

STACKS_DIR = PROJECT_DIR / "stacks"
BOOTSTRAP_DIR = PROJECT_DIR / "bootstrap"  # the once-per-account project (its own program and stacks)
STACK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # Pulumi's stack-name characters; no "." or ".."
# Pulumi resources in the kubernetes package that are not Kubernetes objects.
NOT_MANIFESTS = ("kubernetes:helm.sh/", "pulumi:providers:")


@dataclass
class PlanResult:
    stack: str
    settings: StackSettings | bootstrap_settings.BootstrapSettings
    plan: RecordedPlan
    out_dir: Path
    estimate: estimate.Estimate
    violations: list  # of llmops.policy.Violation
    findings: list  # of llmops.verify.Finding: broken contracts between components
    teams: list[TeamSettings]

    @property
    def mandatory_violations(self) -> list:
        return [v for v in self.violations if v.level == "mandatory"]


def resolve_stack(stack: str) -> tuple[str, Path]:
    """A stack name in stacks/ (or bootstrap/) or a path to a stack file -> (stack name, file).

    A bare name (no .yaml/.yml suffix, no directory part, not an existing file) names a stack in
    stacks/, else one of the bootstrap project (`llmops plan bootstrap`), even where a directory of
    that name exists (`llmops plan dev` inside build/). The file is read later (llmops/inputs.py
    says what is wrong with a directory or a binary file).
    """
    path = Path(stack)
    known = sorted(p.stem.removeprefix("Pulumi.") for p in STACKS_DIR.glob("Pulumi.*.yaml"))
    bootstrap = sorted(p.stem.removeprefix("Pulumi.") for p in BOOTSTRAP_DIR.glob("Pulumi.*.yaml"))
    names = ", ".join(known) + (f" (bootstrap project: {', '.join(bootstrap)})" if bootstrap else "")
    if path.suffix not in (".yaml", ".yml") and path.name == stack and not path.is_file():
        path = STACKS_DIR / f"Pulumi.{stack}.yaml"
        if not path.is_file():
            path = BOOTSTRAP_DIR / f"Pulumi.{stack}.yaml"
        if not path.is_file():
            raise LlmopsError(f"no stack {stack!r}: choose one of {names} or give a stack file path")
        return stack, path
    if not path.exists():
        raise LlmopsError(f"{stack}: no such stack file; give a stack name ({names}) or a stack file path")
    name = path.stem.removeprefix("Pulumi.")
    if not path.is_dir() and not STACK_NAME.match(name):  # the name becomes BUILD_DIR/<name>/
        raise LlmopsError(
            f"{stack}: no stack name in the file name ({name!r}); name the file Pulumi.<stack>.yaml"
        )
    return name, path


def is_bootstrap(path: Path, config: dict) -> bool:
    """A stack file of the bootstrap project: in bootstrap/, or keyed in its namespace."""
    in_project = path.resolve().parent == BOOTSTRAP_DIR
    return in_project or any(k.startswith(f"{bootstrap_settings.NAMESPACE}:") for k in config)


def run(stack: str, build_dir: Path) -> PlanResult:
    name, path = resolve_stack(stack)
    config = read_stack_file(path)
    if is_bootstrap(path, config):  # bootstrap/__main__.py, with its own settings and no teams
        settings = bootstrap_settings.from_config(config, source=str(path))  # exit 2, every problem
        teams: list[TeamSettings] = []
        main, project = BOOTSTRAP_DIR / "__main__.py", bootstrap_settings.PROJECT
        plan = run_program(name, config, settings.region, program=main, project=project)
    else:
        settings = from_config(config, source=str(path))  # exit 2 with every problem, before any resource
        teams_dir = path.parent / "teams"  # the team files beside the stack file (stacks/teams/)
        teams = load_teams(settings, teams_dir)  # exit 2 naming each file and key
        plan = run_program(name, config, settings.region, {"LLMOPS_TEAMS_DIR": str(teams_dir)})
    plan.settings = {
        "environment": settings.environment,
        "region": settings.region,
        "dataClassification": settings.data_classification,
        "allowedRegions": list(settings.allowed_regions),
    }
    if isinstance(settings, StackSettings):  # what the cost estimate assumes about usage
        plan.settings["costAssumptions"] = settings.cost_assumptions.model_dump(by_alias=True)
    out_dir = build_dir / name
    try:
        write_outputs(plan, out_dir)
        write_teams(teams, settings.environment, out_dir / "teams")
    except OSError as err:  # --build-dir is a file, read-only, ...
        where = err.filename or out_dir
        raise LlmopsError(
            f"{where}: cannot write the plan ({err.strerror or err}); pass a writable --build-dir"
        ) from None
    doc = plan.to_dict()
    config = policy.stack_config(name, settings.data_classification, list(settings.allowed_regions))
    violations = policy.evaluate_plan(doc, config)
    findings = verify.verify_plan(doc)
    cost = estimate.estimate(doc)
    cost.warnings += availability_warnings(settings)
    write_cost(cost, out_dir)
    return PlanResult(name, settings, plan, out_dir, cost, violations, findings, teams)


def availability_warnings(settings) -> list[str]:
    """GPU pools that allow types the stack's region does not offer (none offered is a settings error)."""
    if not isinstance(settings, StackSettings):
        return []
    from llmops.settings.infra import unavailable_types

    out = []
    for pool in settings.gpu_pools:
        missing = unavailable_types(pool, settings.region)
        if missing:
            where = f"GPU pool {pool.name} allows types not offered in {settings.region}"
            out.append(f"{where}: {', '.join(missing)}")
    return out


def write_cost(cost: estimate.Estimate, out_dir: Path) -> None:
    """build/STACK/cost.json: every line with its quantity, unit price, region, source and
    assumption, and the totals `llmops plan` prints (llmops diff and CI read it)."""
    (out_dir / "cost.json").write_text(json.dumps(cost.to_dict(), indent=2) + "\n")


def write_teams(teams: list[TeamSettings], environment: str, out_dir: Path) -> None:
    """build/STACK/teams/<name>.json: each team as LiteLLM's /team/new takes it (what the
    reconciler applies; components/team.py desired_team)."""
    from components.team import desired_team  # the program's own definition

    shutil.rmtree(out_dir, ignore_errors=True)  # a removed team leaves no stale file
    out_dir.mkdir(parents=True, exist_ok=True)
    for team in teams:
        text = json.dumps(desired_team(team, environment), indent=2, sort_keys=True)
        (out_dir / f"{team.name}.json").write_text(text + "\n")


def manifests(plan: RecordedPlan) -> list[dict]:
    """Every Kubernetes object the program declares, as it would be applied."""
    return [
        _masked_secret_shape(r["inputs"])
        for r in plan.resources
        if r["type"].startswith("kubernetes:") and not r["type"].startswith(NOT_MANIFESTS)
    ]


def _masked_secret_shape(obj: dict) -> dict:
    """A Secret whose whole data map is secret is recorded as one mask; write it back as a
    map (still masked) so the manifest keeps the shape the Kubernetes schema requires."""
    if obj.get("kind") != "Secret":
        return obj
    shaped = dict(obj)
    if shaped.get("stringData") == SECRET_MASK:
        shaped["stringData"] = {"masked": SECRET_MASK}
    if shaped.get("data") == SECRET_MASK:  # data values are base64
        shaped["data"] = {"masked": base64.b64encode(SECRET_MASK.encode()).decode()}
    return shaped


def manifest_filename(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace", "cluster")
    return f"{obj['kind']}-{namespace}-{meta.get('name', 'unnamed')}.yaml".lower()


def write_outputs(plan: RecordedPlan, out_dir: Path) -> None:
    if out_dir.exists():
        shutil.rmtree(out_dir)  # stale manifests of removed objects must not linger
    (out_dir / "manifests").mkdir(parents=True)
    (out_dir / "plan.json").write_text(json.dumps(plan.to_dict(), indent=2, sort_keys=True) + "\n")
    for obj in manifests(plan):
        (out_dir / "manifests" / manifest_filename(obj)).write_text(yaml.safe_dump(obj, sort_keys=False))
    for obj in manifests(plan):
        # The LiteLLM config (no secret values in it: credentials are os.environ/ references).
        if (
            obj.get("kind") == "ConfigMap"
            and (obj["metadata"].get("labels") or {}).get("app.kubernetes.io/name") == "litellm"
        ):
            (out_dir / "gateway").mkdir(exist_ok=True)
            (out_dir / "gateway" / "config.yaml").write_text(obj["data"]["config.yaml"])


def component_of(resource: dict, by_name: dict[str, dict]) -> str:
    """The platform component (a direct child of the Platform) a resource belongs to."""
    current = resource
    while current.get("parent") in by_name:
        parent = by_name[current["parent"]]
        if parent["type"] == "llmops:platform:Platform":
            return current["name"].removeprefix(parent["name"] + "-")
        current = parent
    return "platform"


def exposure(plan: RecordedPlan) -> list[str]:
    """Everything reachable from, or addressed to, the internet."""
    found = []
    # Interfaces with an Elastic IP, and those that forward (a NAT instance's: source/dest check off).
    addressed = {r["inputs"].get("networkInterface") for r in plan.of_type("aws:ec2/eip:Eip")}
    forwarding = {
        r["id"]
        for r in plan.of_type("aws:ec2/networkInterface:NetworkInterface")
        if r["inputs"].get("sourceDestCheck") is False
    }
    for r in plan.resources:
        inputs, type_ = r["inputs"], r["type"]
        if type_ == "aws:eks/cluster:Cluster" and inputs.get("vpcConfig", {}).get("endpointPublicAccess"):
            cidrs = ", ".join(inputs["vpcConfig"].get("publicAccessCidrs") or ["0.0.0.0/0"])
            found.append(f"EKS API endpoint {inputs.get('name')}: public, from {cidrs}")
        elif type_ == "aws:ec2/natGateway:NatGateway":
            found.append(f"NAT gateway {r['name']}: public IP, outbound only")
        elif type_ == "aws:ec2/instance:Instance":
            eni = (inputs.get("primaryNetworkInterface") or {}).get("networkInterfaceId")
            if eni in forwarding and eni in addressed:
                found.append(
                    f"NAT instance {r['name']} ({inputs.get('instanceType')}): public IP, outbound only, "
                    "a server you patch"
                )
            elif eni in addressed or inputs.get("associatePublicIpAddress"):
                found.append(f"instance {r['name']}: public IP")
        elif type_ == "aws:lb/loadBalancer:LoadBalancer" and not inputs.get("internal"):
            found.append(f"load balancer {r['name']}: internet-facing")
        elif type_ == "kubernetes:core/v1:Service" and inputs.get("spec", {}).get("type") == "LoadBalancer":
            scheme = (inputs.get("metadata", {}).get("annotations") or {}).get(
                "service.beta.kubernetes.io/aws-load-balancer-scheme", "internet-facing"
            )
            if scheme != "internal":
                found.append(f"Service {inputs['metadata'].get('name')}: internet-facing load balancer")
        elif type_ == "aws:ec2/securityGroup:SecurityGroup":
            for rule in inputs.get("ingress") or []:
                if "0.0.0.0/0" in (rule.get("cidrBlocks") or []):
                    found.append(
                        f"security group {r['name']}: ingress from 0.0.0.0/0 on port {rule.get('fromPort')}"
                    )
    return found


def gateway_access(plan: RecordedPlan) -> list[str]:
    """How clients reach the gateway: URL, listener, TLS, DNS and who may connect."""
    found = []
    for svc in plan.resources:
        inputs = svc["inputs"]
        if (
            svc["type"] != "kubernetes:core/v1:Service"
            or (inputs.get("spec") or {}).get("type") != "LoadBalancer"
        ):
            continue
        meta, spec = inputs.get("metadata") or {}, inputs.get("spec") or {}
        scheme = (meta.get("annotations") or {}).get(
            "service.beta.kubernetes.io/aws-load-balancer-scheme", "internet-facing"
        )
        ports = ", ".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
        sources = ", ".join(spec.get("loadBalancerSourceRanges") or ["anywhere"])
        found.append(
            f"Service {meta.get('namespace')}/{meta.get('name')}: {scheme} NLB on {ports}, from {sources}"
        )
    url, ca = plan.outputs.get("gatewayUrl"), plan.outputs.get("gatewayCaCertificate")
    if url:
        tls = next((r for r in plan.resources if r["type"] == "tls:index/certRequest:CertRequest"), None)
        names = ", ".join((tls or {}).get("inputs", {}).get("dnsNames") or [])
        found.append(f"URL {url}: TLS terminated by LiteLLM in the pod (TCP passthrough at the NLB)")
        if names:
            found.append(f"certificate for {names}, issued by the stack's CA (output gatewayCaCertificate)")
        zones = [r["inputs"].get("name") for r in plan.resources if r["type"] == "aws:route53/zone:Zone"]
        if zones:
            found.append(f"DNS: Route 53 private zone {', '.join(zones)}, associated with the VPC")
        if not ca:
            found.append("no CA certificate output: clients cannot verify the gateway")
    return found


def summary(result: PlanResult) -> list[str]:
    plan, settings = result.plan, result.settings
    by_name = {r["name"]: r for r in plan.resources if r["type"].startswith("llmops:")}
    groups: dict[str, Counter] = defaultdict(Counter)
    for r in plan.resources:
        if not r["type"].startswith("llmops:"):
            groups[component_of(r, by_name)][r["type"]] += 1
    out = [
        f"Stack {result.stack}: {settings.region}, data classification {settings.data_classification}, "
        f"{len(plan.resources)} resources",
        "",
    ]
    for component in sorted(groups):
        out.append(f"{component} ({sum(groups[component].values())})")
        out += [f"  {count:>3}  {type_}" for type_, count in sorted(groups[component].items())]
    out += ["", "Exposed to the internet:"]
    out += [f"  {line}" for line in exposure(plan)] or ["  nothing"]
    out += ["", "How the gateway is reached:"]
    out += [f"  {line}" for line in gateway_access(plan)] or ["  no gateway"]
    out += ["", *estimate.render(result.estimate), ""]
    out += ["Policy pack:", policy.format_violations(result.violations, settings.data_classification), ""]
    out += ["Contracts between components (llmops verify):", verify.format_findings(result.findings), ""]
    out += [
        f"Wrote {result.out_dir}/plan.json, {result.out_dir}/cost.json and "
        f"{len(manifests(plan))} manifests under {result.out_dir}/manifests/",
    ]
    return out


def _cmd(args) -> int:
    result = run(args.stack, Path(args.build_dir))
    print("\n".join(summary(result)))
    failed = False
    if result.mandatory_violations:
        print(f"error: {len(result.mandatory_violations)} mandatory policy violation(s)", file=sys.stderr)
        failed = True
    if result.findings:
        print(f"error: {len(result.findings)} broken contract(s) between components", file=sys.stderr)
        failed = True
    return EXIT_NOT_FOUND if failed else EXIT_OK


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="offline plan of a stack: resources, exposure, cost; writes build/STACK/",
        description=__doc__,
    )
    parser.add_argument("stack", help="stack name in stacks/ (dev, staging, prod) or path to a stack file")
    parser.add_argument("--build-dir", default="build", help="where STACK/ is written (default: build)")
    parser.set_defaults(func=_cmd)


__all__ = ["PlanResult", "add_parser", "from_config", "manifests", "run"]
