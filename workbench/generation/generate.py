"""Generation: batched, left-padded, KV-cached, greedy by default, with steering hooks firing.

``generate`` checks its input, runs conditional steering's detection pass, puts the steering hooks
in place and hands batches (longest prompts first) to the decode loops of ``workbench.generation.decoding``;
a batch that runs out of memory is retried at half the size. How it decodes is one typed object,
``GenerationOptions``; its fields are also accepted as keywords (``max_new_tokens=32``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from workbench.errors import WorkbenchError
from workbench.generation import compiled
from workbench.generation.batching import auto_batch_size
from workbench.generation.decoding import GenerationOptions, Replies, decode_compiled, decode_eager, halved, sample
from workbench.generation.detection import detect
from workbench.generation.steering import Steer, StepState, steering
from workbench.models import Model

__all__ = ["Generation", "GenerationOptions", "compile_default", "generate", "sample"]

Decode = Callable[[list[list[int]], Tensor], list[tuple[list[int], bool]]]


@dataclass(frozen=True)
class Generation:
    prompt: str
    text: str
    token_ids: tuple[int, ...]
    stopped: bool  # ended with an end-of-turn token (False: hit max_new_tokens)

    def first(self, n: int, model: Model) -> Generation:
        """The generation a budget of ``n`` new tokens gives (greedy decoding is prefix-consistent)."""
        if len(self.token_ids) <= n:
            return self
        return Generation(self.prompt, model.decode(list(self.token_ids[:n])), self.token_ids[:n], False)


def compile_default() -> bool:
    """``$WORKBENCH_COMPILE`` (1/true/yes): generate through the compiled step unless told otherwise."""
    return os.environ.get("WORKBENCH_COMPILE", "").lower() in ("1", "true", "yes")


def generate(
    model: Model,
    prompts: Sequence[str],
    steer: Steer | Sequence[Steer] = (),
    *,
    options: GenerationOptions | None = None,
    **overrides: Any,
) -> list[Generation]:
    """Generate a reply to each prompt (user messages, wrapped in the chat template when ``chat``).

    ``options`` (``GenerationOptions``) says how; keywords override its fields, e.g.
    ``generate(model, prompts, steer=specs, max_new_tokens=32)``. Per-prompt coefficient tensors in
    ``steer`` are indexed by the prompt's position in ``prompts``. Prompts are batched longest first
    to waste little on padding; the output keeps input order. ``compile``: decode through the
    compiled step (``workbench.generation.compiled``; default ``$WORKBENCH_COMPILE``); the first call compiles
    (minutes on a CPU), later ones reuse it for any steering. It falls back to eager, with a warning,
    where it cannot run (TL hooks other than steering, an operator it does not know, no cache).
    ``on_step(n)`` is called after every decode step with the token budget it used up (a token per row
    still generating, plus what a row that ended no longer needs): the calls sum to len(prompts) ×
    max_new_tokens, an honest total for a progress bar (``progress`` draws one). Logits that break
    down (NaN, inf: a coefficient too large or not finite) raise ``WorkbenchError``.
    A model with a ``backend`` (``vllm_engine.use_vllm``) generates there, with the same steering
    and the same greedy tokens; ``batch_size``, ``use_cache`` and ``compile`` are then the backend's.
    """
    if not prompts:
        raise WorkbenchError("no prompts given: pass at least one prompt")
    opts = replace(options or GenerationOptions(), **overrides)
    if model.backend is not None:
        return _through_backend(model, prompts, steer, opts)
    seqs = _encode(model, prompts, opts)
    specs = [steer] if isinstance(steer, Steer) else list(steer)
    longest = max(len(s) for s in seqs)
    batch_size = opts.batch_size or auto_batch_size(model, longest + opts.max_new_tokens, rows=len(seqs))
    state = StepState()
    conditions = list({s.when.key(): s.when for s in specs if s.when is not None}.values())
    if conditions:  # decided once per prompt, unsteered, before any steering hook is in place
        state.gates = detect(model, seqs, conditions, batch_size)
    compile = _compiles(model, specs, opts)
    generator = torch.Generator(device=model.device).manual_seed(opts.seed) if opts.do_sample else None
    total = len(seqs) * opts.max_new_tokens
    bar = tqdm(total=total, desc="generate", unit="tok", unit_scale=True, disable=not opts.progress, leave=False)
    with steering(model, specs if not compile else [], state), bar:
        budget = _Budget(bar, opts.on_step)

        def decode(batch: list[list[int]], rows: Tensor) -> list[tuple[list[int], bool]]:
            replies = Replies(model, rows, opts, generator, budget)
            if compile:
                return decode_compiled(model, batch, replies, specs, state.gates)
            return decode_eager(model, batch, replies, state)

        outs = _in_batches(model, seqs, batch_size, decode, budget)
    return [Generation(p, model.decode(t), tuple(t), stopped) for p, (t, stopped) in zip(prompts, outs)]


def _through_backend(
    model: Model, prompts: Sequence[str], steer: Steer | Sequence[Steer], opts: GenerationOptions
) -> list[Generation]:
    """Generation in the model's other engine, with the options it knows."""
    gens = model.backend.generate(
        prompts,
        steer,
        max_new_tokens=opts.max_new_tokens,
        chat=opts.chat,
        stop_at_eos=opts.stop_at_eos,
        do_sample=opts.do_sample,
        temperature=opts.temperature,
        seed=opts.seed,
        progress=opts.progress,
    )
    if opts.on_step is not None:  # one batch: its whole budget at once
        opts.on_step(len(prompts) * opts.max_new_tokens)
    return gens


def _encode(model: Model, prompts: Sequence[str], opts: GenerationOptions) -> list[list[int]]:
    """Each prompt's token ids (templated when ``chat``), refused before any work when one is empty
    or the longest plus the new tokens exceeds the context."""
    seqs = [model.encode(model.chat(p) if opts.chat else p) for p in prompts]
    longest = max(len(s) for s in seqs)
    if longest + opts.max_new_tokens > model.n_ctx:
        raise WorkbenchError(
            f"a prompt of {longest} tokens plus {opts.max_new_tokens} new tokens exceeds {model.name}'s context "
            f"of {model.n_ctx}: shorten it or lower max_new_tokens"
        )
    if any(len(s) == 0 for s in seqs):
        raise WorkbenchError("an empty prompt has no tokens: remove it or use chat=True")
    return seqs


def _compiles(model: Model, specs: list[Steer], opts: GenerationOptions) -> bool:
    """Whether to decode through the compiled step: asked for, and able to (else a warning)."""
    compile = compile_default() if opts.compile is None else opts.compile
    if compile and (why := compiled.supported(model, specs) or (None if opts.use_cache else "use_cache=False")):
        warnings.warn(f"generating eagerly: {why}", stacklevel=3)
        return False
    return compile


class _Budget:
    """The token budget reported so far, to a progress bar and ``on_step``; ``spent`` is the current
    batch's share, taken back (``undo``) when that batch runs out of memory and is retried."""

    def __init__(self, bar: tqdm, on_step: Callable[[int], None] | None):
        self.bar, self.on_step, self.spent = bar, on_step, 0

    def __call__(self, n: int) -> None:
        self.spent += n
        self.bar.update(n)
        if self.on_step is not None:
            self.on_step(n)

    def undo(self) -> None:
        self(-self.spent)


def _in_batches(
    model: Model, seqs: list[list[int]], batch_size: int, decode: Decode, budget: _Budget
) -> list[tuple[list[int], bool]]:
    """``decode`` over batches of ``batch_size`` rows, longest prompts first (little padding),
    halving the size when a batch runs out of memory; results in the order of ``seqs``."""
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    results: list[tuple[list[int], bool]] = [([], False)] * len(seqs)
    start = 0
    while start < len(order):
        chunk, budget.spent = order[start : start + batch_size], 0
        try:
            outs = decode([seqs[i] for i in chunk], torch.tensor(chunk))
        except torch.OutOfMemoryError:
            budget.undo()
            batch_size = halved(model, len(chunk))
            continue
        for i, out in zip(chunk, outs):
            results[i] = out
        start += len(chunk)
    return results
