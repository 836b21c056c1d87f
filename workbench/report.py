"""The study's figures and report: every figure from a results folder's saved tables (no model
needed), and ``report.md`` / ``report.html`` (Markdown rendered by markdown-it-py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import torch
from markdown_it import MarkdownIt

from workbench import analysis, plots
from workbench.errors import WorkbenchError
from workbench.instructions import slug
from workbench.io import read_jsonl, write_atomic
from workbench.sweep import Choice


def unit_path(out: Path, label: str) -> Path:
    """Where a study keeps the held-out rows of one report unit (an instruction, exclusion, composition)."""
    return out / "report" / "units" / f"{slug(label)}.jsonl"


def make_figures(results: str | Path, dest: str | Path, static: bool = True) -> list[Path]:
    """Every figure from a study folder's saved results (no model needed)."""
    results, dest = Path(results), Path(dest)
    needed = results / "cells.csv"
    if not needed.exists():
        raise WorkbenchError(f"no study results in {results}: run `workbench demo --out {results}` first")
    cells = pd.read_csv(needed)
    choices = {}
    if (results / "choices.json").exists():
        for key, c in json.loads((results / "choices.json").read_text()).items():
            choices[(c["instruction"], c["with_instruction"])] = Choice.from_json(c)
    written = []
    for cond in sorted(cells["with_instruction"].unique()):
        tag = "with" if cond else "without"
        written += plots.export(plots.sweep_heatmap(cells, "compliance", bool(cond), choices), dest, f"heatmap_compliance_{tag}", static)
        written += plots.export(plots.sweep_heatmap(cells, "logprob", bool(cond), choices), dest, f"heatmap_quality_{tag}", static)
    sep = pd.read_csv(results / "separability.csv")
    joined = pd.read_csv(results / "gain_vs_separability.csv")
    written += plots.export(plots.separability_curves(sep, joined[["instruction", "layer", "gain"]]), dest, "separability", static)
    written += plots.export(plots.separability_curves(sep, joined[["instruction", "layer", "gain"]], "cohens_d"), dest, "separability_cohens_d", static)
    written += plots.export(plots.projection_histograms(pd.read_csv(results / "projections.csv")), dest, "projections", static)
    written += plots.export(plots.four_condition_bars(pd.read_csv(results / "summary.csv")), dest, "four_conditions", static)
    if (results / "composition.csv").exists():
        comp = pd.read_csv(results / "composition.csv")
        written += plots.export(plots.composition_grid(comp, comp["a_name"].iloc[0], comp["b_name"].iloc[0]), dest, "composition", static)
    diffs = torch.load(results / "mean_diffs.pt", weights_only=True)
    names = list(diffs)
    first = diffs[names[0]]
    written += plots.export(plots.cosine_heatmap(analysis.cosine_matrix(first).numpy(), list(range(first.shape[0])), f"{names[0]}: cosine across layers", "layer"), dest, "cosine_layers", static)
    if len(names) > 1:
        mid = first.shape[0] // 2
        m = analysis.cosine_matrix(torch.stack([diffs[n][mid] for n in names])).numpy()
        written += plots.export(plots.cosine_heatmap(m, names, f"cosine across instructions (layer {mid})", "instruction"), dest, "cosine_instructions", static)
    return written


def _md_table(frame: pd.DataFrame, floatfmt: str = ".2f") -> str:
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in frame.iterrows():
        cells = [format(v, floatfmt) if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(out: Path, follow, summary, comp, sep, joined, choices, ex_choice, result) -> None:
    table = summary[["instruction", "condition", "compliance", "ci_low", "ci_high", "n", "layer", "mode", "coefficient", "logprob", "degenerate"]]
    best_layers = sep.loc[sep.groupby("instruction")["cohens_d"].idxmax(), ["instruction", "layer", "auroc", "cohens_d"]]
    corr = joined.groupby("instruction")[["correlation", "correlation_d"]].first().reset_index()
    examples = []
    for name in result["followed"][:3]:
        path = unit_path(out, name)
        rows = read_jsonl(path)
        by = {(r["condition"], r["prompt_id"]): r for r in rows}
        first = rows[0]["prompt_id"]
        examples.append((name, by[("no_instruction", first)], by[("steer", first)]))
    parts = [
        f"# Instruction steering study: {result['model']}",
        f"Precision: {result.get('dtype', 'float32')}. Run time: {result['seconds']:.0f} s on {os.cpu_count()} CPU cores, summed over invocations (this one: {result['this_run_seconds']:.0f} s; finished stages are resumed from disk). "
        f"Followed when told (≥ threshold): {', '.join(result['followed'])}.",
        "## Does the model follow each instruction when told? (validation prompts, loose compliance)",
        "`tokens`: new tokens each reply had; `needs`: the instruction's own budget. Where `needs` exceeds `tokens`, a reply may be "
        "cut off before its check can pass, so `with` can understate following (rerun with `--max-new-tokens auto`).",
        _md_table(follow),
        "## Held-out test prompts: four conditions (loose compliance, 95% bootstrap CI)",
        "Layer −1 means no steering was selected (ties go to no steering). Coefficients are × the layer's mean-difference norm; "
        "`project` sets the projection to the mean with-instruction value z̄."
        + ("" if result.get("sweep_with_instruction", True) else
           " The sweep ran without the instruction only; \"instruction + steering\" reuses that setting."),
        _md_table(table),
        f"Word exclusion uses the include-word vector at layer {ex_choice.layer} with coefficient {ex_choice.coefficient:g}×.",
        "![four conditions](figures/four_conditions.png)",
        "## Sweep (validation, without the instruction)",
        "![heatmap](figures/heatmap_compliance_without.png)",
        "## Separability",
        "Layer with the largest held-out Cohen's d (AUROC saturates near 1 in most layers), and the Pearson correlation "
        "across swept layers of the steering gain with AUROC (`correlation`) and with Cohen's d (`correlation_d`):",
        _md_table(best_layers.merge(corr, on="instruction")),
        "![separability](figures/separability_cohens_d.png)",
    ]
    if comp is not None:
        parts += ["## Composition (test prompts, no instruction in the prompt)", _md_table(comp), "![composition](figures/composition.png)"]
    parts.append("## Example generations (test prompt, no instruction)")
    for name, plain, steered in examples:
        parts.append(f"**{name}** — *{plain['query']}*\n\n- unsteered: {plain['text'][:300]!r}\n- steered: {steered['text'][:300]!r}")
    md = "\n\n".join(parts) + "\n"
    write_atomic(out / "report.md", md)
    body = MarkdownIt("commonmark").enable("table").render(md)
    write_atomic(out / "report.html", f"<!doctype html><meta charset='utf-8'><title>workbench report</title><style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px}}img{{max-width:100%}}</style>{body}")
