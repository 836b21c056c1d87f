"""``workbench bench``: speed and memory of the engine, as ratios measured side by side in one run.

Every comparison runs both sides on the same prompts, model and machine, alternating, best of
``repeats``. The paper-style baseline (batch 1, no KV cache, full recompute per token) is measured
on a subset of the grid and extrapolated per generation; the output says so.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

import torch

from workbench import compiled, roofline
from workbench.batching import auto_batch_size, left_pad, positions
from workbench.bench.engines import vllm_rows, vllm_vs_workbench
from workbench.bench.memory import extraction_peak
from workbench.bench.scaling import ray_scaling
from workbench.bench.timing import best, best_each, laps
from workbench.generate import generate
from workbench.instructions import make_pairs, queries
from workbench.models import Model, dtype_name, load_model, load_plain_hf
from workbench.steering import steering


def _hf_generate(hf, model: Model, prompts, max_new_tokens):
    seqs = [model.encode(model.chat(p)) for p in prompts]
    ids, mask = left_pad(seqs, model.pad_token_id, model.device)
    with torch.inference_mode():
        hf.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            min_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=model.pad_token_id,
        )


@torch.inference_mode()
def paper_style_generate(model: Model, prompt: str, steer, max_new_tokens: int) -> list[int]:
    """The reference loop: one prompt, no KV cache, the whole sequence recomputed per token."""
    ids = model.encode(model.chat(prompt))
    out = []
    with steering(model, steer):
        for _ in range(max_new_tokens):
            logits = model.bridge(torch.tensor([ids + out], device=model.device))
            out.append(int(logits[0, -1].argmax()))
    return out


def run_bench(
    model_name: str,
    quick: bool = False,
    json_path: str | None = None,
    device: str | None = None,
    dtype: str = "float32",
) -> dict:
    sections: dict = {}
    lap = laps(sections)
    model = load_model(model_name, device=device, dtype=dtype)
    hf = load_plain_hf(model_name, dtype=model.dtype).to(model.device)
    vec_pairs = make_pairs("one_sentence", "train", limit=8 if quick else 32)
    from workbench.extract import compute_vector

    vec = compute_vector(model, pairs=vec_pairs)
    layer = model.n_layers // 2
    spec = vec.steer(layer, 1.0)
    qs = [q.text for q in queries("validation")]
    new = 16 if quick else 64
    repeats = 1 if quick else 3
    repeats_batched = max(1, repeats - 1)  # the sides at batch 8 and 16: long enough that two repeats do
    raw: dict = {}

    lap("load and vector")

    # 1. steered vs unsteered, batch 1 and 16 (fixed length: no early stop); sampled vs greedy at 16;
    # the compiled decode step, steered, against eager (its compile time, both shapes, measured apart)
    if not quick:
        print(
            f"compiling the decode step for batches of 1 and 16 (kernels kept in {compiled.kernel_cache()}: minutes on a CPU the first time)",
            file=sys.stderr,
        )
        for bs in (1, 16):
            generate(
                model, qs[:bs], steer=spec, max_new_tokens=new, batch_size=bs, stop_at_eos=False, compile=True
            )  # the measured shapes: same cache-length bucket
        raw["compile_s"] = lap("compile")
    for bs in (1, 16):
        prompts = qs[:bs]
        tokens = len(prompts) * new
        run = lambda **kw: generate(model, prompts, max_new_tokens=new, batch_size=bs, stop_at_eos=False, **kw)  # noqa: E731
        sides = [run, lambda: run(steer=spec), lambda: run(do_sample=True)] + (
            [] if quick else [lambda: run(steer=spec, compile=True)]
        )
        times = dict(
            zip(
                ["unsteered", "steered", "sampled", "compiled"],
                best_each(*sides, repeats=repeats if bs == 1 else repeats_batched),
            )
        )
        raw.update({f"{name}_tok_s_b{bs}": tokens / t for name, t in times.items()})

    # the memory-bandwidth roofline at batch 1: bytes a step reads / step time / measured bandwidth
    context = len(model.encode(model.chat(qs[0]))) + new // 2  # the cache's mean length over the reply
    raw["read_bandwidth_gb_s"] = roofline.read_bandwidth(model.device) / 1e9
    raw["step_bytes_mb_b1"] = roofline.step_bytes(model, context) / 1e6
    raw["roofline_tok_s_b1"] = raw["read_bandwidth_gb_s"] * 1e3 / raw["step_bytes_mb_b1"]

    lap("generation")

    # 2. TL steered vs plain transformers generate (no hooks), batch 8
    prompts = qs[:8]
    hf_t, tl_t = best_each(
        lambda: _hf_generate(hf, model, prompts, new),
        lambda: generate(model, prompts, steer=spec, max_new_tokens=new, batch_size=8, stop_at_eos=False),
        repeats=repeats_batched,
    )
    raw["hf_generate_tok_s_b8"] = 8 * new / hf_t
    raw["tl_steered_tok_s_b8"] = 8 * new / tl_t
    bridge_new = max(
        2, new // 8
    )  # the same generation through the bridge's own modules, for reference (few tokens: it is slow)
    with model.through_bridge():
        bridge_t = best(
            lambda: generate(model, prompts, steer=spec, max_new_tokens=bridge_new, batch_size=8, stop_at_eos=False), 1
        )
    raw["tl_steered_bridge_path_tok_s_b8"] = 8 * bridge_new / bridge_t

    lap("vs transformers")

    # 3. sweep grid: batched engine vs paper-style loop (measured on a subset, extrapolated)
    from workbench.instructions import as_group
    from workbench.sweep.grid import Unit, chunks, unit_specs

    n_layers_grid, coefs, n_prompts = (2, (1.0, 2.0), 4) if quick else (4, (0.5, 1.0, 2.0, 4.0), 8)
    layers = [min(model.n_layers - 1, layer - n_layers_grid // 2 + i) for i in range(n_layers_grid)]
    pairs = make_pairs("one_sentence", "validation", limit=n_prompts)
    units = [Unit(as_group("one_sentence"), False, l, vec, pairs, [("add", c) for c in coefs]) for l in layers]
    n_gen = sum(len(u.rows()) for u in units)
    sweep_new = raw["sweep_new_tokens"] = (
        new // 2
    )  # half the tokens: the batching, not the length, is what this measures

    def engine(rows_per_batch: int):
        for chunk in chunks(units, rows_per_batch):
            plan = [r for u in chunk for r in u.rows()]
            generate(model, [r[3] for r in plan], steer=unit_specs(chunk), max_new_tokens=sweep_new, stop_at_eos=False)

    longest = max(len(model.encode(model.chat(r[3]))) for u in units for r in u.rows())
    raw["sweep_auto_batch_rows"] = auto_batch_size(model, longest + sweep_new, rows=n_gen)
    engine_t, capped_t = best_each(lambda: engine(raw["sweep_auto_batch_rows"]), lambda: engine(64), repeats=1)
    raw["sweep_engine_cap64_s"] = capped_t
    subset = 2
    loop_t = best(
        lambda: [
            paper_style_generate(model, pairs[i].without_instruction, vec.steer(layers[0], coefs[0]), sweep_new)
            for i in range(subset)
        ],
        1,
    )
    raw["sweep_generations"] = n_gen
    raw["sweep_engine_s"] = engine_t
    raw["sweep_paper_loop_s_extrapolated"] = loop_t / subset * n_gen
    raw["sweep_paper_loop_measured_generations"] = subset

    lap("sweep")

    # 4. extraction (all layers, last token) vs one plain forward on the same prompts
    from workbench.extract import record_last_token

    ex_prompts = qs[: 16 if quick else 64]
    seqs = [model.encode(model.chat(p)) for p in ex_prompts]

    def plain_forward():
        with torch.inference_mode():
            for i in range(0, len(seqs), 16):
                ids, mask = left_pad(seqs[i : i + 16], model.pad_token_id, model.device)
                hf(input_ids=ids, attention_mask=mask, position_ids=positions(mask))

    fwd_t, ext_t = best_each(
        plain_forward, lambda: record_last_token(model, ex_prompts, batch_size=16), repeats=repeats
    )
    raw["plain_forward_s"] = fwd_t
    raw["extraction_s"] = ext_t

    lap("extraction")

    # 5. Ray: 2 workers against 1 (and against this process), on a slice of the same grid
    ray_prompts = 4 if quick else 8
    ray_units = [
        Unit(u.group, False, u.layer, vec, pairs[:ray_prompts], [setting])
        for u in units[:2]
        for setting in u.settings[:2]
    ]
    raw.update(ray_scaling(model, [(chunk, max(4, new // 4)) for chunk in chunks(ray_units, ray_prompts)]))

    lap("ray")

    # 6. vLLM against this engine, steered and unsteered, batch 1 and 64 (skipped without vLLM)
    raw.update(vllm_vs_workbench(model, spec, qs, new, repeats_batched))
    lap("vllm")

    # 7. extraction peak memory as N grows
    peaks = {
        n: extraction_peak(model_name, n, device, dtype_name(model.dtype)) for n in ((8, 32) if quick else (16, 128))
    }
    lap("extraction memory")
    result_mb = {n: n * model.n_layers * model.d_model * 4 / 1e6 for n in peaks}

    result = {
        "model": model.name,
        "quick": quick,
        "new_tokens": new,
        "steer_overhead_ratio": min(
            raw["steered_tok_s_b1"] / raw["unsteered_tok_s_b1"], raw["steered_tok_s_b16"] / raw["unsteered_tok_s_b16"]
        ),
        "steer_overhead_ratio_b1": raw["steered_tok_s_b1"] / raw["unsteered_tok_s_b1"],
        "steer_overhead_ratio_b16": raw["steered_tok_s_b16"] / raw["unsteered_tok_s_b16"],
        "tl_vs_hf_ratio": raw["tl_steered_tok_s_b8"] / raw["hf_generate_tok_s_b8"],
        "sweep_speedup": raw["sweep_paper_loop_s_extrapolated"] / raw["sweep_engine_s"],
        "extraction_ratio": raw["extraction_s"] / raw["plain_forward_s"],
        "sampled_vs_greedy_ratio": raw["sampled_tok_s_b16"] / raw["unsteered_tok_s_b16"],
        "roofline_share_b1": raw["unsteered_tok_s_b1"] / raw["roofline_tok_s_b1"],
        "roofline_share_compiled_b1": raw["compiled_tok_s_b1"] / raw["roofline_tok_s_b1"] if not quick else None,
        "compiled_vs_eager_ratio": {bs: raw[f"compiled_tok_s_b{bs}"] / raw[f"steered_tok_s_b{bs}"] for bs in (1, 16)}
        if not quick
        else None,
        "sweep_auto_vs_cap64_ratio": raw["sweep_engine_cap64_s"] / raw["sweep_engine_s"],
        "ray_speedup_2v1": raw["ray_wall_s_w1"] / raw["ray_wall_s_w2"] if "ray_wall_s_w2" in raw else None,
        "vllm_vs_workbench_steered": {
            bs: raw[f"vllm_steered_tok_s_b{bs}"] / raw[f"wb_steered_tok_s_b{bs}"] for bs in (1, 64)
        }
        if "vllm_load_s" in raw
        else None,
        "vllm_steer_overhead_ratio": {
            bs: raw[f"vllm_steered_tok_s_b{bs}"] / raw[f"vllm_unsteered_tok_s_b{bs}"] for bs in (1, 64)
        }
        if "vllm_load_s" in raw
        else None,
        "extraction_peak_mb": {str(k): v for k, v in peaks.items()},
        "extraction_result_mb": {str(k): v for k, v in result_mb.items()},
        "raw": raw,
        "section_s": sections,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "device": str(model.device),
            "dtype": dtype_name(model.dtype),
            "gpu": torch.cuda.get_device_name(model.device) if model.device.type == "cuda" else None,
        },
    }
    _print_table(result)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result, indent=2))
    return result


def _print_table(r: dict) -> None:
    raw = r["raw"]
    rows = [
        (
            "steered / unsteered throughput, batch 1",
            r["steer_overhead_ratio_b1"],
            "≥ 0.97",
            f"{raw['steered_tok_s_b1']:.1f} vs {raw['unsteered_tok_s_b1']:.1f} tok/s",
        ),
        (
            "steered / unsteered throughput, batch 16",
            r["steer_overhead_ratio_b16"],
            "≥ 0.97",
            f"{raw['steered_tok_s_b16']:.1f} vs {raw['unsteered_tok_s_b16']:.1f} tok/s",
        ),
        (
            "TL steered / plain HF generate, batch 8",
            r["tl_vs_hf_ratio"],
            "≥ 0.95",
            f"{raw['tl_steered_tok_s_b8']:.1f} vs {raw['hf_generate_tok_s_b8']:.1f} tok/s",
        ),
        (
            "  same, forced through the bridge's modules (through_bridge)",
            raw["tl_steered_bridge_path_tok_s_b8"] / raw["hf_generate_tok_s_b8"],
            "",
            f"{raw['tl_steered_bridge_path_tok_s_b8']:.1f} tok/s",
        ),
        (
            f"sweep speed-up vs paper-style loop ({raw['sweep_generations']} gens × {raw['sweep_new_tokens']} tokens)",
            r["sweep_speedup"],
            "≥ 30",
            f"{raw['sweep_engine_s']:.1f} s vs {raw['sweep_paper_loop_s_extrapolated']:.0f} s (loop extrapolated from {raw['sweep_paper_loop_measured_generations']} gens)",
        ),
        (
            f"sweep at auto batch ({raw['sweep_auto_batch_rows']} rows) / at the 64-row cap",
            r["sweep_auto_vs_cap64_ratio"],
            "≥ 1.0",
            f"{raw['sweep_engine_s']:.1f} s vs {raw['sweep_engine_cap64_s']:.1f} s",
        ),
        (
            "sampled / greedy throughput, batch 16",
            r["sampled_vs_greedy_ratio"],
            "≥ 0.9",
            f"{raw['sampled_tok_s_b16']:.1f} vs {raw['unsteered_tok_s_b16']:.1f} tok/s",
        ),
        (
            "share of the bandwidth roofline, batch 1",
            r["roofline_share_b1"],
            "≥ 0.7",
            f"{raw['unsteered_tok_s_b1']:.1f} of {raw['roofline_tok_s_b1']:.1f} tok/s "
            f"({raw['step_bytes_mb_b1']:.0f} MB a step at {raw['read_bandwidth_gb_s']:.1f} GB/s measured)",
        ),
    ]
    if r["compiled_vs_eager_ratio"] is not None:
        rows += [
            (
                f"compiled / eager decode, steered, batch {bs}",
                r["compiled_vs_eager_ratio"][bs],
                "≥ 1.0",
                f"{raw[f'compiled_tok_s_b{bs}']:.1f} vs {raw[f'steered_tok_s_b{bs}']:.1f} tok/s"
                + ("" if bs > 1 else f"; compiling took {raw['compile_s']:.0f} s"),
            )
            for bs in (1, 16)
        ]
        rows.append(
            (
                "  share of the bandwidth roofline, batch 1, compiled",
                r["roofline_share_compiled_b1"],
                "≥ 0.7",
                f"{raw['compiled_tok_s_b1']:.1f} tok/s",
            )
        )
    rows += [
        (
            "all-layer extraction / one plain forward",
            r["extraction_ratio"],
            "≤ 1.15",
            f"{raw['extraction_s']:.2f} s vs {raw['plain_forward_s']:.2f} s",
        )
    ]
    if r["ray_speedup_2v1"] is not None:
        rows.append(
            (
                f"Ray, 2 workers / 1 ({raw['ray_jobs']} batches, {raw['ray_rows']} gens, start-up included)",
                r["ray_speedup_2v1"],
                "",
                f"{raw['ray_wall_s_w2']:.1f} s vs {raw['ray_wall_s_w1']:.1f} s; this process alone {raw['ray_local_s']:.1f} s; "
                f"worker start-up {raw['ray_startup_s_w1']:.1f} s; dispatch {raw['ray_dispatch_ms_w1']:.0f} ms/batch",
            )
        )
    rows += vllm_rows(raw)
    m = r["machine"]
    print(
        f"\nworkbench bench — {r['model']} ({m['dtype']} on {m['gpu'] or m['device']}), {r['new_tokens']} new tokens, {m['cpus']} CPUs, torch {m['torch']}"
    )
    print(f"{'measure':<58} {'ratio':>8}  {'target':<8} raw")
    for name, ratio, target, detail in rows:
        print(f"{name:<58} {ratio:>8.2f}  {target:<8} {detail}")
    if "vllm_missing" in raw:
        print(f"vLLM rows left out: {raw['vllm_missing']}")
    print("bench sections (s): " + ", ".join(f"{name} {s:.0f}" for name, s in r["section_s"].items()))
    print(
        "extraction peak RSS growth (MB) by N prompts: "
        + ", ".join(
            f"N={n}: {mb:.1f} (result tensor {r['extraction_result_mb'][n]:.1f})"
            for n, mb in r["extraction_peak_mb"].items()
        )
    )
