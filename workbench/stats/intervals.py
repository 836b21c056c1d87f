"""Intervals for a mean or a rate. A rate of 0/1 verdicts (an accuracy, a compliance) gets the exact
Clopper-Pearson interval: the percentile bootstrap of 12 successes in 12 is [1, 1], which claims a
certainty 12 prompts cannot give; Clopper-Pearson says [0.74, 1]. The bootstrap stays for means of
other values (a log-prob)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def bootstrap_ci(
    values: Sequence[float | int], n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """Mean and percentile bootstrap interval."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, (n_boot, x.size))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(x.mean()), float(lo), float(hi)


def upper_bound(k: int, n: int, confidence: float) -> float:
    """One-sided Clopper-Pearson upper bound on a rate seen ``k`` times in ``n``: the largest rate
    under which seeing at most ``k`` still has probability ≥ 1 − ``confidence`` (n = 0: 1)."""
    if n == 0 or k >= n:
        return 1.0
    return _rate_where(k, n, 1 - confidence, lo=k / n)[1]


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float, float]:
    """The rate ``k / n`` and its two-sided exact (Clopper-Pearson) interval: the rates under which
    seeing at least ``k`` (low) or at most ``k`` (high) has probability (1 − ``level``) / 2; low is 0
    where k = 0, high is 1 where k = n (n = 0: all NaN)."""
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    if not 0 <= k <= n:
        raise ValueError(f"k = {k} successes in n = {n} trials")
    tail = (1 - level) / 2
    low = 0.0 if k == 0 else _rate_where(k - 1, n, 1 - tail)[0]  # P(X ≥ k) = tail
    high = 1.0 if k == n else _rate_where(k, n, tail)[1]  # P(X ≤ k) = tail
    return k / n, low, high


def _rate_where(k: int, n: int, target: float, lo: float = 0.0) -> tuple[float, float]:
    """The rate p (bracketed, [lo, hi] after 60 bisections) at which P(X ≤ k) = ``target`` for
    X ~ Binomial(n, p), k < n. The terms are summed from their logarithms, so a large n neither
    overflows (C(n, i) beyond a float) nor loses the tail."""
    i = np.arange(k + 1)
    log_comb = np.concatenate(([0.0], np.cumsum(np.log((n - i[1:] + 1) / i[1:]))))
    at_most_k = lambda p: float(np.exp(log_comb + i * math.log(p) + (n - i) * math.log1p(-p)).sum())  # noqa: E731
    hi = 1.0
    for _ in range(60):  # bisection: at_most_k falls as the rate grows
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if at_most_k(mid) > target else (lo, mid)
    return lo, hi
