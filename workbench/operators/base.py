"""What a steering operator is: one object that knows its function, what its coefficient means, its
affine form (the compiled step and vLLM's graphs need one) and its lm-eval export."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from jaxtyping import Float
from torch import Tensor

Change = Callable[
    [Float[Tensor, "batch pos d_model"], Float[Tensor, " d_model"], Float[Tensor, " batch"]],
    Float[Tensor, "batch pos d_model"],
]
"""(x, u, c) -> the change to x; ``u`` is a unit vector, ``c`` one coefficient per row."""

Coefficient = Literal["scale", "target", "none"]


@dataclass(frozen=True)
class Operator:
    """A steering operator. ``name`` is its spelling everywhere (``Steer.mode``, rows' ``mode``, the CLI).

    coefficient: what ``c`` means: ``scale`` a multiple of the layer's mean-difference norm (given in
    those units, ``InstructionVector.steer`` multiplies), ``target`` a value of the projection x·u
    (default z̄, the mean projection with the instruction), ``none`` ignored.
    affine: (α, β) when the change is ``(α·c − β·(x·u))·u`` (the compiled step and vLLM's compiled
    graphs hold only such operators, as tensors); None when it has no such form.
    lm_eval: the action lm-eval's ``steered`` model applies for it, or None (not exportable).
    """

    name: str
    change: Change
    coefficient: Coefficient
    affine: tuple[float, float] | None = None
    lm_eval: str | None = None

    def __call__(self, x, u, c):
        return self.change(x, u, c)

    def __repr__(self) -> str:
        return f"Operator({self.name}: coefficient {self.coefficient}, {'affine' if self.affine else 'not affine'})"

    @property
    def shift(self) -> bool:
        """The change does not depend on x (a fixed vector added): the hooks' fast path."""
        return self.affine == (1.0, 0.0)

    def describe(self, coefficient: float | None = None) -> str:
        """How a setting reads in reprs and reports: ``add 2×``, ``project to z̄``, ``ablate``."""
        if self.coefficient == "none":
            return self.name
        if self.coefficient == "target":
            return f"{self.name} to " + ("z̄" if coefficient is None else f"{coefficient:.3g}")
        return self.name if coefficient is None else f"{self.name} {coefficient:g}×"
