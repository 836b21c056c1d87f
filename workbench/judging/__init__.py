"""Judging replies: ``quality`` (log-prob under the unsteered model, repetition, compression, the
degeneracy rules) and ``scoring`` (a row's compliance and quality, added in place)."""

from workbench.judging.quality import (
    DEGENERACY_RULE,
    MAX_DEGENERATE,
    Judge,
    Measures,
    degeneracy_rule,
    is_degenerate,
    quality,
)
from workbench.judging.scoring import score_rows

__all__ = [
    "DEGENERACY_RULE",
    "MAX_DEGENERATE",
    "Judge",
    "Measures",
    "degeneracy_rule",
    "is_degenerate",
    "quality",
    "score_rows",
]
