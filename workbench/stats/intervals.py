"""Intervals for a mean or a rate: the percentile bootstrap, and exact binomial bounds."""

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
    at_most_k = lambda p: sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))  # noqa: E731
    lo, hi = k / n, 1.0
    for _ in range(60):  # bisection: at_most_k falls as the rate grows
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if at_most_k(mid) > 1 - confidence else (lo, mid)
    return hi
