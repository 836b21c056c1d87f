"""``Evaluation``: what ``evaluate --data`` (``run.evaluate_file``) returns. The summary written to
``summary.json`` (readable by key, as before), IFEval's four accuracies per condition with 95 %
Clopper-Pearson CIs (``scores``, from ``ifeval_scores``), McNemar's exact test of steering on the same
records (``paired``, from ``paired_tests``), every generation (``table``); the paper's table as a notebook
card and a bar figure. ``write_evaluation`` is the one place that names an evaluation folder's files;
``summary.json`` carries its format (``EVALUATION``) and the hash of the rows it was written with, and is
written last: a folder without it is incomplete. ``Evaluation.load`` reads a folder back, refusing an
incomplete or mixed one."""

from __future__ import annotations

import html
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from workbench.apps.file_evaluation.drift import drift_frame
from workbench.apps.file_evaluation.markdown import COMPARISONS, comparison_name, report_markdown
from workbench.errors import WorkbenchError
from workbench.file_formats import FileFormat
from workbench.io import file_hash, log, read_jsonl, write_atomic, write_jsonl
from workbench.plots import CONDITION_NAMES, export, four_condition_bars, selection_drift
from workbench.stats import clopper_pearson, mcnemar_exact
from workbench.sweep import CONDITIONS

ROWS, SCORES, SUMMARY, REPORT, DRIFT = "rows.jsonl", "scores.csv", "summary.json", "report.md", "drift"
PAIRED = "paired.csv"  # McNemar per scope; folders written before it have none
PAIRED_COLUMNS = ["scope", "level", "metric", "comparison", "wins", "losses", "n", "delta", "p_value"]
Keyed = list[tuple[tuple, tuple[bool, bool]]]  # ((record key,) or (record key, instruction index), (strict, loose))
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
    paired: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=PAIRED_COLUMNS))  # paired_tests

    def __getitem__(self, key: str):
        return self.summary[key]

    @classmethod
    def load(cls, folder: str | Path) -> Evaluation:
        """An evaluation folder's results, as ``write_evaluation`` wrote them; a folder a run left
        unfinished (no summary, written last) or mixed (rows the summary was not written with) is refused."""
        folder = Path(folder)
        summary = read_summary(folder)
        if summary is None or not (folder / SCORES).is_file() or not (folder / ROWS).is_file():
            raise WorkbenchError(
                f"the evaluation in {folder} is incomplete (a run stopped before it finished: {SUMMARY} is written "
                f"last): rerun `workbench evaluate --out {folder}`"
                if any((folder / name).is_file() for name in (SUMMARY, SCORES, ROWS))
                else f"no evaluation in {folder}: run `workbench evaluate --out {folder}` first"
            )
        recorded = summary.get("rows_sha256")  # none in a folder written before it was recorded
        if recorded is not None and recorded != file_hash(folder / ROWS):
            raise WorkbenchError(
                f"the evaluation in {folder} is incomplete or mixed: its {ROWS} is not the one its {SUMMARY} was "
                f"written with (a run stopped between files?): rerun `workbench evaluate --out {folder}`"
            )
        paired = pd.read_csv(folder / PAIRED) if (folder / PAIRED).is_file() else pd.DataFrame(columns=PAIRED_COLUMNS)
        return cls(summary, pd.read_csv(folder / SCORES), pd.DataFrame(read_jsonl(folder / ROWS)), folder, paired)

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
            f"of <code>{html.escape(str(self.summary['data']))}</code>, loose accuracy with 95 % Clopper-Pearson CIs"
            f"<table><tr><th></th>{head}</tr>{body}</table><small>settings selected on validation prompts</small>"
            f"<table><tr><th>vector group</th><th>steering</th></tr>{groups}</table>"
        )


def write_evaluation(folder: Path, summary: dict, rows: Sequence[Mapping]) -> Evaluation:
    """Score ``rows`` and write the folder: ``rows.jsonl``, ``scores.csv``, ``paired.csv``,
    ``report.md`` (``markdown``), ``drift.html`` and last ``summary.json`` (the summary with its scores,
    paired tests and ``rows.jsonl``'s hash), the completion marker: an earlier one is removed first, so a
    run stopped between files leaves a folder ``Evaluation.load`` calls incomplete, never a mixed one."""
    log(f"scoring {len(rows)} rows: IFEval's accuracies, strict and loose, with exact CIs and paired tests")
    scores, paired = ifeval_scores(rows), paired_tests(rows)
    (folder / SUMMARY).unlink(missing_ok=True)
    write_jsonl(folder / ROWS, list(rows))
    summary = EVALUATION.stamp(
        {
            **summary,
            "scores": scores.to_dict("records"),
            "paired_tests": paired.to_dict("records"),
            "rows_sha256": file_hash(folder / ROWS),
        }
    )
    write_atomic(folder / SCORES, scores.to_csv(index=False))
    write_atomic(folder / PAIRED, paired.to_csv(index=False))
    evaluation = Evaluation(summary, scores, pd.DataFrame(rows), folder, paired)
    write_atomic(folder / REPORT, report_markdown(summary, scores, evaluation.table))
    export(evaluation.drift_figure(), folder, DRIFT, static=False)
    write_atomic(folder / SUMMARY, json.dumps(summary, indent=2, default=float))
    log(f"report: {folder / REPORT} (validation against test: {folder / DRIFT}.html)")
    return evaluation


def ifeval_scores(rows: Sequence[Mapping]) -> pd.DataFrame:
    """IFEval's four accuracies per condition: prompt level over records, instruction level over
    (record, instruction); overall and per instruction id. Tidy: one row per value, with its 95 %
    Clopper-Pearson interval (exact: 12 of 12 is [0.74, 1], not the bootstrap's [1, 1])."""
    out = []
    for cond, series in _by_condition(rows).items():
        for (scope, level), keyed in series.items():
            for k, metric in enumerate(("strict", "loose")):
                mean, lo, hi = clopper_pearson(sum(bool(v[k]) for _, v in keyed), len(keyed))
                out.append(
                    {
                        "scope": scope,
                        "condition": cond,
                        "level": level,
                        "metric": metric,
                        "accuracy": mean,
                        "ci_low": lo,
                        "ci_high": hi,
                        "n": len(keyed),
                    }
                )
    return pd.DataFrame(out, columns=["scope", "condition", "level", "metric", "accuracy", "ci_low", "ci_high", "n"])


def paired_tests(rows: Sequence[Mapping]) -> pd.DataFrame:
    """McNemar's exact test per scope of ``ifeval_scores``: steering against no instruction, and
    instruction + steering against the instruction (``COMPARISONS``), on the same records (prompt level)
    or (record, instruction) (instruction level), paired by record key and instruction index. wins:
    passed steered only, losses: passed the reference only, delta = (wins − losses) / n, the paired
    change in accuracy. A record in one condition only, or a key seen twice, leaves the test NaN: a
    pairing is never guessed (by position)."""
    series = _by_condition(rows)
    out = []
    for steered, reference in COMPARISONS:
        if steered not in series or reference not in series:
            continue
        a, b = series[steered], series[reference]
        for scope, level in list(a) + [s for s in b if s not in a]:
            for k, metric in enumerate(("strict", "loose")):
                test = _mcnemar(a.get((scope, level), []), b.get((scope, level), []), k)
                out.append(
                    {
                        "scope": scope,
                        "level": level,
                        "metric": metric,
                        "comparison": comparison_name(steered, reference),
                        **test,
                    }
                )
    return pd.DataFrame(out, columns=PAIRED_COLUMNS)


def _mcnemar(steered: Keyed, reference: Keyed, k: int) -> dict:
    """wins, losses, n, delta and the exact p-value of verdict ``k`` (0 strict, 1 loose), pair by pair."""
    x, y = dict(steered), dict(reference)
    unique = len(x) == len(steered) and len(y) == len(reference) and all(key[0] is not None for key in x)
    if not unique or not x or x.keys() != y.keys():
        nan = float("nan")
        return {"wins": nan, "losses": nan, "n": 0, "delta": nan, "p_value": nan}
    wins = sum(bool(x[key][k]) and not y[key][k] for key in x)
    losses = sum(bool(y[key][k]) and not x[key][k] for key in x)
    return {
        "wins": wins,
        "losses": losses,
        "n": len(x),
        "delta": (wins - losses) / len(x),
        "p_value": mcnemar_exact(wins, losses),
    }


def _by_condition(rows: Sequence[Mapping]) -> dict[str, dict[tuple[str, str], Keyed]]:
    """Each condition's ``_series``, in the order of ``CONDITIONS``."""
    by_cond: dict[str, list[Mapping]] = defaultdict(list)
    for r in rows:
        by_cond[r["condition"]].append(r)
    return {c: _series(by_cond[c]) for c in CONDITIONS if c in by_cond}


def _series(group: list[Mapping]) -> dict[tuple[str, str], Keyed]:
    """(scope, level) -> keyed (strict, loose) verdicts of one condition's rows: every record (keyed by
    its ``prompt_id``), every instruction (by ``prompt_id`` and its index in the record), each id, and
    each vector group narrower than its id (one language, one keyword)."""
    each = [
        ((r.get("prompt_id"), j), iid, (s, l))
        for r in group
        for j, (iid, s, l) in enumerate(zip(r["instruction_ids"], r["strict_each"], r["loose_each"]))
    ]
    by_group = [
        ((r.get("prompt_id"), j), g, (s, l))
        for r in group
        for j, (gs, iid, s, l) in enumerate(
            zip(r.get("groups", ()), r["instruction_ids"], r["strict_each"], r["loose_each"])
        )
        for g in gs
        if g != iid
    ]
    series: dict[tuple[str, str], Keyed] = {
        ("all", "prompt"): [((r.get("prompt_id"),), (r["strict"], r["loose"])) for r in group],
        ("all", "instruction"): [(key, v) for key, _, v in each],
    }
    for iid in sorted({i for _, i, _ in each}):
        series[(iid, "instruction")] = [(key, v) for key, i, v in each if i == iid]
    for name in sorted({g for _, g, _ in by_group}):
        series[(name, "instruction")] = [(key, v) for key, g, v in by_group if g == name]
    return series
