"""Scored rows: a generated reply's compliance (strict and loose, from ``workbench.checkers``) and its
quality (``workbench.judging.quality``), added to the row generation wrote."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, overload

from workbench.checkers import Check, check
from workbench.judging.quality import Judge, quality
from workbench.models import Model
from workbench.rows import ConditionRow, ScoredConditionRow, ScoredSweepRow, SweepRow


# the rows come back scored: a sweep's as ScoredSweepRow, a condition's as ScoredConditionRow, other dicts as dicts
@overload
def score_rows(
    model: Model, rows: list[SweepRow], judge: Judge | None = None, checks: Sequence[Check] | None = None
) -> list[ScoredSweepRow]: ...
@overload
def score_rows(
    model: Model, rows: list[ConditionRow], judge: Judge | None = None, checks: Sequence[Check] | None = None
) -> list[ScoredConditionRow]: ...
@overload
def score_rows(
    model: Model, rows: list[dict], judge: Judge | None = None, checks: Sequence[Check] | None = None
) -> list[dict]: ...
def score_rows(
    model: Model, rows: list[Any], judge: Judge | None = None, checks: Sequence[Check] | None = None
) -> list[Any]:
    """Add compliance (strict/loose, prompt level and per instruction) and quality fields to
    generation rows, in place. Without ``checks``, IFEval checks each row's instruction ids."""
    if checks is None:
        checks = [check(r["text"], r["instruction_ids"], r["kwargs"], prompt=r["prompt"]) for r in rows]
    for row, c in zip(rows, checks):
        row["strict"], row["loose"] = c.strict, c.loose
        row["strict_each"], row["loose_each"] = list(c.strict_each), list(c.loose_each)
    q = quality(
        model,
        [r["query"] for r in rows],
        [r["text"] for r in rows],
        [r["n_tokens"] for r in rows],
        judge,
        prompts=[r.get("prompt", r["query"]) for r in rows],
    )
    for row, fields in zip(rows, q):
        row.update(fields)
    return rows
