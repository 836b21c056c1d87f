"""Correlation of two measures across layers or settings."""

from __future__ import annotations

import numpy as np


def pearson(x, y) -> float:
    """Pearson r of two equally long series; NaN under 3 points or where either is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])
