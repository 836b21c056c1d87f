"""The study's ``report.md`` / ``report.html`` from its results (``StudyResults``; Markdown rendered by
markdown-it-py, raw HTML shown as text), and a copy beside the figures. ``make_figures`` (the figures
from a results folder) is ``figures``'s, offered here too."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from markdown_it import MarkdownIt

from workbench.apps.study.figures import make_figures
from workbench.apps.study.files import StudyFiles, StudyResults
from workbench.io import read_jsonl, write_atomic
from workbench.markup import md_cell

__all__ = ["copy_report", "make_figures", "write_report"]

FOUR_CONDITIONS = ["instruction", "condition", "compliance", "ci_low", "ci_high", "n", "layer", "mode"]


def _md_table(frame: pd.DataFrame, floatfmt: str = ".2f") -> str:
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in frame.iterrows():
        cells = [format(v, floatfmt) if isinstance(v, float) else md_cell(v) for v in row]  # names: anyone's text
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(results: StudyResults) -> None:
    """``report.md`` and ``report.html`` in the study's folder."""
    parts = _screen_and_test(results) + _selection_and_geometry(results) + _composition_and_examples(results)
    md = "\n\n".join(parts) + "\n"
    write_atomic(results.files.report_md, md)
    _write_html(results.files.report_html, md)


def _screen_and_test(results: StudyResults) -> list[str]:
    run = results.run
    table = results.summary[FOUR_CONDITIONS + ["coefficient", "logprob", "degenerate"]]
    ex = results.exclusion
    parts = [
        f"# Instruction steering study: {run['model']}",
        f"Precision: {run.get('dtype', 'float32')}. Run time: {run['seconds']:.0f} s on {os.cpu_count()} CPU cores, "
        f"summed over invocations (this one: {run['this_run_seconds']:.0f} s; finished stages are resumed from disk). "
        f"Followed when told (≥ threshold): {', '.join(run['followed'])}.",
        "## Does the model follow each instruction when told? (validation prompts, loose compliance)",
        "`tokens`: new tokens each reply had; `needs`: the instruction's own budget. Where `needs` exceeds `tokens`, "
        "a reply may be cut off before its check can pass, so `with` can understate following "
        "(rerun with `--max-new-tokens auto`).",
        _md_table(results.follow) if results.follow is not None else "(not recorded)",
        "Loose compliance is IFEval's: a reply also passes where dropping its first or last line or its asterisks "
        "passes. A custom checker (`Instruction.custom(..., check=f)`) is scored strictly unless it opts in with "
        "`loose=True`; the study's instructions are IFEval ids and catalog entries, so none is custom.",
        "## Held-out test prompts: four conditions (loose compliance, 95% Clopper-Pearson CI)",
        "Layer −1 means no steering was selected (ties go to no steering). Coefficients are × the layer's "
        "mean-difference norm; `project` sets the projection to the mean with-instruction value z̄."
        + (
            ""
            if run.get("sweep_with_instruction", True)
            else ' The sweep ran without the instruction only; "instruction + steering" reuses that setting.'
        )
        + " `conditional` / `instruction_conditional`: the same steering, applied only to prompts whose last-token "
        "projection (unsteered, at the layer where the training projections separate most) is below the midpoint "
        "of the training means with and without the instruction; the same rule on prompts without and with the "
        "instruction, as when nobody knows whether the user asked.",
        _md_table(table),
    ]
    if ex is not None:
        parts.append(
            f"Word exclusion uses the include-word vector at layer {ex.layer} with coefficient {ex.coefficient:g}×."
        )
    return parts + ["![four conditions](figures/four_conditions.png)"]


def _decisions(drift) -> list[str]:
    """Why each instruction steers or not, one line each (the best cell weighed, and what decided)."""
    lines = [
        f"- **{md_cell(d.instruction)}** ({d.decided_by}): {md_cell(d.reason)}" for d in drift.itertuples() if d.reason
    ]
    return ["Why each instruction steers or not:", "\n".join(lines)] if lines else []


def _selection_and_geometry(results: StudyResults) -> list[str]:
    sep, joined = results.separability, results.gain_vs_separability
    best_layers = sep.loc[
        sep.groupby("instruction")["cohens_d"].idxmax(), ["instruction", "layer", "auroc", "cohens_d"]
    ]
    corr = joined.groupby("instruction")[["correlation", "correlation_d"]].first().reset_index()
    return [
        "## Selection: validation beside test",
        f"Rule: {results.run.get('selection_rule', 'best-v1 (not recorded)')}. Without the instruction: what "
        "selection saw on validation prompts (the chosen cell vs no steering, its maxT-adjusted p-value and prompts "
        "tested, its degenerate share) and what held on the test prompts. A gain that shrinks from validation to "
        "test is the winner's curse.",
        _md_table(results.drift().drop(columns=["reason", "best_gain"])),
        *_decisions(results.drift()),
        "![selection drift](figures/selection_drift.png)",
        "## Sweep (validation, without the instruction)",
        "![heatmap](figures/heatmap_compliance_without.png)",
        "## Separability",
        "Layer with the largest held-out Cohen's d (AUROC saturates near 1 in most layers), and the Pearson "
        "correlation across swept layers of the steering gain with AUROC (`correlation`) and with Cohen's d "
        "(`correlation_d`):",
        _md_table(best_layers.merge(corr, on="instruction")),
        "![separability](figures/separability.png)",
        "![gain vs separability](figures/gain_vs_separability.png)",
        "## What each vector promotes (logit lens)",
        "![logit lens](figures/logit_lens.png)",
    ]


def _composition_and_examples(results: StudyResults) -> list[str]:
    parts = []
    if results.composition is not None:
        parts += [
            "## Composition (test prompts, no instruction in the prompt)",
            _md_table(results.composition),
            "![composition](figures/composition.png)",
        ]
    parts.append("## Example generations (test prompt, no instruction)")
    for name in results.run["followed"][:3]:
        rows = read_jsonl(results.files.unit(name))
        by = {(r["condition"], r["prompt_id"]): r for r in rows}
        plain, steered = by[("no_instruction", rows[0]["prompt_id"])], by[("steer", rows[0]["prompt_id"])]
        parts.append(
            f"**{name}** — *{plain['query']}*\n\n- unsteered: {plain['text'][:300]!r}\n"
            f"- steered: {steered['text'][:300]!r}"
        )
    return parts


STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}"
)


def _write_html(path: Path, md: str) -> None:
    """The report as HTML. Raw HTML in the Markdown is shown as text, never run: the report quotes
    model replies and instruction names, which are anyone's text."""
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(md)
    write_atomic(
        path, f"<!doctype html><meta charset='utf-8'><title>workbench report</title><style>{STYLE}</style>{body}"
    )


def copy_report(results: str | Path, dest: str | Path) -> list[Path]:
    """The study's report beside its figures in ``dest`` (image links made relative to it)."""
    source, dest = StudyFiles.at(results), Path(dest)
    if not source.report_md.exists():
        return []
    md = source.report_md.read_text().replace("](figures/", "](")
    write_atomic(dest / source.report_md.name, md)
    _write_html(dest / source.report_html.name, md)
    return [dest / source.report_md.name, dest / source.report_html.name]
