"""How each instruction's layer and setting are chosen: the full grid, or successive halving.

Successive halving (``run_halving``) spends the validation prompts where they matter: a screen first
tries every layer at 1× on ``SCREEN_PROMPTS`` prompts; only the best cells per instruction (and the
unsteered baseline) go on, with a finer grid (multiples and the projection) at the best one's layer,
to fresh prompts, on which alone selection tests them. Both rounds are ordinary resumable sweeps in
``out/round1`` and ``out/round2`` sharing one vector cache in ``out/vectors``.

The screen cannot miss a strong effect: a cell that flips half the prompts the model fails unsteered
beats no steering on at least one of 5 such prompts with probability 1 − 0.5^5 = 0.97
(``stats.screen_power``), where 2 prompts (the screen before 0.2) gave 0.75.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from workbench.errors import WorkbenchError
from workbench.instructions import Pair, make_pairs
from workbench.io import log
from workbench.models import Model
from workbench.sweep.grid import NO_STEERING, SweepConfig
from workbench.sweep.result import SweepResult
from workbench.sweep.run import SweepOptions, load_table, run_sweep
from workbench.sweep.selection import cell_summary, scaled, setting_size

Cell = tuple[int, str, "float | None"]  # (layer, mode, coefficient)
SCREEN_PROMPTS = 5  # the screen's prompts: a cell flipping half the failing prompts survives it with p = 0.97
REFINE = (0.5, 1.0, 1.5, 2.0)  # multiples the round-1 winner's layer also tries in round 2, with the projection


def best_cells(
    table: pd.DataFrame, keep: int, max_degenerate: float | None = None, beat_baseline: bool = False
) -> dict[str, list[Cell]]:
    """Per instruction, the ``keep`` steered cells that comply most. Ties: fewer degenerate outputs,
    the projection before larger coefficients (as ``select`` breaks them), then the shallower layer.
    ``max_degenerate``: cells degenerate more often than this come last (before 0.2 the screen did so
    at 0.2, and stopped Qwen's German vector, 5 of 5 in German at 1× with 2 of 5 looping, whose milder
    settings at that layer are what round 2 tries; quality is judged there, on fresh prompts).
    ``beat_baseline``: of those, only the cells that comply more than no steering; an instruction
    with none is left out (halving stops it early: its second round could select nothing)."""
    summary = cell_summary(table)
    baseline = summary[summary["layer"] == NO_STEERING].groupby("instruction")["compliance"].first()
    cells = summary[summary["layer"] != NO_STEERING]
    looping = cells["degenerate"] > (max_degenerate if max_degenerate is not None else 1.0)
    cells = cells.assign(score=cells["compliance"].where(~looping, -1.0), size=setting_size(cells))
    out = {}
    for name, g in cells.groupby("instruction"):
        ranked = g.sort_values(["score", "degenerate", "size", "layer"], ascending=[False, True, True, True]).head(keep)
        if beat_baseline:
            ranked = ranked[ranked["compliance"] > baseline.get(name, 0.0)]
        if len(ranked) or not beat_baseline:
            out[name] = [
                (int(r.layer), str(r.mode), float(r.coefficient) if scaled(r.mode) else None)
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


@dataclass(frozen=True)
class HalvingOptions(SweepOptions):
    """How successive halving runs: ``SweepOptions`` (passed to both rounds; ``vectors`` defaults to
    ``out``, shared by the rounds) and its own. Every cell sees the first ``first`` validation
    prompts; the ``keep`` best cells per instruction that beat no steering there go on, with a finer
    grid at the best one's layer (``refined``: ``refine`` multiples and the projection; ``()``: none);
    ``stop_early=False``: the ``keep`` best go on even where none beats no steering. The screen tries
    each layer at the grid's coefficients; ``screen_project``: the projection too (it joins the
    finalists' layer in round 2 either way; screening it doubles the screen's cost)."""

    first: int = SCREEN_PROMPTS
    screen_project: bool = False
    keep: int = 3
    stop_early: bool = True
    refine: Sequence[float] = REFINE


def run_halving(
    model: Model, config: SweepConfig, out: str | Path, *, options: HalvingOptions | None = None, **overrides: Any
) -> SweepResult:
    """Two rounds: every cell on the first ``first`` validation prompts, then the ``keep`` best cells
    per instruction that beat no steering there (``best_cells(beat_baseline=True)``), the finer grid
    and the baseline on the other ``config.n_prompts - first``; an instruction with none stops after
    the first round. ``options`` (``HalvingOptions``) says how; keywords override its fields. Returns
    the rows selection should see (round-1 survivors and baseline, round 2's cells), with a ``round``
    column; selection scores the finalists on round 2 only (``selection.evidence``)."""
    opts = replace(options or HalvingOptions(), **overrides)
    first = opts.first
    if not 0 < first < config.n_prompts:
        raise WorkbenchError(f"successive halving needs 0 < first ({first}) < n_prompts ({config.n_prompts})")
    out = Path(out)
    every = {
        g.name: list(
            (opts.pairs or {}).get(g.name) or make_pairs(g, config.split, limit=config.n_prompts, seed=config.seed)
        )[: config.n_prompts]
        for g in config.groups
    }
    own, bar = opts.bar is None, opts.bar
    if bar is None:  # the bar counts token budget (rows × max_new_tokens), as run_sweep's
        total = _budget_bound(config, every, opts)
        bar = tqdm(total=total, desc="sweep (halving)", unit="tok", unit_scale=True, disable=not opts.progress)
    shared = replace(opts, vectors=opts.vectors or out, bar=bar)
    try:
        one = run_sweep(
            model,
            _screen(config, opts),
            out / "round1",
            options=replace(shared, pairs={n: p[:first] for n, p in every.items()}),
        ).table
        survivors = best_cells(one, opts.keep, beat_baseline=opts.stop_early)
        if stopped := [g.name for g in config.groups if g.name not in survivors]:
            log(f"stopped early (no cell beat no steering on the first {first} prompts): {', '.join(stopped)}")
        two = _round_two(model, config, out, every, survivors, shared)
        if own:
            bar.total = bar.n  # round 2 may run fewer cells than the bound
            bar.refresh()
    finally:
        if own:
            bar.close()
    return SweepResult(_halving_table(one, two), out, config.model)


def load_halving(out: str | Path) -> pd.DataFrame:
    """A finished halving sweep's table (``out/round1``, ``out/round2``), as ``run_halving`` returned it."""
    out = Path(out)
    one = load_table(out / "round1")
    two = load_table(out / "round2") if any((out / "round2" / "units").glob("*.jsonl")) else pd.DataFrame()
    return _halving_table(one, two)


def _halving_table(one: pd.DataFrame, two: pd.DataFrame) -> pd.DataFrame:
    """Both rounds' rows with a ``round`` column: selection tests on round 2 only (``evidence``) and
    reads round 1 to say what the screen saw of a group that stopped there."""
    return pd.concat([one.assign(round=1), two.assign(round=2)], ignore_index=True)


def _screen(config: SweepConfig, opts: HalvingOptions) -> SweepConfig:
    """Round 1's grid: every layer at the grid's coefficients on the first ``first`` prompts, the
    projection only with ``screen_project``."""
    return replace(config, n_prompts=opts.first, project=config.project and opts.screen_project)


def _budget_bound(config: SweepConfig, every: Mapping[str, list[Pair]], opts: HalvingOptions) -> int:
    """The token budget both rounds spend at most (rows × max_new_tokens, as ``run_sweep``'s bar counts)."""
    first, refine = opts.first, opts.refine
    screen = _screen(config, opts)
    one = sum(first * (1 + len(screen.layers) * len(screen.settings())) * config.budget(g) for g in config.groups)
    cells = 1 + opts.keep + (len(refine) + config.project if refine else 0)
    two = sum(len(every[g.name][first:]) * cells * config.budget(g) for g in config.groups)
    return len(config.conditions) * (one + two)


def _round_two(
    model: Model,
    config: SweepConfig,
    out: Path,
    every: Mapping[str, list[Pair]],
    survivors: Mapping[str, Sequence[Cell]],
    opts: HalvingOptions,
) -> pd.DataFrame:
    """The finalists (``refined`` survivors) and the baseline on the prompts round 1 did not see; an
    empty table where no instruction goes on (a file may hold fewer validation prompts)."""
    first = opts.first
    rest = tuple(g for g in config.groups if every[g.name][first:] and g.name in survivors)
    if not rest:
        return pd.DataFrame()
    grid = tuple(sorted(set(config.coefficients) | set(opts.refine)))
    return run_sweep(
        model,
        replace(config, instructions=rest, n_prompts=config.n_prompts - first, coefficients=grid),
        out / "round2",
        options=replace(opts, pairs={n: p[first:] for n, p in every.items()}),
        cells_of=refined(survivors, opts.refine, config.project),
    ).table
