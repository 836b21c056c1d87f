"""Conditional steering's detection pass: which prompts a ``Condition`` selects, decided once per
prompt from one unsteered forward, before any steering hook is in place."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from workbench.generation.batching import left_pad, positions
from workbench.generation.steering import Condition
from workbench.models import Model


@torch.inference_mode()
def detect(
    model: Model, seqs: Sequence[Sequence[int]], conditions: Sequence[Condition], batch_size: int
) -> dict[tuple, torch.Tensor]:
    """The detection pass of conditional steering: per condition, whether each prompt is steered,
    i.e. its last token's projection on the condition's direction at its layer, with no steering
    applied, is below the threshold. One forward per batch of prompts; bool per prompt."""
    layers = sorted({c.layer for c in conditions})
    seen: dict[int, torch.Tensor] = {}

    def record(layer):
        def hook(x, hook):
            seen[layer] = x[:, -1].float()
            return x

        return hook

    projections = {c.key(): torch.empty(len(seqs)) for c in conditions}
    units = {
        c.key(): (c.direction / c.direction.norm()).to(device=model.device, dtype=torch.float32) for c in conditions
    }
    with model.bridge.hooks(fwd_hooks=[(model.hook_name(l), record(l)) for l in layers]):
        for start in range(0, len(seqs), batch_size):
            rows = list(range(start, min(start + batch_size, len(seqs))))
            ids, mask = left_pad([seqs[i] for i in rows], model.pad_token_id, model.device)
            model.forward(ids, mask, positions(mask), keep=0)
            for c in conditions:
                projections[c.key()][rows] = (seen[c.layer] @ units[c.key()]).cpu()
    return {c.key(): projections[c.key()] < c.threshold for c in conditions}
