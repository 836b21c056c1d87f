"""The bench's measures, one function a section: each takes the ``Subject`` and returns its raw
figures (tok/s, seconds, sizes), both sides of every comparison run alternately on the same prompts."""

from __future__ import annotations

import sys
import time

import torch

from workbench.apps.bench import roofline
from workbench.apps.bench.baselines import hf_generate, paper_style_generate
from workbench.apps.bench.engines import vllm_vs_workbench
from workbench.apps.bench.memory import extraction_peak
from workbench.apps.bench.scaling import ray_scaling
from workbench.apps.bench.subject import Subject
from workbench.apps.bench.timing import best, best_each
from workbench.extract import record_last_token
from workbench.generation import compiled
from workbench.generation.batching import auto_batch_size, left_pad, positions
from workbench.generation.generate import generate
from workbench.instructions import Pair, as_group, make_pairs
from workbench.models import dtype_name
from workbench.sweep.grid import Unit, chunks, unit_specs

DECODE_BATCHES = (1, 16)  # the decode speeds' batch sizes (and the compiled step's shapes)


def compile_step(s: Subject) -> dict:
    """Compile the decode step for the measured shapes first, so that generation times no compiling."""
    start = time.perf_counter()
    print(
        f"compiling the decode step for batches of 1 and 16 (kernels kept in {compiled.kernel_cache()}: "
        "minutes on a CPU the first time)",
        file=sys.stderr,
    )
    new = s.config.new_tokens
    for bs in DECODE_BATCHES:  # the measured shapes: same cache-length bucket
        generate(
            s.model, s.prompts[:bs], steer=s.spec, max_new_tokens=new, batch_size=bs, stop_at_eos=False, compile=True
        )
    return {"compile_s": time.perf_counter() - start}


def decode_speeds(s: Subject) -> dict:
    """Steered vs unsteered at batch 1 and 16, sampled vs greedy, the compiled step (steered) vs eager
    (not with ``quick``); and the memory-bandwidth roofline at batch 1: bytes a step reads / step time."""
    raw = {f"{name}_tok_s_b{bs}": v for bs in DECODE_BATCHES for name, v in decode_at(s, bs).items()}
    context = len(s.model.encode(s.model.chat(s.prompts[0]))) + s.config.new_tokens // 2  # the cache's mean length
    raw["read_bandwidth_gb_s"] = roofline.read_bandwidth(s.model.device) / 1e9
    raw["step_bytes_mb_b1"] = roofline.step_bytes(s.model, context) / 1e6
    raw["roofline_tok_s_b1"] = raw["read_bandwidth_gb_s"] * 1e3 / raw["step_bytes_mb_b1"]
    return raw


def decode_at(s: Subject, bs: int) -> dict[str, float]:
    """tok/s at one batch size (fixed length: no early stop), unsteered, steered, sampled and compiled."""
    prompts, new = s.prompts[:bs], s.config.new_tokens

    def run(**kw) -> None:
        generate(s.model, prompts, max_new_tokens=new, batch_size=bs, stop_at_eos=False, **kw)

    sides = [run, lambda: run(steer=s.spec), lambda: run(do_sample=True)]
    sides += [] if s.config.quick else [lambda: run(steer=s.spec, compile=True)]
    repeats = s.config.repeats if bs == 1 else s.config.repeats_batched
    times = best_each(*sides, repeats=repeats)
    return {name: len(prompts) * new / t for name, t in zip(("unsteered", "steered", "sampled", "compiled"), times)}


def vs_transformers(s: Subject) -> dict:
    """TL steered vs plain transformers ``generate`` (no hooks) at batch 8; and, for reference, the
    same generation through the bridge's own modules (few tokens: it is slow)."""
    new, prompts = s.config.new_tokens, s.prompts[:8]
    hf_t, tl_t = best_each(
        lambda: hf_generate(s.hf, s.model, prompts, new),
        lambda: generate(s.model, prompts, steer=s.spec, max_new_tokens=new, batch_size=8, stop_at_eos=False),
        repeats=s.config.repeats_batched,
    )
    bridge_new = max(2, new // 8)
    with s.model.through_bridge():
        bridge_t = best(
            lambda: generate(
                s.model, prompts, steer=s.spec, max_new_tokens=bridge_new, batch_size=8, stop_at_eos=False
            ),
            1,
        )
    return {
        "hf_generate_tok_s_b8": 8 * new / hf_t,
        "tl_steered_tok_s_b8": 8 * new / tl_t,
        "tl_steered_bridge_path_tok_s_b8": 8 * bridge_new / bridge_t,
    }


def sweep_units(s: Subject) -> tuple[list[Unit], list[Pair]]:
    """The sweep section's grid around the middle layer (add × each coefficient), and its prompts."""
    n_layers, coefs, n_prompts = s.config.sweep_grid
    layers = [min(s.model.n_layers - 1, s.layer - n_layers // 2 + i) for i in range(n_layers)]
    pairs = make_pairs("one_sentence", "validation", limit=n_prompts)
    group = as_group("one_sentence")
    return [Unit(group, False, l, s.vec, pairs, [("add", c) for c in coefs]) for l in layers], pairs


def sweep_speed(s: Subject) -> dict:
    """The sweep grid: the batched engine at the auto batch size and at the old 64-row cap, against
    the paper-style loop (measured on two generations, extrapolated)."""
    units, pairs = sweep_units(s)
    new = s.config.new_tokens // 2  # half the tokens: the batching, not the length, is what this measures
    raw = {"sweep_new_tokens": new}

    def engine(rows_per_batch: int) -> None:
        for chunk in chunks(units, rows_per_batch):
            plan = [r for u in chunk for r in u.rows()]
            generate(s.model, [r[3] for r in plan], steer=unit_specs(chunk), max_new_tokens=new, stop_at_eos=False)

    n_gen = sum(len(u.rows()) for u in units)
    longest = max(len(s.model.encode(s.model.chat(r[3]))) for u in units for r in u.rows())
    raw["sweep_auto_batch_rows"] = auto_batch_size(s.model, longest + new, rows=n_gen)
    engine_t, capped_t = best_each(lambda: engine(raw["sweep_auto_batch_rows"]), lambda: engine(64), repeats=1)
    subset, first = 2, units[0]  # the loop is timed on two generations of the grid's first cell
    spec = s.vec.steer(first.layer, first.settings[0][1])
    loop_t = best(lambda: [paper_style_generate(s.model, p.without_instruction, spec, new) for p in pairs[:subset]], 1)
    return raw | {
        "sweep_engine_cap64_s": capped_t,
        "sweep_generations": n_gen,
        "sweep_engine_s": engine_t,
        "sweep_paper_loop_s_extrapolated": loop_t / subset * n_gen,
        "sweep_paper_loop_measured_generations": subset,
    }


def extraction_speed(s: Subject) -> dict:
    """Extraction (every layer, last token) vs one plain transformers forward on the same prompts."""
    prompts = s.prompts[: s.config.extraction_prompts]
    seqs = [s.model.encode(s.model.chat(p)) for p in prompts]

    def plain_forward() -> None:
        with torch.inference_mode():
            for i in range(0, len(seqs), 16):
                ids, mask = left_pad(seqs[i : i + 16], s.model.pad_token_id, s.model.device)
                s.hf(input_ids=ids, attention_mask=mask, position_ids=positions(mask))

    fwd_t, ext_t = best_each(
        plain_forward, lambda: record_last_token(s.model, prompts, batch_size=16), repeats=s.config.repeats
    )
    return {"plain_forward_s": fwd_t, "extraction_s": ext_t}


def ray_speed(s: Subject) -> dict:
    """Ray: 2 workers against 1 (and against this process), on a slice of the sweep's grid."""
    units, pairs = sweep_units(s)
    n = s.config.ray_prompts
    ray_units = [
        Unit(u.group, False, u.layer, s.vec, pairs[:n], [setting]) for u in units[:2] for setting in u.settings[:2]
    ]
    return ray_scaling(s.model, [(chunk, max(4, s.config.new_tokens // 4)) for chunk in chunks(ray_units, n)])


def vllm_speed(s: Subject) -> dict:
    """vLLM against this engine, steered and unsteered, batch 1 and 64 (``vllm_missing`` without vLLM)."""
    return vllm_vs_workbench(s.model, s.spec, s.prompts, s.config.new_tokens, s.config.repeats_batched)


def extraction_peaks(s: Subject) -> dict[int, float]:
    """Extraction's peak memory growth (MB) as the number of prompts grows, each in a fresh process."""
    dtype, c = dtype_name(s.model.dtype), s.config
    return {n: extraction_peak(c.model, n, c.device, dtype) for n in c.peak_sizes}
