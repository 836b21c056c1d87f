"""Figures: each a function from results (tidy tables) to a Plotly ``go.Figure``, in one style.

``export`` writes interactive HTML (plotly.js once per folder, works offline) and, where a Chromium
is available to kaleido, static PNG and PDF.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

FONT = dict(family="Helvetica, Arial, sans-serif", size=14, color="#222")
COMPLIANCE_SCALE = "Viridis"
DIVERGING = "RdBu"
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
CONDITION_COLORS = {"no_instruction": "#9e9e9e", "steer": "#1f77b4", "instruction": "#ff7f0e", "instruction_steer": "#2ca02c"}
CONDITION_NAMES = {"no_instruction": "No instruction", "steer": "Steering only", "instruction": "Instruction only", "instruction_steer": "Instruction + steering"}


def style(fig: go.Figure, title: str, width: int = 900, height: int = 500) -> go.Figure:
    fig.update_layout(template="simple_white", font=FONT, title=dict(text=title, x=0.01), width=width, height=height, margin=dict(l=70, r=30, t=70, b=60))
    return fig


def _setting_label(mode: str, coefficient) -> str:
    if mode == "project":
        return "proj. z̄"
    if mode == "none":
        return "0"
    return f"{coefficient:g}×"


def sweep_heatmap(cells: pd.DataFrame, value: str = "compliance", with_instruction: bool = False, choices: dict | None = None) -> go.Figure:
    """Layer × coefficient heatmap per instruction (facets), the selected cell boxed.

    ``cells`` is ``sweep.cell_summary(table)``; value is 'compliance', 'logprob' or 'degenerate'.
    """
    c = cells[(cells["with_instruction"] == with_instruction) & (cells["layer"] >= 0)].copy()
    c["setting"] = [_setting_label(m, k) for m, k in zip(c["mode"], c["coefficient"])]
    names = sorted(c["instruction"].unique())
    fig = make_subplots(rows=1, cols=max(1, len(names)), subplot_titles=names, shared_yaxes=True, horizontal_spacing=0.04)
    scale = COMPLIANCE_SCALE if value != "logprob" else "Cividis"
    zmin, zmax = (0, 1) if value in ("compliance", "degenerate") else (float(c[value].min()), float(c[value].max()))
    for i, name in enumerate(names, start=1):
        g = c[c["instruction"] == name]
        settings = sorted(g["setting"].unique(), key=lambda s: (s.startswith("proj"), float(s[:-1]) if s.endswith("×") else 0))
        grid = g.pivot_table(index="setting", columns="layer", values=value).reindex(settings)
        fig.add_trace(go.Heatmap(z=grid.values, x=[str(l) for l in grid.columns], y=list(grid.index), colorscale=scale, zmin=zmin, zmax=zmax,
                                 colorbar=dict(title=_value_title(value)), showscale=(i == 1), hovertemplate="layer %{x}<br>%{y}<br>%{z:.2f}<extra></extra>"), row=1, col=i)
        choice = (choices or {}).get((name, with_instruction))
        if choice is not None and choice.layer >= 0:
            label = _setting_label(choice.mode, choice.coefficient)
            if label in list(grid.index) and str(choice.layer) in [str(x) for x in grid.columns]:
                fig.add_trace(go.Scatter(x=[str(choice.layer)], y=[label], mode="markers", marker=dict(symbol="square-open", size=28, color="red", line=dict(width=3)),
                                         name="selected", showlegend=(i == 1), hoverinfo="skip"), row=1, col=i)
        fig.update_xaxes(title_text="layer", type="category", row=1, col=i)
    fig.update_yaxes(title_text="coefficient (× mean-difference norm)", row=1, col=1)
    cond = "with" if with_instruction else "without"
    fig.update_layout(legend=dict(orientation="h", x=0, y=-0.22))
    return style(fig, f"{_value_title(value).capitalize()}<br><sup>by layer and coefficient, {cond} the instruction in the prompt</sup>", width=max(620, 380 * len(names) + 160), height=460)


def _value_title(value: str) -> str:
    return {"compliance": "compliance (loose)", "logprob": "mean log-prob (nats/token)", "degenerate": "degenerate share"}.get(value, value)


def separability_curves(sep: pd.DataFrame, gain: pd.DataFrame | None = None, measure: str = "auroc") -> go.Figure:
    """Held-out AUROC (or Cohen's d) per layer for each instruction; optionally the steering gain."""
    label = {"auroc": "AUROC", "cohens_d": "Cohen's d"}[measure]
    fig = make_subplots(specs=[[{"secondary_y": gain is not None}]])
    colors = dict(zip(sorted(sep["instruction"].unique()), PALETTE))
    for name, g in sep.groupby("instruction"):
        fig.add_trace(go.Scatter(x=g["layer"], y=g[measure], mode="lines+markers", name=f"{name} {label}", line_color=colors[name]), secondary_y=False)
    if gain is not None:
        for name, g in gain.groupby("instruction"):
            fig.add_trace(go.Bar(x=g["layer"], y=g["gain"], name=f"{name} steering gain", opacity=0.35, marker_color=colors.get(name)), secondary_y=True)
        top = max(0.05, float(gain["gain"].max()) * 1.1)
        fig.update_yaxes(title_text="compliance gain over no steering", range=[min(0.0, float(gain["gain"].min()) * 1.1), top], secondary_y=True)
    fig.update_layout(legend=dict(orientation="h", x=0, y=-0.2))
    fig.update_xaxes(title_text="layer")
    fig.update_yaxes(title_text=f"{label} (held-out)", range=[0.4, 1.02] if measure == "auroc" else None, secondary_y=False)
    return style(fig, "Separability of with- vs without-instruction activations")


def projection_histograms(proj: pd.DataFrame) -> go.Figure:
    """Held-out projections on the instruction vector at chosen layers, with vs without."""
    layers = sorted(proj["layer"].unique())
    fig = make_subplots(rows=1, cols=len(layers), subplot_titles=[f"layer {l}" for l in layers])
    for i, layer in enumerate(layers, start=1):
        for flag, color in ((False, "#9e9e9e"), (True, "#1f77b4")):
            v = proj[(proj["layer"] == layer) & (proj["with_instruction"] == flag)]["projection"]
            fig.add_trace(go.Histogram(x=v, name="with instruction" if flag else "without", marker_color=color, opacity=0.6, showlegend=(i == 1), nbinsx=20), row=1, col=i)
        fig.update_xaxes(title_text="projection on u", row=1, col=i)
    fig.update_layout(barmode="overlay")
    fig.update_yaxes(title_text="examples", row=1, col=1)
    return style(fig, "Projection on the instruction vector", width=max(500, 330 * len(layers)), height=380)


def four_condition_bars(summary: pd.DataFrame) -> go.Figure:
    """Compliance per instruction in the paper's four conditions, with 95% bootstrap intervals."""
    fig = go.Figure()
    for cond in CONDITION_COLORS:
        s = summary[summary["condition"] == cond]
        fig.add_trace(go.Bar(x=s["instruction"], y=s["compliance"], name=CONDITION_NAMES[cond], marker_color=CONDITION_COLORS[cond],
                             error_y=dict(type="data", symmetric=False, array=s["ci_high"] - s["compliance"], arrayminus=s["compliance"] - s["ci_low"])))
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.2))
    fig.update_yaxes(title_text="compliance (loose, 95% CI)", range=[0, 1.05])
    fig.update_xaxes(title_text="instruction")
    return style(fig, "Held-out compliance in four conditions")


def composition_grid(grid: pd.DataFrame, a: str, b: str, value: str = "both") -> go.Figure:
    """Coefficient of vector A × coefficient of vector B → share following both (or one)."""
    pivot = grid.pivot_table(index="coef_b", columns="coef_a", values=value)
    fig = go.Figure(go.Heatmap(z=pivot.values, x=[f"{c:g}" for c in pivot.columns], y=[f"{c:g}" for c in pivot.index], colorscale=COMPLIANCE_SCALE, zmin=0, zmax=1,
                               colorbar=dict(title="compliance"), text=np.round(pivot.values, 2), texttemplate="%{text}"))
    fig.update_xaxes(title_text=f"{a} coefficient (× norm)", type="category")
    fig.update_yaxes(title_text=f"{b} coefficient (× norm)", type="category")
    return style(fig, f"Composition: {a} + {b} ({value})", width=560, height=480)


def cosine_heatmap(matrix, labels, title: str, axis_title: str) -> go.Figure:
    m = np.asarray(matrix)
    fig = go.Figure(go.Heatmap(z=m, x=[str(l) for l in labels], y=[str(l) for l in labels], colorscale=DIVERGING, zmid=0, zmin=-1, zmax=1, colorbar=dict(title="cosine")))
    fig.update_xaxes(title_text=axis_title, type="category")
    fig.update_yaxes(title_text=axis_title, type="category", autorange="reversed")
    return style(fig, title, width=620, height=560)


def chromium_path() -> str | None:
    for name in (os.environ.get("BROWSER_PATH"), "chromium", "chromium-browser", "google-chrome"):
        if name and (path := shutil.which(name) or (name if Path(name).exists() else None)):
            return path
    return None


def export(fig: go.Figure, folder: str | Path, name: str, static: bool = True) -> list[Path]:
    """Write ``name.html`` (plotly.js beside it, shared, offline) and PNG + PDF when possible."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    js = folder / "plotly.min.js"
    if not js.exists():
        from plotly.offline import get_plotlyjs

        js.write_text(get_plotlyjs())
    written = [folder / f"{name}.html"]
    fig.write_html(written[0], include_plotlyjs="plotly.min.js", full_html=True)
    if static:
        browser = chromium_path()
        if browser is None:
            print(f"no Chromium found: wrote {name}.html only; install Debian's chromium (make setup does) for PNG/PDF")
            return written
        os.environ.setdefault("BROWSER_PATH", browser)
        for ext in ("png", "pdf"):
            path = folder / f"{name}.{ext}"
            fig.write_image(path, scale=2 if ext == "png" else 1)
            written.append(path)
    return written
