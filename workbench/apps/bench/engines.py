"""vLLM against the workbench's eager engine: the same greedy generations, steered and unsteered,
at batch 1 and a large batch, sides alternated; and what steering costs inside vLLM."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence

import torch

from workbench.apps.bench.timing import best_each
from workbench.errors import WorkbenchError
from workbench.generation.generate import generate
from workbench.generation.steering import Steer
from workbench.models import Model, dtype_name

LARGE = 64  # rows in the large batch


def vllm_vs_workbench(model: Model, spec: Steer, prompts: Sequence[str], new: int, repeats: int, engine=None) -> dict:
    """tok/s of both engines (``vllm_*`` / ``wb_*``, unsteered and steered, ``_b1`` and ``_b64``) and
    vLLM's load time; ``{"vllm_missing": why}`` where vLLM is not usable or cannot load the model.
    ``engine``: a ``VLLMEngine`` of the same model already loaded (default: one made here)."""
    from workbench.engines.vllm.engine import VLLMEngine, import_vllm

    start = time.perf_counter()
    try:
        import_vllm()
        engine = engine or VLLMEngine(model.name, dtype=dtype_name(model.dtype))
    except WorkbenchError as exc:  # not installed, or a model vLLM cannot load (the tiny random one)
        return {"vllm_missing": str(exc)}
    raw: dict = {
        "vllm_load_s": time.perf_counter() - start,
        "vllm_torch_threads": torch.get_num_threads(),
    }  # in-process vLLM binds this process's threads: both sides share them
    for bs in (1, LARGE):
        rows = [prompts[i % len(prompts)] for i in range(bs)]
        ours = functools.partial(generate, model, rows, max_new_tokens=new, stop_at_eos=False)
        theirs = functools.partial(engine.generate, rows, max_new_tokens=new, stop_at_eos=False)
        sides = (ours, functools.partial(ours, steer=spec), theirs, functools.partial(theirs, steer=spec))
        times = best_each(*sides, repeats=repeats)
        for name, t in zip(("wb_unsteered", "wb_steered", "vllm_unsteered", "vllm_steered"), times):
            raw[f"{name}_tok_s_b{bs}"] = bs * new / t
    return raw


def vllm_rows(raw: dict) -> list[tuple[str, float, str, str]]:
    """The bench table's rows: (measure, ratio, target, detail)."""
    if "vllm_missing" in raw or "vllm_load_s" not in raw:
        return []
    rows = []
    for bs in (1, LARGE):
        t = {k: raw[f"{k}_tok_s_b{bs}"] for k in ("wb_unsteered", "wb_steered", "vllm_unsteered", "vllm_steered")}
        rows += [
            (
                f"vLLM / workbench eager, steered, batch {bs}",
                t["vllm_steered"] / t["wb_steered"],
                "",
                f"{t['vllm_steered']:.1f} vs {t['wb_steered']:.1f} tok/s",
            ),
            (
                f"  vLLM / workbench eager, unsteered, batch {bs}",
                t["vllm_unsteered"] / t["wb_unsteered"],
                "",
                f"{t['vllm_unsteered']:.1f} vs {t['wb_unsteered']:.1f} tok/s",
            ),
            (
                f"  vLLM steered / unsteered, batch {bs}",
                t["vllm_steered"] / t["vllm_unsteered"],
                "≥ 0.97",
                f"vLLM loaded in {raw['vllm_load_s']:.0f} s",
            ),
        ]
    return rows


def compiled_vs_eager(eager, compiled, spec: Steer, prompts: Sequence[str], new: int, repeats: int) -> dict:
    """tok/s of two ``VLLMEngine``s of one model, eager and compiled (``enforce_eager=False``), unsteered
    and steered with ``spec``, at batch 1 and ``LARGE``, all four sides alternated (``{kind}_{side}_tok_s_b{bs}``)."""
    raw: dict = {}
    for bs in (1, LARGE):
        rows = [prompts[i % len(prompts)] for i in range(bs)]
        sides = {
            f"{kind}_{side}": functools.partial(engine.generate, rows, steer, max_new_tokens=new, stop_at_eos=False)
            for kind, engine in (("eager", eager), ("compiled", compiled))
            for side, steer in (("unsteered", ()), ("steered", spec))
        }
        for name, t in zip(sides, best_each(*sides.values(), repeats=repeats)):
            raw[f"{name}_tok_s_b{bs}"] = bs * new / t
    return raw
