"""``workbench bench``: speed and memory of the engine, as ratios measured side by side in one run.

Every comparison runs both sides on the same prompts, model and machine, alternating, best of
``repeats``. The paper-style baseline (batch 1, no KV cache, full recompute per token) is measured
on a subset of the grid and extrapolated per generation; the output says so.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from workbench.apps.bench import sections as measure
from workbench.apps.bench.engines import LARGE
from workbench.apps.bench.subject import BenchConfig, Subject, load_subject
from workbench.apps.bench.table import print_table
from workbench.apps.bench.timing import laps
from workbench.models import Model, dtype_name


@dataclass(frozen=True)
class Section:
    """One timed part of the bench: its name in ``section_s``, the measure, and whether ``quick`` skips it."""

    name: str
    measure: Callable[[Subject], dict]
    full_only: bool = False


SECTIONS = (
    Section("compile", measure.compile_step, full_only=True),
    Section("generation", measure.decode_speeds),
    Section("vs transformers", measure.vs_transformers),
    Section("sweep", measure.sweep_speed),
    Section("extraction", measure.extraction_speed),
    Section("ray", measure.ray_speed),
    Section("vllm", measure.vllm_speed),
)


def run_bench(
    model_name: str,
    quick: bool = False,
    json_path: str | None = None,
    device: str | None = None,
    dtype: str = "float32",
) -> dict:
    """Every section of the bench on one model (a ``BenchConfig``), the table printed, the figures
    returned and written to ``json_path`` when given."""
    config = BenchConfig(model_name, quick=quick, device=device, dtype=dtype)
    section_s: dict = {}
    lap = laps(section_s)
    subject = load_subject(config)
    lap("load and vector")
    raw: dict = {}
    for section in SECTIONS:
        if not (section.full_only and quick):
            raw.update(section.measure(subject))
            lap(section.name)
    peaks = measure.extraction_peaks(subject)
    lap("extraction memory")
    result = summarize(subject, raw, peaks, section_s)
    print_table(result)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result, indent=2))
    return result


def summarize(s: Subject, raw: dict, peaks: dict[int, float], section_s: dict) -> dict:
    """The bench's JSON: the ratios (each measure over its reference side), the raw figures, where the
    time went, and the machine."""
    quick, model = s.config.quick, s.model
    vllm = "vllm_load_s" in raw
    return {
        "model": model.name,
        "quick": quick,
        "new_tokens": s.config.new_tokens,
        "steer_overhead_ratio": min(
            _ratio(raw, "steered_tok_s_b1", "unsteered_tok_s_b1"),
            _ratio(raw, "steered_tok_s_b16", "unsteered_tok_s_b16"),
        ),
        "steer_overhead_ratio_b1": _ratio(raw, "steered_tok_s_b1", "unsteered_tok_s_b1"),
        "steer_overhead_ratio_b16": _ratio(raw, "steered_tok_s_b16", "unsteered_tok_s_b16"),
        "tl_vs_hf_ratio": _ratio(raw, "tl_steered_tok_s_b8", "hf_generate_tok_s_b8"),
        "sweep_speedup": _ratio(raw, "sweep_paper_loop_s_extrapolated", "sweep_engine_s"),
        "extraction_ratio": _ratio(raw, "extraction_s", "plain_forward_s"),
        "sampled_vs_greedy_ratio": _ratio(raw, "sampled_tok_s_b16", "unsteered_tok_s_b16"),
        "roofline_share_b1": _ratio(raw, "unsteered_tok_s_b1", "roofline_tok_s_b1"),
        "roofline_share_compiled_b1": None if quick else _ratio(raw, "compiled_tok_s_b1", "roofline_tok_s_b1"),
        "compiled_vs_eager_ratio": None
        if quick
        else {bs: _ratio(raw, f"compiled_tok_s_b{bs}", f"steered_tok_s_b{bs}") for bs in measure.DECODE_BATCHES},
        "sweep_auto_vs_cap64_ratio": _ratio(raw, "sweep_engine_cap64_s", "sweep_engine_s"),
        "ray_speedup_2v1": _ratio(raw, "ray_wall_s_w1", "ray_wall_s_w2") if "ray_wall_s_w2" in raw else None,
        "vllm_vs_workbench_steered": {
            bs: _ratio(raw, f"vllm_steered_tok_s_b{bs}", f"wb_steered_tok_s_b{bs}") for bs in (1, LARGE)
        }
        if vllm
        else None,
        "vllm_steer_overhead_ratio": {
            bs: _ratio(raw, f"vllm_steered_tok_s_b{bs}", f"vllm_unsteered_tok_s_b{bs}") for bs in (1, LARGE)
        }
        if vllm
        else None,
        "extraction_peak_mb": {str(k): v for k, v in peaks.items()},
        "extraction_result_mb": {str(n): n * model.n_layers * model.d_model * 4 / 1e6 for n in peaks},
        "raw": raw,
        "section_s": section_s,
        "machine": machine(model),
    }


def _ratio(raw: dict, numerator: str, denominator: str) -> float:
    return raw[numerator] / raw[denominator]


def machine(model: Model) -> dict:
    """Where the bench ran: platform, CPUs, torch's threads and version, the model's device and dtype."""
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(model.device),
        "dtype": dtype_name(model.dtype),
        "gpu": torch.cuda.get_device_name(model.device) if model.device.type == "cuda" else None,
    }
