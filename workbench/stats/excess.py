"""How much more often does a steered model fail a quality check than the unsteered model, on the
same prompts? A paired, one-sided bound on the difference of two rates.

Each prompt is answered unsteered and steered; only the discordant prompts say which is worse:
``worse`` prompts where only the steered reply fails, ``better`` where only the unsteered one does.
Given ``m = worse + better`` discordant prompts, ``worse`` is binomial in ``m`` with some share π,
and the difference of the two rates is ``(m / n)(2π − 1)``. Its one-sided upper bound takes π at its
Clopper–Pearson upper bound (``upper_bound``). No discordant prompt: the bound is 0 (the replies fail
alike)."""

from __future__ import annotations

from workbench.stats.intervals import upper_bound


def excess_bound(worse: int, better: int, n: int, confidence: float) -> float:
    """Upper ``confidence`` bound on (steered rate − unsteered rate) of a failure, from ``n`` paired
    prompts of which ``worse`` fail steered only and ``better`` unsteered only."""
    if not 0 <= worse + better <= n:
        raise ValueError(f"worse ({worse}) + better ({better}) discordant prompts must be within 0..n ({n})")
    m = worse + better
    if m == 0:
        return 0.0
    return (m / n) * (2 * upper_bound(worse, m, confidence) - 1)
