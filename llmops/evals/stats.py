"""The paired comparison of a candidate with its baseline on the same cases.

Each case passes or fails under both versions. Only the discordant cases carry information
(McNemar): `worsened` (baseline passed, candidate failed) and `improved` (the reverse). Under the
null hypothesis that the candidate is no worse, a discordant case is equally likely to go either
way, so the number worsened among n = worsened + improved is Binomial(n, 1/2). The exact
one-sided p-value is P(X >= worsened): McNemar's exact test, which is the sign test on the
discordant pairs. It is computed with integers (math.comb), so small tables get exact values.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import comb

ALPHA = 0.05


def sign_test_p(worsened: int, improved: int) -> float:
    """One-sided exact p-value that the candidate is worse: P(X >= worsened), X ~ Bin(n, 1/2)."""
    if worsened < 0 or improved < 0:
        raise ValueError("counts must be >= 0")
    n = worsened + improved
    tail = sum(comb(n, k) for k in range(worsened, n + 1))
    return float(Fraction(tail, 2**n))


@dataclass(frozen=True)
class Comparison:
    worsened: list[str]
    improved: list[str]
    p_value: float

    @property
    def regressed(self) -> bool:
        """Significantly worse: p < ALPHA and more cases worsened than improved."""
        return self.p_value < ALPHA and len(self.worsened) > len(self.improved)


def compare(candidate: dict[str, bool], baseline: dict[str, bool]) -> Comparison:
    """Case id -> passed, for the cases both versions ran (others are ignored)."""
    both = [case for case in candidate if case in baseline]
    worsened = [c for c in both if baseline[c] and not candidate[c]]
    improved = [c for c in both if candidate[c] and not baseline[c]]
    return Comparison(worsened, improved, sign_test_p(len(worsened), len(improved)))
