"""Selection: per instruction and prompt condition, the best non-degenerate steering setting on
validation prompts (``Choice``), from the per-cell means of a sweep's table."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from workbench.errors import WorkbenchError
from workbench.steering import Steer
from workbench.sweep.grid import NO_STEERING
from workbench.vectors import InstructionVector

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

    @classmethod
    def manual(cls, instruction: str, layer: int, mode: str = "add", coefficient: float | None = None) -> "Choice":
        """A hand-set steering setting (no validation scores); coefficient × the layer's norm."""
        if mode not in ("add", "project") or (mode == "add" and coefficient is None):
            raise WorkbenchError("a manual setting is mode 'add' with a coefficient, or mode 'project'")
        nan = float("nan")
        return cls(instruction, False, layer, mode, None if mode == "project" else float(coefficient), nan, nan, nan)

    def __repr__(self) -> str:
        cond = "with" if self.with_instruction else "without"
        if not self.steers:
            return f"Choice({self.instruction} {cond} instruction: no steering, baseline {self.baseline:.2f})"
        setting = "project to z̄" if self.mode == "project" else f"{self.mode} {self.coefficient:g}×"
        return f"Choice({self.instruction} {cond} instruction: layer {self.layer} {setting}, {self.score:.2f} vs baseline {self.baseline:.2f})"

    @classmethod
    def from_json(cls, fields: dict) -> "Choice":
        """A choice as ``dataclasses.asdict`` wrote it to JSON (numbers come back as ints or floats)."""
        num = lambda v: None if v is None else float(v)
        return cls(fields["instruction"], bool(fields["with_instruction"]), int(fields["layer"]), fields["mode"], num(fields["coefficient"]),
                   num(fields["score"]), num(fields["baseline"]), num(fields["degenerate"]))

    @property
    def steers(self) -> bool:
        return self.layer != NO_STEERING

    def spec(self, vec: InstructionVector) -> list[Steer]:
        if not self.steers:
            return []
        if self.mode == "project":
            return [vec.steer(self.layer, mode="project")]
        return [vec.steer(self.layer, self.coefficient)]


def cell_summary(table: pd.DataFrame, metric: str = "loose") -> pd.DataFrame:
    """Mean compliance, quality and degeneracy per cell."""
    t = table.copy()
    t["coefficient"] = t["coefficient"].fillna(0.0)
    return (
        t.groupby(["instruction", "with_instruction", "layer", "mode", "coefficient"], dropna=False)
        .agg(compliance=(metric, "mean"), strict=("strict", "mean"), logprob=("logprob", "mean"), degenerate=("degenerate", "mean"), n=("text", "size"))
        .reset_index()
    )


def select(table: pd.DataFrame, metric: str = "loose", max_degenerate: float = 0.2) -> dict[tuple[str, bool], Choice]:
    """Best non-degenerate (layer, mode, coefficient) per instruction and condition.

    A setting is eligible when at most ``max_degenerate`` of its outputs are degenerate. Steering
    must beat no steering strictly (ties go to no steering); among equals the smaller coefficient wins.
    """
    cells = cell_summary(table, metric)
    out = {}
    for (name, cond), group in cells.groupby(["instruction", "with_instruction"]):
        base = group[group["layer"] == NO_STEERING]
        baseline = float(base["compliance"].iloc[0]) if len(base) else 0.0
        eligible = group[(group["layer"] != NO_STEERING) & (group["degenerate"] <= max_degenerate)]
        best = Choice(name, bool(cond), NO_STEERING, "none", None, baseline, baseline, float(base["degenerate"].iloc[0]) if len(base) else 0.0)
        if len(eligible):
            eligible = eligible.assign(size=eligible["coefficient"].abs().where(eligible["mode"] == "add", 0.75))
            top = eligible.sort_values(["compliance", "size", "layer"], ascending=[False, True, True]).iloc[0]
            if top["compliance"] > baseline:
                coef = None if top["mode"] == "project" else float(top["coefficient"])
                best = Choice(name, bool(cond), int(top["layer"]), str(top["mode"]), coef, float(top["compliance"]), baseline, float(top["degenerate"]))
        out[(name, bool(cond))] = best
    return out
