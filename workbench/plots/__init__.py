"""Figures: each a function from results (tidy tables) to a Plotly ``go.Figure``, in one style.

``theme`` (the one style, display names, ``export``) < ``sweeps`` (heatmaps, the four
conditions, composition), ``geometry`` (separability, projections, cosines, logit lens) and
``selection`` (validation against test). A new figure is a function in the module of its subject.
"""

from workbench.plots.geometry import (
    cosine_heatmap,
    gain_vs_separability,
    logit_lens,
    projection_histograms,
    separability_curves,
)
from workbench.plots.selection import selection_drift
from workbench.plots.sweeps import composition_grid, four_condition_bars, sweep_heatmap
from workbench.plots.theme import (
    COMPLIANCE_SCALE,
    CONDITION_COLORS,
    CONDITION_NAMES,
    DIVERGING,
    FONT,
    PALETTE,
    caption,
    chromium_path,
    export,
    notebook_renderer,
    setting_label,
    short,
    style,
)

__all__ = [
    "COMPLIANCE_SCALE",
    "CONDITION_COLORS",
    "CONDITION_NAMES",
    "DIVERGING",
    "FONT",
    "PALETTE",
    "caption",
    "chromium_path",
    "composition_grid",
    "cosine_heatmap",
    "export",
    "four_condition_bars",
    "gain_vs_separability",
    "logit_lens",
    "notebook_renderer",
    "projection_histograms",
    "selection_drift",
    "separability_curves",
    "setting_label",
    "short",
    "style",
    "sweep_heatmap",
]
