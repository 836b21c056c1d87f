"""Paired exact tests. Is a steering cell's gain over no steering more than noise? An exact paired test that knows how
many cells were tried.

Each validation prompt is answered unsteered and by every cell, so a cell's gain is a mean of
per-prompt differences (steered − unsteered compliance, each −1, 0 or 1). Under the null hypothesis
that steering does nothing, each prompt's differences are as likely to have the opposite sign, and
one flip applies to every cell at once (the cells share the prompt). The best of many cells wins
partly by noise (the winner's curse), so a cell's p-value compares its gain with the null
distribution of the *best* cell's gain (single-step maxT, Westfall and Young 1993): the chance of any
false selection stays at most ``alpha``, whatever the correlation between layers and settings.
With up to ``EXACT_UP_TO`` prompts every sign pattern is enumerated (exact); beyond, a seeded sample.
Two conditions on the same held-out records compare by McNemar's exact test (``mcnemar_exact``).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from jaxtyping import Float

ALPHA = 0.05  # the family-wise error rate of a group's selection
EXACT_UP_TO = 16  # prompts: 2^16 sign patterns at most
SAMPLED_PATTERNS = 20_000


def _patterns(n: int, seed: int = 0) -> np.ndarray:
    if n <= EXACT_UP_TO:
        return np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(SAMPLED_PATTERNS, n))
    signs[0] = 1.0  # the observed pattern is one of them, so a p-value is never 0
    return signs


def maxt_pvalues(gains: Float[np.ndarray, "prompts cells"], seed: int = 0) -> Float[np.ndarray, " cells"]:
    """One-sided p-value per cell, adjusted for every cell in ``gains``: the share of sign patterns
    under which the best cell's mean gain reaches this cell's observed mean gain."""
    gains = np.asarray(gains, dtype=float)
    n = gains.shape[0]
    if n == 0 or gains.shape[1] == 0:
        return np.ones(gains.shape[1] if gains.ndim == 2 else 0)
    best_under_null = (_patterns(n, seed) @ gains / n).max(axis=1)
    observed = gains.mean(axis=0)
    return (best_under_null[:, None] >= observed[None, :] - 1e-12).mean(axis=0)


def binomial_tail(k: int, n: int) -> float:
    """P(X ≥ k) for X ~ Binomial(n, 1/2): the exact sign test on the discordant prompts."""
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n if n else 1.0


def mcnemar_exact(wins: int, losses: int) -> float:
    """Two-sided exact McNemar test of two conditions on the same records: only the discordant pairs
    count (``wins``: passed in the first condition only, ``losses``: in the second only), and under
    no difference each is a fair coin: p = min(1, 2·P(X ≤ min(wins, losses))), X ~ Binomial(wins +
    losses, 1/2); 1 where no pair is discordant."""
    n = wins + losses
    return min(1.0, 2 * binomial_tail(max(wins, losses), n)) if n else 1.0
