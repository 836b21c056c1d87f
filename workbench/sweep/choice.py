"""``Choice``: the steering setting selection chose for one instruction and prompt condition, and the
decision behind it (which stage decided, why in one line, the best cell weighed: ``Candidate``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from workbench.errors import WorkbenchError
from workbench.generation.steering import OPERATORS, Steer, operator_named
from workbench.sweep.grid import NO_STEERING
from workbench.vectors import InstructionVector

SELECTED, SCREEN, NO_GAIN, SIGNIFICANCE, QUALITY, MANUAL = (
    "selected",
    "screen",
    "no gain",
    "significance",
    "quality",
    "manual",
)  # what decided a group's choice: the stage its best cell reached


@dataclass(frozen=True)
class Candidate:
    """The best cell selection weighed for a group, and what it saw of it on validation prompts."""

    layer: int
    mode: str
    coefficient: float | None
    score: float  # validation compliance, steered
    baseline: float  # unsteered, same prompts
    p_value: float | None  # maxT-adjusted (None: not tested)
    n_tested: int
    degenerate: int  # of n_tested steered replies (the guard's)
    degenerate_unsteered: int  # of the unsteered replies to the same prompts
    excess: float | None  # upper bound on the excess degenerate rate (maxT-v3's guard)

    def describe(self) -> str:
        """``layer 20 projection: 1.00 vs 0.00 on 10 prompts, p = 0.002, degenerate 1/10 vs 1/10 unsteered``."""
        setting = OPERATORS[self.mode].describe(self.coefficient) if self.mode in OPERATORS else self.mode
        p = "" if self.p_value is None else f", p = {self.p_value:.3g}"
        n = self.n_tested
        quality = f", degenerate {self.degenerate}/{n} vs {self.degenerate_unsteered}/{n} unsteered"
        return (
            f"layer {self.layer} {setting}: {self.score:.2f} vs {self.baseline:.2f} on {self.n_tested} prompts{p}"
            f"{quality if self.n_tested else ''}"
        )


@dataclass(frozen=True)
class Choice:
    """The selected steering setting for one instruction and condition (layer -1: no steering), with
    the decision behind it: which stage decided (``decided_by``), why in one line (``reason``), and the
    best cell weighed (``candidate``; for a selected setting, itself)."""

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
    decided_by: str = ""  # SELECTED, SCREEN, NO_GAIN, SIGNIFICANCE, QUALITY, MANUAL ("": written before 0.2)
    reason: str = ""
    candidate: Candidate | None = None

    @classmethod
    def manual(cls, instruction: str, layer: int, mode: str = "add", coefficient: float | None = None) -> Choice:
        """A hand-set steering setting (no validation scores); coefficient × the layer's norm."""
        if operator_named(mode).coefficient == "scale" and coefficient is None:
            raise WorkbenchError(f"a manual {mode!r} setting needs a coefficient (× the layer's norm)")
        nan, c = float("nan"), None if coefficient is None else float(coefficient)
        return cls(instruction, False, layer, mode, c, nan, nan, nan, decided_by=MANUAL, reason="set by hand")

    def __repr__(self) -> str:
        cond = "with" if self.with_instruction else "without"
        why = f" ({self.decided_by}: {self.reason})" if self.reason else ""
        if not self.steers:
            return f"Choice({self.instruction} {cond} instruction: no steering, baseline {self.baseline:.2f}{why})"
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

        candidate = fields.get("candidate")
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
            str(fields.get("decided_by", "")),
            str(fields.get("reason", "")),
            Candidate(**candidate) if candidate else None,
        )

    def summary(self) -> dict:
        """The choice as ``summary.json`` records it: the setting (layer None: no steering), what
        selection saw of it, and the decision (``decided_by``, ``reason``, the best cell weighed)."""
        decision = {
            "decided_by": self.decided_by,
            "reason": self.reason,
            "candidate": asdict(self.candidate) if self.candidate else None,
        }
        if not self.steers:
            return {"layer": None, "mode": "none", "coefficient": None, **decision}
        return {
            "layer": self.layer,
            "mode": self.mode,
            "coefficient": self.coefficient,
            "validation": self.score,
            "validation_baseline": self.baseline,
            "validation_degenerate": self.degenerate,
            "p_value": self.p_value,
            "n_tested": self.n_tested,
            **decision,
        }

    @property
    def steers(self) -> bool:
        return self.layer != NO_STEERING

    def spec(self, vec: InstructionVector) -> list[Steer]:
        if not self.steers:
            return []
        return [vec.steer(self.layer, self.coefficient, mode=self.mode)]
