"""Figure functions on small results tables, static export, and a headless-Chromium render."""

import subprocess

import numpy as np
import pandas as pd
import pytest

from workbench import plots
from workbench.sweep import NO_STEERING, Choice


@pytest.fixture
def cells():
    rows = []
    for name in ("french", "one_sentence"):
        for cond in (False, True):
            rows.append(dict(instruction=name, with_instruction=cond, layer=NO_STEERING, mode="none", coefficient=0.0, compliance=0.1, logprob=-1.0, degenerate=0.0, n=4))
            for layer in (6, 9, 12):
                for mode, coef in (("add", 1.0), ("add", 2.0), ("project", 0.0)):
                    rows.append(dict(instruction=name, with_instruction=cond, layer=layer, mode=mode, coefficient=coef, compliance=layer / 12 * (coef or 1.5) / 2,
                                     logprob=-1 - coef, degenerate=0.0, n=4))
    return pd.DataFrame(rows)


def test_sweep_heatmap_facets_axes_and_marked_cell(cells):
    choice = Choice("french", False, 12, "add", 2.0, 1.0, 0.1, 0.0)
    fig = plots.sweep_heatmap(cells, "compliance", False, {("french", False): choice})
    heatmaps = [t for t in fig.data if t.type == "heatmap"]
    assert len(heatmaps) == 2 and np.asarray(heatmaps[0].z).shape == (3, 3)
    assert list(heatmaps[0].y) == ["1×", "2×", "proj. z̄"] and list(heatmaps[0].x) == ["6", "9", "12"]
    marks = [t for t in fig.data if t.type == "scatter"]
    assert len(marks) == 1 and marks[0].x == ("12",) and marks[0].y == ("2×",)
    assert fig.layout.xaxis.title.text == "layer" and "norm" in fig.layout.yaxis.title.text


def test_other_figures(cells):
    sep = pd.DataFrame({"instruction": ["french"] * 4, "layer": range(4), "auroc": [0.5, 0.8, 0.95, 0.9]})
    gain = pd.DataFrame({"instruction": ["french"] * 2, "layer": [1, 2], "gain": [0.1, 0.4]})
    fig = plots.separability_curves(sep, gain)
    assert len(fig.data) == 2 and fig.layout.yaxis.title.text.startswith("AUROC")
    summary = pd.DataFrame([dict(instruction="french", condition=c, compliance=0.5, ci_low=0.3, ci_high=0.7) for c in plots.CONDITION_COLORS])
    bars = plots.four_condition_bars(summary)
    assert [t.name for t in bars.data] == list(plots.CONDITION_NAMES.values())
    grid = pd.DataFrame([dict(coef_a=a, coef_b=b, both=a * b / 4) for a in (0, 1, 2) for b in (0, 1, 2)])
    comp = plots.composition_grid(grid, "french", "one_sentence")
    assert np.asarray(comp.data[0].z).shape == (3, 3)
    proj = pd.DataFrame([dict(layer=l, with_instruction=w, projection=float(i)) for l in (3, 9) for w in (True, False) for i in range(5)])
    assert len(plots.projection_histograms(proj).data) == 4
    cos = plots.cosine_heatmap(np.eye(3), ["a", "b", "c"], "t", "instruction")
    assert cos.data[0].zmin == -1 and cos.data[0].zmax == 1


needs_chromium = pytest.mark.skipif(plots.chromium_path() is None, reason="no Chromium on this machine (make setup installs it)")


@needs_chromium
def test_static_export_writes_png_and_pdf(cells, tmp_path):
    written = plots.export(plots.sweep_heatmap(cells), tmp_path, "heatmap")
    assert {p.suffix for p in written} == {".html", ".png", ".pdf"}
    assert all(p.stat().st_size > 1000 for p in written)
    assert (tmp_path / "heatmap.pdf").read_bytes().startswith(b"%PDF")


@needs_chromium
def test_html_heatmap_renders_in_headless_chromium(cells, tmp_path):
    from PIL import Image

    plots.export(plots.sweep_heatmap(cells), tmp_path, "heatmap", static=False)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [plots.chromium_path(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--window-size=1100,600", f"--screenshot={shot}", (tmp_path / "heatmap.html").as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
    # Viridis runs from dark purple to yellow: both ends must be painted, i.e. plotly.js drew the heatmap
    purple = ((pixels[:, 0] < 90) & (pixels[:, 1] < 40) & (pixels[:, 2] > 60)).sum()
    yellow = ((pixels[:, 0] > 200) & (pixels[:, 1] > 200) & (pixels[:, 2] < 80)).sum()
    assert purple > 500 and yellow > 500, (purple, yellow)
