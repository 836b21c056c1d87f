"""A reply's quality: its log-prob under the unsteered model, repetition, compression, and the
degeneracy rules built on them (``MAX_DEGENERATE``, the cut-off selection and figures use)."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from workbench.errors import WorkbenchError
from workbench.generation.batching import left_pad, positions
from workbench.models import Model

# A response is degenerate when any of these holds (rule v2; documented in the README, measured on
# the hand-labelled replies in tests/data/degenerate_labels.jsonl):
MIN_LOGPROB = (
    -2.5
)  # mean token log-prob under the unsteered model (v2: given the plain query or the prompt as asked, the higher)
OPENING_ALLOWANCE = 4.0  # nats (v2): how a reply opens is a free choice that an instruction or a vector moves; it costs
# a few nats once, which a mean over a short reply ("My answer is yes.") cannot absorb: n tokens need MIN_LOGPROB - 4/n
MAX_REPETITION = 0.5  # share of word 4-grams that repeat an earlier one
TAIL_BYTES = 128  # v2: the window of the reply's end that compression looks at
MIN_COMPRESSION = (
    0.4  # v2: deflated/raw size of that window; prose keeps about 0.6-0.8, a collapse (<<<<, abcdabcd) far less
)


def repetition(text: str, n: int = 4) -> float:
    """Share of word n-grams that already appeared earlier in the text."""
    words = text.split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


@torch.inference_mode()
def response_logprob(
    model: Model, queries: Sequence[str], responses: Sequence[str], batch_size: int = 16
) -> list[float]:
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


def compression(text: str, tail: int = TAIL_BYTES) -> float:
    """Deflated size over raw size of the text's last ``tail`` bytes (UTF-8). A reply collapsed into one
    character or a short unit (``<<<<‹<<<``, ``abcdabcd``, ``Q=Q=Q=``) is one long "word" with no repeated
    word 4-gram, and repeating is easy for the model, so only a character-level measure sees it. The end,
    because a collapse does not recover; a fixed window, so the value does not drift with length."""
    raw = text.encode()[-tail:]
    if not raw:
        return 1.0
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate: no header to inflate short texts
    return len(packer.compress(raw) + packer.flush()) / len(raw)


@dataclass(frozen=True)
class Measures:
    """What a degeneracy rule sees of one reply."""

    text: str
    n_tokens: int
    logprob: float  # mean token log-prob under the unsteered model, given the plain query
    logprob_prompt: (
        float  # the same given the prompt as asked (instruction included); = logprob when that was the query
    )
    repetition: float
    compression: float

    @classmethod
    def of(cls, text: str, n_tokens: int, logprob: float, logprob_prompt: float | None = None) -> Measures:
        lp_prompt = logprob if logprob_prompt is None else logprob_prompt
        return cls(text, n_tokens, logprob, lp_prompt, repetition(text), compression(text))


DegeneracyRule = Callable[[Measures], bool]


def is_degenerate(logprob: float, rep: float, n_tokens: int) -> bool:
    """Rule v1 on its three measures."""
    return n_tokens == 0 or not np.isfinite(logprob) or logprob < MIN_LOGPROB or rep > MAX_REPETITION


def degenerate_v1(m: Measures) -> bool:
    """Empty, log-prob given the plain query below MIN_LOGPROB, or more than MAX_REPETITION of 4-grams
    repeat. Blind to character collapse; flags correct short formulaic answers."""
    return is_degenerate(m.logprob, m.repetition, m.n_tokens)


def degenerate_v2(m: Measures) -> bool:
    """Empty (or blank); not fluent: the better of the two log-probs (plain query, prompt as asked)
    below MIN_LOGPROB - OPENING_ALLOWANCE / n_tokens; looping: repetition above MAX_REPETITION; or
    collapsed: compression of the last TAIL_BYTES below MIN_COMPRESSION."""
    if m.n_tokens == 0 or not m.text.strip():
        return True
    lp = float(np.fmax(m.logprob, m.logprob_prompt))  # NaN only when both are
    return (
        not np.isfinite(lp)
        or lp < MIN_LOGPROB - OPENING_ALLOWANCE / m.n_tokens
        or m.repetition > MAX_REPETITION
        or m.compression < MIN_COMPRESSION
    )


# name -> rule; the name is what a results folder records. Old results stay reproducible under "v1".
DEGENERACY_RULES: dict[str, DegeneracyRule] = {"v1": degenerate_v1, "v2": degenerate_v2}
DEGENERACY_RULE = "v2"
MAX_DEGENERATE = 0.2  # a setting whose outputs are degenerate more often than this is never selected (figures mark it)


def degeneracy_rule(name: str) -> DegeneracyRule:
    if name not in DEGENERACY_RULES:
        raise WorkbenchError(f"unknown degeneracy rule {name!r}: known rules are {', '.join(DEGENERACY_RULES)}")
    return DEGENERACY_RULES[name]


Judge = Callable[[str, str], float]  # (prompt, response) -> score; e.g. a call to an LLM endpoint


def quality(
    model: Model,
    queries: Sequence[str],
    responses: Sequence[str],
    token_counts: Sequence[int],
    judge: Judge | None = None,
    prompts: Sequence[str] | None = None,
    rule: str = DEGENERACY_RULE,
) -> list[dict]:
    """Quality fields for each response: logprob, logprob_prompt, repetition, compression, n_tokens,
    degenerate (under ``rule``, a name in ``DEGENERACY_RULES``) (+ judge).

    ``queries`` are the instruction-free prompts: ``logprob`` asks whether the reply is a fluent,
    relevant answer to the question, whatever steering or instruction produced it. ``prompts``, the
    user messages as sent (instruction included), add ``logprob_prompt``: a reply the instruction asked
    for ("My answer is yes.") is fluent given it, though unlikely given the bare question. It costs a
    second scoring pass over the rows whose prompt differs from the query; without ``prompts`` it
    equals ``logprob``.
    """
    decide = degeneracy_rule(rule)
    if prompts is not None and len(prompts) != len(queries):
        raise WorkbenchError(f"quality: {len(prompts)} prompts for {len(queries)} queries; give one prompt per reply")
    lps = response_logprob(model, queries, responses)
    lps_prompt = list(lps)
    differ = [i for i, (q, p) in enumerate(zip(queries, prompts or queries)) if p != q]
    if prompts is not None and differ:
        for i, lp in zip(differ, response_logprob(model, [prompts[i] for i in differ], [responses[i] for i in differ])):
            lps_prompt[i] = lp
    rows = []
    for q, r, lp, lp_prompt, n in zip(queries, responses, lps, lps_prompt, token_counts):
        m = Measures.of(r, int(n), float(lp), float(lp_prompt))
        row = {
            "logprob": lp,
            "logprob_prompt": lp_prompt,
            "repetition": m.repetition,
            "compression": m.compression,
            "n_tokens": n,
            "degenerate": decide(m),
        }
        if judge is not None:
            row["judge"] = float(judge(q, r))
        rows.append(row)
    return rows
