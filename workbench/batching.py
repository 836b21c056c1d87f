"""Batches: left padding, position ids from the padding mask, and how many rows fit in memory.

Left padding puts every prompt's last token in the last column, where generation continues and
where instruction vectors are read.
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from workbench.models import Model


def left_pad(seqs: Sequence[Sequence[int]], pad: int, device: torch.device | str | None = None) -> tuple[Int[Tensor, "batch width"], Int[Tensor, "batch width"]]:
    """Token ids and attention mask (1 = real token), padded on the left to the longest sequence."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s):] = torch.tensor(list(s), dtype=torch.long)
        mask[i, width - len(s):] = 1
    return ids.to(device), mask.to(device)


def positions(mask: Int[Tensor, "batch width"]) -> Int[Tensor, "batch width"]:
    """Position ids that start at 0 at each row's first real token (padding gets 0)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def auto_batch_size(model: Model, max_len: int, cap: int = 64) -> int:
    """Rows that fit in a quarter of free memory: KV cache plus eager attention scores."""
    cfg = model.hf.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", cfg.num_attention_heads)
    per_row = 4 * (2 * cfg.num_hidden_layers * kv_heads * head_dim * max_len + cfg.num_attention_heads * max_len * max_len + 8 * cfg.hidden_size * max_len)
    if model.device.type == "cuda":
        free = torch.cuda.mem_get_info(model.device)[0]
    else:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            free = 4 << 30
    return int(max(1, min(cap, free // 4 // per_row)))
