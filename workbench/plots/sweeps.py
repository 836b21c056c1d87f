"""Figures of sweeps and held-out conditions: the layer × setting heatmap, the four conditions'
bars, the composition grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.judging.quality import MAX_DEGENERATE
from workbench.plots.theme import (
    COMPLIANCE_SCALE,
    CONDITION_COLORS,
    CONDITION_NAMES,
    DEGENERATE_MARK,
    caption,
    setting_label,
    setting_order,
    short,
    style,
    value_title,
)


def sweep_heatmap(
    cells: pd.DataFrame,
    value: str = "compliance",
    with_instruction: bool = False,
    choices: dict | None = None,
    model: str = "",
) -> go.Figure:
    """Layer × setting heatmap per instruction (facets), values in the cells, the selected cell
    boxed, degenerate settings (share > ``MAX_DEGENERATE``) crossed out, and the unsteered value of
    each instruction in its facet title.

    ``cells`` is ``sweep.cell_summary(table)``; value is 'compliance', 'logprob' or 'degenerate'.
    """
    c = cells[cells["with_instruction"] == with_instruction].copy()
    base = c[c["layer"] < 0].set_index("instruction")
    c = c[c["layer"] >= 0]
    c["setting"] = [setting_label(m, k) for m, k in zip(c["mode"], c["coefficient"])]
    names = sorted(c["instruction"].unique())
    titles = [f"{short(n)}<br><sup>no steering: {base[value].get(n, float('nan')):.2f}</sup>" for n in names]
    fig = make_subplots(
        rows=1, cols=max(1, len(names)), subplot_titles=titles, shared_yaxes=True, horizontal_spacing=0.05
    )
    zrange = (0.0, 1.0) if value in ("compliance", "degenerate") else (float(c[value].min()), float(c[value].max()))
    for i, name in enumerate(names, start=1):
        choice = (choices or {}).get((name, with_instruction))
        _facet(fig, c[c["instruction"] == name], value, zrange, choice, col=i)
    fig.update_yaxes(title_text="coefficient (× mean-difference norm)", type="category", row=1, col=1)
    cond = "with" if with_instruction else "without"
    n = int(c["n"].iloc[0]) if len(c) and "n" in c else None
    fig.update_layout(legend=dict(orientation="h", x=0, y=-0.25))
    return style(
        fig,
        f"{value_title(value).capitalize()} by layer and coefficient",
        caption(
            model,
            f"{n} validation prompts per cell" if n else None,
            f"{cond} the instruction in the prompt; red box = selected",
        ),
        width=max(620, 380 * len(names) + 160),
        height=520,
    ).update_layout(margin=dict(t=150))


def _facet(fig: go.Figure, g: pd.DataFrame, value: str, zrange: tuple[float, float], choice, col: int) -> None:
    """One instruction's heatmap in column ``col``: degenerate cells crossed out, the selected one boxed."""
    settings = sorted(g["setting"].unique(), key=setting_order)
    grid = g.pivot_table(index="setting", columns="layer", values=value).reindex(settings)
    bad = g.pivot_table(index="setting", columns="layer", values="degenerate").reindex(settings)
    x = [str(l) for l in grid.columns]
    fig.add_trace(
        go.Heatmap(
            z=grid.values,
            x=x,
            y=list(grid.index),
            colorscale=COMPLIANCE_SCALE if value != "logprob" else "Cividis",
            zmin=zrange[0],
            zmax=zrange[1],
            text=np.round(grid.values, 2),
            texttemplate="%{text}",
            colorbar=dict(title=value_title(value)),
            showscale=(col == 1),
            hovertemplate="layer %{x}<br>%{y}<br>%{z:.2f}<extra></extra>",
        ),
        row=1,
        col=col,
    )
    crossed = [(str(l), s) for s in bad.index for l in bad.columns if bad.loc[s, l] > MAX_DEGENERATE]
    if crossed:
        marks = _marks(fig, crossed, DEGENERATE_MARK, f"degenerate > {MAX_DEGENERATE:.0%}", "degenerate")
        fig.add_trace(marks, row=1, col=col)
    if choice is not None and choice.layer >= 0:
        label = setting_label(choice.mode, choice.coefficient)
        if label in list(grid.index) and str(choice.layer) in x:
            box = dict(symbol="square-open", size=30, color="red", line=dict(width=3))
            fig.add_trace(_marks(fig, [(str(choice.layer), label)], box, "selected", "selected"), row=1, col=col)
    fig.update_xaxes(title_text="layer", type="category", row=1, col=col)


def _marks(fig: go.Figure, points: list[tuple[str, str]], marker: dict, name: str, group: str) -> go.Scatter:
    """Markers on heatmap cells; in the legend once per figure (``group``)."""
    return go.Scatter(
        x=[p[0] for p in points],
        y=[p[1] for p in points],
        mode="markers",
        marker=marker,
        name=name,
        legendgroup=group,
        showlegend=not any(t.legendgroup == group for t in fig.data),
        hoverinfo="skip",
    )


def four_condition_bars(summary: pd.DataFrame, model: str = "") -> go.Figure:
    """Compliance per instruction in the paper's four conditions, with 95% Clopper-Pearson intervals;
    values printed on the bars (a zero is a visible 0.00), and the steering bars of an instruction for
    which validation selected no steering hatched and labelled so."""
    fig = go.Figure()
    names = list(dict.fromkeys(summary["instruction"]))
    unsteered = (
        set(summary[(summary["condition"] == "steer") & (summary["layer"] < 0)]["instruction"])
        if "layer" in summary
        else set()
    )
    for cond in [c for c in CONDITION_COLORS if c in set(summary["condition"])]:
        s = summary[summary["condition"] == cond].set_index("instruction").reindex(names)
        hatched = [cond in ("steer", "instruction_steer") and n in unsteered for n in names]
        fig.add_trace(
            go.Bar(
                x=[short(n) for n in names],
                y=s["compliance"].fillna(0).clip(lower=0.012),
                name=CONDITION_NAMES[cond],
                marker_color=CONDITION_COLORS[cond],
                marker_pattern_shape=["/" if h else "" for h in hatched],
                text=[
                    ("none selected" if h else "not run" if pd.isna(v) else f"{v:.2f}")
                    for v, h in zip(s["compliance"], hatched)
                ],
                textposition="outside",
                textfont=dict(size=10),
                customdata=s["compliance"],
                hovertemplate="%{x}<br>%{customdata:.2f}<extra>" + CONDITION_NAMES[cond] + "</extra>",
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=s["ci_high"] - s["compliance"],
                    arrayminus=s["compliance"] - s["ci_low"],
                ),
            )
        )
    fig.update_layout(barmode="group", legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom"))
    fig.update_yaxes(title_text="compliance (loose, 95% CI)", range=[0, 1.15])
    fig.update_xaxes(title_text="instruction")
    n = int(summary["n"].max()) if "n" in summary and len(summary) else None
    title = "Held-out compliance in four conditions" + (
        " and with conditional steering" if "conditional" in set(summary["condition"]) else ""
    )
    return style(
        fig,
        title,
        caption(
            model,
            f"{n} test prompts per bar" if n else None,
            "hatched: validation selected no steering, so the bar repeats its unsteered twin",
        ),
        width=max(760, (200 + 60 * ("conditional" in set(summary["condition"]))) * len(names) + 200),
        height=560,
    ).update_layout(margin=dict(t=140))


def composition_grid(
    grid: pd.DataFrame,
    a: str,
    b: str,
    value: str = "both",
    layers: tuple[int, int] | None = None,
    n: int | None = None,
    model: str = "",
) -> go.Figure:
    """Coefficient of vector A × coefficient of vector B → share following both (or one); cells
    whose outputs are degenerate more than ``MAX_DEGENERATE`` of the time are crossed out and give
    their degenerate share."""
    pivot = grid.pivot_table(index="coef_b", columns="coef_a", values=value)
    deg = None
    if "degenerate" in grid:
        deg = grid.pivot_table(index="coef_b", columns="coef_a", values="degenerate")
        deg = deg.reindex(index=pivot.index, columns=pivot.columns)
    x, y = [f"{c:g}" for c in pivot.columns], [f"{c:g}" for c in pivot.index]
    fig = go.Figure(
        go.Heatmap(
            z=pivot.values,
            x=x,
            y=y,
            colorscale=COMPLIANCE_SCALE,
            zmin=0,
            zmax=1,
            colorbar=dict(title="compliance"),
            text=_composition_text(pivot, deg),
            texttemplate="%{text}",
        )
    )
    if deg is not None:
        crossed = [(x[j], y[i]) for i in range(len(y)) for j in range(len(x)) if deg.values[i, j] > MAX_DEGENERATE]
        if crossed:
            fig.add_trace(
                go.Scatter(
                    x=[p[0] for p in crossed],
                    y=[p[1] for p in crossed],
                    mode="markers",
                    marker=dict(DEGENERATE_MARK, size=40),
                    name=f"degenerate > {MAX_DEGENERATE:.0%}",
                    hoverinfo="skip",
                )
            )
    at = f", at layers {layers[0]} and {layers[1]}" if layers else ""
    fig.update_xaxes(title_text=f"{short(a)} coefficient (× norm)", type="category")
    fig.update_yaxes(title_text=f"{short(b)} coefficient (× norm)", type="category")
    fig.update_layout(legend=dict(orientation="h", x=0, y=-0.2))
    return style(
        fig,
        f"Composition: {short(a)} + {short(b)}",
        caption(model, f"{n} test prompts per cell" if n else None, f"share following {value}{at}"),
        width=720,
        height=560,
    )


def _composition_text(pivot: pd.DataFrame, deg: pd.DataFrame | None) -> list[list[str]]:
    """Each cell's value, and its degenerate share where that is over ``MAX_DEGENERATE``."""
    shares = deg.values if deg is not None else np.zeros_like(pivot.values)
    return [
        [
            f"{v:.2f}" + (f"<br>deg. {d:.0%}" if deg is not None and d > MAX_DEGENERATE else "")
            for v, d in zip(row, drow)
        ]
        for row, drow in zip(pivot.values, shares)
    ]
