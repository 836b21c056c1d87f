"""Figures of the vectors' geometry: separability per layer, gain against separability, projection
histograms, cosine heatmaps, the logit lens."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.plots.theme import DIVERGING, caption, color_map, r_text, short, style
from workbench.stats import pearson


def separability_curves(sep: pd.DataFrame, model: str = "", n: int | None = None) -> go.Figure:
    """Held-out AUROC and Cohen's d per layer, one line per instruction. AUROC saturates near 1 in
    most layers; Cohen's d keeps ranking them."""
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=["AUROC (saturates at 1)", "Cohen's d (does not)"], horizontal_spacing=0.1
    )
    colors = color_map(sep["instruction"].unique())
    for name, g in sep.groupby("instruction"):
        for col, measure in ((1, "auroc"), (2, "cohens_d")):
            fig.add_trace(
                go.Scatter(
                    x=g["layer"],
                    y=g[measure],
                    mode="lines+markers",
                    name=short(name),
                    legendgroup=name,
                    showlegend=(col == 1),
                    line_color=colors[name],
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="layer")
    fig.update_yaxes(title_text="AUROC (held-out)", range=[0.4, 1.02], row=1, col=1)
    fig.update_yaxes(title_text="Cohen's d (held-out)", row=1, col=2)
    fig.update_layout(legend=dict(orientation="h", x=0, y=-0.22))
    return style(
        fig,
        "Separability of with- vs without-instruction activations",
        caption(model, f"{n} pairs per instruction" if n else None, "projections on u, 5-fold held-out"),
        width=1000,
        height=460,
    )


def gain_vs_separability(joined: pd.DataFrame, measure: str = "cohens_d", model: str = "") -> go.Figure:
    """Steering gain against separability, one point per (instruction, swept layer), with Pearson r
    and n per instruction and over all points."""
    label = {"auroc": "AUROC", "cohens_d": "Cohen's d"}[measure]
    fig = go.Figure()
    colors = color_map(joined["instruction"].unique())
    for name, g in joined.groupby("instruction"):
        r = pearson(g[measure], g["gain"])
        fig.add_trace(
            go.Scatter(
                x=g[measure],
                y=g["gain"],
                mode="markers+text",
                text=[str(l) for l in g["layer"]],
                textposition="top center",
                name=f"{short(name)} ({r_text(r)}, n = {len(g)})",
                marker=dict(size=11, color=colors[name]),
            )
        )
    ok = joined[[measure, "gain"]].replace([np.inf, -np.inf], np.nan).dropna()
    r_all = pearson(ok[measure], ok["gain"])
    fig.add_hline(y=0, line=dict(color="#999", dash="dot"))
    fig.update_xaxes(title_text=f"{label} at the layer (held-out)")
    fig.update_yaxes(title_text="steering gain (best setting − no steering)")
    fig.update_layout(legend=dict(orientation="h", x=0, y=-0.22))
    return style(
        fig,
        f"Steering gain vs separability: {r_text(r_all)} over n = {len(ok)} (instruction, layer) points",
        caption(model, None, "validation compliance, without the instruction; labels are layers"),
        width=820,
        height=520,
    )


def projection_histograms(proj: pd.DataFrame, zbar: dict | None = None, model: str = "") -> go.Figure:
    """Held-out projections on each instruction's own direction: one row per instruction, one
    column per layer, shared bins within each facet, z̄ (mean with-instruction projection, training
    pairs) drawn where given, else the held-out mean."""
    layers = sorted(proj["layer"].unique())
    names = sorted(proj["instruction"].unique())
    fig = make_subplots(
        rows=len(names),
        cols=len(layers),
        subplot_titles=[f"{short(n)}, layer {l}" for n in names for l in layers],
        vertical_spacing=min(0.12, 0.3 / len(names)),
    )
    for r, name in enumerate(names, start=1):
        for c, layer in enumerate(layers, start=1):
            facet = proj[(proj["instruction"] == name) & (proj["layer"] == layer)]
            lo, hi = float(facet["projection"].min()), float(facet["projection"].max())
            bins = dict(start=lo, end=hi + 1e-9, size=max((hi - lo) / 20, 1e-9))
            for flag, color in ((False, "#9e9e9e"), (True, "#1f77b4")):
                v = facet[facet["with_instruction"] == flag]["projection"]
                fig.add_trace(
                    go.Histogram(
                        x=v,
                        xbins=bins,
                        name="with instruction" if flag else "without",
                        marker_color=color,
                        opacity=0.6,
                        legendgroup=str(flag),
                        showlegend=(r == 1 and c == 1),
                    ),
                    row=r,
                    col=c,
                )
            z = (zbar or {}).get((name, int(layer)))
            z = float(facet[facet["with_instruction"]]["projection"].mean()) if z is None else z
            fig.add_vline(x=z, line=dict(color="#000", dash="dash", width=2), layer="above", row=r, col=c)
        fig.update_yaxes(title_text="prompts", row=r, col=1)
    for c in range(1, len(layers) + 1):
        fig.update_xaxes(title_text="projection on u", row=len(names), col=c)
    fig.update_layout(barmode="overlay", legend=dict(orientation="h", x=0, y=-0.12))
    n = (
        int((proj["with_instruction"] & (proj["instruction"] == names[0]) & (proj["layer"] == layers[0])).sum())
        if names
        else None
    )
    return style(
        fig,
        "Projection on each instruction's direction, with vs without it",
        caption(
            model, f"{n} held-out pairs per facet" if n else None, "dashed: z̄, the mean with-instruction projection"
        ),
        width=max(520, 320 * len(layers)),
        height=290 * len(names) + 160,
    )


def cosine_heatmap(matrix, labels, title: str, axis_title: str, subtitle: str = "") -> go.Figure:
    m = np.asarray(matrix)
    values = dict(text=np.round(m, 2), texttemplate="%{text}") if len(labels) <= 12 else {}
    fig = go.Figure(
        go.Heatmap(
            z=m,
            x=[str(l) for l in labels],
            y=[str(l) for l in labels],
            colorscale=DIVERGING,
            zmid=0,
            zmin=-1,
            zmax=1,
            colorbar=dict(title="cosine"),
            **values,
        )
    )
    fig.update_xaxes(title_text=axis_title, type="category")
    fig.update_yaxes(title_text=axis_title, type="category", autorange="reversed")
    return style(fig, title, subtitle, width=640, height=600)


def logit_lens(table: pd.DataFrame, model: str = "") -> go.Figure:
    """What each vector says: for every layer, the tokens its unit direction promotes most through
    the unembedding (logit lens), coloured by logit, with the layer's norm in the row label; one
    facet per instruction. ``table``: instruction, layer, norm, rank, token, logit."""
    names = sorted(table["instruction"].unique())
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=[short(n) for n in names], horizontal_spacing=0.12)
    for c, name in enumerate(names, start=1):
        t = table[table["instruction"] == name]
        tokens = t.pivot_table(index="layer", columns="rank", values="token", aggfunc="first").sort_index()
        logits = t.pivot_table(index="layer", columns="rank", values="logit").reindex(tokens.index)
        norms = t.groupby("layer")["norm"].first().reindex(tokens.index)
        rows = [f"{l} (‖Δ‖ {v:.0f})" for l, v in norms.items()]
        text = [[repr(str(x))[1:-1][:12] for x in row] for row in tokens.values]
        fig.add_trace(
            go.Heatmap(
                z=logits.values,
                x=[f"#{r + 1}" for r in tokens.columns],
                y=rows,
                text=text,
                texttemplate="%{text}",
                textfont=dict(size=10),
                colorscale="Blues",
                showscale=(c == len(names)),
                colorbar=dict(title="logit"),
                hovertemplate="layer %{y}<br>%{x}: %{text}<br>logit %{z:.2f}<extra></extra>",
            ),
            row=1,
            col=c,
        )
        fig.update_xaxes(title_text="rank", row=1, col=c)
        fig.update_yaxes(type="category", autorange="reversed", row=1, col=c)
    fig.update_yaxes(title_text="layer (‖Δ‖ = the vector's norm)", row=1, col=1)
    n_layers = table["layer"].nunique()
    return style(
        fig,
        "What each vector promotes through the unembedding (logit lens)",
        caption(model, None, "top five tokens of the unit direction per layer, after the final norm"),
        width=max(700, 430 * len(names) + 120),
        height=22 * n_layers + 260,
    )
