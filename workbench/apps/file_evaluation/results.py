"""``Evaluation``: what ``evaluate --data`` (``run.evaluate_file``) returns. The summary written to
``summary.json`` (readable by key, as before), IFEval's four accuracies per condition with 95 % CIs
(``scores``, from ``ifeval_scores``), every generation (``table``); the paper's table as a notebook card
and a bar figure. ``write_evaluation`` is the one place that names an evaluation folder's files;
``summary.json`` carries its format (``EVALUATION``), and ``Evaluation.load`` reads a folder back."""

from __future__ import annotations

import html
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from workbench.apps.file_evaluation.markdown import drift_frame, report_markdown
from workbench.errors import WorkbenchError
from workbench.file_formats import FileFormat
from workbench.io import log, read_jsonl, write_atomic, write_jsonl
from workbench.plots import CONDITION_NAMES, export, four_condition_bars, selection_drift
from workbench.stats import bootstrap_ci
from workbench.sweep import CONDITIONS

ROWS, SCORES, SUMMARY, REPORT, DRIFT = "rows.jsonl", "scores.csv", "summary.json", "report.md", "drift"
EVALUATION = FileFormat("an evaluation", 1)  # summary.json; summaries from before it was numbered are format 1


def read_summary(folder: str | Path) -> dict | None:
    """A folder's ``summary.json`` at this workbench's format (None: it has none); one of a newer
    format, or damaged, is refused in one line."""
    path = Path(folder) / SUMMARY
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
    except ValueError:
        raise WorkbenchError(f"{path} is damaged (not JSON): delete it or evaluate into a new folder") from None
    return EVALUATION.read(summary, path)


@dataclass(repr=False)
class Evaluation:
    """One evaluation's results; ``evaluation["groups"]`` etc. read the summary."""

    summary: dict
    scores: pd.DataFrame  # scope × condition × level × metric: accuracy, ci_low, ci_high, n
    table: pd.DataFrame  # one row per generation
    folder: Path | None = None

    def __getitem__(self, key: str):
        return self.summary[key]

    @classmethod
    def load(cls, folder: str | Path) -> Evaluation:
        """An evaluation folder's results, as ``write_evaluation`` wrote them."""
        folder = Path(folder)
        summary = read_summary(folder)
        if summary is None or not (folder / SCORES).is_file() or not (folder / ROWS).is_file():
            raise WorkbenchError(f"no evaluation in {folder}: run `workbench evaluate --out {folder}` first")
        return cls(summary, pd.read_csv(folder / SCORES), pd.DataFrame(read_jsonl(folder / ROWS)), folder)

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
        return (
            f"Evaluation({s['model']}: {s['n_evaluated']} of {s['n_examples']} records, "
            f"{len(self.table)} generations, {len(s['groups'])} vector groups)"
        )

    def _repr_html_(self) -> str:
        s = self.scores[(self.scores["scope"] == "all") & (self.scores["metric"] == "loose")]
        conds = list(dict.fromkeys(s["condition"]))

        def cell(c: str, level: str) -> str:
            picked = s[(s["condition"] == c) & (s["level"] == level)].itertuples()
            return next((f"{r.accuracy:.2f} <small>[{r.ci_low:.2f}, {r.ci_high:.2f}]</small>" for r in picked), "–")

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
            f"<b>Evaluation</b> {html.escape(str(self.summary['model']))}: "
            f"{html.escape(str(self.summary['n_evaluated']))} of "
            f"{html.escape(str(self.summary['n_examples']))} records "
            f"of <code>{html.escape(str(self.summary['data']))}</code>, loose accuracy with 95 % bootstrap CIs"
            f"<table><tr><th></th>{head}</tr>{body}</table><small>settings selected on validation prompts</small>"
            f"<table><tr><th>vector group</th><th>steering</th></tr>{groups}</table>"
        )


def write_evaluation(folder: Path, summary: dict, rows: Sequence[Mapping]) -> Evaluation:
    """Score ``rows`` and write the folder: ``rows.jsonl``, ``scores.csv``, ``summary.json`` (the
    summary with its scores), ``report.md`` (``markdown``) and ``drift.html``."""
    log(f"scoring {len(rows)} rows: IFEval's accuracies, strict and loose, with bootstrap CIs")
    scores = ifeval_scores(rows)
    summary = EVALUATION.stamp({**summary, "scores": scores.to_dict("records")})
    write_jsonl(folder / ROWS, list(rows))
    write_atomic(folder / SCORES, scores.to_csv(index=False))
    write_atomic(folder / SUMMARY, json.dumps(summary, indent=2, default=float))
    evaluation = Evaluation(summary, scores, pd.DataFrame(rows), folder)
    write_atomic(folder / REPORT, report_markdown(summary, scores, evaluation.table))
    export(evaluation.drift_figure(), folder, DRIFT, static=False)
    log(f"report: {folder / REPORT} (validation against test: {folder / DRIFT}.html)")
    return evaluation


def ifeval_scores(rows: Sequence[Mapping]) -> pd.DataFrame:
    """IFEval's four accuracies per condition: prompt level over records, instruction level over
    (record, instruction); overall and per instruction id. Tidy: one row per value, with 95 % CI."""
    out = []
    by_cond: dict[str, list[Mapping]] = defaultdict(list)
    for r in rows:
        by_cond[r["condition"]].append(r)
    for cond in [c for c in CONDITIONS if c in by_cond]:
        for (scope, level), values in _series(by_cond[cond]).items():
            for k, metric in enumerate(("strict", "loose")):
                mean, lo, hi = bootstrap_ci([float(v[k]) for v in values])
                out.append(
                    {
                        "scope": scope,
                        "condition": cond,
                        "level": level,
                        "metric": metric,
                        "accuracy": mean,
                        "ci_low": lo,
                        "ci_high": hi,
                        "n": len(values),
                    }
                )
    return pd.DataFrame(out, columns=["scope", "condition", "level", "metric", "accuracy", "ci_low", "ci_high", "n"])


def _series(group: list[Mapping]) -> dict[tuple[str, str], list[tuple[bool, bool]]]:
    """(scope, level) -> (strict, loose) verdicts of one condition's rows: every record, every
    instruction, each id, and each vector group narrower than its id (one language, one keyword)."""
    each = [(iid, s, l) for r in group for iid, s, l in zip(r["instruction_ids"], r["strict_each"], r["loose_each"])]
    by_group = [
        (g, s, l)
        for r in group
        for gs, iid, s, l in zip(r.get("groups", ()), r["instruction_ids"], r["strict_each"], r["loose_each"])
        for g in gs
        if g != iid
    ]
    series = {
        ("all", "prompt"): [(r["strict"], r["loose"]) for r in group],
        ("all", "instruction"): [(s, l) for _, s, l in each],
    }
    for iid in sorted({i for i, _, _ in each}):
        series[(iid, "instruction")] = [(s, l) for i, s, l in each if i == iid]
    for name in sorted({g for g, _, _ in by_group}):
        series[(name, "instruction")] = [(s, l) for g, s, l in by_group if g == name]
    return series
