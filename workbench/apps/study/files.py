"""A study folder: the one place that knows its files' names (``StudyFiles``) and the typed results
``run_study`` writes and returns and the report and figures read back (``StudyResults``).

Format 2 records ``format`` and the word exclusion's setting (``exclusion``) in ``result.json``. A
format-1 folder (written before the format was recorded) has the same files and reads the same,
without the exclusion's setting: ``STUDY`` (a ``file_formats.FileFormat``) brings its ``result.json`` up, one
migration per version.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch

from workbench.errors import WorkbenchError
from workbench.file_formats import FileFormat
from workbench.instructions import slug
from workbench.io import atomic_path, write_atomic
from workbench.sweep import Choice


@dataclass(frozen=True)
class StudyFiles:
    """Where a study folder keeps each result."""

    folder: Path
    result: Path  # the run: model, precision, rules, followed instructions, time, format, exclusion
    follow: Path  # the screen: who follows each instruction when told and untold
    summary: Path  # held-out test prompts, every condition, with CIs
    cells: Path  # the sweep's cells
    choices: Path  # the selected setting per instruction and prompt condition
    composition: Path  # two vectors at once (absent when fewer than two instructions were followed)
    separability: Path
    gain_vs_separability: Path
    projections: Path
    mean_diffs: Path  # tensors only, loaded with weights_only=True
    proj_with: Path
    logit_lens: Path
    report_md: Path
    report_html: Path
    figures: Path
    screen: Path  # the screen's sweep folder
    sweep: Path  # the sweep's folder (its vectors too)

    @classmethod
    def at(cls, folder: str | Path) -> StudyFiles:
        f = Path(folder)
        return cls(
            folder=f,
            result=f / "result.json",
            follow=f / "follow.csv",
            summary=f / "summary.csv",
            cells=f / "cells.csv",
            choices=f / "choices.json",
            composition=f / "composition.csv",
            separability=f / "separability.csv",
            gain_vs_separability=f / "gain_vs_separability.csv",
            projections=f / "projections.csv",
            mean_diffs=f / "mean_diffs.pt",
            proj_with=f / "proj_with.pt",
            logit_lens=f / "logit_lens.csv",
            report_md=f / "report.md",
            report_html=f / "report.html",
            figures=f / "figures",
            screen=f / "screen",
            sweep=f / "sweep",
        )

    def unit(self, label: str) -> Path:
        """The held-out rows of one report unit (an instruction, exclusion, composition)."""
        return self.folder / "report" / "units" / f"{slug(label)}.jsonl"


def _from_v1(run: dict) -> dict:
    return {**run, "exclusion": run.get("exclusion")}


STUDY = FileFormat("a study", 2, {1: _from_v1})  # result.json; format 1 was not numbered
STUDY_FOLDER = FileFormat("a study folder", 1)  # its config.json (what it was run with); older ones unnumbered


Choices = dict[tuple[str, bool], Choice]


def _read_csv(path: Path, **options) -> pd.DataFrame | None:
    return pd.read_csv(path, **options) if path.exists() else None


@dataclass
class StudyResults:
    """Everything a study found. ``run`` is ``result.json`` (readable by key: ``results["followed"]``)."""

    files: StudyFiles
    run: dict
    summary: pd.DataFrame
    cells: pd.DataFrame
    choices: Choices
    separability: pd.DataFrame
    gain_vs_separability: pd.DataFrame
    projections: pd.DataFrame
    mean_diffs: dict[str, torch.Tensor]
    proj_with: dict[str, torch.Tensor]
    follow: pd.DataFrame | None = None
    composition: pd.DataFrame | None = None
    logit_lens: pd.DataFrame | None = None

    def __getitem__(self, key: str):
        return self.run[key]

    @property
    def exclusion(self) -> Choice | None:
        """The word exclusion's setting (None in a format-1 folder)."""
        return Choice.from_json(self.run["exclusion"]) if self.run.get("exclusion") else None

    @property
    def caption(self) -> str:
        """``model (precision)`` for figure captions; empty when the run is not recorded."""
        return f"{self.run['model']} ({self.run.get('dtype', 'float32')})" if "model" in self.run else ""

    def save(self) -> None:
        """Write every table (the formats ``load`` and earlier versions read)."""
        f = self.files
        frames = [
            (f.follow, self.follow),
            (f.summary, self.summary),
            (f.composition, self.composition),
            (f.separability, self.separability),
            (f.gain_vs_separability, self.gain_vs_separability),
            (f.cells, self.cells),
            (f.projections, self.projections),
            (f.logit_lens, self.logit_lens),
        ]
        for path, frame in frames:
            if frame is not None:
                write_atomic(path, frame.to_csv(index=False))
        choices = {f"{k[0]}|{'with' if k[1] else 'without'}": asdict(v) for k, v in self.choices.items()}
        write_atomic(f.choices, json.dumps(choices, indent=2))
        for path, tensors in ((f.mean_diffs, self.mean_diffs), (f.proj_with, self.proj_with)):
            with atomic_path(path) as tmp:
                torch.save(tensors, tmp)
        write_atomic(f.result, json.dumps(STUDY.stamp(self.run), indent=2))

    @classmethod
    def load(cls, folder: str | Path) -> StudyResults:
        """A study folder's results, of this format or an earlier one; a one-line error when it has none."""
        f = StudyFiles.at(folder)
        if not f.cells.exists():
            raise WorkbenchError(f"no study results in {folder}: run `workbench demo --out {folder}` first")
        needed = (f.summary, f.separability, f.gain_vs_separability, f.projections, f.mean_diffs)
        lacking = [p.name for p in needed if not p.exists()]
        if lacking:
            raise WorkbenchError(
                f"{folder} lacks {', '.join(lacking)}: its study did not finish; rerun `workbench demo --out {folder}`"
            )
        run = STUDY.read(json.loads(f.result.read_text()) if f.result.exists() else {}, folder)
        raw = json.loads(f.choices.read_text()) if f.choices.exists() else {}
        return cls(
            files=f,
            run=run,
            summary=pd.read_csv(f.summary),
            cells=pd.read_csv(f.cells),
            choices={(c["instruction"], c["with_instruction"]): Choice.from_json(c) for c in raw.values()},
            separability=pd.read_csv(f.separability),
            gain_vs_separability=pd.read_csv(f.gain_vs_separability),
            projections=pd.read_csv(f.projections),
            mean_diffs=torch.load(f.mean_diffs, weights_only=True),
            proj_with=torch.load(f.proj_with, weights_only=True) if f.proj_with.exists() else {},
            follow=_read_csv(f.follow),
            composition=_read_csv(f.composition),
            logit_lens=_read_csv(f.logit_lens, keep_default_na=False),
        )

    def drift(self) -> pd.DataFrame:
        """One row per instruction: the chosen setting's validation gain and degenerate share beside the
        test's (no setting chosen: no validation gain)."""
        test = self.summary.set_index(["instruction", "condition"])
        rows = []
        for (name, cond), c in sorted(self.choices.items()):
            if cond or (name, "steer") not in test.index:
                continue
            steer, none = test.loc[(name, "steer")], test.loc[(name, "no_instruction")]
            rows.append(
                {
                    "instruction": name,
                    "layer": c.layer,
                    "mode": c.mode,
                    "validation": c.score,
                    "val_baseline": c.baseline,
                    "p": "–" if c.p_value is None else f"{c.p_value:.3g}",
                    "n_val": c.n_tested,
                    "val_gain": c.score - c.baseline if c.steers else float("nan"),
                    "test_gain": float(steer["compliance"] - none["compliance"]),
                    "val_degenerate": c.degenerate,
                    "test_degenerate": float(steer["degenerate"]),
                    "decided_by": c.decided_by,
                    "reason": c.reason,
                    "best_gain": c.candidate.score - c.candidate.baseline if c.candidate else float("nan"),
                }
            )
        columns = ["instruction", "layer", "mode", "validation", "val_baseline", "p", "n_val", "val_gain"]
        decision = ["decided_by", "reason", "best_gain"]
        return pd.DataFrame(rows, columns=columns + ["test_gain", "val_degenerate", "test_degenerate", *decision])
