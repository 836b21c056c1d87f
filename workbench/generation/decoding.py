"""The decode loops: one batch of token ids to replies, token by token, eager or compiled.

The eager loop drives ``Model.forward`` itself: the prompt is prefilled once, each new token costs
one single-column step, finished rows leave the batch, and only the last position's logits are
computed. The compiled loop runs the same steps through ``workbench.generation.compiled`` with fixed shapes.
Both share one bookkeeping step (``Replies.record``) and one sampler, so their tokens agree.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from workbench.errors import WorkbenchError
from workbench.generation import compiled
from workbench.generation.batching import left_pad, positions
from workbench.generation.steering import Steer, StepState
from workbench.models import Model


@dataclass(frozen=True)
class GenerationOptions:
    """How ``generate`` decodes; every field has the default ``generate`` always had.

    ``chat``: wrap prompts in the chat template. ``stop_at_eos=False`` always generates
    ``max_new_tokens`` (benchmarks). ``batch_size=None``: as many rows as fit in memory.
    ``compile=None``: ``$WORKBENCH_COMPILE``. ``on_step(n)``: the token budget each decode step used up.
    """

    max_new_tokens: int = 64
    batch_size: int | None = None
    chat: bool = True
    use_cache: bool = True
    do_sample: bool = False
    temperature: float = 1.0
    seed: int = 0
    progress: bool = False
    stop_at_eos: bool = True
    compile: bool | None = None
    on_step: Callable[[int], None] | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise WorkbenchError(f"max_new_tokens must be ≥ 1, got {self.max_new_tokens}")


def sample(
    logits: Float[Tensor, "batch vocab"], temperature: float, generator: torch.Generator | None
) -> Int[Tensor, " batch"]:
    """One token per row from softmax(logits / temperature), on the logits' device, by inverting the
    cumulative distribution at one uniform draw per row: the distribution of ``torch.multinomial``,
    about 7× cheaper on a CPU (whose multinomial costs as much as a 135M model's decode step)."""
    cdf = torch.softmax(logits.float() / max(temperature, 1e-6), dim=-1).cumsum(-1)
    # the cdf's own total: no rounding gap at the top
    u = torch.rand(cdf.shape[0], 1, device=cdf.device, generator=generator) * cdf[:, -1:]
    # right: a zero-probability token is never drawn
    return torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp_max(cdf.shape[-1] - 1)


def halved(model: Model, rows: int) -> int:
    """The batch size after ``rows`` rows ran out of memory: half, with a warning; at one row, an error."""
    if rows == 1:
        raise WorkbenchError(
            f"one row does not fit in {model.device}'s memory: shorten the prompt or max_new_tokens, "
            "or use a smaller model"
        )
    if model.device.type == "cuda":
        torch.cuda.empty_cache()
    warnings.warn(
        f"out of memory at {rows} rows a batch: retrying with {rows // 2} (WORKBENCH_BATCH_SIZE sets it)", stacklevel=4
    )
    return rows // 2


@functools.cache
def _warn_no_cache() -> None:
    warnings.warn(
        "TransformerLens's bridge ignores the KV cache with this transformers version: generation through the "
        "bridge's own modules (a TL hook other than resid_post, or Model.through_bridge()) recomputes without a "
        "cache (correct, slower)",
        stacklevel=4,
    )


class Replies:
    """One batch's replies as they grow: the tokens, which replies stopped, the sampler (``generator``:
    one per ``generate`` call, shared by its batches), and the token budget
    reported to ``on_step`` (a token per reply still generating, plus what a reply that ended no
    longer needs: the calls sum to replies × max_new_tokens)."""

    def __init__(
        self,
        model: Model,
        rows: Tensor,
        options: GenerationOptions,
        generator: torch.Generator | None,
        on_step: Callable[[int], None],
    ):
        self.rows, self.options, self.generator, self.on_step = rows, options, generator, on_step
        stops = model.stop_token_ids if options.stop_at_eos else []
        self.stops = torch.tensor(stops, dtype=torch.long, device=model.device)
        self.tokens: list[list[int]] = [[] for _ in range(len(rows))]
        self.stopped = [False] * len(rows)

    def pick(self, logits: Float[Tensor, "batch vocab"]) -> Int[Tensor, " batch"]:
        """The next token of each row: sampled, or the most likely (greedy)."""
        if self.options.do_sample:
            return sample(logits, self.options.temperature, self.generator)
        return logits.argmax(-1)

    def record(self, replies: Sequence[int], token: Tensor, logits: Tensor, step: int) -> list[int]:
        """One decode step's bookkeeping, with the step's one host sync: batch row i's token extends
        reply ``replies[i]``, or an end-of-turn token marks it stopped; a stopped reply takes no more
        tokens. Returns the rows' end-of-turn flags (1 or 0). In the same sync: a reply still
        generating whose logits broke down raises (NaN, infinite, or all equal: a residual stream that
        overflowed normalises to zero), instead of an empty reply."""
        live = self.stopped.count(False)
        low, high = torch.aminmax(logits, dim=-1)
        sane = torch.isfinite(low) & torch.isfinite(high) & (high > low)  # a NaN anywhere makes low and high NaN
        tokens, done, ok = torch.stack([token, torch.isin(token, self.stops).long(), sane.long()]).tolist()
        if broken := [reply for reply, k in zip(replies, ok) if not k and not self.stopped[reply]]:
            self._broke(broken, step)
        for reply, t, d in zip(replies, tokens, done):
            if self.stopped[reply]:
                continue
            if d:
                self.stopped[reply] = True
            else:
                self.tokens[reply].append(t)
        self.on_step(live + (live - self.stopped.count(False)) * (self.options.max_new_tokens - 1 - step))
        return done

    def _broke(self, broken: list[int], step: int) -> None:
        named = ", ".join(map(str, self.rows[broken[:8]].tolist()))
        named += f" and {len(broken) - 8} more" if len(broken) > 8 else ""
        raise WorkbenchError(
            f"generation produced non-finite logits at new token {step + 1} (prompts {named}): NaN, infinite or "
            "all equal, as when the residual stream overflows; a steering coefficient too large or not finite?"
        )

    def results(self) -> list[tuple[list[int], bool]]:
        return list(zip(self.tokens, self.stopped))


@torch.inference_mode()
def decode_eager(
    model: Model, seqs: list[list[int]], replies: Replies, state: StepState
) -> list[tuple[list[int], bool]]:
    """The replies to ``seqs`` (prompts ``replies.rows``) through ``Model.forward``, with the
    steering hooks in place reading ``state``; finished rows leave the batch."""
    ids, mask = left_pad(seqs, model.pad_token_id, model.device)
    alive = list(range(len(seqs)))  # batch row -> local index, on the host: no device sync to read it
    state.prompt_width, state.offset = ids.shape[1], 0
    use_cache = replies.options.use_cache
    if use_cache and not model.caches:  # asked once the steering hooks are in place
        _warn_no_cache()
        use_cache = False
    cache = model.new_cache() if use_cache else None
    budget = replies.options.max_new_tokens
    for step in range(budget):
        state.rows = replies.rows[alive]
        logits = _forward(model, ids, mask, cache, step, state)
        token = replies.pick(logits)
        done = replies.record(alive, token, logits, step)
        if all(done) or step == budget - 1:
            break
        ids = torch.cat([ids, token[:, None]], dim=1)
        mask = torch.cat([mask, torch.ones_like(token)[:, None]], dim=1)
        if any(done):  # finished rows stop costing compute
            kept = [row for row, d in enumerate(done) if not d]
            keep = torch.tensor(kept, device=model.device)
            alive, ids, mask = [alive[row] for row in kept], ids[keep], mask[keep]
            if cache is not None:
                cache.batch_select_indices(keep)
    return replies.results()


def _forward(model: Model, ids: Tensor, mask: Tensor, cache, step: int, state: StepState) -> Tensor:
    """The last position's logits of one decode step: the new column with a cache (the whole prompt
    at step 0), every column without."""
    if cache is None:
        state.offset = 0
        return model.forward(ids, mask, positions(mask))[:, -1]
    new = ids if step == 0 else ids[:, -1:]
    state.offset = mask.shape[1] - new.shape[1]
    return model.forward(new, mask, positions(mask)[:, -new.shape[1] :], cache)[:, -1]


@torch.inference_mode()
def decode_compiled(
    model: Model, seqs: list[list[int]], replies: Replies, specs: list[Steer], gates: dict
) -> list[tuple[list[int], bool]]:
    """``decode_eager`` through the compiled step (``workbench.generation.compiled``): same tokens, fixed shapes
    (finished rows stay in the batch), steering written into the decoder's tables."""
    device, budget = model.device, replies.options.max_new_tokens
    dec = compiled.decoder(model)
    ids, mask = left_pad(seqs, model.pad_token_id, device)
    n, width = ids.shape
    length = -(-(width + budget) // compiled.BUCKET) * compiled.BUCKET  # few cache shapes, few compiles
    cache = dec.cache(n, length)
    full = torch.cat([mask, torch.ones(n, length - width, dtype=mask.dtype, device=device)], dim=1)
    position = positions(mask)
    with dec.engaged():
        dec.load(specs, replies.rows, gates, "prompt")
        logits = dec.prefill(ids, full, position, cache)
        dec.load(specs, replies.rows, gates, "generated")
        position = position[:, -1]
        for step in range(budget):
            token = replies.pick(logits)
            replies.record(range(n), token, logits, step)
            if all(replies.stopped) or step == budget - 1:
                break
            position = position + 1
            logits = dec.step(token, full, position, width + step, cache)
    return replies.results()
