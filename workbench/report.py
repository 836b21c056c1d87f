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
    meta = json.loads((results / "result.json").read_text()) if (results / "result.json").exists() else {}
    model = f"{meta.get('model', '')} ({meta.get('dtype', 'float32')})" if meta else ""
    choices = {}
    if (results / "choices.json").exists():
        for key, c in json.loads((results / "choices.json").read_text()).items():
            choices[(c["instruction"], c["with_instruction"])] = Choice.from_json(c)
    written = []
    for cond in sorted(cells["with_instruction"].unique()):
        tag = "with" if cond else "without"
        written += plots.export(
            plots.sweep_heatmap(cells, "compliance", bool(cond), choices, model),
            dest,
            f"heatmap_compliance_{tag}",
            static,
        )
        written += plots.export(
            plots.sweep_heatmap(cells, "logprob", bool(cond), choices, model), dest, f"heatmap_quality_{tag}", static
        )
    sep = pd.read_csv(results / "separability.csv")
    joined = pd.read_csv(results / "gain_vs_separability.csv")
    n_pairs = meta.get("n_pairs")
    written += plots.export(plots.separability_curves(sep, model, n_pairs), dest, "separability", static)
    written += plots.export(plots.gain_vs_separability(joined, "cohens_d", model), dest, "gain_vs_separability", static)
    diffs = torch.load(results / "mean_diffs.pt", weights_only=True)
    proj = pd.read_csv(results / "projections.csv")
    zbar = {}
    if (results / "proj_with.pt").exists():
        for name, z in torch.load(results / "proj_with.pt", weights_only=True).items():
            zbar.update({(name, layer): float(v) for layer, v in enumerate(z)})
    written += plots.export(plots.projection_histograms(proj, zbar, model), dest, "projections", static)
    summary = pd.read_csv(results / "summary.csv")
    written += plots.export(plots.four_condition_bars(summary, model), dest, "four_conditions", static)
    if choices:
        written += plots.export(plots.selection_drift(_drift(summary, choices), model), dest, "selection_drift", static)
    if (results / "composition.csv").exists():
        comp = pd.read_csv(results / "composition.csv")
        layers = (int(comp["layer_a"].iloc[0]), int(comp["layer_b"].iloc[0])) if "layer_a" in comp else None
        n = int(comp["n"].iloc[0]) if "n" in comp else None
        written += plots.export(
            plots.composition_grid(
                comp, comp["a_name"].iloc[0], comp["b_name"].iloc[0], layers=layers, n=n, model=model
            ),
            dest,
            "composition",
            static,
        )
    if (results / "logit_lens.csv").exists():
        written += plots.export(
            plots.logit_lens(pd.read_csv(results / "logit_lens.csv", keep_default_na=False), model),
            dest,
            "logit_lens",
            static,
        )
    names = list(diffs)
    first = diffs[names[0]]
    written += plots.export(
        plots.cosine_heatmap(
            analysis.cosine_matrix(first).numpy(),
            list(range(first.shape[0])),
            f"{plots.short(names[0])}: cosine of its vector across layers",
            "layer",
            plots.caption(model, None, "mean difference per layer"),
        ),
        dest,
        "cosine_layers",
        static,
    )
    if len(names) > 1:
        mid = first.shape[0] // 2
        m = analysis.cosine_matrix(torch.stack([diffs[n][mid] for n in names])).numpy()
        written += plots.export(
            plots.cosine_heatmap(
                m,
                [plots.short(n) for n in names],
                f"Cosine between instruction vectors at layer {mid}",
                "instruction",
                plots.caption(model, None, f"layer {mid} = the middle layer; each vector from its own training pairs"),
            ),
            dest,
            "cosine_instructions",
            static,
        )
    return written


def _md_table(frame: pd.DataFrame, floatfmt: str = ".2f") -> str:
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in frame.iterrows():
        cells = [format(v, floatfmt) if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _drift(summary: pd.DataFrame, choices: dict) -> pd.DataFrame:
    """One row per instruction: the chosen setting's validation gain and degenerate share beside the test's
    (no setting chosen: no validation gain)."""
    test = summary.set_index(["instruction", "condition"])
    rows = []
    for (name, cond), c in sorted(choices.items()):
        if cond or (name, "steer") not in test.index:
            continue
        steer, none = test.loc[(name, "steer")], test.loc[(name, "no_instruction")]
        rows.append(
            {
                "instruction": name,
                "layer": c.layer,
                "mode": c.mode,
                "validation": c.score,
                "val_baseline": c.baseline,
                "p": "–" if c.p_value is None else f"{c.p_value:.3g}",
                "n_val": c.n_tested,
                "val_gain": c.score - c.baseline if c.steers else float("nan"),
                "test_gain": float(steer["compliance"] - none["compliance"]),
                "val_degenerate": c.degenerate,
                "test_degenerate": float(steer["degenerate"]),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "instruction",
            "layer",
            "mode",
            "validation",
            "val_baseline",
            "p",
            "n_val",
            "val_gain",
            "test_gain",
            "val_degenerate",
            "test_degenerate",
        ],
    )


def write_report(out: Path, follow, summary, comp, sep, joined, choices, ex_choice, result) -> None:
    table = summary[
        [
            "instruction",
            "condition",
            "compliance",
            "ci_low",
            "ci_high",
            "n",
            "layer",
            "mode",
            "coefficient",
            "logprob",
            "degenerate",
        ]
    ]
    best_layers = sep.loc[
        sep.groupby("instruction")["cohens_d"].idxmax(), ["instruction", "layer", "auroc", "cohens_d"]
    ]
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
        + (
            ""
            if result.get("sweep_with_instruction", True)
            else ' The sweep ran without the instruction only; "instruction + steering" reuses that setting.'
        )
        + " `conditional` / `instruction_conditional`: the same steering, applied only to prompts whose last-token projection (unsteered, at the "
        "layer where the training projections separate most) is below the midpoint of the training means with and without the instruction; "
        "the same rule on prompts without and with the instruction, as when nobody knows whether the user asked.",
        _md_table(table),
        f"Word exclusion uses the include-word vector at layer {ex_choice.layer} with coefficient {ex_choice.coefficient:g}×.",
        "![four conditions](figures/four_conditions.png)",
        "## Selection: validation beside test",
        f"Rule: {result.get('selection_rule', 'best-v1 (not recorded)')}. Without the instruction: what selection saw on validation prompts "
        "(the chosen cell vs no steering, its maxT-adjusted p-value and prompts tested, its degenerate share) and what held on the test "
        "prompts. A gain that shrinks from validation to test is the winner's curse.",
        _md_table(_drift(summary, choices)),
        "![selection drift](figures/selection_drift.png)",
        "## Sweep (validation, without the instruction)",
        "![heatmap](figures/heatmap_compliance_without.png)",
        "## Separability",
        "Layer with the largest held-out Cohen's d (AUROC saturates near 1 in most layers), and the Pearson correlation "
        "across swept layers of the steering gain with AUROC (`correlation`) and with Cohen's d (`correlation_d`):",
        _md_table(best_layers.merge(corr, on="instruction")),
        "![separability](figures/separability.png)",
        "![gain vs separability](figures/gain_vs_separability.png)",
        "## What each vector promotes (logit lens)",
        "![logit lens](figures/logit_lens.png)",
    ]
    if comp is not None:
        parts += [
            "## Composition (test prompts, no instruction in the prompt)",
            _md_table(comp),
            "![composition](figures/composition.png)",
        ]
    parts.append("## Example generations (test prompt, no instruction)")
    for name, plain, steered in examples:
        parts.append(
            f"**{name}** — *{plain['query']}*\n\n- unsteered: {plain['text'][:300]!r}\n- steered: {steered['text'][:300]!r}"
        )
    md = "\n\n".join(parts) + "\n"
    write_atomic(out / "report.md", md)
    _write_html(out / "report.html", md)


def _write_html(path: Path, md: str) -> None:
    """The report as HTML. Raw HTML in the Markdown is shown as text, never run: the report quotes
    model replies and instruction names, which are anyone's text."""
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(md)
    write_atomic(
        path,
        f"<!doctype html><meta charset='utf-8'><title>workbench report</title><style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px}}img{{max-width:100%}}</style>{body}",
    )


def copy_report(results: str | Path, dest: str | Path) -> list[Path]:
    """The study's report beside its figures in ``dest`` (image links made relative to it)."""
    results, dest = Path(results), Path(dest)
    if not (results / "report.md").exists():
        return []
    md = (results / "report.md").read_text().replace("](figures/", "](")
    write_atomic(dest / "report.md", md)
    _write_html(dest / "report.html", md)
    return [dest / "report.md", dest / "report.html"]
