"""Running a sweep: each unit's rows generated in packed batches, scored, and written atomically to
its own file, so a killed sweep resumes where it stopped and the final table is the same.

All cells of one (instruction, condition, layer) share a single batched generation: each batch row
is one (prompt, setting), with per-row coefficients.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from workbench.checkers import checkers_version
from workbench.errors import WorkbenchError
from workbench.evaluate import DEGENERACY_RULE, Judge
from workbench.instructions import Pair, make_pairs
from workbench.io import claim_dir, read_jsonl, write_atomic, write_jsonl
from workbench.models import Model, check_layer
from workbench.store import vectors_for
from workbench.sweep.executors import Executor, Local, job_budget
from workbench.sweep.grid import NO_STEERING, SweepConfig, Unit, chunks, unit_name
from workbench.sweep.result import SweepResult


def run_sweep(
    model: Model,
    config: SweepConfig,
    out: str | Path,
    progress: bool = True,
    judge: Judge | None = None,
    rows_per_batch: int = 64,
    pairs: Mapping[str, Sequence[Pair]] | None = None,
    train_pairs: Mapping[str, Sequence[Pair]] | None = None,
    cells_of: Mapping[str, Sequence[tuple[int, str, float | None]]] | None = None,
    vectors: str | Path | None = None,
    bar: tqdm | None = None,
    executor: Executor | None = None,
) -> SweepResult:
    """Run (or resume) a sweep into ``out``; returns its ``SweepResult`` (``.table``: one row per generation).

    Units are packed into batches of about ``rows_per_batch`` rows; each unit is written as soon
    as its batch is scored, so a killed sweep loses at most one batch. ``pairs`` / ``train_pairs``
    (by group name) replace the project's validation / training queries, e.g. a file's own pairs;
    ``config.data`` should then name them, so a folder never mixes two sources. ``cells_of`` (by
    group name) narrows a group to some (layer, mode, coefficient) cells of the grid; ``vectors`` is the folder whose
    ``vectors/`` caches them (default ``out``), so several sweeps can share one set; ``bar``, one
    progress bar they share (its owner sets the total and closes it); ``executor``, where the batches
    run (default ``Local()``; ``cluster.RayExecutor`` for Ray actors): the rows are the same.
    The bar counts token budget (rows × max_new_tokens) and moves every decode step where the
    executor reports steps (``Local``), else as each batch returns: its rate and ETA are honest.
    """
    out = Path(out)
    if config.model != model.name:
        raise WorkbenchError(f"the sweep is configured for {config.model} but the model is {model.name}")
    for layer in config.layers:
        check_layer(model, layer)
    claim_dir(
        out,
        config.to_json()
        | {
            "model_fingerprint": model.fingerprint(),
            "degeneracy_rule": DEGENERACY_RULE,
            "checkers": checkers_version(),
        },
        "sweep",
    )
    for stale in (out / "units").glob(".*.tmp"):  # left by a process killed mid-write
        stale.unlink()
    groups = {g.slug: g for g in config.groups}
    keys = []
    for slug, group in groups.items():  # budget order, so packed batches share a token budget
        for cond in config.conditions:
            keys.append((slug, cond, NO_STEERING))
            keys += [
                (slug, cond, layer)
                for layer in config.layers
                if cells_of is None or any(c[0] == layer for c in cells_of.get(group.name, ()))
            ]
    keys.sort(key=lambda k: config.budget(groups[k[0]]))
    todo = [k for k in keys if not (out / "units" / unit_name(*k)).exists()]

    def settings_at(slug: str, layer: int) -> list[tuple[str, float | None]]:
        if layer == NO_STEERING:
            return [("none", 0.0)]
        kept = None if cells_of is None else {tuple(c) for c in cells_of.get(groups[slug].name, ())}
        return [s for s in config.settings() if kept is None or (layer, *s) in kept]

    per_unit = lambda k: config.n_prompts * len(settings_at(k[0], k[2])) * config.budget(groups[k[0]])  # token budget
    total = sum(map(per_unit, keys))
    own_bar = bar is None
    if own_bar:
        bar = tqdm(
            total=total,
            initial=total - sum(map(per_unit, todo)),
            desc="sweep",
            unit="tok",
            unit_scale=True,
            disable=not progress,
        )
    else:
        bar.update(total - sum(map(per_unit, todo)))  # resumed units count as done
    units, pairs_of = [], {}
    steered_groups = list({k[0]: groups[k[0]] for k in todo if k[2] != NO_STEERING}.values())
    vecs = vectors_for(
        model, steered_groups, Path(vectors or out), config.n_train, train_pairs, progress=progress
    )  # one recording pass
    for slug, cond, layer in todo:
        group = groups[slug]
        if slug not in pairs_of:
            given = (pairs or {}).get(group.name)
            pairs_of[slug] = (
                list(given)[: config.n_prompts]
                if given is not None
                else make_pairs(group, config.split, limit=config.n_prompts, seed=config.seed)
            )
            if not pairs_of[slug]:
                raise WorkbenchError(f"the {config.split} split has no prompts")
        steered = layer != NO_STEERING
        vec = vecs[group.name] if steered else None
        settings = settings_at(slug, layer)
        units.append(Unit(group, cond, layer, vec, pairs_of[slug], settings))
    unit_budget = lambda unit: config.budget(unit.group)
    jobs = [(chunk, unit_budget(chunk[0])) for chunk in chunks(units, rows_per_batch, unit_budget)]
    stepped = [
        0
    ]  # budget reported step by step since the last job returned: that job's (jobs run one at a time where steps are reported)

    def on_step(n: int) -> None:
        stepped[0] += n
        bar.update(n)

    for i, rows_per_unit in (executor or Local()).map(model, jobs, judge, on_step):  # only this process writes
        for unit, rows in zip(jobs[i][0], rows_per_unit):
            write_jsonl(out / "units" / unit.name, rows)
        bar.update(job_budget(jobs[i]) - stepped[0])  # what its steps did not report (all of it, from Ray)
        stepped[0] = 0
    if own_bar:
        bar.close()
    table = load_table(out)
    write_atomic(out / "table.csv", table.to_csv(index=False))
    return SweepResult(table, out, config.model)


def load_table(out: str | Path) -> pd.DataFrame:
    """All finished units of a sweep or report folder as one tidy table (sorted, stable)."""
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
