"""Steering: add an instruction vector to the residual stream while the model runs.

A spec is data: (direction, layer, coefficient, mode, positions). Which positions are steered is a
mask built from explicit facts (padded prompt width, KV-cache offset, padding mask), never guessed
inside the hook, so cached and uncached generation steer exactly the same tokens.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Iterator, Literal, Sequence

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from workbench.errors import WorkbenchError
from workbench.models import Model

Mode = Literal["add", "project"]
Positions = Literal["all", "prompt", "generated"]
MODES = ("add", "project")
POSITIONS = ("all", "prompt", "generated")


@dataclass(frozen=True)
class Steer:
    """One steering intervention at one layer.

    ``add``:     x ← x + c·u
    ``project``: x ← x + (c − x·u)·u, i.e. set the projection on u to c (the paper's z̄).
    ``coefficient`` may be a tensor with one value per prompt (global prompt index) so a single
    batch can hold many coefficients; a NaN leaves that prompt unsteered.
    """

    direction: Float[Tensor, "d_model"]
    layer: int
    coefficient: float | Float[Tensor, "prompts"]
    mode: Mode = "add"
    positions: Positions = "all"
    label: str = ""

    def __post_init__(self):
        if self.mode not in MODES:
            raise WorkbenchError(f"unknown steering mode {self.mode!r}: use one of {', '.join(MODES)}")
        if self.positions not in POSITIONS:
            raise WorkbenchError(f"unknown positions {self.positions!r}: use one of {', '.join(POSITIONS)}")
        if self.direction.ndim != 1:
            raise WorkbenchError(f"a steering direction is one vector [d_model], got shape {tuple(self.direction.shape)}")
        if not torch.isfinite(self.direction).all():
            raise WorkbenchError("the steering direction holds NaN or infinite values: recompute the vector")

    def scaled(self, coefficient) -> "Steer":
        return replace(self, coefficient=coefficient)


@dataclass
class StepState:
    """What the hooks need to know about the current forward call; the generator updates it.

    offset: tokens already in the KV cache before this call.
    prompt_width: padded prompt length (columns ≥ it are generated); None = everything is prompt.
    rows: global prompt index of each batch row (for per-prompt coefficients).
    Left padding is steered like any prompt column: padded keys are masked, so it changes nothing.
    """

    offset: int = 0
    prompt_width: int | None = None
    rows: Tensor | None = None


def position_mask(positions: Positions, n_new: int, offset: int, prompt_width: int | None) -> Bool[Tensor, "n_new"]:
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
    """The hook for one spec. Scalar coefficients take a fast path (one broadcast add)."""
    u = (spec.direction / spec.direction.norm()).to(device=device, dtype=dtype)
    scalar = not torch.is_tensor(spec.coefficient)
    c_add = float(spec.coefficient) * u if scalar else None

    def hook(x: Float[Tensor, "batch pos d_model"], hook=None):
        n_new = x.shape[1]
        mask = None
        if spec.positions != "all":
            keep = position_mask(spec.positions, n_new, state.offset, state.prompt_width)
            if not keep.any():
                return x
            if not keep.all():
                mask = keep.to(device=x.device, dtype=x.dtype)[None, :, None]
        if scalar:
            delta = c_add if spec.mode == "add" else (float(spec.coefficient) - x @ u)[..., None] * u
        else:
            c = _row_values(spec.coefficient, state.rows, x.shape[0], x)
            on = ~torch.isnan(c)
            c = torch.where(on, c, torch.zeros_like(c))
            if spec.mode == "add":
                delta = c[:, None, None] * u
            else:
                delta = ((c[:, None] - x @ u) * on[:, None])[..., None] * u
        return x + (delta if mask is None else delta * mask)

    return hook


@contextmanager
def steering(model: Model, specs: Steer | Sequence[Steer], state: StepState | None = None) -> Iterator[StepState]:
    """Apply steering specs for the duration of the block; hooks are removed even on error.

    Specs compose in order: several vectors, several layers, or several at one layer.
    """
    specs = [specs] if isinstance(specs, Steer) else list(specs)
    state = state if state is not None else StepState()
    dtype = next(model.hf.parameters()).dtype
    hooks = []
    for spec in specs:
        if spec.direction.shape[0] != model.d_model:
            raise WorkbenchError(
                f"steering vector has width {spec.direction.shape[0]} but {model.name} has d_model={model.d_model}: "
                "compute the vector on this model"
            )
        hooks.append((model.hook_name(spec.layer), make_hook(spec, state, model.device, dtype)))
    with model.bridge.hooks(fwd_hooks=hooks):
        yield state
