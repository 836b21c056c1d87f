"""``SweepResult``: what a sweep returns. The tidy table (one row per generation) with the views a
researcher asks of it: per-cell means, the selected settings, a heatmap, a Parquet copy; one line as
text, a card with the grid and the best settings in a notebook."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from workbench.io import atomic_path
from workbench.plots import setting_label, sweep_heatmap
from workbench.stats import ALPHA
from workbench.sweep.grid import NO_STEERING
from workbench.sweep.selection import MAX_DEGENERATE, RULE, Choice, cell_summary, select


@dataclass(repr=False)
class SweepResult:
    """A sweep's rows and where they live."""

    table: pd.DataFrame
    folder: Path | None = None
    model: str = ""

    def cells(self, metric: str = "loose") -> pd.DataFrame:
        """Mean compliance, quality and degeneracy per (instruction, condition, layer, setting)."""
        return cell_summary(self.table, metric)

    def best(
        self,
        metric: str = "loose",
        max_degenerate: float = MAX_DEGENERATE,
        alpha: float | None = ALPHA,
        rule: str = RULE,
    ) -> dict[tuple[str, bool], Choice]:
        """The selected setting per (instruction, with instruction?), each with the decision behind it:
        ``selection.select``."""
        return select(self.table, metric, max_degenerate, alpha, rule)

    def heatmap(self, value: str = "compliance", with_instruction: bool = False):
        """Layer × setting per instruction (Plotly), the selected cell boxed."""
        return sweep_heatmap(self.cells(), value, with_instruction, self.best(), self.model)

    def to_parquet(self, path: str | Path) -> Path:
        """The table as Parquet (atomically): list columns kept, types kept, except that a column
        holding an empty dict (``kwargs`` of an instruction without any) is JSON text: Parquet has no
        struct without fields."""
        path = Path(path)
        empty = [c for c in self.table.columns if self.table[c].map(_holds_empty_dict).any()]
        table = self.table.assign(**{c: self.table[c].map(json.dumps) for c in empty})
        with atomic_path(path) as tmp:
            table.to_parquet(tmp, index=False)
        return path

    def _grid(self) -> tuple[int, int, int, int]:
        steered = self.table[self.table["layer"] != NO_STEERING]
        settings = steered[["mode", "coefficient"]].drop_duplicates().shape[0]
        return (
            self.table["instruction"].nunique(),
            steered["layer"].nunique(),
            settings,
            self.table["prompt_id"].nunique(),
        )

    def __repr__(self) -> str:
        n_inst, n_layers, n_settings, n_prompts = self._grid()
        where = f" in {self.folder}" if self.folder else ""
        return (
            f"SweepResult({n_inst} instructions × {n_layers} layers × {n_settings} settings × {n_prompts} prompts: "
            f"{len(self.table)} rows{where})"
        )

    def _repr_html_(self) -> str:
        """The grid, the selected setting per instruction and condition, and a coloured layer × setting
        table of compliance without the instruction."""
        n_inst, n_layers, n_settings, n_prompts = self._grid()
        rows = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{'with' if cond else 'without'}</td>"
            f"<td>{html.escape(_setting(c))}</td><td>{c.score:.2f}</td><td>{c.baseline:.2f}</td>"
            f"<td><small>{html.escape(c.decided_by)}: {html.escape(c.reason)}</small></td></tr>"
            for (name, cond), c in sorted(self.best().items())
        )
        best = (
            "<table><tr><th>instruction</th><th>instruction in prompt</th><th>selected</th><th>score</th>"
            f"<th>unsteered</th><th>why</th></tr>{rows}</table>"
        )
        where = f" in <code>{html.escape(str(self.folder))}</code>" if self.folder else ""
        return (
            f"<b>SweepResult</b> {html.escape(self.model)}: {n_inst} instructions × {n_layers} layers × "
            f"{n_settings} settings × {n_prompts} prompts = {len(self.table)} generations{where}"
            f"{best}{self._mini_heatmaps()}"
        )

    def _mini_heatmaps(self) -> str:
        cells = self.cells()
        cells = cells[(~cells["with_instruction"]) & (cells["layer"] != NO_STEERING)]
        out = []
        for name, c in cells.groupby("instruction"):
            c = c.assign(setting=[setting_label(m, k) for m, k in zip(c["mode"], c["coefficient"])])
            grid = c.pivot_table(index="setting", columns="layer", values="compliance")
            head = "".join(f"<th>{int(l)}</th>" for l in grid.columns)
            body = "".join(
                f"<tr><th style='text-align:right'>{html.escape(s)}</th>"
                + "".join(
                    f"<td style='background:rgba(68,1,84,{v:.2f});color:{'#fff' if v > 0.5 else '#222'}'>{v:.2f}</td>"
                    for v in grid.loc[s]
                )
                + "</tr>"
                for s in grid.index
            )
            out.append(
                "<div style='display:inline-block;margin:4px 12px'>"
                f"<small>{html.escape(name)}: compliance without the instruction</small>"
                f"<table><tr><th>layer</th>{head}</tr>{body}</table></div>"
            )
        return "".join(out)


def _holds_empty_dict(value) -> bool:
    return (
        value == {}
        if isinstance(value, dict)
        else isinstance(value, (list, tuple)) and any(_holds_empty_dict(v) for v in value)
    )


def _setting(c: Choice) -> str:
    return "no steering" if not c.steers else f"layer {c.layer}, {setting_label(c.mode, c.coefficient)}"
