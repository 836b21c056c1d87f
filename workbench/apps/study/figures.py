"""Every figure of a study from its saved results (``StudyResults``; no model needed): the sweep's
heatmaps, separability, projections, the four conditions, selection's drift, composition, the logit
lens and the vectors' cosines."""

from __future__ import annotations

from pathlib import Path

import torch

from workbench import analysis, plots
from workbench.apps.study.files import StudyResults


def make_figures(results: str | Path | StudyResults, dest: str | Path, static: bool = True) -> list[Path]:
    """Every figure from a study folder (or its loaded results) into ``dest``; the paths written."""
    study = results if isinstance(results, StudyResults) else StudyResults.load(results)
    dest = Path(dest)
    written = _sweep_figures(study, dest, static) + _geometry_figures(study, dest, static)
    return written + _cosine_figures(study, dest, static)


def _sweep_figures(study: StudyResults, dest: Path, static: bool) -> list[Path]:
    """Heatmaps per prompt condition, the four conditions, selection's drift and the composition grid."""
    cells, choices, model, written = study.cells, study.choices, study.caption, []
    for cond in sorted(cells["with_instruction"].unique()):
        tag = "with" if cond else "without"
        for metric, name in (("compliance", "compliance"), ("logprob", "quality")):
            fig = plots.sweep_heatmap(cells, metric, bool(cond), choices, model)
            written += plots.export(fig, dest, f"heatmap_{name}_{tag}", static)
    written += plots.export(plots.four_condition_bars(study.summary, model), dest, "four_conditions", static)
    if choices:
        written += plots.export(plots.selection_drift(study.drift(), model), dest, "selection_drift", static)
    comp = study.composition
    if comp is not None:
        layers = (int(comp["layer_a"].iloc[0]), int(comp["layer_b"].iloc[0])) if "layer_a" in comp else None
        n = int(comp["n"].iloc[0]) if "n" in comp else None
        a, b = comp["a_name"].iloc[0], comp["b_name"].iloc[0]
        fig = plots.composition_grid(comp, a, b, layers=layers, n=n, model=model)
        written += plots.export(fig, dest, "composition", static)
    return written


def _geometry_figures(study: StudyResults, dest: Path, static: bool) -> list[Path]:
    """Separability per layer, gain against separability, projections and the logit lens."""
    model, n_pairs = study.caption, study.run.get("n_pairs")
    written = plots.export(plots.separability_curves(study.separability, model, n_pairs), dest, "separability", static)
    fig = plots.gain_vs_separability(study.gain_vs_separability, "cohens_d", model)
    written += plots.export(fig, dest, "gain_vs_separability", static)
    zbar = {(name, layer): float(v) for name, z in study.proj_with.items() for layer, v in enumerate(z)}
    written += plots.export(plots.projection_histograms(study.projections, zbar, model), dest, "projections", static)
    if study.logit_lens is not None:
        written += plots.export(plots.logit_lens(study.logit_lens, model), dest, "logit_lens", static)
    return written


def _cosine_figures(study: StudyResults, dest: Path, static: bool) -> list[Path]:
    """The first vector's cosines across layers and, with several, the vectors' cosines at the middle layer."""
    diffs, model = study.mean_diffs, study.caption
    names = list(diffs)
    first = diffs[names[0]]
    fig = plots.cosine_heatmap(
        analysis.cosine_matrix(first).numpy(),
        list(range(first.shape[0])),
        f"{plots.short(names[0])}: cosine of its vector across layers",
        "layer",
        plots.caption(model, None, "mean difference per layer"),
    )
    written = plots.export(fig, dest, "cosine_layers", static)
    if len(names) > 1:
        mid = first.shape[0] // 2
        fig = plots.cosine_heatmap(
            analysis.cosine_matrix(torch.stack([diffs[n][mid] for n in names])).numpy(),
            [plots.short(n) for n in names],
            f"Cosine between instruction vectors at layer {mid}",
            "instruction",
            plots.caption(model, None, f"layer {mid} = the middle layer; each vector from its own training pairs"),
        )
        written += plots.export(fig, dest, "cosine_instructions", static)
    return written
