"""Selection: per instruction and prompt condition, the best non-degenerate steering setting on
validation prompts (``Choice``), from the per-cell means of a sweep's table, kept only where its gain
over no steering is more than noise (``workbench.stats``)."""

from __future__ import annotations

from functools import partial

import pandas as pd

from workbench.errors import WorkbenchError
from workbench.generation.steering import OPERATORS
from workbench.judging.quality import MAX_DEGENERATE
from workbench.stats import ALPHA, maxt_pvalues, upper_bound
from workbench.sweep.choice import NO_GAIN, QUALITY, SCREEN, SELECTED, SIGNIFICANCE, Candidate, Choice
from workbench.sweep.grid import NO_STEERING
from workbench.sweep.guards import (
    CELL,
    DEGENERATE_CONFIDENCE,
    MAX_EXCESS_DEGENERATE,
    CellQuality,
    Guard,
    cell_qualities,
    point_guard,
    relative_guard,
    steered_share_guard,
)

PROJECTION_SIZE = 0.75  # in ties a projection ranks as a coefficient of 0.75×: before 1×, after 0.5×
RULE = "maxT-v3"  # the rule selection applies unless told otherwise; maxT-v2 stays reproducible
RULES = ("maxT-v2", "maxT-v3")


def selection_rule(alpha: float | None = ALPHA, rule: str = RULE) -> str:
    """The rule's name and what it does, as results folders record it."""
    if alpha is None:
        return f"best-v1: best validation compliance above no steering, degenerate <= {MAX_DEGENERATE:g}"
    test = f"best validation compliance among cells beating no steering at family-wise alpha {alpha:g} (sign-flip maxT)"
    halving = "successive halving scores its finalists on the second round's prompts only"
    if rule == "maxT-v2":
        return (
            f"maxT-v2: {test}, degenerate share's {DEGENERATE_CONFIDENCE:.0%} upper bound <= {MAX_DEGENERATE:g}; "
            f"{halving}"
        )
    return (
        f"maxT-v3: {test}, degenerate on no more prompts than unsteered or at most {MAX_EXCESS_DEGENERATE:g} more "
        f"often (paired {DEGENERATE_CONFIDENCE:.0%} upper bound); {halving}"
    )


def rule_named(rule: str) -> str:
    """A selection rule's name, checked (``RULES``)."""
    if rule not in RULES:
        raise WorkbenchError(f"unknown selection rule {rule!r}: one of {', '.join(RULES)}")
    return rule


def fewest_prompts(alpha: float = ALPHA, max_degenerate: float = MAX_DEGENERATE, rule: str = RULE) -> int:
    """The fewest tested prompts with which maxT can select anything: a p-value of 2^-n ≤ ``alpha``
    (5 at 0.05) and, under maxT-v2, with no degenerate reply, a degenerate share whose upper bound is
    under the cut-off (8). maxT-v3's guard passes a cell that loops no more than unsteered at any n."""
    return next(
        n
        for n in range(1, 1000)
        if 0.5**n <= alpha and (rule != "maxT-v2" or upper_bound(0, n, DEGENERATE_CONFIDENCE) <= max_degenerate)
    )


def scaled(mode: str) -> bool:
    """Whether a setting's coefficient is a multiple of the layer's norm (else a target, or none)."""
    operator = OPERATORS.get(mode)  # "none": the unsteered baseline
    return operator is not None and operator.coefficient == "scale"


def setting_size(cells: pd.DataFrame) -> pd.Series:
    """How large each cell's setting counts in ties (smaller first): |coefficient| where it scales,
    ``PROJECTION_SIZE`` for the others."""
    return cells["coefficient"].abs().where(cells["mode"].map(scaled), PROJECTION_SIZE)


def cell_summary(table: pd.DataFrame, metric: str = "loose") -> pd.DataFrame:
    """Mean compliance, quality and degeneracy per cell."""
    t = table.copy()
    t["coefficient"] = t["coefficient"].fillna(0.0)
    return (
        t.groupby(["instruction", "with_instruction", "layer", "mode", "coefficient"], dropna=False)
        .agg(
            compliance=(metric, "mean"),
            strict=("strict", "mean"),
            logprob=("logprob", "mean"),
            degenerate=("degenerate", "mean"),
            n=("text", "size"),
        )
        .reset_index()
    )


def evidence(table: pd.DataFrame) -> pd.DataFrame:
    """The rows that may score and test a cell. Successive halving's first round chose the finalists,
    so where a group (instruction and condition) has a second round only that round counts; a group
    that stopped after the first keeps its rows, which hold no test (and so select no steering)."""
    if "round" not in table:
        return table
    second = table.groupby(["instruction", "with_instruction"])["round"].transform("max") == 2
    return table[~second | (table["round"] == 2)]


def _pvalues(rows: pd.DataFrame, metric: str) -> dict[tuple, tuple[float, int]]:
    """maxT p-value and prompt count per steered cell of one instruction and condition (rows that are
    ``evidence``: none from a halving's first round)."""
    if "round" in rows:
        rows = rows[rows["round"] == 2]
    rows = rows.assign(coefficient=rows["coefficient"].fillna(0.0))
    scores = rows.pivot_table(index="prompt_id", columns=CELL, values=metric, aggfunc="mean")
    base = [c for c in scores.columns if c[0] == NO_STEERING]
    steered = [c for c in scores.columns if c[0] != NO_STEERING]
    if not base or not steered:
        return {}
    gains = scores[steered].sub(scores[base[0]], axis=0).dropna()
    p = maxt_pvalues(gains.to_numpy(dtype=float))
    return {cell: (float(v), len(gains)) for cell, v in zip(steered, p)}


def select(
    table: pd.DataFrame,
    metric: str = "loose",
    max_degenerate: float = MAX_DEGENERATE,
    alpha: float | None = ALPHA,
    rule: str = RULE,
) -> dict[tuple[str, bool], Choice]:
    """Best (layer, mode, coefficient) per instruction and condition whose gain is more than noise
    and whose replies are not too often degenerate, with the decision behind each choice.

    A cell must comply more than no steering; unless ``alpha`` is None (the earlier rule, ``best-v1``)
    its maxT-adjusted p-value against no steering must be at most ``alpha`` (``workbench.stats``):
    with no real effect anywhere, a group selects steering at most ``alpha`` of the time. Then the
    rule's quality guard (``workbench.sweep.guards``): maxT-v3 compares the cell's degenerate replies
    with the unsteered replies to the same prompts, maxT-v2 bounds the steered share alone by
    ``max_degenerate``. A halving's cells are scored and tested on its second round only
    (``evidence``); a group halving stopped after its screen selects nothing. Ties go to no steering;
    among equals the smaller coefficient wins.
    """
    if alpha is not None and not 0 < alpha < 1:
        raise WorkbenchError(
            f"alpha is a family-wise error rate between 0 and 1 (or None: the untested rule best-v1), not {alpha!r}"
        )
    rule = rule_named(rule)  # checked whatever alpha says: a misspelt rule is never ignored
    guard = _guard(rule, alpha, max_degenerate)
    if alpha is not None:
        table = evidence(table)
    out = {}
    for (name, cond), group in cell_summary(table, metric).groupby(["instruction", "with_instruction"]):
        rows = table[(table["instruction"] == name) & (table["with_instruction"] == cond)]
        out[(name, bool(cond))] = _choose(name, bool(cond), group, rows, metric, guard, alpha, rule)
    return out


def _guard(rule: str, alpha: float | None, max_degenerate: float) -> Guard:
    """The quality guard of the rule in force: best-v1 (``alpha`` None) the steered share's point
    value, maxT-v2 its upper bound, both cut at ``max_degenerate``; maxT-v3 relative to no steering."""
    if alpha is None:
        return partial(point_guard, cut=max_degenerate)
    if rule == "maxT-v2":
        return partial(steered_share_guard, cut=max_degenerate)
    return relative_guard


def _choose(
    name: str,
    cond: bool,
    group: pd.DataFrame,
    rows: pd.DataFrame,
    metric: str,
    guard: Guard,
    alpha: float | None,
    rule: str,
) -> Choice:
    """One group's choice from its cells (``group``) and its rows (for the test and the guard): the
    best cell that passes every stage, or no steering with the stage its best cell failed."""
    base = group[group["layer"] == NO_STEERING]
    baseline = float(base["compliance"].iloc[0]) if len(base) else 0.0
    cells = group[group["layer"] != NO_STEERING]
    cells = cells.assign(size=setting_size(cells)).sort_values(
        ["compliance", "size", "layer"], ascending=[False, True, True]
    )
    tests = _pvalues(rows, metric) if alpha is not None else {}
    keys = [(int(r.layer), str(r.mode), float(r.coefficient)) for r in cells.itertuples()]
    if alpha is None:  # best-v1 reads each cell's share, paired or not
        quality = {
            k: CellQuality(round(r.degenerate * r.n), 0, 0, 0, int(r.n)) for k, r in zip(keys, cells.itertuples())
        }
    else:
        quality = cell_qualities(rows[rows["round"] == 2] if "round" in rows else rows)
    weighed = [
        (_candidate(r, k, baseline, tests, quality), quality.get(k, _UNSEEN)) for r, k in zip(cells.itertuples(), keys)
    ]
    screened = alpha is not None and "round" in rows and not (rows["round"] == 2).any()
    stage, at = _stage(weighed, baseline, alpha, guard, screened)
    best = weighed[at][0] if at is not None else None
    reason = _reason(stage, best, alpha, rows, rule if alpha is not None else "best-v1")
    if stage != SELECTED or best is None:
        degenerate = float(base["degenerate"].iloc[0]) if len(base) else 0.0
        n = best.n_tested if best else 0
        return Choice(
            name, cond, NO_STEERING, "none", None, baseline, baseline, degenerate, None, n, stage, reason, best
        )
    degenerate = float(cells["degenerate"].iloc[at])
    return Choice(
        name,
        cond,
        best.layer,
        best.mode,
        best.coefficient,
        best.score,
        baseline,
        degenerate,
        best.p_value,
        best.n_tested,
        stage,
        reason,
        best,
    )


def _stage(
    weighed: list[tuple[Candidate, CellQuality]], baseline: float, alpha: float | None, guard: Guard, screened: bool
) -> tuple[str, int | None]:
    """How far a group's best cell got (best first: ``weighed`` is ranked) and its index: the first
    cell that passes every stage is selected; else the best cell of the last stage any cell passed."""
    if not weighed:
        return NO_GAIN, None
    if screened:
        return SCREEN, 0
    gain = [i for i, (c, _) in enumerate(weighed) if c.score > baseline]
    p = [1.0 if c.p_value is None else c.p_value for c, _ in weighed]  # untested: never significant
    significant = [i for i in gain if alpha is None or p[i] <= alpha]
    clean = [i for i in significant if guard(weighed[i][1])]
    pools = ((SELECTED, clean), (QUALITY, significant), (SIGNIFICANCE, gain))
    return next(((stage, pool[0]) for stage, pool in pools if pool), (NO_GAIN, 0))


_UNSEEN = CellQuality(0, 0, 0, 0, 0)  # a cell with no paired prompts: no guard passes it


def _candidate(r, key: tuple, baseline: float, tests: dict, quality: dict) -> Candidate:
    p, n = tests.get(key, (None, int(r.n)))
    q = quality.get(key, _UNSEEN)
    return Candidate(
        key[0],
        key[1],
        key[2] if scaled(key[1]) else None,
        float(r.compliance),
        baseline,
        p,
        n,
        q.degenerate,
        q.unsteered,
        round(q.excess, 4) if q.n else None,
    )


def _reason(stage: str, best: Candidate | None, alpha: float | None, rows: pd.DataFrame, rule: str) -> str:
    """The decision in one line, naming the best cell weighed and the number that decided."""
    if best is None:
        return "no steered cell was scored"
    cell = best.describe()
    if stage == SCREEN:
        n = rows.loc[rows["layer"] == NO_STEERING, "prompt_id"].nunique()
        return f"stopped after the screen: no cell beat no steering on its {n} prompts (best: {cell})"
    if stage == NO_GAIN:
        return f"no cell complied more than no steering (best: {cell})"
    if stage == SIGNIFICANCE:
        return f"best gain not significant at alpha {alpha:g}: {cell}"
    bound = "" if best.excess is None else f", excess bound {best.excess:.2f}"
    if stage == QUALITY and rule == "maxT-v3":
        return f"degenerate more often than unsteered: {cell}{bound} > {MAX_EXCESS_DEGENERATE:g}"
    if stage == QUALITY:
        return f"degenerate too often for {rule}'s bound on the steered share (<= {MAX_DEGENERATE:g}): {cell}"
    return f"{cell}{bound}"
