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
            rows.append(
                dict(
                    instruction=name,
                    with_instruction=cond,
                    layer=NO_STEERING,
                    mode="none",
                    coefficient=0.0,
                    compliance=0.1,
                    logprob=-1.0,
                    degenerate=0.0,
                    n=4,
                )
            )
            for layer in (6, 9, 12):
                for mode, coef in (("add", 1.0), ("add", 2.0), ("project", 0.0)):
                    rows.append(
                        dict(
                            instruction=name,
                            with_instruction=cond,
                            layer=layer,
                            mode=mode,
                            coefficient=coef,
                            compliance=layer / 12 * (coef or 1.5) / 2,
                            logprob=-1 - coef,
                            degenerate=0.0,
                            n=4,
                        )
                    )
    return pd.DataFrame(rows)


def test_sweep_heatmap_facets_values_marks_and_caption(cells):
    cells.loc[
        (cells["instruction"] == "french")
        & (cells["layer"] == 12)
        & (cells["coefficient"] == 2.0)
        & ~cells["with_instruction"],
        "degenerate",
    ] = 0.5
    choice = Choice("french", False, 9, "add", 2.0, 1.0, 0.1, 0.0)
    fig = plots.sweep_heatmap(cells, "compliance", False, {("french", False): choice}, model="tiny (float32)")
    heatmaps = [t for t in fig.data if t.type == "heatmap"]
    assert len(heatmaps) == 2 and np.asarray(heatmaps[0].z).shape == (3, 3)
    assert list(heatmaps[0].y) == ["1×", "2×", "proj. z̄"] and list(heatmaps[0].x) == ["6", "9", "12"]
    assert heatmaps[0].texttemplate  # values printed in the cells
    selected = [t for t in fig.data if t.name == "selected"]
    assert len(selected) == 1 and selected[0].x == ("9",) and selected[0].y == ("2×",)
    crossed = [t for t in fig.data if t.name and t.name.startswith("degenerate")]
    assert len(crossed) == 1 and crossed[0].x == ("12",) and crossed[0].y == ("2×",)
    title = fig.layout.title.text
    assert "tiny (float32)" in title and "n = 4" in title
    assert "no steering: 0.10" in fig.layout.annotations[0].text  # the unsteered reference
    assert fig.layout.xaxis.title.text == "layer" and "norm" in fig.layout.yaxis.title.text


def test_four_condition_bars_show_zeros_n_and_no_steering_selected():
    rows = []
    for name, layer in (("french", 12), ("title", -1)):
        for c in plots.CONDITION_COLORS:
            rows.append(
                dict(
                    instruction=name,
                    condition=c,
                    compliance=0.0 if c == "no_instruction" else 0.5,
                    ci_low=0.0,
                    ci_high=0.7,
                    n=14,
                    layer=layer if c in ("steer", "instruction_steer") else -1,
                )
            )
    fig = plots.four_condition_bars(pd.DataFrame(rows), model="m")
    assert [t.name for t in fig.data] == list(plots.CONDITION_NAMES.values())
    none = fig.data[0]
    assert list(none.text) == ["0.00", "0.00"] and min(none.y) > 0  # a zero is a visible sliver with its value
    steer = fig.data[1]
    assert list(steer.marker.pattern.shape) == ["", "/"] and steer.text[1] == "none selected"
    assert "n = 14" in fig.layout.title.text and fig.layout.yaxis.title.text and fig.layout.xaxis.title.text


def test_separability_panels_and_gain_scatter():
    sep = pd.DataFrame(
        [
            dict(instruction=n, layer=l, auroc=min(1.0, 0.6 + 0.1 * l), cohens_d=1.0 + l * (2 if n == "a" else 1))
            for n in "ab"
            for l in range(5)
        ]
    )
    fig = plots.separability_curves(sep, "m", 64)
    assert (
        len(fig.data) == 4
        and fig.layout.yaxis.title.text.startswith("AUROC")
        and fig.layout.yaxis2.title.text.startswith("Cohen")
    )
    assert "n = 64" in fig.layout.title.text
    joined = sep.assign(gain=sep["cohens_d"] / 10)
    scatter = plots.gain_vs_separability(joined)
    assert len(scatter.data) == 2 and all(t.mode.startswith("markers") for t in scatter.data)
    assert "r = 1.00" in scatter.layout.title.text and "n = 10" in scatter.layout.title.text
    assert all("r = " in t.name and "n = 5" in t.name for t in scatter.data)
    assert scatter.layout.xaxis.title.text and scatter.layout.yaxis.title.text


def test_projection_facets_per_instruction_with_shared_bins_and_zbar():
    rows = [
        dict(
            instruction=n, layer=l, with_instruction=w, projection=float(i + (5 if w else 0) + (100 if n == "b" else 0))
        )
        for n in "ab"
        for l in (3, 9)
        for w in (True, False)
        for i in range(6)
    ]
    fig = plots.projection_histograms(pd.DataFrame(rows), {("a", 3): 7.5})
    hists = [t for t in fig.data if t.type == "histogram"]
    assert len(hists) == 8  # 2 instructions × 2 layers × 2 conditions: never pooled
    for k in range(0, 8, 2):  # with and without share one set of bins in each facet
        assert hists[k].xbins == hists[k + 1].xbins
    assert hists[0].xbins != hists[4].xbins  # facets have their own range
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert len(lines) == 4 and lines[0].x0 == 7.5
    assert [a.text for a in fig.layout.annotations][:4] == ["a, layer 3", "a, layer 9", "b, layer 3", "b, layer 9"]


def test_composition_marks_degenerate_cells_and_names_layers():
    grid = pd.DataFrame(
        [
            dict(coef_a=a, coef_b=b, both=a * b / 4, degenerate=0.9 if a + b == 4 else 0.0)
            for a in (0, 1, 2)
            for b in (0, 1, 2)
        ]
    )
    comp = plots.composition_grid(grid, "french", "one_sentence", layers=(13, 17), n=8, model="m")
    assert np.asarray(comp.data[0].z).shape == (3, 3)
    crossed = [t for t in comp.data if t.name and t.name.startswith("degenerate")]
    assert len(crossed) == 1 and crossed[0].x == ("2",) and crossed[0].y == ("2",)
    assert "deg. 90%" in comp.data[0].text[2][2]
    assert "layers 13 and 17" in comp.layout.title.text and "n = 8" in comp.layout.title.text


def test_cosine_and_logit_lens_figures():
    cos = plots.cosine_heatmap(np.eye(3), ["a", "b", "c"], "t", "instruction", "sub")
    assert cos.data[0].zmin == -1 and cos.data[0].zmax == 1 and cos.data[0].texttemplate  # values in the cells
    lens = pd.DataFrame(
        [
            dict(instruction=n, layer=l, norm=1.0 + l, rank=r, token=f"tok{r}", logit=5.0 - r)
            for n in "ab"
            for l in range(3)
            for r in range(5)
        ]
    )
    fig = plots.logit_lens(lens)
    assert len(fig.data) == 2 and list(fig.data[0].text[0]) == [
        f"tok{r}" for r in range(5)
    ]  # one facet each; tokens in rank order
    assert "‖Δ‖ 1" in fig.data[0].y[0] and fig.layout.xaxis.title.text == "rank"


needs_chromium = pytest.mark.skipif(
    plots.chromium_path() is None, reason="no Chromium on this machine (make setup installs it)"
)


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
        [
            plots.chromium_path(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
            "--window-size=1100,600",
            f"--screenshot={shot}",
            (tmp_path / "heatmap.html").as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
    # Viridis runs from dark purple to yellow: both ends must be painted, i.e. plotly.js drew the heatmap
    purple = ((pixels[:, 0] < 90) & (pixels[:, 1] < 40) & (pixels[:, 2] > 60)).sum()
    yellow = ((pixels[:, 0] > 200) & (pixels[:, 1] > 200) & (pixels[:, 2] < 80)).sum()
    assert purple > 500 and yellow > 500, (purple, yellow)


@needs_chromium
def test_notebook_renderer_puts_a_png_beside_the_plotly_json(cells, monkeypatch):
    import plotly.io as pio

    monkeypatch.setattr(pio.renderers, "default", pio.renderers.default)  # restored after the test
    assert plots.notebook_renderer() == "plotly_mimetype+png"
    bundle = pio.renderers._build_mime_bundle(plots.sweep_heatmap(cells).to_dict())
    assert set(bundle) == {"application/vnd.plotly.v1+json", "image/png"}
    assert len(bundle["image/png"]) > 1000


def test_notebook_renderer_without_chromium_keeps_the_json_only(monkeypatch, capsys):
    import plotly.io as pio

    monkeypatch.setattr(pio.renderers, "default", pio.renderers.default)
    monkeypatch.setattr(plots.theme, "chromium_path", lambda: None)  # where notebook_renderer looks it up
    assert plots.notebook_renderer() == "plotly_mimetype"
    assert "no Chromium" in capsys.readouterr().out


def test_selection_drift_draws_each_group_that_steers_and_counts_the_held_gains():
    drift = pd.DataFrame(
        [
            {"instruction": "a", "val_gain": 0.5, "test_gain": 0.25, "val_degenerate": 0.0, "test_degenerate": 0.1},
            {"instruction": "b", "val_gain": 0.4, "test_gain": -0.1, "val_degenerate": 0.1, "test_degenerate": 0.3},
            {
                "instruction": "c",
                "val_gain": float("nan"),
                "test_gain": 0.0,
                "val_degenerate": None,
                "test_degenerate": None,
            },  # selected no steering
        ]
    )
    fig = plots.selection_drift(drift, "m")
    (points,) = [t for t in fig.data if t.type == "scatter"]
    assert list(points.x) == [0.5, 0.4] and list(points.y) == [0.25, -0.1] and list(points.text) == ["a", "b"]
    assert (
        "1 of 2 test gains ≥ 0" in fig.layout.title.text and "2 of 3 groups selected steering" in fig.layout.title.text
    )


def test_selection_drift_shows_groups_that_selected_nothing_as_hollow_markers_never_empty_axes():
    """Nothing selected anywhere (SmolLM2's case): each group's best cell weighed is drawn, with its reason."""
    drift = pd.DataFrame(
        [
            {
                "instruction": name,
                "val_gain": float("nan"),
                "test_gain": 0.0,
                "val_degenerate": None,
                "test_degenerate": None,
                "best_gain": gain,
                "decided_by": why,
                "reason": f"{why}: because",
            }
            for name, gain, why in (("title", 0.9, "quality"), ("no_comma", 0.37, "significance"))
        ]
    )
    fig = plots.selection_drift(drift, "m")
    (hollow,) = [t for t in fig.data if t.type == "scatter" and t.name == "not selected (best cell weighed)"]
    assert list(hollow.x) == [0.9, 0.37] and list(hollow.y) == [0.0, 0.0]
    assert hollow.marker.color == "rgba(0,0,0,0)" and list(hollow.customdata[0]) == ["quality", "quality: because"]
    assert "0 of 2 groups selected steering" in fig.layout.title.text
    assert fig.layout.title.text.startswith("No group selected steering")
