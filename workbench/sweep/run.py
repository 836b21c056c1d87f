"""Running a sweep: each unit's rows generated in packed batches, scored, and written atomically to
its own file, so a killed sweep resumes where it stopped and the final table is the same.

All cells of one (instruction, condition, layer) share a single batched generation: each batch row
is one (prompt, setting), with per-row coefficients.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from workbench.checkers import checkers_version
from workbench.errors import WorkbenchError
from workbench.file_formats import FileFormat
from workbench.instructions import Pair, make_pairs
from workbench.io import claim_dir, read_jsonl, write_atomic, write_jsonl
from workbench.judging.quality import DEGENERACY_RULE, Judge
from workbench.models import Model, check_layer
from workbench.store import vectors_for
from workbench.sweep.executors import Executor, Local, job_budget
from workbench.sweep.grid import NO_STEERING, SweepConfig, Unit, chunks, unit_name
from workbench.sweep.result import SweepResult

SWEEP = FileFormat("a sweep", 1)  # a sweep folder's config.json; folders from before it was numbered are format 1


@dataclass(frozen=True)
class SweepOptions:
    """How a sweep runs; what it covers is the ``SweepConfig``, which alone makes the folder's identity.

    ``judge``: scores quality (default: the model itself). Units are packed into batches of about
    ``rows_per_batch`` rows. ``pairs`` / ``train_pairs`` (by group name) replace the project's
    validation / training queries, e.g. a file's own pairs; ``config.data`` should then name them, so
    a folder never mixes two sources. ``vectors``: the folder whose ``vectors/`` caches them (default
    the sweep's own), so several sweeps can share one set. ``bar``: one progress bar several sweeps
    share (its owner sets the total and closes it); ``progress=False`` draws none of the sweep's own.
    ``executor``: where the batches run (default ``Local()``; ``cluster.RayExecutor`` for Ray actors).
    """

    progress: bool = True
    judge: Judge | None = None
    rows_per_batch: int = 64
    pairs: Mapping[str, Sequence[Pair]] | None = None
    train_pairs: Mapping[str, Sequence[Pair]] | None = None
    vectors: str | Path | None = None
    bar: tqdm | None = None
    executor: Executor | None = None


Key = tuple[str, bool, int]  # (group slug, with the instruction?, layer): one unit and its file
Cells = Mapping[str, Sequence[tuple[int, str, float | None]]]  # by group name: (layer, mode, coefficient)


def run_sweep(
    model: Model,
    config: SweepConfig,
    out: str | Path,
    *,
    options: SweepOptions | None = None,
    cells_of: Cells | None = None,
    **overrides: Any,
) -> SweepResult:
    """Run (or resume) a sweep into ``out``; returns its ``SweepResult`` (``.table``: one row per generation).

    ``options`` (``SweepOptions``) says how; keywords override its fields (``executor=...``). Each unit
    is written as soon as its batch is scored, so a killed sweep loses at most one batch. ``cells_of``
    (by group name) narrows a group to some (layer, mode, coefficient) cells of the grid. The bar
    counts token budget (rows × max_new_tokens) and moves every decode step where the executor reports
    steps (``Local``), else as each batch returns: its rate and ETA are honest.
    """
    opts = replace(options or SweepOptions(), **overrides)
    out = Path(out)
    _claim(model, config, out)
    grid = _Grid(config, cells_of)
    todo = [k for k in grid.keys if not (out / "units" / unit_name(*k)).exists()]
    total, done = sum(map(grid.tokens, grid.keys)), sum(map(grid.tokens, grid.keys)) - sum(map(grid.tokens, todo))
    bar = opts.bar
    if bar is None:
        bar = tqdm(total=total, initial=done, desc="sweep", unit="tok", unit_scale=True, disable=not opts.progress)
    else:
        bar.update(done)  # resumed units count as done
    try:
        _run_units(model, _units(model, grid, todo, opts, out), grid, opts, bar, out)
    finally:
        if opts.bar is None:
            bar.close()
    table = load_table(out)
    write_atomic(out / "table.csv", table.to_csv(index=False))
    return SweepResult(table, out, config.model)


def _claim(model: Model, config: SweepConfig, out: Path) -> None:
    """Refuse a model the config does not name or a layer it lacks, then claim ``out`` for this
    configuration (a folder refuses another), removing what a killed write left."""
    if config.model != model.name:
        raise WorkbenchError(f"the sweep is configured for {config.model} but the model is {model.name}")
    for layer in config.layers:
        check_layer(model, layer)
    identity = {"model_fingerprint": model.fingerprint(), "degeneracy_rule": DEGENERACY_RULE}
    claim_dir(out, config.to_json() | identity | {"checkers": checkers_version()}, "sweep", SWEEP)
    for stale in (out / "units").glob(".*.tmp"):  # left by a process killed mid-write
        stale.unlink()


class _Grid:
    """A sweep's units (``keys``, in budget order, so packed batches share a token budget) and the
    settings and token budget of each, with ``cells_of`` narrowing the grid."""

    def __init__(self, config: SweepConfig, cells_of: Cells | None):
        self.config, self.cells_of = config, cells_of
        self.groups = {g.slug: g for g in config.groups}
        keys: list[Key] = []
        for slug, group in self.groups.items():
            for cond in config.conditions:
                keys.append((slug, cond, NO_STEERING))
                keys += [(slug, cond, layer) for layer in config.layers if self._narrowed(group.name, layer)]
        self.keys = sorted(keys, key=lambda k: config.budget(self.groups[k[0]]))

    def _narrowed(self, name: str, layer: int) -> bool:
        return self.cells_of is None or any(c[0] == layer for c in self.cells_of.get(name, ()))

    def settings(self, slug: str, layer: int) -> list[tuple[str, float | None]]:
        if layer == NO_STEERING:
            return [("none", 0.0)]
        if self.cells_of is None:
            return self.config.settings()
        kept = {tuple(c) for c in self.cells_of.get(self.groups[slug].name, ())}
        return [s for s in self.config.settings() if (layer, *s) in kept]

    def tokens(self, key: Key) -> int:
        """A unit's token budget: its rows × its max_new_tokens."""
        slug, _, layer = key
        return self.config.n_prompts * len(self.settings(slug, layer)) * self.config.budget(self.groups[slug])


def _units(model: Model, grid: _Grid, todo: list[Key], opts: SweepOptions, out: Path) -> list[Unit]:
    """The units still to run, with their prompts and (one recording pass) their vectors."""
    config = grid.config
    steered = list({k[0]: grid.groups[k[0]] for k in todo if k[2] != NO_STEERING}.values())
    vectors_at = Path(opts.vectors or out)
    train, aggregator = opts.train_pairs, config.aggregator
    vecs = vectors_for(model, steered, vectors_at, config.n_train, train, progress=opts.progress, aggregator=aggregator)
    units, pairs_of = [], {}
    for slug, cond, layer in todo:
        group = grid.groups[slug]
        if slug not in pairs_of:
            given = (opts.pairs or {}).get(group.name)
            pairs_of[slug] = (
                list(given)[: config.n_prompts]
                if given is not None
                else make_pairs(group, config.split, limit=config.n_prompts, seed=config.seed)
            )
            if not pairs_of[slug]:
                raise WorkbenchError(f"the {config.split} split has no prompts")
        vec = vecs[group.name] if layer != NO_STEERING else None
        units.append(Unit(group, cond, layer, vec, pairs_of[slug], grid.settings(slug, layer)))
    return units


def _run_units(model: Model, units: list[Unit], grid: _Grid, opts: SweepOptions, bar: tqdm, out: Path) -> None:
    """Pack ``units`` into batches, run them on the executor and write each unit's rows as its batch
    returns (only this process writes); the bar hears every decode step it reports."""
    budget = lambda unit: grid.config.budget(unit.group)  # noqa: E731
    jobs = [(chunk, budget(chunk[0])) for chunk in chunks(units, opts.rows_per_batch, budget)]
    stepped = [0]  # budget reported step by step since the last job returned (jobs reporting steps run one at a time)

    def on_step(n: int) -> None:
        stepped[0] += n
        bar.update(n)

    for i, rows_per_unit in (opts.executor or Local()).map(model, jobs, opts.judge, on_step):
        for unit, rows in zip(jobs[i][0], rows_per_unit):
            write_jsonl(out / "units" / unit.name, rows)
        bar.update(job_budget(jobs[i]) - stepped[0])  # what its steps did not report (all of it, from Ray)
        stepped[0] = 0


def load_table(out: str | Path) -> pd.DataFrame:
    """All finished units of a sweep or report folder as one tidy table (sorted, stable); a sweep
    folder of a newer format is refused."""
    config = Path(out) / "config.json"
    if config.is_file():
        try:
            claimed = json.loads(config.read_text())
        except ValueError:
            raise WorkbenchError(f"{config} is damaged (not JSON): rerun the sweep into a new folder") from None
        SWEEP.read(claimed, out)
    files = sorted((Path(out) / "units").glob("*.jsonl"))
    if not files:
        raise WorkbenchError(f"no results in {out}: run `workbench sweep --out {out}` first")
    rows = [row for f in files for row in read_jsonl(f)]
    table = pd.DataFrame(rows)
    keys = [
        k
        for k in ("instruction", "condition", "with_instruction", "layer", "mode", "coefficient", "prompt_id")
        if k in table
    ]
    return table.sort_values(keys, na_position="first", kind="stable").reset_index(drop=True)
