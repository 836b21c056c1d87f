"""Compiled decoding: a static KV cache and a ``torch.compile``d decode step, steering as tensors.

Eager decoding launches every kernel of every layer from Python, once per token; on a GPU that, not
memory bandwidth, bounds a small batch. Here the prompt is prefilled eagerly into a static cache and
each later token is one call of the compiled step (CUDA graphs on a GPU: ``reduce-overhead``).

Steering lives inside the graph as data. Every operator in ``AFFINE`` is ``x ← x + (a − b·(x·u))·u``:
``add`` is (a=c, b=0), ``project`` (a=c, b=1), ``ablate`` (a=0, b=1). Each layer has a few slots of
(u, a per row, b per row), zero where unused, applied by a forward hook on the twin's decoder layer;
new coefficients, directions, layers or rows are new values in the same tensors, so a whole sweep
reuses one compiled step. Rows stay in the batch when they finish (shapes stay fixed); their tokens
are dropped. The eager engine (``Model.forward``) stays the reference; tests prove they agree.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import torch
from jaxtyping import Float, Int
from torch import Tensor

from workbench.generation.steering import OPERATORS, Steer
from workbench.io import cache_dir
from workbench.models import Model, cache_argument

AFFINE: dict[str, tuple[float, float]] = {name: op.affine for name, op in OPERATORS.items() if op.affine is not None}
"""Operator name → (share of c in a, b): the operators the compiled step knows (each ``Operator.affine``)."""

BUCKET = 64  # cache lengths are rounded up to a multiple: one compiled shape serves many prompt lengths
SLOTS = 4  # steering interventions per layer the step holds before it must grow (and recompile)
STEERED = {"prompt": ("all", "prompt"), "generated": ("all", "generated")}  # the positions steered in each phase


def supported(model: Model, specs: Sequence[Steer]) -> str | None:
    """Why the compiled step cannot run this generation (None: it can). The eager engine does then."""
    if any(hp.has_hooks() for hp in model.bridge.hook_dict.values()):
        return "TransformerLens hooks are set (they run eagerly)"
    if unknown := sorted({s.mode for s in specs} - set(AFFINE)):
        return f"operator {unknown[0]!r} has no affine form (Operator.affine is None)"
    if model.runner is not model.twin:
        return "the model runs through the bridge (no twin, or compatibility mode)"
    return None


def kernel_cache() -> str:
    """Point inductor's kernel cache at ``$WORKBENCH_CACHE/inductor`` (kept with the weights, not in
    /tmp) unless the user chose a folder. Torch writes its /tmp default into the environment the first
    time it asks, so that default counts as unchosen."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    chosen = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if chosen is None or os.path.abspath(chosen) == os.path.abspath(default_cache_dir()):
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir() / "inductor")
    return os.environ["TORCHINDUCTOR_CACHE_DIR"]


class Decoder:
    """A model's compiled decode step, its static caches and its steering tables."""

    def __init__(self, model: Model, slots: int = SLOTS):
        if model.twin is None:
            raise RuntimeError("the compiled step runs the model's twin, and this model has none")
        self.model = model
        self.twin = cast(Any, model.twin)  # a transformers causal LM
        kernel_cache()
        mode = "reduce-overhead" if model.device.type == "cuda" else None
        self.step_fn = torch.compile(self.twin.forward, mode=mode)
        self.cache_kw = cache_argument(self.twin)  # asked once: it inspects a signature
        self.caches: dict[tuple[int, int], Any] = {}
        # The hooks steer only inside ``engaged()``; they stay installed, as the compiled graph holds them.
        self.active = False
        self._resize(1, slots)
        self.handles = [
            layer.register_forward_hook(self._hook(i)) for i, layer in enumerate(self.twin.base_model.layers)
        ]

    def close(self) -> None:
        """Remove the hooks from the twin (the decoder is unusable after)."""
        for handle in self.handles:
            handle.remove()
        self.handles = []

    @contextmanager
    def engaged(self) -> Iterator[Decoder]:
        """Steer from the tables inside the block (eager calls of the twin outside it are not steered
        by them); off again on exit, also after an error."""
        self.active = True
        try:
            yield self
        finally:
            self.active = False

    def _resize(self, batch: int, slots: int) -> None:
        n, d = self.model.n_layers, self.model.d_model
        device, dtype = self.model.device, self.model.dtype
        self.directions: Float[Tensor, "n_layers slots d_model"] = torch.zeros(n, slots, d, device=device, dtype=dtype)
        self.shift: Float[Tensor, "n_layers batch slots"] = torch.zeros(n, batch, slots, device=device, dtype=dtype)
        self.removed: Float[Tensor, "n_layers batch slots"] = torch.zeros(n, batch, slots, device=device, dtype=dtype)

    def _hook(self, layer: int):
        def hook(module, args, output):
            if not self.active:
                return None
            x = output[0] if isinstance(output, tuple) else output
            u, a, b = self.directions[layer], self.shift[layer][:, None, :], self.removed[layer][:, None, :]
            x = x + (a - b * (x @ u.T)) @ u
            return (x,) + tuple(output[1:]) if isinstance(output, tuple) else x

        return hook

    def load(self, specs: Sequence[Steer], rows: Tensor, gates: dict, phase: str) -> None:
        """Write ``specs`` into the tables for a batch whose rows are prompts ``rows`` (global
        indices), as steered in ``phase`` ("prompt": the prefill; "generated": each new token)."""
        per_layer: dict[int, list[Steer]] = {}
        for spec in specs:
            per_layer.setdefault(spec.layer, []).append(spec)
        slots = max([self.directions.shape[1], *map(len, per_layer.values())])
        if (len(rows), slots) != tuple(self.shift.shape[1:]):
            self._resize(len(rows), slots)
        self.directions.zero_(), self.shift.zero_(), self.removed.zero_()
        for layer, layer_specs in per_layer.items():
            for slot, spec in enumerate(layer_specs):
                if spec.positions not in STEERED[phase]:
                    continue
                c = torch.as_tensor(spec.coefficient, dtype=torch.float32)
                c = c.expand(len(rows)) if c.ndim == 0 else c[rows]
                on = ~torch.isnan(c)
                if spec.when is not None:
                    on &= gates[spec.when.key()][rows].to(on.device)
                alpha, beta = AFFINE[spec.mode]
                self.directions[layer, slot] = spec.direction / spec.direction.norm()
                self.shift[layer, :, slot] = torch.where(on, alpha * c, 0.0)
                self.removed[layer, :, slot] = on.float() * beta

    def cache(self, batch: int, length: int):
        """A static cache for ``batch`` rows of ``length`` tokens, emptied (one per shape, reused)."""
        from transformers import StaticCache

        key = (batch, length)
        if key not in self.caches:
            self.caches[key] = StaticCache(config=self.twin.config, max_cache_len=length)
        cache = self.caches[key]
        cache.reset()
        return cache

    def prefill(
        self,
        ids: Int[Tensor, "batch width"],
        mask: Int[Tensor, "batch length"],
        positions: Int[Tensor, "batch width"],
        cache,
    ) -> Float[Tensor, "batch vocab"]:
        """The prompt, eagerly, into ``cache`` (``mask`` spans the cache: prompt columns, then ones)."""
        kv = {self.cache_kw: cache}
        return self.twin(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            cache_position=torch.arange(ids.shape[1], device=ids.device),
            use_cache=True,
            logits_to_keep=1,
            **kv,
        ).logits[:, -1]

    def step(
        self,
        token: Int[Tensor, " batch"],
        mask: Int[Tensor, "batch length"],
        position: Int[Tensor, " batch"],
        column: int,
        cache,
    ) -> Float[Tensor, "batch vocab"]:
        """One new token per row at cache column ``column``, through the compiled step."""
        kv = {self.cache_kw: cache}
        out = self.step_fn(
            input_ids=token[:, None],
            attention_mask=mask,
            position_ids=position[:, None],
            cache_position=torch.tensor([column], device=token.device),
            use_cache=True,
            logits_to_keep=1,
            **kv,
        )
        return out.logits[:, -1].clone()  # CUDA graphs reuse their output buffer at the next step


def decoder(model: Model) -> Decoder:
    """The model's decoder, made (not yet compiled: that happens at its first step) on first use."""
    if not isinstance(model.decoder, Decoder):
        model.decoder = Decoder(model)
    return model.decoder
