"""Figures: each a function from results (tidy tables) to a Plotly ``go.Figure``, in one style.

``export`` writes interactive HTML (plotly.js once per folder, works offline) and, where a Chromium
is available to kaleido, static PNG and PDF.
"""

from __future__ import annotations

import os
import re
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
CONDITION_COLORS = {"no_instruction": "#9e9e9e", "steer": "#1f77b4", "instruction": "#ff7f0e", "instruction_steer": "#2ca02c",
                    "conditional": "#9467bd", "instruction_conditional": "#8c564b"}
CONDITION_NAMES = {"no_instruction": "No instruction", "steer": "Steering only", "instruction": "Instruction only", "instruction_steer": "Instruction + steering",
                   "conditional": "Conditional steering", "instruction_conditional": "Instruction + conditional"}


MAX_DEGENERATE = 0.2  # the selection's cut-off: settings above it are marked and never selected
DEGENERATE_MARK = dict(symbol="x-thin", size=18, color="#d62728", line=dict(width=3, color="#d62728"))


def style(fig: go.Figure, title: str, subtitle: str = "", width: int = 900, height: int = 500) -> go.Figure:
    """One style for every figure: the claim as title, what and on what (model, n) underneath."""
    text = title + (f"<br><sup>{subtitle}</sup>" if subtitle else "")
    fig.update_layout(template="simple_white", font=FONT, title=dict(text=text, x=0.01), width=width, height=height, margin=dict(l=70, r=30, t=90, b=70))
    return fig


def short(name: str) -> str:
    """A display name: an IFEval spelling without its family and kwarg names
    (``language:response_language[language=de]`` → ``response_language[de]``)."""
    name = name.split(":", 1)[-1] if re.match(r"^[a-z_]+:[a-z_]+", name) else name
    return re.sub(r"(?<=[\[,])\w+=", "", name)


def caption(model: str = "", n: int | str | None = None, what: str = "") -> str:
    """``model · n = … · what``, leaving out the parts not given."""
    parts = [model, f"n = {n}" if n is not None else "", what]
    return " · ".join(p for p in parts if p)


def setting_label(mode: str, coefficient) -> str:
    """How a steering setting reads on figures and cards: ``1×``, ``proj. z̄``, ``0`` for none."""
    if mode == "project":
        return "proj. z̄"
    if mode == "none":
        return "0"
    return f"{coefficient:g}×"


def _setting_order(label: str) -> tuple:
    return (label.startswith("proj"), float(label[:-1]) if label.endswith("×") else 0.0)


def sweep_heatmap(cells: pd.DataFrame, value: str = "compliance", with_instruction: bool = False, choices: dict | None = None, model: str = "") -> go.Figure:
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
    fig = make_subplots(rows=1, cols=max(1, len(names)), subplot_titles=titles, shared_yaxes=True, horizontal_spacing=0.05)
    scale = COMPLIANCE_SCALE if value != "logprob" else "Cividis"
    zmin, zmax = (0, 1) if value in ("compliance", "degenerate") else (float(c[value].min()), float(c[value].max()))
    for i, name in enumerate(names, start=1):
        g = c[c["instruction"] == name]
        settings = sorted(g["setting"].unique(), key=_setting_order)
        grid = g.pivot_table(index="setting", columns="layer", values=value).reindex(settings)
        bad = g.pivot_table(index="setting", columns="layer", values="degenerate").reindex(settings)
        x = [str(l) for l in grid.columns]
        fig.add_trace(go.Heatmap(z=grid.values, x=x, y=list(grid.index), colorscale=scale, zmin=zmin, zmax=zmax, text=np.round(grid.values, 2),
                                 texttemplate="%{text}", colorbar=dict(title=_value_title(value)), showscale=(i == 1),
                                 hovertemplate="layer %{x}<br>%{y}<br>%{z:.2f}<extra></extra>"), row=1, col=i)
        crossed = [(str(l), s) for s in bad.index for l in bad.columns if bad.loc[s, l] > MAX_DEGENERATE]
        if crossed:
            fig.add_trace(go.Scatter(x=[p[0] for p in crossed], y=[p[1] for p in crossed], mode="markers", marker=DEGENERATE_MARK,
                                     name=f"degenerate > {MAX_DEGENERATE:.0%}", legendgroup="degenerate", showlegend=not any(t.name and t.name.startswith("degenerate") for t in fig.data),
                                     hoverinfo="skip"), row=1, col=i)
        choice = (choices or {}).get((name, with_instruction))
        if choice is not None and choice.layer >= 0:
            label = setting_label(choice.mode, choice.coefficient)
            if label in list(grid.index) and str(choice.layer) in x:
                fig.add_trace(go.Scatter(x=[str(choice.layer)], y=[label], mode="markers", marker=dict(symbol="square-open", size=30, color="red", line=dict(width=3)),
                                         name="selected", legendgroup="selected", showlegend=not any(t.name == "selected" for t in fig.data), hoverinfo="skip"), row=1, col=i)
        fig.update_xaxes(title_text="layer", type="category", row=1, col=i)
    fig.update_yaxes(title_text="coefficient (× mean-difference norm)", type="category", row=1, col=1)
    cond = "with" if with_instruction else "without"
    n = int(c["n"].iloc[0]) if len(c) and "n" in c else None
    fig.update_layout(legend=dict(orientation="h", x=0, y=-0.25))
    return style(fig, f"{_value_title(value).capitalize()} by layer and coefficient",
                 caption(model, f"{n} validation prompts per cell" if n else None, f"{cond} the instruction in the prompt; red box = selected"),
                 width=max(620, 380 * len(names) + 160), height=520).update_layout(margin=dict(t=150))


def _value_title(value: str) -> str:
    return {"compliance": "compliance (loose)", "logprob": "mean log-prob (nats/token)", "degenerate": "degenerate share"}.get(value, value)


def _colors(names) -> dict:
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(sorted(names))}


def separability_curves(sep: pd.DataFrame, model: str = "", n: int | None = None) -> go.Figure:
    """Held-out AUROC and Cohen's d per layer, one line per instruction. AUROC saturates near 1 in
    most layers; Cohen's d keeps ranking them."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["AUROC (saturates at 1)", "Cohen's d (does not)"], horizontal_spacing=0.1)
    colors = _colors(sep["instruction"].unique())
    for name, g in sep.groupby("instruction"):
        for col, measure in ((1, "auroc"), (2, "cohens_d")):
            fig.add_trace(go.Scatter(x=g["layer"], y=g[measure], mode="lines+markers", name=short(name), legendgroup=name, showlegend=(col == 1),
                                     line_color=colors[name]), row=1, col=col)
    fig.update_xaxes(title_text="layer")
    fig.update_yaxes(title_text="AUROC (held-out)", range=[0.4, 1.02], row=1, col=1)
    fig.update_yaxes(title_text="Cohen's d (held-out)", row=1, col=2)
    fig.update_layout(legend=dict(orientation="h", x=0, y=-0.22))
    return style(fig, "Separability of with- vs without-instruction activations",
                 caption(model, f"{n} pairs per instruction" if n else None, "projections on u, 5-fold held-out"), width=1000, height=460)


def gain_vs_separability(joined: pd.DataFrame, measure: str = "cohens_d", model: str = "") -> go.Figure:
    """Steering gain against separability, one point per (instruction, swept layer), with Pearson r
    and n per instruction and over all points."""
    label = {"auroc": "AUROC", "cohens_d": "Cohen's d"}[measure]
    fig = go.Figure()
    colors = _colors(joined["instruction"].unique())
    for name, g in joined.groupby("instruction"):
        r = float(np.corrcoef(g[measure], g["gain"])[0, 1]) if len(g) > 2 and g[measure].std() > 0 and g["gain"].std() > 0 else float("nan")
        fig.add_trace(go.Scatter(x=g[measure], y=g["gain"], mode="markers+text", text=[str(l) for l in g["layer"]], textposition="top center",
                                 name=f"{short(name)} ({_r(r)}, n = {len(g)})", marker=dict(size=11, color=colors[name])))
    ok = joined[[measure, "gain"]].replace([np.inf, -np.inf], np.nan).dropna()
    r_all = float(np.corrcoef(ok[measure], ok["gain"])[0, 1]) if len(ok) > 2 and ok[measure].std() > 0 and ok["gain"].std() > 0 else float("nan")
    fig.add_hline(y=0, line=dict(color="#999", dash="dot"))
    fig.update_xaxes(title_text=f"{label} at the layer (held-out)")
    fig.update_yaxes(title_text="steering gain (best setting − no steering)")
    fig.update_layout(legend=dict(orientation="h", x=0, y=-0.22))
    return style(fig, f"Steering gain vs separability: {_r(r_all)} over n = {len(ok)} (instruction, layer) points",
                 caption(model, None, "validation compliance, without the instruction; labels are layers"), width=820, height=520)


def _r(r: float) -> str:
    return f"r = {r:.2f}" if np.isfinite(r) else "r undefined (constant)"


def projection_histograms(proj: pd.DataFrame, zbar: dict | None = None, model: str = "") -> go.Figure:
    """Held-out projections on each instruction's own direction: one row per instruction, one
    column per layer, shared bins within each facet, z̄ (mean with-instruction projection, training
    pairs) drawn where given, else the held-out mean."""
    layers = sorted(proj["layer"].unique())
    names = sorted(proj["instruction"].unique())
    fig = make_subplots(rows=len(names), cols=len(layers), subplot_titles=[f"{short(n)}, layer {l}" for n in names for l in layers],
                        vertical_spacing=min(0.12, 0.3 / len(names)))
    for r, name in enumerate(names, start=1):
        for c, layer in enumerate(layers, start=1):
            facet = proj[(proj["instruction"] == name) & (proj["layer"] == layer)]
            lo, hi = float(facet["projection"].min()), float(facet["projection"].max())
            bins = dict(start=lo, end=hi + 1e-9, size=max((hi - lo) / 20, 1e-9))
            for flag, color in ((False, "#9e9e9e"), (True, "#1f77b4")):
                v = facet[facet["with_instruction"] == flag]["projection"]
                fig.add_trace(go.Histogram(x=v, xbins=bins, name="with instruction" if flag else "without", marker_color=color, opacity=0.6,
                                           legendgroup=str(flag), showlegend=(r == 1 and c == 1)), row=r, col=c)
            z = (zbar or {}).get((name, int(layer)))
            z = float(facet[facet["with_instruction"]]["projection"].mean()) if z is None else z
            fig.add_vline(x=z, line=dict(color="#000", dash="dash", width=2), layer="above", row=r, col=c)
        fig.update_yaxes(title_text="prompts", row=r, col=1)
    for c in range(1, len(layers) + 1):
        fig.update_xaxes(title_text="projection on u", row=len(names), col=c)
    fig.update_layout(barmode="overlay", legend=dict(orientation="h", x=0, y=-0.12))
    n = int((proj["with_instruction"] & (proj["instruction"] == names[0]) & (proj["layer"] == layers[0])).sum()) if names else None
    return style(fig, "Projection on each instruction's direction, with vs without it",
                 caption(model, f"{n} held-out pairs per facet" if n else None, "dashed: z̄, the mean with-instruction projection"),
                 width=max(520, 320 * len(layers)), height=290 * len(names) + 160)


def four_condition_bars(summary: pd.DataFrame, model: str = "") -> go.Figure:
    """Compliance per instruction in the paper's four conditions, with 95% bootstrap intervals;
    values printed on the bars (a zero is a visible 0.00), and the steering bars of an instruction for
    which validation selected no steering hatched and labelled so."""
    fig = go.Figure()
    names = list(dict.fromkeys(summary["instruction"]))
    unsteered = set(summary[(summary["condition"] == "steer") & (summary["layer"] < 0)]["instruction"]) if "layer" in summary else set()
    for cond in [c for c in CONDITION_COLORS if c in set(summary["condition"])]:
        s = summary[summary["condition"] == cond].set_index("instruction").reindex(names)
        hatched = [cond in ("steer", "instruction_steer") and n in unsteered for n in names]
        fig.add_trace(go.Bar(x=[short(n) for n in names], y=s["compliance"].fillna(0).clip(lower=0.012), name=CONDITION_NAMES[cond], marker_color=CONDITION_COLORS[cond],
                             marker_pattern_shape=["/" if h else "" for h in hatched],
                             text=[("none selected" if h else "not run" if pd.isna(v) else f"{v:.2f}") for v, h in zip(s["compliance"], hatched)], textposition="outside",
                             textfont=dict(size=10), customdata=s["compliance"], hovertemplate="%{x}<br>%{customdata:.2f}<extra>" + CONDITION_NAMES[cond] + "</extra>",
                             error_y=dict(type="data", symmetric=False, array=s["ci_high"] - s["compliance"], arrayminus=s["compliance"] - s["ci_low"])))
    fig.update_layout(barmode="group", legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom"))
    fig.update_yaxes(title_text="compliance (loose, 95% CI)", range=[0, 1.15])
    fig.update_xaxes(title_text="instruction")
    n = int(summary["n"].max()) if "n" in summary and len(summary) else None
    title = "Held-out compliance in four conditions" + (" and with conditional steering" if "conditional" in set(summary["condition"]) else "")
    return style(fig, title,
                 caption(model, f"{n} test prompts per bar" if n else None, "hatched: validation selected no steering, so the bar repeats its unsteered twin"),
                 width=max(760, (200 + 60 * ("conditional" in set(summary["condition"]))) * len(names) + 200), height=560).update_layout(margin=dict(t=140))


def composition_grid(grid: pd.DataFrame, a: str, b: str, value: str = "both", layers: tuple[int, int] | None = None, n: int | None = None, model: str = "") -> go.Figure:
    """Coefficient of vector A × coefficient of vector B → share following both (or one); cells
    whose outputs are degenerate more than ``MAX_DEGENERATE`` of the time are crossed out and give
    their degenerate share."""
    pivot = grid.pivot_table(index="coef_b", columns="coef_a", values=value)
    deg = grid.pivot_table(index="coef_b", columns="coef_a", values="degenerate").reindex(index=pivot.index, columns=pivot.columns) if "degenerate" in grid else None
    x, y = [f"{c:g}" for c in pivot.columns], [f"{c:g}" for c in pivot.index]
    text = [[f"{v:.2f}" + (f"<br>deg. {d:.0%}" if deg is not None and d > MAX_DEGENERATE else "") for v, d in zip(row, drow)]
            for row, drow in zip(pivot.values, deg.values if deg is not None else np.zeros_like(pivot.values))]
    fig = go.Figure(go.Heatmap(z=pivot.values, x=x, y=y, colorscale=COMPLIANCE_SCALE, zmin=0, zmax=1, colorbar=dict(title="compliance"), text=text, texttemplate="%{text}"))
    if deg is not None:
        crossed = [(x[j], y[i]) for i in range(len(y)) for j in range(len(x)) if deg.values[i, j] > MAX_DEGENERATE]
        if crossed:
            fig.add_trace(go.Scatter(x=[p[0] for p in crossed], y=[p[1] for p in crossed], mode="markers", marker=dict(DEGENERATE_MARK, size=40),
                                     name=f"degenerate > {MAX_DEGENERATE:.0%}", hoverinfo="skip"))
    at = f", at layers {layers[0]} and {layers[1]}" if layers else ""
    fig.update_xaxes(title_text=f"{short(a)} coefficient (× norm)", type="category")
    fig.update_yaxes(title_text=f"{short(b)} coefficient (× norm)", type="category")
    fig.update_layout(legend=dict(orientation="h", x=0, y=-0.2))
    return style(fig, f"Composition: {short(a)} + {short(b)}", caption(model, f"{n} test prompts per cell" if n else None, f"share following {value}{at}"),
                 width=720, height=560)


def cosine_heatmap(matrix, labels, title: str, axis_title: str, subtitle: str = "") -> go.Figure:
    m = np.asarray(matrix)
    values = dict(text=np.round(m, 2), texttemplate="%{text}") if len(labels) <= 12 else {}
    fig = go.Figure(go.Heatmap(z=m, x=[str(l) for l in labels], y=[str(l) for l in labels], colorscale=DIVERGING, zmid=0, zmin=-1, zmax=1, colorbar=dict(title="cosine"), **values))
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
        fig.add_trace(go.Heatmap(z=logits.values, x=[f"#{r + 1}" for r in tokens.columns], y=rows, text=text, texttemplate="%{text}", textfont=dict(size=10),
                                 colorscale="Blues", showscale=(c == len(names)), colorbar=dict(title="logit"),
                                 hovertemplate="layer %{y}<br>%{x}: %{text}<br>logit %{z:.2f}<extra></extra>"), row=1, col=c)
        fig.update_xaxes(title_text="rank", row=1, col=c)
        fig.update_yaxes(type="category", autorange="reversed", row=1, col=c)
    fig.update_yaxes(title_text="layer (‖Δ‖ = the vector's norm)", row=1, col=1)
    n_layers = table["layer"].nunique()
    return style(fig, "What each vector promotes through the unembedding (logit lens)",
                 caption(model, None, "top five tokens of the unit direction per layer, after the final norm"),
                 width=max(700, 430 * len(names) + 120), height=22 * n_layers + 260)


def chromium_path() -> str | None:
    for name in (os.environ.get("BROWSER_PATH"), "chromium", "chromium-browser", "google-chrome"):
        if name and (path := shutil.which(name) or (name if Path(name).exists() else None)):
            return path
    return None


def notebook_renderer() -> str:
    """Show each figure as Plotly JSON (interactive in JupyterLab and VS Code) and a PNG beside it
    (what GitHub draws), so a stored notebook shows every figure; the mimetype alone without Chromium."""
    import plotly.io as pio

    browser = chromium_path()
    if browser is None:
        print("no Chromium found: figures are interactive only, without a static PNG (install Debian's chromium for one)")
        pio.renderers.default = "plotly_mimetype"
    else:
        os.environ.setdefault("BROWSER_PATH", browser)
        pio.renderers["png"].scale = 1
        pio.renderers.default = "plotly_mimetype+png"
    return pio.renderers.default


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
