"""How each instruction's layer and setting are chosen: the full grid, or successive halving.

Successive halving (``run_halving``) spends the validation prompts where they matter: every
(layer, setting) cell first sees a few prompts; only the best cells per instruction (and the
unsteered baseline) see the rest. Selection then reads the survivors on every prompt. Both rounds are ordinary
resumable sweeps in ``out/round1`` and ``out/round2`` sharing one vector cache in ``out/vectors``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from workbench.errors import WorkbenchError
from workbench.instructions import Pair, make_pairs
from workbench.io import log
from workbench.models import Model
from workbench.sweep.executors import Executor
from workbench.sweep.grid import NO_STEERING, SweepConfig
from workbench.sweep.result import SweepResult
from workbench.sweep.run import run_sweep
from workbench.sweep.selection import MAX_DEGENERATE, PROJECTION_SIZE, cell_summary

Cell = tuple[int, str, "float | None"]  # (layer, mode, coefficient)
REFINE = (0.5, 1.0, 1.5, 2.0)  # multiples the round-1 winner's layer also tries in round 2, with the projection


def best_cells(
    table: pd.DataFrame, keep: int, max_degenerate: float = MAX_DEGENERATE, beat_baseline: bool = False
) -> dict[str, list[Cell]]:
    """Per instruction, the ``keep`` steered cells that comply most; degenerate cells (more than
    ``max_degenerate`` of outputs) come last. Ties: fewer degenerate outputs, the projection before
    larger coefficients (as ``select`` breaks them), then the shallower layer. ``beat_baseline``: of
    those, only the cells that comply more than no steering; an instruction with none is left out
    (halving stops it early: its second round could select nothing)."""
    summary = cell_summary(table)
    baseline = summary[summary["layer"] == NO_STEERING].groupby("instruction")["compliance"].first()
    cells = summary[summary["layer"] != NO_STEERING]
    cells = cells.assign(
        score=cells["compliance"].where(cells["degenerate"] <= max_degenerate, -1.0),
        size=cells["coefficient"].abs().where(cells["mode"] == "add", PROJECTION_SIZE),
    )
    out = {}
    for name, g in cells.groupby("instruction"):
        ranked = g.sort_values(["score", "degenerate", "size", "layer"], ascending=[False, True, True, True]).head(keep)
        if beat_baseline:
            ranked = ranked[ranked["compliance"] > baseline.get(name, 0.0)]
        if len(ranked) or not beat_baseline:
            out[name] = [
                (int(r.layer), str(r.mode), None if r.mode == "project" else float(r.coefficient))
                for r in ranked.itertuples()
            ]
    return out


def refined(
    survivors: Mapping[str, Sequence[Cell]], refine: Sequence[float] = REFINE, project: bool = True
) -> dict[str, list[Cell]]:
    """Round 2's cells: the survivors (best first, as ``best_cells`` ranks them) and, at the winner's
    layer, a finer grid: ``refine`` multiples and (``project``) the projection (``refine=()``: none)."""
    out = {}
    for name, cells in survivors.items():
        layer = cells[0][0]
        finer = [(layer, "add", float(c)) for c in refine] + ([(layer, "project", None)] if project and refine else [])
        out[name] = list(dict.fromkeys([*cells, *finer]))
    return out


def run_halving(
    model: Model,
    config: SweepConfig,
    out: str | Path,
    first: int = 4,
    keep: int = 3,
    progress: bool = True,
    pairs: Mapping[str, Sequence[Pair]] | None = None,
    train_pairs: Mapping[str, Sequence[Pair]] | None = None,
    executor: Executor | None = None,
    stop_early: bool = True,
    refine: Sequence[float] = REFINE,
) -> SweepResult:
    """Two rounds: every cell on the first ``first`` validation prompts, then the ``keep`` best cells
    per instruction that beat no steering there (``best_cells(beat_baseline=True)``), a finer grid at
    the best one's layer (``refined``: ``refine`` multiples and the projection; ``()``: none) and the
    baseline on the other ``config.n_prompts - first``; an instruction with none stops after the first
    round (``stop_early=False``: the ``keep`` best go on regardless). Returns the rows selection should
    see (round-1 survivors and baseline, round 2's cells), with a ``round`` column; selection scores
    the finalists on round 2 only (``selection.evidence``)."""
    if not 0 < first < config.n_prompts:
        raise WorkbenchError(f"successive halving needs 0 < first ({first}) < n_prompts ({config.n_prompts})")
    out = Path(out)
    every = {
        g.name: list(
            (pairs or {}).get(g.name) or make_pairs(g, config.split, limit=config.n_prompts, seed=config.seed)
        )[: config.n_prompts]
        for g in config.groups
    }
    rest = tuple(g for g in config.groups if every[g.name][first:])  # a file may hold fewer validation prompts
    per_cell = len(config.conditions)  # the bar counts token budget (rows × max_new_tokens), as run_sweep's
    total = per_cell * (
        sum(first * (1 + len(config.layers) * len(config.settings())) * config.budget(g) for g in config.groups)
        + sum(
            len(every[g.name][first:]) * (1 + keep + (len(refine) + config.project if refine else 0)) * config.budget(g)
            for g in rest
        )
    )  # round 2 at most
    with tqdm(total=total, desc="sweep (halving)", unit="tok", unit_scale=True, disable=not progress) as bar:
        one = run_sweep(
            model,
            replace(config, n_prompts=first),
            out / "round1",
            progress,
            pairs={n: p[:first] for n, p in every.items()},
            train_pairs=train_pairs,
            vectors=out,
            bar=bar,
            executor=executor,
        ).table
        survivors = best_cells(one, keep, beat_baseline=stop_early)
        stopped = [g.name for g in config.groups if g.name not in survivors]
        if stopped:
            log(f"stopped early (no cell beat no steering on the first {first} prompts): {', '.join(stopped)}")
        rest = tuple(g for g in rest if g.name in survivors)
        finalists = refined(survivors, refine, config.project)
        two = pd.DataFrame()
        if rest:
            grid = tuple(sorted(set(config.coefficients) | set(refine)))
            two = run_sweep(
                model,
                replace(config, instructions=rest, n_prompts=config.n_prompts - first, coefficients=grid),
                out / "round2",
                progress,
                pairs={n: p[first:] for n, p in every.items()},
                train_pairs=train_pairs,
                cells_of=finalists,
                vectors=out,
                bar=bar,
                executor=executor,
            ).table
        bar.total = bar.n  # round 2 may run fewer cells than the bound
        bar.refresh()

    def survived(row) -> bool:
        coefficient = None if row["mode"] == "project" else float(row["coefficient"])
        return row["layer"] == NO_STEERING or (int(row["layer"]), row["mode"], coefficient) in survivors.get(
            row["instruction"], ()
        )

    kept = one.apply(survived, axis=1)
    return SweepResult(
        pd.concat([one[kept].assign(round=1), two.assign(round=2)], ignore_index=True), out, config.model
    )
