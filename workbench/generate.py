"""Generation: batched, left-padded, KV-cached, greedy by default, with steering hooks firing.

We drive the forward ourselves (``Model.forward``: the weight-sharing twin that fires the bridge's
resid_post hooks, or the bridge-wrapped model when other TL hooks are set). The prompt is
prefilled once, each new token costs one single-column step, finished rows leave the batch, and only
the last position's logits are computed.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from workbench import compiled
from workbench.batching import auto_batch_size, left_pad, positions
from workbench.detection import detect
from workbench.errors import WorkbenchError
from workbench.models import Model
from workbench.steering import Steer, StepState, steering


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


@functools.cache
def _warn_no_cache() -> None:
    warnings.warn(
        "TransformerLens's bridge ignores the KV cache with this transformers version: generation through the "
        "bridge's own modules (a TL hook other than resid_post, or Model.through_bridge()) recomputes without a cache "
        "(correct, slower)",
        stacklevel=3,
    )


def sample(
    logits: Float[Tensor, "batch vocab"], temperature: float, generator: torch.Generator | None
) -> Int[Tensor, " batch"]:
    """One token per row from softmax(logits / temperature), on the logits' device, by inverting the
    cumulative distribution at one uniform draw per row: the distribution of ``torch.multinomial``,
    about 7× cheaper on a CPU (whose multinomial costs as much as a 135M model's decode step)."""
    cdf = torch.softmax(logits.float() / max(temperature, 1e-6), dim=-1).cumsum(-1)
    u = (
        torch.rand(cdf.shape[0], 1, device=cdf.device, generator=generator) * cdf[:, -1:]
    )  # the cdf's own total: no rounding gap at the top
    return (
        torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp_max(cdf.shape[-1] - 1)
    )  # right: a zero-probability token is never drawn


def _pick(logits: torch.Tensor, do_sample: bool, temperature: float, generator) -> torch.Tensor:
    return sample(logits, temperature, generator) if do_sample else logits.argmax(-1)


def _halved(model: Model, rows: int) -> int:
    """The batch size after ``rows`` rows ran out of memory: half, with a warning; at one row, an error."""
    if rows == 1:
        raise WorkbenchError(
            f"one row does not fit in {model.device}'s memory: shorten the prompt or max_new_tokens, or use a smaller model"
        )
    if model.device.type == "cuda":
        torch.cuda.empty_cache()
    warnings.warn(
        f"out of memory at {rows} rows a batch: retrying with {rows // 2} (WORKBENCH_BATCH_SIZE sets it)", stacklevel=3
    )
    return rows // 2


def _record(
    replies: Sequence[int],
    token: Tensor,
    logits: Tensor,
    stops: Tensor,
    out: list[list[int]],
    stopped: list[bool],
    step: int,
    rows: Tensor,
) -> list[int]:
    """One decode step's bookkeeping, with the step's one host sync: batch row i's token extends
    reply ``replies[i]`` (prompt ``rows[replies[i]]``), or an end-of-turn token marks it stopped; a
    stopped reply takes no more tokens. Returns the rows' end-of-turn flags (1 or 0). In the same
    sync: a reply still generating whose logits broke down raises (NaN, infinite, or all equal: a
    residual stream that overflowed normalises to zero), instead of an empty reply."""
    low, high = torch.aminmax(logits, dim=-1)
    sane = torch.isfinite(low) & torch.isfinite(high) & (high > low)  # a NaN anywhere makes low and high NaN
    tokens, done, ok = torch.stack([token, torch.isin(token, stops).long(), sane.long()]).tolist()
    if broken := [reply for reply, k in zip(replies, ok) if not k and not stopped[reply]]:
        named = ", ".join(map(str, rows[broken[:8]].tolist())) + (
            f" and {len(broken) - 8} more" if len(broken) > 8 else ""
        )
        raise WorkbenchError(
            f"generation produced non-finite logits at new token {step + 1} (prompts {named}): NaN, infinite or all equal, "
            "as when the residual stream overflows; a steering coefficient too large or not finite?"
        )
    for reply, t, d in zip(replies, tokens, done):
        if stopped[reply]:
            continue
        if d:
            stopped[reply] = True
        else:
            out[reply].append(t)
    return done


@torch.inference_mode()
def _generate_batch(
    model: Model,
    seqs: list[list[int]],
    rows: torch.Tensor,
    state: StepState,
    max_new_tokens: int,
    use_cache: bool,
    do_sample: bool,
    temperature: float,
    generator,
    stop_at_eos: bool,
    on_step: Callable[[int], None],
) -> list[tuple[list[int], bool]]:
    device = model.device
    stops = torch.tensor(model.stop_token_ids if stop_at_eos else [], dtype=torch.long, device=device)
    ids, mask = left_pad(seqs, model.pad_token_id, device)
    width = ids.shape[1]
    n = len(seqs)
    out: list[list[int]] = [[] for _ in range(n)]
    stopped = [False] * n
    alive = list(range(n))  # batch row -> local index, on the host: no device sync to read it
    state.prompt_width, state.offset = width, 0
    step_ids, step_mask = ids, mask
    if use_cache and not model.caches:  # asked once the steering hooks are in place
        _warn_no_cache()
        use_cache = False
    cache = model.new_cache() if use_cache else None
    for step in range(max_new_tokens):
        state.rows = rows[alive]
        if use_cache:
            new = step_ids if step == 0 else step_ids[:, -1:]
            state.offset = step_mask.shape[1] - new.shape[1]
            logits = model.forward(new, step_mask, positions(step_mask)[:, -new.shape[1] :], cache)[:, -1]
        else:
            state.offset = 0
            logits = model.forward(step_ids, step_mask, positions(step_mask))[:, -1]
        token = _pick(logits, do_sample, temperature, generator)
        live = stopped.count(False)
        done = _record(alive, token, logits, stops, out, stopped, step, rows)
        on_step(
            live + (live - stopped.count(False)) * (max_new_tokens - 1 - step)
        )  # a token each, and what a row that ended no longer needs
        if all(done) or step == max_new_tokens - 1:
            break
        step_ids = torch.cat([step_ids, token[:, None]], dim=1)
        step_mask = torch.cat([step_mask, torch.ones_like(token)[:, None]], dim=1)
        if any(done):  # finished rows stop costing compute
            kept = [row for row, d in enumerate(done) if not d]
            keep = torch.tensor(kept, device=device)
            alive, step_ids, step_mask = [alive[row] for row in kept], step_ids[keep], step_mask[keep]
            if cache is not None:
                cache.batch_select_indices(keep)
    return list(zip(out, stopped))


@torch.inference_mode()
def _generate_batch_compiled(
    model: Model,
    seqs: list[list[int]],
    rows: torch.Tensor,
    specs: list[Steer],
    gates: dict,
    max_new_tokens: int,
    do_sample: bool,
    temperature: float,
    generator,
    stop_at_eos: bool,
    on_step: Callable[[int], None],
) -> list[tuple[list[int], bool]]:
    """``_generate_batch`` through the compiled step (``workbench.compiled``): same tokens, fixed shapes."""
    device = model.device
    stops = torch.tensor(model.stop_token_ids if stop_at_eos else [], dtype=torch.long, device=device)
    dec = compiled.decoder(model)
    ids, mask = left_pad(seqs, model.pad_token_id, device)
    n, width = ids.shape
    length = -(-(width + max_new_tokens) // compiled.BUCKET) * compiled.BUCKET  # few cache shapes, few compiles
    cache = dec.cache(n, length)
    full = torch.cat([mask, torch.ones(n, length - width, dtype=mask.dtype, device=device)], dim=1)
    position = positions(mask)
    out: list[list[int]] = [[] for _ in range(n)]
    stopped = [False] * n
    dec.active = True
    try:
        dec.load(specs, rows, gates, "prompt")
        logits = dec.prefill(ids, full, position, cache)
        dec.load(specs, rows, gates, "generated")
        position = position[:, -1]
        for step in range(max_new_tokens):
            token = _pick(logits, do_sample, temperature, generator)
            live = stopped.count(False)
            _record(
                range(n), token, logits, stops, out, stopped, step, rows
            )  # finished rows stay in the batch: fixed shapes
            on_step(live + (live - stopped.count(False)) * (max_new_tokens - 1 - step))
            if all(stopped) or step == max_new_tokens - 1:
                break
            position = position + 1
            logits = dec.step(token, full, position, width + step, cache)
    finally:
        dec.active = False
    return list(zip(out, stopped))


def compile_default() -> bool:
    """``$WORKBENCH_COMPILE`` (1/true/yes): generate through the compiled step unless told otherwise."""
    return os.environ.get("WORKBENCH_COMPILE", "").lower() in ("1", "true", "yes")


def generate(
    model: Model,
    prompts: Sequence[str],
    steer: Steer | Sequence[Steer] = (),
    max_new_tokens: int = 64,
    batch_size: int | None = None,
    chat: bool = True,
    use_cache: bool = True,
    do_sample: bool = False,
    temperature: float = 1.0,
    seed: int = 0,
    progress: bool = False,
    stop_at_eos: bool = True,
    compile: bool | None = None,
    on_step: Callable[[int], None] | None = None,
) -> list[Generation]:
    """Generate a reply to each prompt (user messages, wrapped in the chat template when ``chat``).

    Per-prompt coefficient tensors in ``steer`` are indexed by the prompt's position in ``prompts``.
    Prompts are batched longest first to waste little on padding; the output keeps input order.
    ``stop_at_eos=False`` always generates ``max_new_tokens`` (benchmarks). ``compile``: decode through
    the compiled step (``workbench.compiled``; default ``$WORKBENCH_COMPILE``); the first call compiles
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
    if max_new_tokens < 1:
        raise WorkbenchError(f"max_new_tokens must be ≥ 1, got {max_new_tokens}")
    if model.backend is not None:
        gens = model.backend.generate(
            prompts,
            steer,
            max_new_tokens=max_new_tokens,
            chat=chat,
            stop_at_eos=stop_at_eos,
            do_sample=do_sample,
            temperature=temperature,
            seed=seed,
            progress=progress,
        )
        if on_step is not None:  # one batch: its whole budget at once
            on_step(len(prompts) * max_new_tokens)
        return gens
    texts = [model.chat(p) if chat else p for p in prompts]
    seqs = [model.encode(t) for t in texts]
    longest = max(len(s) for s in seqs)
    if longest + max_new_tokens > model.n_ctx:
        raise WorkbenchError(
            f"a prompt of {longest} tokens plus {max_new_tokens} new tokens exceeds {model.name}'s context of {model.n_ctx}: shorten it or lower max_new_tokens"
        )
    if any(len(s) == 0 for s in seqs):
        raise WorkbenchError("an empty prompt has no tokens: remove it or use chat=True")
    batch_size = batch_size or auto_batch_size(model, longest + max_new_tokens, rows=len(seqs))
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    generator = torch.Generator(device=model.device).manual_seed(seed) if do_sample else None
    results: list[Generation | None] = [None] * len(seqs)
    state = StepState()
    specs = [steer] if isinstance(steer, Steer) else list(steer)
    conditions = list({s.when.key(): s.when for s in specs if s.when is not None}.values())
    if conditions:  # decided once per prompt, unsteered, before any steering hook is in place
        state.gates = detect(model, seqs, conditions, batch_size)
    start, spent = 0, [0]  # spent: budget reported for the current batch, taken back if it runs out of memory

    def stepped(n: int) -> None:
        spent[0] += n
        bar.update(n)
        if on_step is not None:
            on_step(n)

    compile = compile_default() if compile is None else compile
    if compile and (why := compiled.supported(model, specs) or (None if use_cache else "use_cache=False")):
        warnings.warn(f"generating eagerly: {why}", stacklevel=2)
        compile = False
    with (
        steering(model, specs if not compile else [], state),
        tqdm(
            total=len(seqs) * max_new_tokens,
            desc="generate",
            unit="tok",
            unit_scale=True,
            disable=not progress,
            leave=False,
        ) as bar,
    ):
        while start < len(order):
            chunk, spent[0] = order[start : start + batch_size], 0
            try:
                if compile:
                    outs = _generate_batch_compiled(
                        model,
                        [seqs[i] for i in chunk],
                        torch.tensor(chunk),
                        specs,
                        state.gates,
                        max_new_tokens,
                        do_sample,
                        temperature,
                        generator,
                        stop_at_eos,
                        stepped,
                    )
                else:
                    outs = _generate_batch(
                        model,
                        [seqs[i] for i in chunk],
                        torch.tensor(chunk),
                        state,
                        max_new_tokens,
                        use_cache,
                        do_sample,
                        temperature,
                        generator,
                        stop_at_eos,
                        stepped,
                    )
            except torch.OutOfMemoryError:
                stepped(-spent[0])
                batch_size = _halved(model, len(chunk))
                continue
            for i, (tokens, stopped) in zip(chunk, outs):
                results[i] = Generation(prompts[i], model.decode(tokens), tuple(tokens), stopped)
            start += len(chunk)
    return results  # type: ignore[return-value]
