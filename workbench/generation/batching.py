"""Batches: left padding, position ids from the padding mask, and how many rows fit in memory.

Left padding puts every prompt's last token in the last column, where generation continues and
where instruction vectors are read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import torch
from jaxtyping import Int
from torch import Tensor

from workbench.errors import WorkbenchError
from workbench.models import Model

if TYPE_CHECKING:
    from transformers import PretrainedConfig


def left_pad(
    seqs: Sequence[Sequence[int]], pad: int, device: torch.device | str | None = None
) -> tuple[Int[Tensor, "batch width"], Int[Tensor, "batch width"]]:
    """Token ids and attention mask (1 = real token), padded on the left to the longest sequence."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s) :] = torch.tensor(list(s), dtype=torch.long)
        mask[i, width - len(s) :] = 1
    return ids.to(device), mask.to(device)


def positions(mask: Int[Tensor, "batch width"]) -> Int[Tensor, "batch width"]:
    """Position ids that start at 0 at each row's first real token (padding gets 0)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


MEMORY_FRACTION = 0.25  # of the free memory a batch may plan to use: the safety margin


def _config(model: Model) -> PretrainedConfig:
    """The HF model's config (``Model.hf`` is typed as a plain module)."""
    return cast("PretrainedConfig", model.hf.config)


def kv_bytes(model: Model, tokens: int) -> int:
    """Bytes of one row's KV cache over ``tokens`` tokens, in the model's precision."""
    cfg = _config(model)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    return 2 * cfg.num_hidden_layers * kv_heads * head_dim * tokens * torch.empty((), dtype=model.dtype).element_size()


def row_bytes(model: Model, max_len: int) -> int:
    """Peak bytes one batch row of ``max_len`` tokens needs: its KV cache (the part that lives
    through decoding) plus the prefill's largest transients (eager attention scores in float32,
    the MLP's two intermediate activations, a few residual-width ones)."""
    cfg = _config(model)
    size = torch.empty((), dtype=model.dtype).element_size()
    kv = kv_bytes(model, max_len)
    scores = 4 * cfg.num_attention_heads * max_len * max_len
    mlp = 2 * (getattr(cfg, "intermediate_size", None) or 4 * cfg.hidden_size) * max_len * size
    return kv + scores + mlp + 8 * cfg.hidden_size * max_len * size


def free_bytes(device: torch.device) -> int:
    """Free memory where the model lives: the GPU's, or the host's available RAM."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 4 << 30


def auto_batch_size(model: Model, max_len: int, rows: int | None = None) -> int:
    """How many rows of ``max_len`` tokens fit in ``MEMORY_FRACTION`` of free memory (at most
    ``rows``, the rows there are). ``WORKBENCH_BATCH_SIZE`` overrides the estimate; generation
    halves a batch that still runs out of memory and goes on."""
    if os.environ.get("WORKBENCH_BATCH_SIZE"):
        try:
            fixed = int(os.environ["WORKBENCH_BATCH_SIZE"])
        except ValueError:
            fixed = 0
        if fixed < 1:
            raise WorkbenchError(
                f"WORKBENCH_BATCH_SIZE must be a positive whole number, got {os.environ['WORKBENCH_BATCH_SIZE']!r}"
            )
        return max(1, min(fixed, rows or fixed))
    fit = int(free_bytes(model.device) * MEMORY_FRACTION // row_bytes(model, max_len))
    return max(1, min(fit, rows or fit))
