"""Steering: change the residual stream along an instruction direction while the model runs.

A spec is data: (direction, layer, coefficient, operator, positions). The operator is named in
``OPERATORS`` (``workbench.operators``, one module each): ``add`` (x + c·u), ``project`` (set x·u to
c: the paper's projection matching), ``ablate`` (remove x·u), or any other module there. Which
positions are steered is a mask built
from explicit facts (padded prompt width, KV-cache offset), never guessed inside the hook, so cached
and uncached generation steer exactly the same tokens.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Literal

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from workbench.errors import WorkbenchError
from workbench.models import Model
from workbench.operators import OPERATORS, Operator

Mode = str
"""A name in ``OPERATORS`` (``workbench.operators``: add, project, ablate, ...)."""
Positions = Literal["all", "prompt", "generated"]
POSITIONS = ("all", "prompt", "generated")


def operator_named(mode: str) -> Operator:
    """The operator ``mode`` names, or a one-line error listing the names (every place a mode enters)."""
    if mode not in OPERATORS:
        raise WorkbenchError(f"unknown steering mode {mode!r}: use one of {', '.join(OPERATORS)}")
    return OPERATORS[mode]


@dataclass(frozen=True, repr=False)
class Condition:
    """Conditional steering (as in IBM's CAST): steer a prompt only when the projection of its last
    token's residual on ``direction`` at ``layer`` is below ``threshold``, i.e. when the prompt does
    not already carry the instruction. Decided once per prompt, from the unsteered prompt, before
    generation (``generate`` runs the detection pass), so batching and the KV cache cannot change it."""

    direction: Float[Tensor, " d_model"]
    layer: int
    threshold: float

    def __repr__(self) -> str:
        return f"Condition(projection at layer {self.layer} < {self.threshold:.3g})"

    def key(self) -> tuple:
        return (self.layer, float(self.threshold), self.direction.detach().cpu().numpy().tobytes())


@dataclass(frozen=True, repr=False)
class Steer:
    """One steering intervention at one layer; ``mode`` names its operator in ``OPERATORS``.

    ``coefficient`` is absolute (in the residual stream's units; ``InstructionVector.steer`` takes
    multiples of the layer's mean-difference norm). It may be a tensor with one value per prompt
    (global prompt index) so a single batch can hold many coefficients; a NaN leaves that prompt
    unsteered.
    """

    direction: Float[Tensor, " d_model"]
    layer: int
    coefficient: float | Float[Tensor, " prompts"]
    mode: str = "add"  # a Mode: a name in OPERATORS (checked here, so bad input gets a one-line error)
    positions: str = "all"  # a Positions
    label: str = ""
    when: Condition | None = None  # steer only the prompts this condition selects

    def __post_init__(self):
        operator_named(self.mode)
        if self.positions not in POSITIONS:
            raise WorkbenchError(f"unknown positions {self.positions!r}: use one of {', '.join(POSITIONS)}")
        if self.direction.ndim != 1:
            raise WorkbenchError(
                f"a steering direction is one vector [d_model], got shape {tuple(self.direction.shape)}"
            )
        if not torch.isfinite(self.direction).all():
            raise WorkbenchError("the steering direction holds NaN or infinite values: recompute the vector")
        c = torch.as_tensor(self.coefficient, dtype=torch.float64)
        if c.ndim == 0 and not torch.isfinite(c):
            raise WorkbenchError(f"steering coefficient {float(c)} is not a finite number")
        if c.ndim > 1 or torch.isinf(c).any():  # per-row: NaN marks an unsteered row, infinity is a mistake
            raise WorkbenchError("per-row coefficients are one finite number (or NaN: unsteered) per prompt")

    def __repr__(self) -> str:
        c = self.coefficient
        coef = f"{float(c):.3g}" if not torch.is_tensor(c) or c.ndim == 0 else f"per-row[{c.shape[0]}]"
        where = "" if self.positions == "all" else f", {self.positions} positions"
        when = "" if self.when is None else f", if projection at layer {self.when.layer} < {self.when.threshold:.3g}"
        return f"Steer({self.label or 'direction'} @ layer {self.layer}: {self.mode} {coef}{where}{when})"

    @property
    def operator(self) -> Operator:
        return OPERATORS[self.mode]

    def scaled(self, coefficient) -> Steer:
        return replace(self, coefficient=coefficient)

    def key(self) -> tuple:
        """What makes two specs the same intervention up to their coefficient."""
        when = None if self.when is None else self.when.key()
        return (
            self.layer,
            self.mode,
            self.positions,
            self.label,
            self.direction.detach().cpu().numpy().tobytes(),
            when,
        )


def pack(row_specs: Sequence[Sequence[Steer]]) -> list[Steer]:
    """One batch, each row with its own steering: the specs ``row_specs[i]`` of row ``i`` (scalar
    coefficients) become per-row coefficient specs, one per distinct intervention, NaN (unsteered)
    on the rows that do not use it."""
    packed: dict[tuple, tuple[Steer, Tensor]] = {}
    for row, specs in enumerate(row_specs):
        for spec in specs:
            if torch.is_tensor(spec.coefficient) and spec.coefficient.ndim > 0:
                raise WorkbenchError("pack takes specs with one coefficient each")
            key = spec.key()
            if key not in packed:
                packed[key] = (spec, torch.full((len(row_specs),), float("nan")))
            coefs = packed[key][1]
            if not torch.isnan(coefs[row]):
                raise WorkbenchError(f"row {row} holds the same intervention twice: {spec}")
            coefs[row] = float(spec.coefficient)
    return [spec.scaled(coefs) for spec, coefs in packed.values()]


@dataclass
class StepState:
    """What the hooks need to know about the current forward call; the generator updates it.

    offset: tokens already in the KV cache before this call.
    prompt_width: padded prompt length (columns ≥ it are generated); None = everything is prompt.
    rows: global prompt index of each batch row (for per-prompt coefficients).
    gates: per condition (``Condition.key()``), whether to steer each prompt (global prompt index).
    Left padding is steered like any prompt column: padded keys are masked, so it changes nothing.
    """

    offset: int = 0
    prompt_width: int | None = None
    rows: Tensor | None = None
    gates: dict = field(default_factory=dict)


def position_mask(positions: str, n_new: int, offset: int, prompt_width: int | None) -> Bool[Tensor, " n_new"]:
    """Which of this call's ``n_new`` columns to steer, from the cache offset and prompt width."""
    cols = torch.arange(offset, offset + n_new)
    width = prompt_width if prompt_width is not None else offset + n_new
    if positions == "all":
        return torch.ones(n_new, dtype=torch.bool)
    return cols < width if positions == "prompt" else cols >= width


def _row_values(value: Tensor, rows: Tensor | None, batch: int, like: Tensor) -> Tensor:
    value = value.to(device=like.device, dtype=like.dtype)
    if value.ndim == 0:
        return value.expand(batch)
    if rows is None:
        if value.shape[0] != batch:
            raise WorkbenchError(f"per-prompt coefficients have {value.shape[0]} values for a batch of {batch}")
        return value
    return value[rows.to(value.device)]


def make_hook(spec: Steer, state: StepState, device, dtype):
    """The TL hook for one spec: the operator's change, on the masked positions and steered rows.
    A scalar ``add`` takes a fast path (one broadcast add)."""
    u = (spec.direction / spec.direction.norm()).to(device=device, dtype=dtype)
    per_row = torch.is_tensor(spec.coefficient) and spec.coefficient.ndim > 0
    c_add = float(spec.coefficient) * u if spec.operator.shift and not per_row else None
    operator = spec.operator
    gate_key = (
        None if spec.when is None else spec.when.key()
    )  # once, not per step: the key copies the direction to the host

    def hook(x: Float[Tensor, "batch pos d_model"], hook=None):
        mask = None
        if spec.positions != "all":
            keep = position_mask(spec.positions, x.shape[1], state.offset, state.prompt_width)
            if not keep.any():
                return x
            if not keep.all():
                mask = keep.to(device=x.device, dtype=x.dtype)[None, :, None]
        if c_add is not None and spec.when is None:
            delta = c_add
        else:
            c = _row_values(torch.as_tensor(spec.coefficient), state.rows if per_row else None, x.shape[0], x)
            on = ~torch.isnan(c)
            if spec.when is not None:
                gate = state.gates.get(gate_key)
                if gate is None:
                    raise WorkbenchError(
                        "a conditional Steer needs its detection pass: generate with workbench.generate, which runs it"
                    )
                on = on & _row_values(gate, state.rows, x.shape[0], gate).to(on.device)
            delta = operator(x, u, torch.where(on, c, torch.zeros_like(c))) * on[:, None, None]
        return x + (delta if mask is None else delta * mask)

    return hook


@contextmanager
def steering(model: Model, specs: Steer | Sequence[Steer], state: StepState | None = None) -> Iterator[StepState]:
    """Apply steering specs for the duration of the block; hooks are removed even on error.

    Specs compose in order: several vectors, several layers, or several at one layer.
    """
    specs = [specs] if isinstance(specs, Steer) else list(specs)
    state = state if state is not None else StepState()
    hooks = []
    for spec in specs:
        if spec.direction.shape[0] != model.d_model:
            raise WorkbenchError(
                f"steering vector has width {spec.direction.shape[0]} but {model.name} has d_model={model.d_model}: "
                "compute the vector on this model"
            )
        hooks.append((model.hook_name(spec.layer), make_hook(spec, state, model.device, model.dtype)))
    with model.bridge.hooks(fwd_hooks=hooks):
        yield state
