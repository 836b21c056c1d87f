"""Does the bridge's own attention honour a KV cache? Probed once per architecture, precision,
device type and library versions, and remembered in the cache folder (``probes.json``).

TransformerLens 4.3's attention ignores the KV cache under transformers ≥ 5.24 (which renamed
``past_key_values`` to ``cache``); generation through the bridge then recomputes in full instead.
"""

from __future__ import annotations

import json
from importlib.metadata import version

import torch

from workbench.io import cache_dir, write_atomic
from workbench.models.dtypes import dtype_name


def probed(model, hf_model) -> bool:
    """``bridge_honours_cache(model)`` (a ``Model``), asked once per key: it depends on nothing else."""
    key = "|".join(
        [
            type(hf_model).__name__,
            dtype_name(model.dtype),
            model.device.type,
            *(f"{lib}={version(lib)}" for lib in ("transformer-lens", "transformers", "torch")),
        ]
    )
    path = cache_dir() / "probes.json"
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        known[key] = bridge_honours_cache(model)
        try:
            write_atomic(path, json.dumps(known, indent=1, sort_keys=True))
        except OSError:
            pass  # a read-only cache costs a probe per load, nothing else
    return bool(known[key])


@torch.inference_mode()
def bridge_honours_cache(model) -> bool:
    """Does a cached decoding step through the bridge's modules equal a full forward (``model``: a ``Model``)?"""
    ids = torch.arange(3, 9, device=model.device)[None] % model.hf.config.vocab_size
    mask = torch.ones_like(ids)
    positions = torch.arange(ids.shape[1], device=model.device)[None]
    with model.through_bridge():
        full = model.forward(ids, mask, positions)[0, -1].float()
        cache = model.new_cache()
        model.forward(ids[:, :-1], mask[:, :-1], positions[:, :-1], cache)
        step = model.forward(ids[:, -1:], mask, positions[:, -1:], cache)[0, -1].float()
    return bool((full - step).abs().max() <= 1e-2 * max(1.0, float(full.abs().max())))
