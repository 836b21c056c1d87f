"""How many validation prompts a real gain needs: the power of the exact sign test, by simulation."""

from __future__ import annotations

import numpy as np

from workbench.stats.paired import ALPHA, binomial_tail


def sign_test_power(
    gain: float, baseline: float, n: int, cells: int = 1, alpha: float = ALPHA, reps: int = 4000, seed: int = 0
) -> float:
    """The chance that one cell whose true compliance is ``baseline + gain`` is selected from ``n``
    prompts, by simulation; ``cells`` > 1 applies Bonferroni to the one-cell exact test, a lower bound
    on maxT's power (which gains from correlated cells)."""
    rng = np.random.default_rng(seed)
    base = rng.random((reps, n)) < baseline
    steered = rng.random((reps, n)) < baseline + gain
    wins, losses = (steered & ~base).sum(1), (~steered & base).sum(1)
    p = np.array([binomial_tail(int(w), int(w + l)) for w, l in zip(wins, losses)])
    return float((p <= alpha / cells).mean())


def prompts_needed(gain: float, baseline: float = 0.0, cells: int = 8, alpha: float = ALPHA, power: float = 0.8) -> int:
    """The fewest validation prompts with which a real ``gain`` is selected with ``power``
    (conservative: Bonferroni over ``cells``)."""
    for n in range(2, 201):
        if sign_test_power(gain, baseline, n, cells, alpha) >= power:
            return n
    return 201


def screen_power(flip: float, n: int) -> float:
    """The chance that a cell which flips a share ``flip`` of the prompts the model fails unsteered
    wins at least one of ``n`` such prompts: what a screen that keeps any cell beating no steering
    needs to pass it on (5 prompts at ``flip`` 0.5: 0.97)."""
    return 1.0 - (1.0 - flip) ** n
