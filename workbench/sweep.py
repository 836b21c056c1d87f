"""Layer × coefficient sweeps, selection on validation, and the paper's four-condition report.

A sweep is a grid of cells (instruction, with/without instruction, layer, mode, coefficient) × prompts.
All cells of one (instruction, condition, layer) share a single batched generation: each batch row
is one (prompt, setting), with per-row coefficients. Each finished unit is written atomically to its
own file, so a killed sweep resumes where it stopped and the final table is the same.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd
import torch
from tqdm.auto import tqdm

from workbench.errors import WorkbenchError
from workbench.checkers import Check, check
from workbench.evaluate import Judge, bootstrap_ci, quality
from workbench.generate import generate
from workbench.io import atomic_path, read_jsonl, write_atomic, write_jsonl
from workbench.models import Model, check_layer
from workbench.instructions import Group, Instruction, as_group
from workbench.prompts import Pair, make_pairs
from workbench.steering import Steer
from workbench.vectors import InstructionVector, compute_vectors

NO_STEERING = -1  # the layer recorded for unsteered rows


@dataclass(frozen=True)
class SweepConfig:
    """What a sweep covers. Coefficients are in units of the layer's mean-difference norm.

    Instructions are catalog names, IFEval spellings, ``Instruction``s or ``Group``s; each needs a
    checker. ``max_new_tokens=None`` gives each its own budget (``instructions.budget``).
    With no layers the sweep runs only the unsteered baseline: does the model follow when told?
    """

    model: str
    instructions: tuple[str | Instruction | Group, ...]
    layers: tuple[int, ...]
    coefficients: tuple[float, ...] = (0.5, 1.0, 2.0)
    project: bool = True
    n_train: int = 64
    n_prompts: int = 16
    split: str = "validation"
    max_new_tokens: int | None = 64
    conditions: tuple[bool, ...] = (False, True)  # with the instruction in the prompt?
    seed: int = 0
    data: str = ""  # hash of the pairs given to run_sweep, when they are not the project's queries

    def __post_init__(self):
        if not self.instructions:
            raise WorkbenchError("no instructions to sweep: name at least one")
        if not self.coefficients and not self.project:
            raise WorkbenchError("the coefficient grid is empty: give coefficients or keep the projection mode")
        if any(not math.isfinite(c) for c in self.coefficients):
            raise WorkbenchError("coefficients must be finite numbers")
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names):
            raise WorkbenchError(f"two instructions share a name in this sweep: {sorted(n for n in names if names.count(n) > 1)}")
        for g in self.groups:
            if not g.checkable:
                raise WorkbenchError(f"instruction {g.name!r} has no checker, and a sweep scores compliance: give it check=<callable or IFEval id>")

    @property
    def groups(self) -> list[Group]:
        return [as_group(i) for i in self.instructions]

    def budget(self, group: Group) -> int:
        return self.max_new_tokens if self.max_new_tokens is not None else group.budget

    def settings(self) -> list[tuple[str, float | None]]:
        """(mode, coefficient) per steered setting at one layer."""
        out = [("add", float(c)) for c in self.coefficients if c != 0]
        return out + ([("project", None)] if self.project else [])

    def to_json(self) -> dict:
        """Catalog names stay names; Instructions and Groups are written out in full."""
        plain = {k: v for k, v in asdict(self).items() if k != "instructions"}
        named = [i if isinstance(i, str) else as_group(i).spec() for i in self.instructions]
        return json.loads(json.dumps({**plain, "instructions": named}))


def _claim_dir(out: Path, config: dict, kind: str) -> None:
    """Refuse to mix results of different configurations in one folder."""
    path = out / "config.json"
    if path.exists():
        old = json.loads(path.read_text())
        if old != {"kind": kind, **config}:
            raise WorkbenchError(f"{out} holds results of another configuration: use a new output folder or delete it")
    else:
        write_atomic(path, json.dumps({"kind": kind, **config}, indent=2))


def vectors_for(
    model: Model, instructions: Sequence[str | Instruction | Group], out: Path | None, n_train: int,
    pairs: Mapping[str, Sequence[Pair]] | None = None, return_activations: bool = False,
) -> dict:
    """Instruction vectors by name, cached in ``out/vectors`` so reruns reuse them; the missing ones
    are computed together (``compute_vectors``: shared prompts recorded once).

    The training activations behind each ([n, n_layers, d_model] with and without the instruction)
    are cached beside it, so separability needs no second pass over the training prompts.
    """
    groups = [as_group(i) for i in instructions]
    path = {g.name: out / "vectors" / f"{g.slug}.safetensors" if out else None for g in groups}
    acts_path = {n: p.with_suffix(".activations.pt") if p is not None else None for n, p in path.items()}
    found = {}
    for g in groups:
        p = path[g.name]
        if p is not None and p.exists() and (not return_activations or acts_path[g.name].exists()):
            vec = InstructionVector.load(p, model)
            if return_activations:
                acts = torch.load(acts_path[g.name], weights_only=True)
                found[g.name] = (vec, acts["with"], acts["without"])
            else:
                found[g.name] = vec
    missing = [g for g in groups if g.name not in found]
    if missing:
        given = {g.name: list(pairs[g.name])[:n_train] for g in missing if pairs and pairs.get(g.name)}
        for name, (vec, w, wo) in compute_vectors(model, missing, given, n_pairs=n_train).items():
            if path[name] is not None:
                vec.save(path[name])
                with atomic_path(acts_path[name]) as tmp:
                    torch.save({"with": w, "without": wo}, tmp)
            found[name] = (vec, w, wo) if return_activations else vec
    return found


def vector_for(model: Model, instruction: str | Instruction | Group, out: Path | None, n_train: int, return_activations: bool = False, pairs: Sequence[Pair] | None = None):
    """One instruction's vector (``vectors_for`` for one)."""
    group = as_group(instruction)
    return vectors_for(model, [group], out, n_train, {group.name: pairs} if pairs else None, return_activations)[group.name]


def score_rows(model: Model, rows: list[dict], judge: Judge | None = None, checks: Sequence[Check] | None = None) -> list[dict]:
    """Add compliance (strict/loose, prompt level and per instruction) and quality fields to
    generation rows, in place. Without ``checks``, IFEval checks each row's instruction ids."""
    if checks is None:
        checks = [check(r["text"], r["instruction_ids"], r["kwargs"], prompt=r["prompt"]) for r in rows]
    for row, c in zip(rows, checks):
        row["strict"], row["loose"] = c.strict, c.loose
        row["strict_each"], row["loose_each"] = list(c.strict_each), list(c.loose_each)
    q = quality(model, [r["query"] for r in rows], [r["text"] for r in rows], [r["n_tokens"] for r in rows], judge)
    for row, fields in zip(rows, q):
        row.update(fields)
    return rows


def _unit_name(instruction: str, with_instruction: bool, layer: int) -> str:
    cond = "with" if with_instruction else "without"
    return f"{instruction}__{cond}__{'none' if layer == NO_STEERING else f'L{layer:02d}'}.jsonl"


@dataclass
class _Unit:
    """One (instruction, condition, layer) of a sweep: rows = settings × prompts."""

    group: Group
    with_instruction: bool
    layer: int
    vec: InstructionVector | None
    pairs: list
    settings: list[tuple[str, float | None]]

    @property
    def name(self) -> str:
        return _unit_name(self.group.slug, self.with_instruction, self.layer)

    def rows(self) -> list[tuple[str, float | None, object, str]]:
        return [
            (mode, coef, pair, pair.with_instruction if self.with_instruction else pair.without_instruction)
            for mode, coef in self.settings
            for pair in self.pairs
        ]


def _specs(units: Sequence[_Unit], n_rows: int) -> list[Steer]:
    """Per-row coefficient specs for a batch holding several units (NaN rows are untouched)."""
    specs, offset = [], 0
    for unit in units:
        rows = unit.rows()
        if unit.layer != NO_STEERING:
            for mode in ("add", "project"):
                coefs = torch.full((n_rows,), float("nan"))
                for i, (m, coef, _, _) in enumerate(rows):
                    if m == mode == "add":
                        coefs[offset + i] = coef * float(unit.vec.norms[unit.layer])
                    elif m == mode == "project":
                        coefs[offset + i] = float(unit.vec.proj_with[unit.layer])
                if not torch.isnan(coefs).all():
                    specs.append(unit.vec.steer(unit.layer, coefs, mode=mode))
        offset += len(rows)
    return specs


def run_units(model: Model, units: Sequence[_Unit], max_new_tokens: int, judge: Judge | None = None) -> list[list[dict]]:
    """Generate several units in one batch (per-row coefficients), then score; rows per unit."""
    plan = [(u, r) for u in units for r in u.rows()]
    prompts = [r[3] for _, r in plan]
    gens = generate(model, prompts, steer=_specs(units, len(prompts)), max_new_tokens=max_new_tokens)
    rows, checks = [], []
    for (unit, (mode, coef, pair, prompt)), gen in zip(plan, gens):
        checked = pair.instruction  # filled for this query
        checks.append(checked.check(gen.text, prompt))
        rows.append(
            {
                "instruction": unit.group.name,
                "layer": unit.layer,
                "mode": mode,
                "coefficient": coef,
                "target": float(unit.vec.proj_with[unit.layer]) if mode == "project" else None,
                "prompt_id": pair.query_id,
                "with_instruction": unit.with_instruction,
                "query": pair.query,
                "prompt": prompt,
                "instruction_ids": [checked.ifeval_id or f"custom:{checked.id}"],
                "kwargs": [checked.kwargs],
                "text": gen.text,
                "stopped": gen.stopped,
                "n_tokens": len(gen.token_ids),
            }
        )
    score_rows(model, rows, judge, checks)
    out, start = [], 0
    for unit in units:
        n = len(unit.rows())
        out.append(rows[start : start + n])
        start += n
    return out


def _chunks(units: Sequence[_Unit], rows_per_batch: int, budget=lambda unit: 0) -> list[list[_Unit]]:
    """Consecutive units packed up to ``rows_per_batch`` rows; a batch holds one token budget only."""
    chunks, current, size = [], [], 0
    for unit in units:
        n = len(unit.rows())
        if current and (size + n > rows_per_batch or budget(unit) != budget(current[0])):
            chunks.append(current)
            current, size = [], 0
        current.append(unit)
        size += n
    return chunks + ([current] if current else [])


def run_sweep(
    model: Model, config: SweepConfig, out: str | Path, progress: bool = True, judge: Judge | None = None, rows_per_batch: int = 64,
    pairs: Mapping[str, Sequence[Pair]] | None = None, train_pairs: Mapping[str, Sequence[Pair]] | None = None,
    cells_of: Mapping[str, Sequence[tuple[int, str, float | None]]] | None = None, vectors: str | Path | None = None,
    bar: tqdm | None = None,
) -> pd.DataFrame:
    """Run (or resume) a sweep into ``out``; returns the tidy table, one row per generation.

    Units are packed into batches of about ``rows_per_batch`` rows; each unit is written as soon
    as its batch is scored, so a killed sweep loses at most one batch. ``pairs`` / ``train_pairs``
    (by group name) replace the project's validation / training queries, e.g. a file's own pairs;
    ``config.data`` should then name them, so a folder never mixes two sources. ``cells_of`` (by
    group name) narrows a group to some (layer, mode, coefficient) cells of the grid; ``vectors`` is the folder whose
    ``vectors/`` caches them (default ``out``), so several sweeps can share one set; ``bar``, one
    progress bar they share (its owner sets the total and closes it).
    """
    out = Path(out)
    if config.model != model.name:
        raise WorkbenchError(f"the sweep is configured for {config.model} but the model is {model.name}")
    for layer in config.layers:
        check_layer(model, layer)
    _claim_dir(out, config.to_json(), "sweep")
    for stale in (out / "units").glob(".*.tmp"):  # left by a process killed mid-write
        stale.unlink()
    groups = {g.slug: g for g in config.groups}
    keys = []
    for slug, group in groups.items():  # budget order, so packed batches share a token budget
        for cond in config.conditions:
            keys.append((slug, cond, NO_STEERING))
            keys += [(slug, cond, layer) for layer in config.layers if cells_of is None or any(c[0] == layer for c in cells_of.get(group.name, ()))]
    keys.sort(key=lambda k: config.budget(groups[k[0]]))
    todo = [k for k in keys if not (out / "units" / _unit_name(*k)).exists()]
    def settings_at(slug: str, layer: int) -> list[tuple[str, float | None]]:
        if layer == NO_STEERING:
            return [("none", 0.0)]
        kept = None if cells_of is None else {tuple(c) for c in cells_of.get(groups[slug].name, ())}
        return [s for s in config.settings() if kept is None or (layer, *s) in kept]

    per_unit = lambda k: config.n_prompts * len(settings_at(k[0], k[2]))
    total = sum(map(per_unit, keys))
    own_bar = bar is None
    if own_bar:
        bar = tqdm(total=total, initial=total - sum(map(per_unit, todo)), desc="sweep", unit="gen", disable=not progress)
    else:
        bar.update(total - sum(map(per_unit, todo)))  # resumed units count as done
    units, pairs_of = [], {}
    steered_groups = list({k[0]: groups[k[0]] for k in todo if k[2] != NO_STEERING}.values())
    vecs = vectors_for(model, steered_groups, Path(vectors or out), config.n_train, train_pairs)  # one recording pass
    for slug, cond, layer in todo:
        group = groups[slug]
        if slug not in pairs_of:
            given = (pairs or {}).get(group.name)
            pairs_of[slug] = list(given)[: config.n_prompts] if given is not None else make_pairs(group, config.split, limit=config.n_prompts, seed=config.seed)
            if not pairs_of[slug]:
                raise WorkbenchError(f"the {config.split} split has no prompts")
        steered = layer != NO_STEERING
        vec = vecs[group.name] if steered else None
        settings = settings_at(slug, layer)
        units.append(_Unit(group, cond, layer, vec, pairs_of[slug], settings))
    unit_budget = lambda unit: config.budget(unit.group)
    for chunk in _chunks(units, rows_per_batch, unit_budget):
        for unit, rows in zip(chunk, run_units(model, chunk, unit_budget(chunk[0]), judge)):
            write_jsonl(out / "units" / unit.name, rows)
            bar.update(len(rows))
    if own_bar:
        bar.close()
    table = load_table(out)
    write_atomic(out / "table.csv", table.to_csv(index=False))
    return table


def load_table(out: str | Path) -> pd.DataFrame:
    """All finished units of a sweep or report folder as one tidy table (sorted, stable)."""
    files = sorted((Path(out) / "units").glob("*.jsonl"))
    if not files:
        raise WorkbenchError(f"no results in {out}: run `workbench sweep --out {out}` first")
    rows = [row for f in files for row in read_jsonl(f)]
    table = pd.DataFrame(rows)
    keys = [k for k in ("instruction", "condition", "with_instruction", "layer", "mode", "coefficient", "prompt_id") if k in table]
    return table.sort_values(keys, na_position="first", kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class Choice:
    """The selected steering setting for one instruction and condition (layer -1: no steering)."""

    instruction: str
    with_instruction: bool
    layer: int
    mode: str
    coefficient: float | None
    score: float
    baseline: float
    degenerate: float

    @classmethod
    def manual(cls, instruction: str, layer: int, mode: str = "add", coefficient: float | None = None) -> "Choice":
        """A hand-set steering setting (no validation scores); coefficient × the layer's norm."""
        if mode not in ("add", "project") or (mode == "add" and coefficient is None):
            raise WorkbenchError("a manual setting is mode 'add' with a coefficient, or mode 'project'")
        nan = float("nan")
        return cls(instruction, False, layer, mode, None if mode == "project" else float(coefficient), nan, nan, nan)

    @property
    def steers(self) -> bool:
        return self.layer != NO_STEERING

    def spec(self, vec: InstructionVector) -> list[Steer]:
        if not self.steers:
            return []
        if self.mode == "project":
            return [vec.steer(self.layer, mode="project")]
        return [vec.steer(self.layer, self.coefficient, relative=True)]


def cell_summary(table: pd.DataFrame, metric: str = "loose") -> pd.DataFrame:
    """Mean compliance, quality and degeneracy per cell."""
    t = table.copy()
    t["coefficient"] = t["coefficient"].fillna(0.0)
    return (
        t.groupby(["instruction", "with_instruction", "layer", "mode", "coefficient"], dropna=False)
        .agg(compliance=(metric, "mean"), strict=("strict", "mean"), logprob=("logprob", "mean"), degenerate=("degenerate", "mean"), n=("text", "size"))
        .reset_index()
    )


def select(table: pd.DataFrame, metric: str = "loose", max_degenerate: float = 0.2) -> dict[tuple[str, bool], Choice]:
    """Best non-degenerate (layer, mode, coefficient) per instruction and condition.

    A setting is eligible when at most ``max_degenerate`` of its outputs are degenerate. Steering
    must beat no steering strictly (ties go to no steering); among equals the smaller coefficient wins.
    """
    cells = cell_summary(table, metric)
    out = {}
    for (name, cond), group in cells.groupby(["instruction", "with_instruction"]):
        base = group[group["layer"] == NO_STEERING]
        baseline = float(base["compliance"].iloc[0]) if len(base) else 0.0
        eligible = group[(group["layer"] != NO_STEERING) & (group["degenerate"] <= max_degenerate)]
        best = Choice(name, bool(cond), NO_STEERING, "none", None, baseline, baseline, float(base["degenerate"].iloc[0]) if len(base) else 0.0)
        if len(eligible):
            eligible = eligible.assign(size=eligible["coefficient"].abs().where(eligible["mode"] == "add", 0.75))
            top = eligible.sort_values(["compliance", "size", "layer"], ascending=[False, True, True]).iloc[0]
            if top["compliance"] > baseline:
                coef = None if top["mode"] == "project" else float(top["coefficient"])
                best = Choice(name, bool(cond), int(top["layer"]), str(top["mode"]), coef, float(top["compliance"]), baseline, float(top["degenerate"]))
        out[(name, bool(cond))] = best
    return out


CONDITIONS = ("no_instruction", "steer", "instruction", "instruction_steer")


def summarize(table: pd.DataFrame, metric: str = "loose") -> pd.DataFrame:
    """Compliance with 95% bootstrap intervals and mean quality per instruction and condition."""
    out = []
    for (name, cond), g in table.groupby(["instruction", "condition"], sort=False):
        mean, lo, hi = bootstrap_ci(g[metric].astype(float).tolist())
        out.append({
            "instruction": name, "condition": cond, "compliance": mean, "ci_low": lo, "ci_high": hi,
            "strict": float(g["strict"].mean()), "loose": float(g["loose"].mean()), "n": len(g),
            "layer": int(g["layer"].iloc[0]), "mode": g["mode"].iloc[0], "coefficient": g["coefficient"].iloc[0],
            "logprob": float(g["logprob"].mean()), "degenerate": float(g["degenerate"].mean()),
        })
    frame = pd.DataFrame(out)
    if len(frame):
        frame["condition"] = pd.Categorical(frame["condition"], CONDITIONS, ordered=True)
        frame = frame.sort_values(["instruction", "condition"]).reset_index(drop=True)
        frame["condition"] = frame["condition"].astype(str)
    return frame


@dataclass
class Example:
    """One test item: the prompt with and without its instructions, and the instructions (filled for
    this prompt) that check a reply."""

    key: str
    query: str  # the prompt without instructions
    prompt: str  # the prompt with them
    instructions: list[Instruction]

    @property
    def instruction_ids(self) -> list[str]:
        return [i.ifeval_id or f"custom:{i.id}" for i in self.instructions]

    @property
    def kwargs(self) -> list[dict]:
        return [i.kwargs for i in self.instructions]

    def check(self, response: str, prompt: str) -> Check:
        """Every instruction at once, as IFEval scores a record: prompt level and per instruction."""
        each = [i.check(response, prompt) for i in self.instructions]
        return Check(all(c.strict for c in each), all(c.loose for c in each), tuple(c.strict for c in each), tuple(c.loose for c in each))


def four_conditions(
    model: Model,
    examples: Sequence[Example],
    steer_without: Sequence[Steer],
    steer_with: Sequence[Steer],
    label: str,
    choices: tuple[Choice | None, Choice | None] = (None, None),
    max_new_tokens: int = 64,
    judge: Judge | None = None,
) -> list[dict]:
    """Generate and score the paper's four conditions on the examples (one packed batch); rows."""
    plan = [
        ("no_instruction", False, (), None),
        ("steer", False, list(steer_without), choices[0]),
        ("instruction", True, (), None),
        ("instruction_steer", True, list(steer_with), choices[1]),
    ]
    n = len(examples)
    prompts = [e.prompt if with_inst else e.query for _, with_inst, _, _ in plan for e in examples]
    specs = []
    for block, (_, _, steer, _) in enumerate(plan):
        for spec in steer:  # each condition's specs act on its own rows only
            coefs = torch.full((len(prompts),), float("nan"))
            coefs[block * n : (block + 1) * n] = spec.coefficient
            specs.append(spec.scaled(coefs))
    gens = generate(model, prompts, steer=specs, max_new_tokens=max_new_tokens)
    rows, checks = [], []
    for block, (cond, with_inst, steer, choice) in enumerate(plan):
        for e, p, g in zip(examples, prompts[block * n : (block + 1) * n], gens[block * n : (block + 1) * n]):
            rows.append({
                "instruction": label, "condition": cond, "with_instruction": with_inst, "prompt_id": e.key,
                "layer": choice.layer if choice and steer else NO_STEERING,
                "mode": choice.mode if choice and steer else "none",
                "coefficient": choice.coefficient if choice and steer else None,
                "query": e.query, "prompt": p, "instruction_ids": e.instruction_ids, "kwargs": e.kwargs,
                "text": g.text, "stopped": g.stopped, "n_tokens": len(g.token_ids),
            })
            checks.append(e.check(g.text, p))
    return score_rows(model, rows, judge, checks)


def catalog_examples(instruction: str | Instruction | Group, split: str = "test", limit: int | None = None, seed: int = 0) -> list[Example]:
    """Test items from the project's queries with the instruction appended."""
    return [pair_example(p) for p in make_pairs(instruction, split, limit=limit, seed=seed)]


def pair_example(pair: Pair) -> Example:
    return Example(pair.query_id, pair.without_instruction, pair.with_instruction, [pair.instruction])
