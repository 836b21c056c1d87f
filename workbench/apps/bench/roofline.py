"""The memory-bandwidth roofline of decoding: at batch 1 a decoding step reads every weight once and
the KV cache so far, so no step can be faster than those bytes over the machine's read bandwidth.
``share`` is how close a measured speed comes to that bound."""

from __future__ import annotations

import time

import torch

from workbench.generation.batching import kv_bytes
from workbench.models import Model


def weight_bytes(model: Model) -> int:
    """Bytes of the model's weights, each tensor once (tied embeddings and the twin share storage)."""
    seen: dict[int, int] = {}
    for p in model.hf.parameters():
        seen[p.data_ptr()] = p.numel() * p.element_size()
    return sum(seen.values())


def step_bytes(model: Model, context: int, batch: int = 1) -> int:
    """Bytes one decoding step must read: the weights once, each row's cache."""
    return weight_bytes(model) + batch * kv_bytes(model, context)


def read_bandwidth(device: torch.device | str, gib: float = 1.0, repeats: int = 5) -> float:
    """The device's read bandwidth in bytes/s: best of ``repeats`` sums over a ``gib`` GiB tensor
    (what a decoding step does to its weights: stream them once)."""
    x = torch.ones(int(gib * (1 << 30)) // 4, dtype=torch.float32, device=device)
    best = float("inf")
    for _ in range(repeats + 1):  # the first warms the pages and the kernel
        start = time.perf_counter()
        x.sum().item()
        best = min(best, time.perf_counter() - start)
    del x
    return gib * (1 << 30) / best


def share(model: Model, tokens_per_s: float, context: int, bandwidth: float, batch: int = 1) -> float:
    """The measured decoding speed as a share of the roofline (1.0 = every step at the bound)."""
    return step_bytes(model, context, batch) * tokens_per_s / batch / bandwidth
