"""Every chart and EKS add-on the shipped plans deploy is checked against upstream facts
(tests/facts/upstream.yaml), and those facts say where they come from."""

from __future__ import annotations

import pytest
from conftest import inputs_of
from upstream_facts import addon_problems, admits, chart_problems, facts, kubernetes_version


def test_every_chart_and_addon_in_the_plans_matches_upstream(plans):
    """A chart or add-on added later without upstream facts fails here."""
    problems = []
    for name, result in plans.items():
        kubernetes = kubernetes_version(result)
        for chart in inputs_of(result, "kubernetes:helm.sh/v4:Chart"):
            problems += [f"{name}: {p}" for p in chart_problems(chart, kubernetes)]
        for addon in inputs_of(result, "aws:eks/addon:Addon"):
            problems += [
                f"{name}: {p}" for p in addon_problems(addon["addonName"], addon["addonVersion"], kubernetes)
            ]
    assert not problems, "\n".join(problems)


def test_every_fact_names_its_source():
    for name, chart in facts()["helm_charts"].items():
        assert chart["repository_source"], name
        assert all(r["source"] for r in chart["releases"]), name
        assert not chart.get("kubernetes_support") or chart["kubernetes_support"]["source"], name
    for name, addon in facts()["eks_addons"].items():
        assert all(e["source"] for entries in addon.get("listed", {}).values() for e in entries), name
        assert not addon.get("upstream") or addon["upstream"]["tags"], name
        assert addon.get("upstream") or addon.get("listed"), name


@pytest.mark.parametrize(
    ("constraint", "admitted"),
    [
        (None, True),
        (">= 1.19.0-0", True),
        (">=v1.23.0-0", True),
        (">=1.20.0 <1.35.0", True),
        (">=1.20.0, <1.34.5", False),  # must admit every 1.34 patch release
        ("<1.34.0-0", False),
        (">=1.35.0-0", False),
        ("<1.30 || >=1.34", True),
    ],
)
def test_kube_version_constraints(constraint, admitted):
    assert admits(constraint, "1.34") is admitted


def test_an_unknown_constraint_form_is_an_error():
    with pytest.raises(ValueError):
        admits("~1.34", "1.34")
