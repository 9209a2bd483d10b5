"""Is head slower than base? The statistics of an interleaved A/B benchmark run.

``benches/check.py`` runs the base and the head suites alternately, round after round, on
the same machine. Round ``i`` gives one figure per side (a benchmark's minimum, say); the two
figures of a round were measured a few seconds apart, so whatever slowed the machine then
(another process, a frequency change) slowed both. The comparison therefore works on the
**paired** log-ratios ``d_i = log(head_i / base_i)``, one per round:

* the estimate is the Hodges-Lehmann estimator, the median of the Walsh averages
  ``(d_i + d_j) / 2`` for ``i <= j``: a median, so one round disturbed on one side only
  does not move it much, yet smoother than the plain median of few values;
* its confidence interval is the distribution-free one that goes with the Wilcoxon
  signed-rank test (order statistics of the Walsh averages, chosen from the exact
  null distribution of the signed-rank statistic): it assumes only that the round-to-round
  noise of ``d`` is symmetric, not that it is normal. It needs enough rounds: at 90%
  two-sided, 5 rounds (the interval is then [min d, max d]); at 95%, 6.

A benchmark is a **regression** when the estimated ratio is at least ``1 + threshold`` AND
the whole interval lies above 1 (the slowdown is both large enough to matter and not
explained by noise) AND the best figure of all head's rounds is at least ``1 + threshold``
times the best of base's. That last guard is for a saturated machine: other processes only
ever add time, so each side's best round is the one least disturbed, and a real slowdown
shows there too; when the machine was busier during most of one side's runs, every
paired ratio moves together (the interval cannot tell) but the two best rounds still
agree. The symmetric rule flags an **improvement**.

Everything here is deterministic: no resampling, no random seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from statistics import median

__all__ = [
    "Comparison",
    "Verdict",
    "compare_paired",
    "hodges_lehmann",
    "signed_rank_ci",
    "signed_rank_lower_tail",
]


class Verdict(StrEnum):
    SAME = "same"  # no slowdown or speed-up that is both large and clear of noise
    REGRESSION = "regression"
    IMPROVEMENT = "improvement"
    TOO_FEW = "too few rounds"  # no interval at this confidence with so few rounds


@dataclass(frozen=True)
class Comparison:
    """Head/base as a ratio (1.10 = head 10% slower), with its confidence interval."""

    rounds: int
    ratio: float
    low: float
    high: float
    confidence: float  # the interval's exact coverage (>= the level asked for)
    best_ratio: float  # min(head) / min(base) over all rounds
    verdict: Verdict


@cache
def _signed_rank_counts(n: int) -> tuple[int, ...]:
    """``counts[t]``: how many of the ``2**n`` sign patterns give signed-rank sum ``t``
    (the exact null distribution of Wilcoxon's ``T+`` for ``n`` values without ties)."""
    counts = [1] + [0] * (n * (n + 1) // 2)
    for rank in range(1, n + 1):
        for t in range(len(counts) - 1, rank - 1, -1):
            counts[t] += counts[t - rank]
    return tuple(counts)


def signed_rank_lower_tail(n: int, c: int) -> float:
    """``P(T+ <= c)`` under the null hypothesis, for ``n`` values."""
    counts = _signed_rank_counts(n)
    return sum(counts[: c + 1]) / 2**n


def _walsh_averages(d: Sequence[float]) -> list[float]:
    return sorted((d[i] + d[j]) / 2 for i in range(len(d)) for j in range(i, len(d)))


def hodges_lehmann(d: Sequence[float]) -> float:
    """The median of the Walsh averages of ``d``."""
    if not d:
        raise ValueError("no values")
    return median(_walsh_averages(d))


def signed_rank_ci(d: Sequence[float], level: float = 0.90) -> tuple[float, float, float] | None:
    """The two-sided ``level`` interval for the centre of ``d``'s symmetric distribution:
    ``(low, high, exact coverage)``, or None when ``len(d)`` is too small to reach it.

    With ``N = n(n+1)/2`` sorted Walsh averages ``W``, the interval is
    ``[W[c], W[N-1-c]]`` for the largest ``c`` with ``P(T+ <= c) <= (1-level)/2``.
    """
    if not 0 < level < 1:
        raise ValueError("level must be between 0 and 1")
    n = len(d)
    alpha_half = (1 - level) / 2
    if n == 0 or signed_rank_lower_tail(n, 0) > alpha_half:
        return None
    c = 0
    while signed_rank_lower_tail(n, c + 1) <= alpha_half:
        c += 1
    w = _walsh_averages(d)
    return w[c], w[len(w) - 1 - c], 1 - 2 * signed_rank_lower_tail(n, c)


def compare_paired(
    base: Sequence[float],
    head: Sequence[float],
    threshold: float = 0.10,
    level: float = 0.90,
) -> Comparison:
    """Compare ``head`` with ``base``, figures of the same rounds in the same order (times:
    lower is better). See the module's docstring for the method and the verdict."""
    if len(base) != len(head):
        raise ValueError("base and head need one figure per round each")
    if any(x <= 0 for x in (*base, *head)):
        raise ValueError("figures must be positive")
    d = [math.log(h / b) for b, h in zip(base, head, strict=True)]
    if not d:
        raise ValueError("no rounds")
    ratio = math.exp(hodges_lehmann(d))
    best = min(head) / min(base)
    ci = signed_rank_ci(d, level)
    if ci is None:
        return Comparison(len(d), ratio, math.nan, math.nan, 0.0, best, Verdict.TOO_FEW)
    low, high = math.exp(ci[0]), math.exp(ci[1])
    if ratio >= 1 + threshold and low > 1 and best >= 1 + threshold:
        verdict = Verdict.REGRESSION
    elif ratio <= 1 / (1 + threshold) and high < 1 and best <= 1 / (1 + threshold):
        verdict = Verdict.IMPROVEMENT
    else:
        verdict = Verdict.SAME
    return Comparison(len(d), ratio, low, high, ci[2], best, verdict)
