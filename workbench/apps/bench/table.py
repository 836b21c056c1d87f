"""The bench's printed table: one row a measure (measure, ratio, target, the raw figures behind it)."""

from __future__ import annotations

from workbench.apps.bench.engines import vllm_rows

Row = tuple[str, float, str, str]  # (measure, ratio, target, detail)


def engine_rows(r: dict) -> list[Row]:
    """Steering's cost at batch 1 and 16, and the hooked engine against plain transformers."""
    raw = r["raw"]
    return [
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
    ]


def sweep_rows(r: dict) -> list[Row]:
    """The sweep against the paper-style loop and at the old row cap; sampling; the roofline share."""
    raw = r["raw"]
    return [
        (
            f"sweep speed-up vs paper-style loop ({raw['sweep_generations']} gens × {raw['sweep_new_tokens']} tokens)",
            r["sweep_speedup"],
            "≥ 30",
            f"{raw['sweep_engine_s']:.1f} s vs {raw['sweep_paper_loop_s_extrapolated']:.0f} s "
            f"(loop extrapolated from {raw['sweep_paper_loop_measured_generations']} gens)",
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


def compiled_rows(r: dict) -> list[Row]:
    """The compiled decode step against eager, steered (none with ``quick``)."""
    raw = r["raw"]
    if r["compiled_vs_eager_ratio"] is None:
        return []
    rows = [
        (
            f"compiled / eager decode, steered, batch {bs}",
            r["compiled_vs_eager_ratio"][bs],
            "≥ 1.0",
            f"{raw[f'compiled_tok_s_b{bs}']:.1f} vs {raw[f'steered_tok_s_b{bs}']:.1f} tok/s"
            + ("" if bs > 1 else f"; compiling took {raw['compile_s']:.0f} s"),
        )
        for bs in (1, 16)
    ]
    share = r["roofline_share_compiled_b1"]
    return rows + [
        (
            "  share of the bandwidth roofline, batch 1, compiled",
            share,
            "≥ 0.7",
            f"{raw['compiled_tok_s_b1']:.1f} tok/s",
        )
    ]


def extraction_and_ray_rows(r: dict) -> list[Row]:
    """Extraction against one plain forward; Ray's 2 workers against 1 (none without Ray)."""
    raw = r["raw"]
    rows = [
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
                f"{raw['ray_wall_s_w2']:.1f} s vs {raw['ray_wall_s_w1']:.1f} s; "
                f"this process alone {raw['ray_local_s']:.1f} s; "
                f"worker start-up {raw['ray_startup_s_w1']:.1f} s; dispatch {raw['ray_dispatch_ms_w1']:.0f} ms/batch",
            )
        )
    return rows


def print_table(r: dict) -> None:
    """The bench's result (``run_bench``'s JSON) as a table, then where the time and memory went."""
    raw, m = r["raw"], r["machine"]
    rows = engine_rows(r) + sweep_rows(r) + compiled_rows(r) + extraction_and_ray_rows(r) + vllm_rows(raw)
    print(
        f"\nworkbench bench — {r['model']} ({m['dtype']} on {m['gpu'] or m['device']}), "
        f"{r['new_tokens']} new tokens, {m['cpus']} CPUs, torch {m['torch']}"
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
