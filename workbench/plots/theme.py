"""The figures' one style: fonts, colours, titles with what and on what, display names, and export
(interactive HTML with plotly.js once per folder, offline; static PNG and PDF where a Chromium is
available to kaleido)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from workbench.io import atomic_path
from workbench.operators import OPERATORS

FONT = dict(family="Helvetica, Arial, sans-serif", size=14, color="#222")
COMPLIANCE_SCALE = "Viridis"
DIVERGING = "RdBu"
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
CONDITION_COLORS = {
    "no_instruction": "#9e9e9e",
    "steer": "#1f77b4",
    "instruction": "#ff7f0e",
    "instruction_steer": "#2ca02c",
    "conditional": "#9467bd",
    "instruction_conditional": "#8c564b",
}
CONDITION_NAMES = {
    "no_instruction": "No instruction",
    "steer": "Steering only",
    "instruction": "Instruction only",
    "instruction_steer": "Instruction + steering",
    "conditional": "Conditional steering",
    "instruction_conditional": "Instruction + conditional",
}
DEGENERATE_MARK = dict(symbol="x-thin", size=18, color="#d62728", line=dict(width=3, color="#d62728"))


def style(fig: go.Figure, title: str, subtitle: str = "", width: int = 900, height: int = 500) -> go.Figure:
    """One style for every figure: the claim as title, what and on what (model, n) underneath."""
    text = title + (f"<br><sup>{subtitle}</sup>" if subtitle else "")
    fig.update_layout(
        template="simple_white",
        font=FONT,
        title=dict(text=text, x=0.01),
        width=width,
        height=height,
        margin=dict(l=70, r=30, t=90, b=70),
    )
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
    if mode == "add":
        return f"{coefficient:g}×"
    operator = OPERATORS.get(mode)
    if operator is None:
        return mode
    return operator.describe(None if coefficient is None or coefficient != coefficient else coefficient)


def setting_order(label: str) -> tuple:
    """Coefficients in order, then projection, then other operators by name."""
    try:
        return (0, float(label[:-1] if label.endswith("×") else label), "")
    except ValueError:
        return (1 if label.startswith("proj") else 2, 0.0, label)


def value_title(value: str) -> str:
    return {
        "compliance": "compliance (loose)",
        "logprob": "mean log-prob (nats/token)",
        "degenerate": "degenerate share",
    }.get(value, value)


def color_map(names) -> dict:
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(sorted(names))}


def r_text(r: float) -> str:
    return f"r = {r:.2f}" if np.isfinite(r) else "r undefined (constant)"


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
        print(
            "no Chromium found: figures are interactive only, without a static PNG (install Debian's chromium for one)"
        )
        pio.renderers.default = "plotly_mimetype"
    else:
        os.environ.setdefault("BROWSER_PATH", browser)
        pio.renderers["png"].scale = 1
        pio.renderers.default = "plotly_mimetype+png"
    return pio.renderers.default


def plotly_js(folder: Path) -> Path:
    """``plotly.min.js`` beside the HTML figures, written atomically; one that differs from plotly's own
    (cut short by a full disk, or another version's) is written again, never kept because it exists."""
    from plotly.offline import get_plotlyjs

    js, bundled = folder / "plotly.min.js", get_plotlyjs().encode("utf-8")
    if js.is_file() and js.stat().st_size == len(bundled) and js.read_bytes() == bundled:
        return js
    with atomic_path(js) as tmp, open(tmp, "wb") as f:
        f.write(bundled)
        f.flush()
        os.fsync(f.fileno())
    return js


def export(fig: go.Figure, folder: str | Path, name: str, static: bool = True) -> list[Path]:
    """Write ``name.html`` (plotly.js beside it, shared, offline) and PNG + PDF when possible."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plotly_js(folder)
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
