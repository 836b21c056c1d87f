"""Judging replies: quality (log-prob under the unsteered model, repetition, degeneracy), scored rows
(compliance from ``workbench.checkers`` plus quality), and bootstrap intervals."""

from __future__ import annotations

import random
from typing import Callable, Sequence

import numpy as np
import torch

from workbench.batching import left_pad, positions
from workbench.checkers import Check, check
from workbench.models import Model

# A response is degenerate when any of these holds (documented in the README):
MIN_LOGPROB = -2.5  # mean token log-prob under the unsteered model, given the plain query
MAX_REPETITION = 0.5  # share of word 4-grams that repeat an earlier one


def repetition(text: str, n: int = 4) -> float:
    """Share of word n-grams that already appeared earlier in the text."""
    words = text.split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


@torch.inference_mode()
def response_logprob(model: Model, queries: Sequence[str], responses: Sequence[str], batch_size: int = 16) -> list[float]:
    """Mean token log-prob of each response under the (unsteered) model, given ``queries``."""
    out: list[float] = []
    for start in range(0, len(queries), batch_size):
        prompts = [model.encode(model.chat(q)) for q in queries[start : start + batch_size]]
        answers = [model.encode(r) for r in responses[start : start + batch_size]]
        seqs = [p + a for p, a in zip(prompts, answers)]
        keep = max(len(a) for a in answers) + 1
        ids, mask = left_pad(seqs, model.pad_token_id, model.device)
        logits = model.forward(ids, mask, positions(mask), keep=keep).float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)  # predicts the last keep-1 tokens
        targets = ids[:, -keep + 1 :] if keep > 1 else ids[:, :0]
        token_lp = logp.gather(-1, targets[..., None]).squeeze(-1) if keep > 1 else logp[..., 0]
        for row, answer in enumerate(answers):
            n = len(answer)
            out.append(float(token_lp[row, token_lp.shape[1] - n :].mean()) if n else float("nan"))
    return out


def is_degenerate(logprob: float, rep: float, n_tokens: int) -> bool:
    return n_tokens == 0 or not np.isfinite(logprob) or logprob < MIN_LOGPROB or rep > MAX_REPETITION


Judge = Callable[[str, str], float]  # (prompt, response) -> score; e.g. a call to an LLM endpoint


def quality(model: Model, queries: Sequence[str], responses: Sequence[str], token_counts: Sequence[int], judge: Judge | None = None) -> list[dict]:
    """Quality fields for each response: logprob, repetition, n_tokens, degenerate (+ judge).

    ``queries`` are the instruction-free prompts: the score asks whether the reply is a fluent,
    relevant answer to the question, whatever steering or instruction produced it.
    """
    lps = response_logprob(model, queries, responses)
    rows = []
    for q, r, lp, n in zip(queries, responses, lps, token_counts):
        rep = repetition(r)
        row = {"logprob": lp, "repetition": rep, "n_tokens": n, "degenerate": is_degenerate(lp, rep, n)}
        if judge is not None:
            row["judge"] = float(judge(q, r))
        rows.append(row)
    return rows


def bootstrap_ci(values: Sequence[float | int], n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and percentile bootstrap interval."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, (n_boot, x.size))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(x.mean()), float(lo), float(hi)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def score_rows(model: Model, rows: list[dict], judge: Judge | None = None, checks: Sequence[Check] | None = None) -> list[dict]:
    """Add compliance (strict/loose, prompt level and per instruction) and quality fields to
    generation rows, in place. Without ``checks``, IFEval checks each row's instruction ids."""
    if checks is None:
        checks = [check(r["text"], r["instruction_ids"], r["kwargs"], prompt=r["prompt"]) for r in rows]
    for row, c in zip(rows, checks):
        row["strict"], row["loose"] = c.strict, c.loose
        row["strict_each"], row["loose_each"] = list(c.strict_each), list(c.loose_each)
    q = quality(model, [r["query"] for r in rows], [r["text"] for r in rows], [r["n_tokens"] for r in rows], judge)
    for row, fields in zip(rows, q):
        row.update(fields)
    return rows
