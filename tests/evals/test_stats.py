"""The paired test against values computed independently: binomial tails worked out by hand and
enumerated outcome by outcome from the definition (scipy is not installed here)."""

from __future__ import annotations

import itertools

import pytest

from llmops.evals.stats import compare, sign_test_p


def enumerated_tail(worsened: int, improved: int) -> float:
    """P(at least `worsened` of n fair coin flips land "worsened"), counting all 2^n outcomes."""
    n = worsened + improved
    hits = sum(1 for flips in itertools.product((0, 1), repeat=n) if sum(flips) >= worsened)
    return hits / 2**n


@pytest.mark.parametrize(
    ("worsened", "improved", "p"),
    [
        (5, 0, 0.03125),  # 1/32: the smallest table that is significant with nothing improved
        (4, 0, 0.0625),  # 1/16: four worsened of four is not enough at 0.05
        (6, 0, 0.015625),
        (8, 2, 56 / 1024),  # (C(10,8) + C(10,9) + C(10,10)) / 2^10 = 0.0546875
        (9, 1, 11 / 1024),  # 0.0107421875
        (0, 0, 1.0),  # no discordant case: no evidence either way
        (0, 5, 1.0),
        (3, 3, 42 / 64),
    ],
)
def test_known_tables(worsened, improved, p):
    assert sign_test_p(worsened, improved) == pytest.approx(p, rel=1e-12)


@pytest.mark.parametrize(("worsened", "improved"), [(w, i) for w in range(9) for i in range(9)])
def test_every_small_table_matches_the_enumeration(worsened, improved):
    assert sign_test_p(worsened, improved) == pytest.approx(enumerated_tail(worsened, improved), rel=1e-12)


def test_regression_needs_significance_and_more_worsened():
    baseline = {f"c{i}": True for i in range(10)}
    five_broken = {**baseline, **{f"c{i}": False for i in range(5)}}
    result = compare(five_broken, baseline)
    assert result.worsened == ["c0", "c1", "c2", "c3", "c4"] and result.improved == []
    assert result.p_value == pytest.approx(0.03125) and result.regressed

    four_broken = {**baseline, **{f"c{i}": False for i in range(4)}}
    assert not compare(four_broken, baseline).regressed  # p = 0.0625

    # Improvements offset: 6 worsened, 1 improved gives p = 8/128 = 0.0625, not significant.
    mixed_base = {**{f"c{i}": True for i in range(6)}, "c6": False}
    mixed_cand = {**{f"c{i}": False for i in range(6)}, "c6": True}
    result = compare(mixed_cand, mixed_base)
    assert (len(result.worsened), len(result.improved)) == (6, 1)
    assert result.p_value == pytest.approx(7 / 128 + 1 / 128) and not result.regressed


def test_only_cases_both_ran_are_compared():
    result = compare(
        {"a": False, "b": True, "only-candidate": False}, {"a": True, "b": True, "only-base": True}
    )
    assert (result.worsened, result.improved) == (["a"], [])
