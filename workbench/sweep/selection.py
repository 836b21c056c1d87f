"""Selection: per instruction and prompt condition, the best non-degenerate steering setting on
validation prompts (``Choice``), from the per-cell means of a sweep's table, kept only where its gain
over no steering is more than noise (``workbench.stats``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.errors import WorkbenchError
from workbench.generation.steering import OPERATORS, Steer, operator_named
from workbench.judging.quality import MAX_DEGENERATE
from workbench.stats import ALPHA, maxt_pvalues, upper_bound
from workbench.sweep.grid import NO_STEERING
from workbench.vectors import InstructionVector

CELL = ["layer", "mode", "coefficient"]
PROJECTION_SIZE = 0.75  # in ties a projection ranks as a coefficient of 0.75×: before 1×, after 0.5×
# maxT's eligibility: the degenerate share's 80 % upper bound is under the cut-off (0 of 8 passes,
# 1 of 10 does not)
DEGENERATE_CONFIDENCE = 0.8


def selection_rule(alpha: float | None = ALPHA) -> str:
    """The rule's name, as results folders record it."""
    if alpha is None:
        return f"best-v1: best validation compliance above no steering, degenerate <= {MAX_DEGENERATE:g}"
    return (
        f"maxT-v2: best validation compliance among cells beating no steering at family-wise alpha {alpha:g} "
        "(sign-flip maxT), "
        f"degenerate share's {DEGENERATE_CONFIDENCE:.0%} upper bound <= {MAX_DEGENERATE:g}; successive halving "
        "scores its finalists "
        "on the second round's prompts only"
    )


def fewest_prompts(alpha: float = ALPHA, max_degenerate: float = MAX_DEGENERATE) -> int:
    """The fewest tested prompts with which maxT can select anything: a p-value of 2^-n ≤ ``alpha``
    and, with no degenerate reply, a degenerate share whose upper bound is under the cut-off (8)."""
    return next(
        n for n in range(1, 1000) if 0.5**n <= alpha and upper_bound(0, n, DEGENERATE_CONFIDENCE) <= max_degenerate
    )


def scaled(mode: str) -> bool:
    """Whether a setting's coefficient is a multiple of the layer's norm (else a target, or none)."""
    operator = OPERATORS.get(mode)  # "none": the unsteered baseline
    return operator is not None and operator.coefficient == "scale"


def setting_size(cells: pd.DataFrame) -> pd.Series:
    """How large each cell's setting counts in ties (smaller first): |coefficient| where it scales,
    ``PROJECTION_SIZE`` for the others."""
    return cells["coefficient"].abs().where(cells["mode"].map(scaled), PROJECTION_SIZE)


@dataclass(frozen=True)
class Choice:
    """The selected steering setting for one instruction and condition (layer -1: no steering)."""

    instruction: str
    with_instruction: bool
    layer: int
    mode: str
    coefficient: float | None
    score: float
    baseline: float
    degenerate: float
    p_value: float | None = None  # maxT-adjusted, one-sided, vs no steering on the tested prompts (None: not tested)
    n_tested: int = 0  # validation prompts the test saw (halving: the second round's)

    @classmethod
    def manual(cls, instruction: str, layer: int, mode: str = "add", coefficient: float | None = None) -> Choice:
        """A hand-set steering setting (no validation scores); coefficient × the layer's norm."""
        if operator_named(mode).coefficient == "scale" and coefficient is None:
            raise WorkbenchError(f"a manual {mode!r} setting needs a coefficient (× the layer's norm)")
        nan = float("nan")
        return cls(instruction, False, layer, mode, None if coefficient is None else float(coefficient), nan, nan, nan)

    def __repr__(self) -> str:
        cond = "with" if self.with_instruction else "without"
        if not self.steers:
            return f"Choice({self.instruction} {cond} instruction: no steering, baseline {self.baseline:.2f})"
        setting = OPERATORS[self.mode].describe(self.coefficient)
        test = "" if self.p_value is None else f", p = {self.p_value:.3g} on {self.n_tested} prompts"
        return (
            f"Choice({self.instruction} {cond} instruction: layer {self.layer} {setting}, "
            f"{self.score:.2f} vs baseline {self.baseline:.2f}{test})"
        )

    @classmethod
    def from_json(cls, fields: dict) -> Choice:
        """A choice as ``dataclasses.asdict`` wrote it to JSON (numbers come back as ints or floats)."""

        def num(v) -> float | None:
            return None if v is None else float(v)

        def real(v) -> float:
            return float("nan") if v is None else float(v)  # json writes NaN as NaN; None from older writers

        return cls(
            fields["instruction"],
            bool(fields["with_instruction"]),
            int(fields["layer"]),
            fields["mode"],
            num(fields["coefficient"]),
            real(fields["score"]),
            real(fields["baseline"]),
            real(fields["degenerate"]),
            num(fields.get("p_value")),
            int(fields.get("n_tested", 0)),
        )

    @property
    def steers(self) -> bool:
        return self.layer != NO_STEERING

    def spec(self, vec: InstructionVector) -> list[Steer]:
        if not self.steers:
            return []
        return [vec.steer(self.layer, self.coefficient, mode=self.mode)]


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
    table: pd.DataFrame, metric: str = "loose", max_degenerate: float = MAX_DEGENERATE, alpha: float | None = ALPHA
) -> dict[tuple[str, bool], Choice]:
    """Best non-degenerate (layer, mode, coefficient) per instruction and condition whose gain is
    more than noise.

    A setting is eligible when at most ``max_degenerate`` of its outputs are degenerate and, unless
    ``alpha`` is None (the earlier rule, ``best-v1``), the share's ``DEGENERATE_CONFIDENCE`` upper
    bound is too, and its maxT-adjusted p-value against no steering is at most ``alpha``
    (``workbench.stats``): with no real effect anywhere, a group selects steering at most ``alpha`` of
    the time. A halving's cells are scored and tested on its second round only (``evidence``), so the
    round that chose them does not inflate their score. Ties go to no steering; among equals the
    smaller coefficient wins.
    """
    if alpha is not None and not 0 < alpha < 1:
        raise WorkbenchError(
            f"alpha is a family-wise error rate between 0 and 1 (or None: the untested rule best-v1), not {alpha!r}"
        )
    if alpha is not None:
        table = evidence(table)
    out = {}
    for (name, cond), group in cell_summary(table, metric).groupby(["instruction", "with_instruction"]):
        rows = table[(table["instruction"] == name) & (table["with_instruction"] == cond)]
        out[(name, bool(cond))] = _choose(name, bool(cond), group, rows, metric, max_degenerate, alpha)
    return out


def _choose(
    name: str, cond: bool, group: pd.DataFrame, rows: pd.DataFrame, metric: str, max_degenerate: float, alpha
) -> Choice:
    """One group's choice from its cells (``group``) and its rows (for the test)."""
    base = group[group["layer"] == NO_STEERING]
    baseline = float(base["compliance"].iloc[0]) if len(base) else 0.0
    eligible = group[
        (group["layer"] != NO_STEERING) & (group["degenerate"] <= max_degenerate) & (group["compliance"] > baseline)
    ]
    tests = _pvalues(rows, metric) if alpha is not None else {}
    if alpha is not None and len(eligible):
        keep = [
            tests.get(tuple(r[:3]), (1.0, 0))[0] <= alpha
            and upper_bound(round(r[3] * r[4]), int(r[4]), DEGENERATE_CONFIDENCE) <= max_degenerate
            for r in eligible[[*CELL, "degenerate", "n"]].itertuples(index=False)
        ]
        eligible = eligible[np.array(keep, dtype=bool)]
    if not len(eligible):
        degenerate = float(base["degenerate"].iloc[0]) if len(base) else 0.0
        return Choice(name, cond, NO_STEERING, "none", None, baseline, baseline, degenerate)
    top = (
        eligible.assign(size=setting_size(eligible))
        .sort_values(["compliance", "size", "layer"], ascending=[False, True, True])
        .iloc[0]
    )
    p, n = tests.get((top["layer"], top["mode"], top["coefficient"]), (None, 0))
    coef = float(top["coefficient"]) if scaled(top["mode"]) else None
    return Choice(
        name,
        cond,
        int(top["layer"]),
        str(top["mode"]),
        coef,
        float(top["compliance"]),
        baseline,
        float(top["degenerate"]),
        p,
        n,
    )
