"""``Evaluation``: what ``evaluate --data`` (``external.evaluate_file``) returns. The summary written to
``summary.json`` (readable by key, as before), IFEval's four accuracies per condition with 95 % CIs
(``scores``), every generation (``table``); the paper's table as a notebook card and a bar figure."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from workbench.file_report import drift_frame
from workbench.plots import CONDITION_NAMES, four_condition_bars, selection_drift


@dataclass(repr=False)
class Evaluation:
    """One evaluation's results; ``evaluation["groups"]`` etc. read the summary."""

    summary: dict
    scores: pd.DataFrame  # scope × condition × level × metric: accuracy, ci_low, ci_high, n
    table: pd.DataFrame  # one row per generation
    folder: Path | None = None

    def __getitem__(self, key: str):
        return self.summary[key]

    def overall(self, metric: str = "loose") -> pd.DataFrame:
        """Prompt- and instruction-level accuracy per condition over every record, with CIs."""
        s = self.scores[(self.scores["scope"] == "all") & (self.scores["metric"] == metric)]
        return s.pivot_table(index="condition", columns="level", values=["accuracy", "ci_low", "ci_high"], sort=False)

    def bars(self):
        """Instruction-level loose accuracy per id in each condition, with CIs (Plotly)."""
        s = self.scores[
            (self.scores["scope"] != "all")
            & (self.scores["level"] == "instruction")
            & (self.scores["metric"] == "loose")
        ]
        frame = s.rename(columns={"scope": "instruction", "accuracy": "compliance"})[
            ["instruction", "condition", "compliance", "ci_low", "ci_high", "n"]
        ]
        return four_condition_bars(frame, self.summary.get("model", ""))

    def drift(self) -> pd.DataFrame:
        """Per vector group: the chosen setting's validation gain beside its test gain, and both degenerate shares."""
        return drift_frame(self.summary, self.scores, self.table)

    def drift_figure(self):
        """``drift()`` as a figure: validation gain against test gain, one point per group that steers (Plotly)."""
        return selection_drift(self.drift(), self.summary.get("model", ""))

    def __repr__(self) -> str:
        s = self.summary
        return f"Evaluation({s['model']}: {s['n_evaluated']} of {s['n_examples']} records, {len(self.table)} generations, {len(s['groups'])} vector groups)"

    def _repr_html_(self) -> str:
        s = self.scores[(self.scores["scope"] == "all") & (self.scores["metric"] == "loose")]
        conds = list(dict.fromkeys(s["condition"]))
        cell = lambda c, level: next(
            (
                f"{r.accuracy:.2f} <small>[{r.ci_low:.2f}, {r.ci_high:.2f}]</small>"
                for r in s[(s["condition"] == c) & (s["level"] == level)].itertuples()
            ),
            "–",
        )
        head = "".join(f"<th>{html.escape(CONDITION_NAMES.get(c, c).lower())}</th>" for c in conds)
        body = "".join(
            f"<tr><th style='text-align:left'>{level} level</th>"
            + "".join(f"<td>{cell(c, level)}</td>" for c in conds)
            + "</tr>"
            for level in ("prompt", "instruction")
        )
        groups = "".join(
            f"<tr><td>{html.escape(str(name))}</td><td>{html.escape(str(g['without_instruction']))}</td></tr>"
            for name, g in self.summary["groups"].items()
        )
        return (
            f"<b>Evaluation</b> {html.escape(str(self.summary['model']))}: {html.escape(str(self.summary['n_evaluated']))} of "
            f"{html.escape(str(self.summary['n_examples']))} records "
            f"of <code>{html.escape(str(self.summary['data']))}</code>, loose accuracy with 95 % bootstrap CIs"
            f"<table><tr><th></th>{head}</tr>{body}</table><small>settings selected on validation prompts</small>"
            f"<table><tr><th>vector group</th><th>steering</th></tr>{groups}</table>"
        )
