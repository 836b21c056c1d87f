"""What the engine is measured against: plain transformers ``generate`` (no hooks) and the
paper-style loop (batch 1, no KV cache, the whole sequence recomputed per token)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel

from workbench.generation.batching import left_pad
from workbench.generation.steering import Steer, steering
from workbench.models import Model


def hf_generate(hf: PreTrainedModel, model: Model, prompts: Sequence[str], max_new_tokens: int) -> None:
    """Greedy replies of exactly ``max_new_tokens`` from the plain transformers model, same prompts."""
    seqs = [model.encode(model.chat(p)) for p in prompts]
    ids, mask = left_pad(seqs, model.pad_token_id, model.device)
    with torch.inference_mode():
        hf.generate(  # type: ignore[operator]  # mypy sees nn.Module's __getattr__, not GenerationMixin's
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            min_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=model.pad_token_id,
        )


@torch.inference_mode()
def paper_style_generate(model: Model, prompt: str, steer: Steer | Sequence[Steer], max_new_tokens: int) -> list[int]:
    """The reference loop: one prompt, no KV cache, the whole sequence recomputed per token."""
    ids = model.encode(model.chat(prompt))
    out: list[int] = []
    with steering(model, steer):
        for _ in range(max_new_tokens):
            logits = model.bridge(torch.tensor([ids + out], device=model.device))
            out.append(int(logits[0, -1].argmax()))
    return out
