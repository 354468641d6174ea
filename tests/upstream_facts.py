"""Checks of what the plan deploys against facts read from the upstream projects.

The pins come from the plan (chart, version and repository of each helm.sh/v4 Chart, addonName
and addonVersion of each EKS add-on, the EC2NodeClass AMI alias); the facts come from
tests/facts/upstream.yaml, read from upstream releases (tests/facts/SOURCE.md). Nothing here
reads llmops/versions.py. Each check returns the problems it found, so a test can assert none.
"""

from __future__ import annotations

import functools
import operator
import re
from pathlib import Path

import yaml

FACTS_FILE = Path(__file__).parent / "facts" / "upstream.yaml"


@functools.cache
def facts() -> dict:
    return yaml.safe_load(FACTS_FILE.read_text())


def numbers(version: str) -> tuple[int, ...]:
    """The numeric release of a version string: v1.20.4-eksbuild.2 -> (1, 20, 4)."""
    match = re.match(r"v?(\d+(?:\.\d+)*)", str(version))
    if not match:
        raise ValueError(f"not a version: {version!r}")
    return tuple(int(n) for n in match.group(1).split("."))


def minor(version: str) -> str:
    major, minor_, *_ = numbers(version)
    return f"{major}.{minor_}"


_COMPARISONS = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "=": operator.eq,
    "==": operator.eq,
    "!=": operator.ne,
}
_TERM = re.compile(r"(>=|<=|==|!=|>|<|=)?\s*(v?\d+(?:\.\d+)*(?:-[0-9A-Za-z.]+)?)")


def admits(constraint: str | None, kubernetes_version: str) -> bool:
    """Whether a Helm kubeVersion constraint admits every patch release of a Kubernetes minor
    version. Understands comparisons joined by spaces or commas (AND) and `||` (OR), which is
    all the recorded charts use; anything else raises, so a new form is noticed."""
    if not constraint:
        return True
    major, minor_ = numbers(kubernetes_version)[:2]

    def all_hold(conjunction: str, version: tuple[int, ...]) -> bool:
        terms = list(_TERM.finditer(conjunction))
        if not terms or _TERM.sub("", conjunction).replace(",", "").strip():
            raise ValueError(f"kubeVersion not understood: {constraint!r}")
        for term in terms:
            bound = numbers(term.group(2))
            if not _COMPARISONS[term.group(1) or "="](version, bound + (0,) * (3 - len(bound))):
                return False
        return True

    alternatives = constraint.split("||")
    return all(
        any(all_hold(alt, patch) for alt in alternatives)
        for patch in ((major, minor_, 0), (major, minor_, 999))
    )


def kubernetes_version(result) -> str:
    """The Kubernetes version the plan gives the EKS cluster (llmops:cluster.kubernetesVersion)."""
    (cluster,) = result.plan.of_type("aws:eks/cluster:Cluster")
    return cluster["inputs"]["version"]


def _in_window(window: dict, kubernetes_version: str) -> bool:
    return numbers(window["min"]) <= numbers(kubernetes_version)[:2] <= numbers(window["max"])


# --- Helm charts ---------------------------------------------------------------------------------


def chart_identity(inputs: dict) -> tuple[str, str | None]:
    """(chart name, repository) of a planned helm.sh/v4 Chart; an OCI chart is its own repository."""
    ref = inputs["chart"]
    if ref.startswith("oci://"):
        return ref.rstrip("/").rsplit("/", 1)[-1], ref
    return ref, (inputs.get("repositoryOpts") or {}).get("repo")


def chart_release(inputs: dict) -> dict | None:
    name, _ = chart_identity(inputs)
    known = facts()["helm_charts"].get(name) or {}
    return next((r for r in known.get("releases", []) if str(r["version"]) == inputs["version"]), None)


def chart_problems(inputs: dict, kubernetes_version: str) -> list[str]:
    """The planned chart is a published upstream release (name and version from its Chart.yaml at
    the release tag), comes from the chart's documented repository, and its kubeVersion
    constraint admits the cluster's Kubernetes version."""
    name, repository = chart_identity(inputs)
    known = facts()["helm_charts"].get(name)
    if known is None:
        return [f"{name}: no upstream facts recorded in {FACTS_FILE.name}"]
    problems = []
    if repository != known["repository"]:
        problems.append(
            f"{name}: repository {repository!r} is not the documented {known['repository']!r} "
            f"({known['repository_source']})"
        )
    release = chart_release(inputs)
    if release is None:
        recorded = [str(r["version"]) for r in known["releases"]]
        problems.append(
            f"{name} {inputs['version']}: no such upstream release recorded (recorded: {recorded})"
        )
        return problems
    if release["name"] != name:
        problems.append(f"{name} {inputs['version']}: the upstream Chart.yaml names {release['name']!r}")
    if not admits(release.get("kubeVersion"), kubernetes_version):
        problems.append(
            f"{name} {inputs['version']}: kubeVersion {release['kubeVersion']!r} excludes "
            f"Kubernetes {kubernetes_version}"
        )
    return problems


def chart_support_problems(inputs: dict, kubernetes_version: str) -> list[str]:
    """The project's own compatibility matrix, for the chart's app version, covers the cluster's
    Kubernetes version (charts whose project publishes one)."""
    name, _ = chart_identity(inputs)
    release = chart_release(inputs)
    support = facts()["helm_charts"].get(name, {}).get("kubernetes_support")
    if release is None or support is None:
        return [f"{name} {inputs['version']}: no upstream compatibility matrix recorded"]
    app_minor = minor(release["appVersion"])
    window = support["windows"].get(app_minor)
    if window is None:
        return [f"{name} {app_minor}: not in the recorded compatibility matrix ({support['source']})"]
    if not _in_window(window, kubernetes_version):
        return [
            f"{name} {app_minor} supports Kubernetes {window['min']}-{window['max']}, not "
            f"{kubernetes_version} ({support['source']})"
        ]
    return []


# --- EKS add-ons ---------------------------------------------------------------------------------


def addon_problems(name: str, version: str, kubernetes_version: str) -> list[str]:
    """An independent record lists the add-on version for the cluster's Kubernetes version, the
    upstream release it is built from exists, and version-skew rules hold where recorded."""
    known = facts()["eks_addons"].get(name)
    if known is None:
        return [f"{name}: no upstream facts recorded in {FACTS_FILE.name}"]
    problems = []
    listed = [entry["version"] for entry in (known.get("listed") or {}).get(kubernetes_version, [])]
    if version not in listed and not known.get("listing_unverified"):
        problems.append(
            f"{name} {version}: not listed for Kubernetes {kubernetes_version} (listed: {listed})"
        )
    upstream = known.get("upstream")
    if upstream:
        release = ".".join(str(n) for n in numbers(version)[:3])
        tag = upstream["tag_format"].format(release=release)
        if tag not in upstream["tags"]:
            problems.append(f"{name} {version}: no upstream release {upstream['repo']}@{tag} recorded")
    skew = known.get("skew")
    if skew:
        gap = numbers(kubernetes_version)[1] - numbers(version)[1]
        if numbers(version)[0] != numbers(kubernetes_version)[0] or not (
            -skew["newer_than_cluster"] <= gap <= skew["older_than_cluster"]
        ):
            problems.append(
                f"{name} {version}: outside the version skew allowed for Kubernetes {kubernetes_version}"
            )
    since = known.get("pod_identity_since")
    if since and numbers(version) < numbers(since):
        problems.append(f"{name} {version}: EKS Pod Identity needs {since} or later")
    return problems


# --- AMI aliases ---------------------------------------------------------------------------------


def ami_alias_problems(alias: str, ami_family: str, kubernetes_version: str) -> list[str]:
    """A Karpenter alias (family@version) names the family of the configured OS and a pinned
    upstream release that ships a GPU image for the cluster's Kubernetes version."""
    aliases = facts()["ami_aliases"]
    family, _, version = alias.partition("@")
    if family != aliases["families"].get(ami_family):
        return [f"{alias}: family {family!r} is not Karpenter's alias family for {ami_family}"]
    known = aliases[family]
    release = known["releases"].get(version)
    if release is not None:
        if not release["gpu_amis"].get(kubernetes_version):
            return [f"{alias}: release {version} has no GPU AMI for Kubernetes {kubernetes_version}"]
        return []
    since = (known.get("gpu_variant_since") or {}).get(kubernetes_version)
    if since is None:
        return [f"{alias}: release {version} not recorded for {known['repo']}"]
    if not re.fullmatch(r"v\d+\.\d+\.\d+", version) or numbers(version) < numbers(since["release"]):
        return [
            f"{alias}: {known['repo']} has a Kubernetes {kubernetes_version} GPU variant only since "
            f"{since['release']}"
        ]
    return []
