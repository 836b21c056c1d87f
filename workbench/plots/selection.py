"""The figure of selection's drift: each chosen setting's gain on the validation prompts that chose
it against its gain on held-out test prompts. Points below the diagonal lost gain from validation to
test (the winner's curse); below zero, steering hurt on test."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from workbench.plots.theme import caption, short, style


def selection_drift(drift: pd.DataFrame, model: str = "") -> go.Figure:
    """One point per group that selected steering: validation gain (x) against test gain (y), both
    steered − unsteered compliance without the instruction; marker size grows with the test's
    degenerate share, and the hover gives both degenerate shares. ``drift``: columns instruction,
    val_gain, test_gain, val_degenerate, test_degenerate (``file_evaluation.drift.drift_frame``-like). A
    group that selected nothing is a hollow marker at its best cell's validation gain (``best_gain``,
    with ``decided_by`` and ``reason`` in the hover) on the zero line: it was not applied on test."""
    chosen = drift.dropna(subset=["val_gain", "test_gain"])
    weighed = drift[drift["val_gain"].isna()].dropna(subset=["best_gain"]) if "best_gain" in drift else drift[:0]
    fig = go.Figure()
    fig.add_shape(type="line", x0=-1, y0=-1, x1=1, y1=1, line=dict(color="#999", dash="dash"))  # holds exactly
    fig.add_hline(y=0, line=dict(color="#999", dash="dot"))
    fig.add_trace(
        go.Scatter(
            x=chosen["val_gain"],
            y=chosen["test_gain"],
            mode="markers+text",
            text=[short(n) for n in chosen["instruction"]],
            textposition="top center",
            marker=dict(
                size=10 + 30 * chosen["test_degenerate"].astype(float).fillna(0),
                color="#1f77b4",
                opacity=0.8,
                line=dict(width=1, color="#fff"),
            ),
            customdata=chosen[["val_degenerate", "test_degenerate"]].to_numpy(),
            showlegend=False,
            hovertemplate="%{text}<br>validation gain %{x:+.2f}, test gain %{y:+.2f}<br>"
            "degenerate: validation %{customdata[0]:.2f}, test %{customdata[1]:.2f}<extra></extra>",
        )
    )
    if len(weighed):
        fig.add_trace(_not_selected(weighed))
    weighed_gains = weighed["best_gain"].abs().tolist() if len(weighed) else []
    span = max([0.25, *chosen["val_gain"].abs(), *chosen["test_gain"].abs(), *weighed_gains]) + 0.1
    fig.update_xaxes(title_text="validation gain (chosen setting − no steering)", range=[-span, span], zeroline=False)
    fig.update_yaxes(
        title_text="test gain (steering only − no instruction)", range=[-span, span], zeroline=False, scaleanchor="x"
    )
    held = int((chosen["test_gain"] >= 0).sum())
    return style(
        fig,
        f"Does the chosen setting hold on test? {held} of {len(chosen)} test gains ≥ 0"
        if len(chosen)
        else "No group selected steering: the best cell each weighed (hollow), at its validation gain",
        caption(
            model,
            f"{len(chosen)} of {len(drift)} groups selected steering",
            "dashed: test = validation; size: test degenerate share; hollow: not selected, at its best cell's "
            "validation gain (not applied on test)",
        ),
        width=640,
        height=620,
    )


def _not_selected(weighed: pd.DataFrame) -> go.Scatter:
    """Hollow markers on the zero line: each group that selected nothing, at its best cell's validation
    gain, the decision and its reason in the hover."""
    return go.Scatter(
        x=weighed["best_gain"],
        y=[0.0] * len(weighed),
        mode="markers",
        text=[short(n) for n in weighed["instruction"]],
        marker=dict(size=10, color="rgba(0,0,0,0)", line=dict(width=1.5, color="#d62728")),
        customdata=weighed[["decided_by", "reason"]].to_numpy(),
        name="not selected (best cell weighed)",
        hovertemplate="%{text}: not selected (%{customdata[0]})<br>%{customdata[1]}<extra></extra>",
    )
