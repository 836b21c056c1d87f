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
    attention_mask: [batch, offset + new] with 0 on left padding, which is never steered.
    """

    offset: int = 0
    prompt_width: int | None = None
    rows: Tensor | None = None
    attention_mask: Tensor | None = None


def position_mask(
    positions: Positions,
    n_new: int,
    offset: int,
    prompt_width: int | None,
    attention_mask: Tensor | None = None,
    batch: int = 1,
) -> Bool[Tensor, "batch n_new"]:
    """Which of this call's ``n_new`` columns to steer, from the cache offset and prompt width."""
    cols = torch.arange(offset, offset + n_new)
    width = prompt_width if prompt_width is not None else offset + n_new
    if positions == "all":
        keep = torch.ones(n_new, dtype=torch.bool)
    elif positions == "prompt":
        keep = cols < width
    else:
        keep = cols >= width
    keep = keep.expand(batch, n_new)
    if attention_mask is not None:
        keep = keep & attention_mask[:, offset : offset + n_new].bool().cpu()
    return keep


def _row_values(value, rows: Tensor | None, batch: int, like: Tensor) -> Tensor:
    if not torch.is_tensor(value):
        return torch.full((batch,), float(value), dtype=like.dtype, device=like.device)
    value = value.to(device=like.device, dtype=like.dtype)
    if value.ndim == 0:
        return value.expand(batch)
    if rows is None:
        if value.shape[0] != batch:
            raise WorkbenchError(f"per-prompt coefficients have {value.shape[0]} values for a batch of {batch}")
        return value
    return value[rows.to(value.device)]


def make_hook(spec: Steer, state: StepState, device, dtype):
    u = (spec.direction / spec.direction.norm()).to(device=device, dtype=dtype)

    def hook(x: Float[Tensor, "batch pos d_model"], hook=None):
        batch, n_new, _ = x.shape
        c = _row_values(spec.coefficient, state.rows, batch, x)
        on = ~torch.isnan(c)
        c = torch.where(on, c, torch.zeros_like(c))
        if spec.mode == "add":
            scale = c[:, None].expand(batch, n_new)
        else:
            scale = (c[:, None] - x @ u) * on[:, None]
        if spec.positions != "all" or state.attention_mask is not None:
            mask = position_mask(spec.positions, n_new, state.offset, state.prompt_width, state.attention_mask, batch)
            scale = scale * mask.to(device=x.device, dtype=x.dtype)
        return x + scale[..., None] * u

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
