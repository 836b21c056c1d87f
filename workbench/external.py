"""Evaluate steering on an IFEval-format JSONL file, every record of it, as the paper reports it.

1. **Plan** (no model needed, so bad input fails before loading): every record's ids must be known
   to lm-eval's IFEval registry; each instruction joins its vector groups (``instructions.vector_groups``: one per
   id, language or keyword word).
2. **Vectors and selection.** ``pairs="queries"`` (default): each group's vector comes from the
   project's training queries with the group's instructions appended (the file's own kwargs, per-query
   ones refilled per query), the layer and setting from the project's validation queries, and every
   record of the file is a test item. ``pairs="file"``: the file's own with/without pairs, split by a
   seeded hash of the base query into train (vectors) / validation (selection) / test (the report).
3. **Selection**, without the instruction in the prompt and reused for "instruction + steering" as
   the paper does, over layers every ~10 % of depth × {1×, projection z̄}. ``search="halving"``
   (default): successive halving, every cell on 2 validation prompts (a screen: ``HALVING_FIRST``), the 3 best
   cells per group that beat no steering there, and 0.5×/1×/1.5×/2×/projection at the best one's layer, on
   the other 10 of the default 12, which alone score them (``sweep.search``); ``"reuse"``: every cell on every prompt; ``"exhaustive"``: both
   prompt conditions × {0.5×, 1×, 2×, projection} on every prompt.
4. **Report**: four conditions per record (a record with several instructions composes their vectors,
   each at its own selected layer), each record with its instructions' largest token budget; IFEval's
   prompt- and instruction-level accuracy, strict and loose, overall and per id, with bootstrap CIs.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from workbench.checkers import checkers_version, unknown_ids
from workbench.errors import WorkbenchError
from workbench.evaluate import DEGENERACY_RULE, bootstrap_ci
from workbench.evaluation import Evaluation
from workbench.file_report import report_markdown
from workbench.instructions import (
    Group,
    IFEvalExample,
    Instruction,
    as_group,
    data_hash,
    file_pairs,
    load_ifeval_jsonl,
    make_pairs,
    record_instructions,
    split_of,
    vector_groups,
)
from workbench.io import file_hash, log, write_atomic, write_jsonl
from workbench.models import Model
from workbench.plots import export
from workbench.store import vectors_for
from workbench.sweep import (
    CONDITIONS,
    Choice,
    Example,
    Executor,
    SweepConfig,
    conditional_conditions,
    fewest_prompts,
    four_conditions,
    load_table,
    pair_example,
    run_halving,
    run_sweep,
    select,
    selection_rule,
)

SEARCHES = ("halving", "reuse", "exhaustive")
PAIR_SOURCES = ("queries", "file")
MIN_FILE_PAIRS = 4  # a group with fewer training pairs in the file takes the project's queries
HALVING_FIRST = 2  # halving's first round is a cheap screen of every cell; the finalists get the other prompts


def default_layers(model: Model) -> tuple[int, ...]:
    n = model.n_layers
    return tuple(range(max(1, n // 5), n - 1, max(1, n // 10)))


@dataclass
class Plan:
    """What an evaluation of one file will do; made without the model."""

    data: str
    examples: list[IFEvalExample]
    items: list[tuple[Example, tuple[tuple[str, ...], ...]]]  # test items with each instruction's vector groups
    groups: dict[str, Group]
    skipped: dict[str, str] = field(default_factory=dict)
    pairs: str = "queries"
    train: dict = field(default_factory=dict)  # group -> the file's training pairs (pairs="file")
    validation: dict = field(default_factory=dict)


def _one_line(text: str) -> str:
    """An error message on one line, whatever ids, keys or values from the file it quotes."""
    return " ".join(text.splitlines())


def plan_file(
    data: str | Path,
    group_by: Mapping[str, Sequence[str]] | None = None,
    pairs: str = "queries",
    skip_unknown: bool = False,
    seed: int = 0,
) -> Plan:
    """Read and check the file; group its instructions. Unknown ids are an error unless skipped."""
    if pairs not in PAIR_SOURCES:
        raise WorkbenchError(f"unknown pair source {pairs!r}: use one of {', '.join(PAIR_SOURCES)}")
    examples = load_ifeval_jsonl(data)
    bad = unknown_ids([i for ex in examples for i in ex.instruction_id_list])
    if bad and not skip_unknown:
        raise WorkbenchError(
            _one_line(
                f"{data} uses ids lm-eval's IFEval does not know: {', '.join(bad)} (pass --skip-unknown to leave those records out)"
            )
        )
    skipped: dict[str, str] = {}
    members: dict[str, dict] = defaultdict(dict)
    items = []
    known = []
    for ex in examples:
        if set(ex.instruction_id_list) & set(bad):
            skipped[ex.key] = f"unknown id {', '.join(i for i in ex.instruction_id_list if i in bad)}"
            continue
        try:  # every record's kwargs, used or not: bad input fails here, before any model loads
            insts = record_instructions(ex)
        except WorkbenchError as exc:
            raise WorkbenchError(_one_line(f"{data} line {ex.line} (key {ex.key}): {exc}")) from None
        known.append(ex)
        if not ex.prompt_without_instruction:
            skipped[ex.key] = "no prompt_without_instruction: the conditions without the instruction need it"
            continue
        if pairs == "file" and split_of(ex.prompt_without_instruction, seed) != "test":
            continue  # a training or validation record
        each = [vector_groups(i, group_by) for i in insts]
        for name, member in (g for groups in each for g in groups):
            members[name][member.id] = member
        items.append(
            (
                Example(ex.key, ex.prompt_without_instruction, ex.prompt, insts),
                tuple(tuple(n for n, _ in groups) for groups in each),
            )
        )
    groups = {name: Group(name, tuple(ms[k] for k in sorted(ms))) for name, ms in sorted(members.items())}
    plan = Plan(str(data), examples, items, groups, skipped, pairs)
    if pairs == "file":
        own = file_pairs(known, group_by, seed)
        for name in groups:
            splits = own.get(name, {})
            if len(splits.get("train", [])) >= MIN_FILE_PAIRS and splits.get("validation"):
                plan.train[name], plan.validation[name] = splits["train"], splits["validation"]
    return plan


def _setting(choice: Choice | None) -> dict:
    if choice is None or not choice.steers:
        return {"layer": None, "mode": "none", "coefficient": None}
    return {
        "layer": choice.layer,
        "mode": choice.mode,
        "coefficient": choice.coefficient,
        "validation": choice.score,
        "validation_baseline": choice.baseline,
        "validation_degenerate": choice.degenerate,
        "p_value": choice.p_value,
        "n_tested": choice.n_tested,
    }


def _warn_underpowered(groups: Sequence[Group], plan: Plan, sweep_prompts: int, chosen_on: int) -> None:
    """Say up front which groups cannot be selected: maxT needs ``fewest_prompts()`` tested prompts
    (a p-value of 2^-n at best, and a degenerate share bounded under the cut-off)."""
    few, need = {}, fewest_prompts()
    for g in groups:
        n = min(sweep_prompts, len(plan.validation.get(g.name) or [None] * sweep_prompts)) - chosen_on
        if max(n, 0) < need:
            few[g.name] = max(n, 0)
    if few:
        log(
            f"warning: too few validation prompts for selection to find an effect (it needs {need} tested; n = prompts tested): "
            + ", ".join(f"{k} (n = {v})" for k, v in few.items())
            + "; these stay unsteered: give more validation records or --pairs queries"
        )


def _stopped(table: pd.DataFrame | None) -> list[str]:
    """Groups whose halving stopped after the first round: no cell beat no steering there."""
    if table is None or "round" not in table:
        return []
    return sorted(set(table["instruction"]) - set(table.loc[table["round"] == 2, "instruction"]))


def evaluate_file(
    model: Model,
    data: str | Path,
    out: str | Path,
    *,
    sweep_dir: str | Path | None = None,
    max_new_tokens: int | None = None,
    n_train: int = 64,
    sweep_prompts: int = 12,
    group_by: Mapping[str, Sequence[str]] | None = None,
    pairs: str = "queries",
    search: str = "halving",
    layers: Sequence[int] | None = None,
    skip_unknown: bool = False,
    seed: int = 0,
    plan: Plan | None = None,
    settings: Mapping[str, Choice] | None = None,
    conditional: bool = False,
    executor: Executor | None = None,
) -> Evaluation:
    """Vectors, layer/setting selection on validation prompts (or ``sweep_dir``), then the four
    conditions on every test record; writes ``rows.jsonl``, ``scores.csv``, ``summary.json``, ``report.md``, ``drift.html`` and returns an ``Evaluation``.
    ``max_new_tokens=None`` gives each record its instructions' budget. ``settings`` (group name ->
    ``Choice.manual(...)``) fixes a group's steering instead of selecting it; ``executor`` runs the
    selection sweep (e.g. on Ray; the held-out conditions run here)."""
    plan = plan or plan_file(data, group_by, pairs, skip_unknown, seed)
    return evaluate_plan(
        model,
        plan,
        out,
        sweep_dir=sweep_dir,
        max_new_tokens=max_new_tokens,
        n_train=n_train,
        sweep_prompts=sweep_prompts,
        search=search,
        layers=layers,
        seed=seed,
        settings=settings,
        conditional=conditional,
        executor=executor,
    )


def plan_instructions(instructions: Sequence[str | Instruction | Group], test_prompts: int = 12, seed: int = 0) -> Plan:
    """A plan for your own instructions (each needs a checker): its test items are the project's test
    queries with the instruction appended, one group per instruction."""
    groups = {g.name: g for g in map(as_group, instructions)}
    for g in groups.values():
        if not g.checkable:
            raise WorkbenchError(
                f"instruction {g.name!r} has no checker, and an evaluation scores compliance: give it check=<callable or IFEval id>"
            )
    items = [
        (pair_example(p), ((g.name,),))
        for g in groups.values()
        for p in make_pairs(g, "test", limit=test_prompts, seed=seed)
    ]
    return Plan("instructions: " + ", ".join(groups), [], items, groups)


def evaluate_instructions(
    model: Model, instructions: Sequence[str | Instruction | Group], out: str | Path, test_prompts: int = 12, **options
) -> Evaluation:
    """``evaluate_file`` for instructions rather than a file: vectors, selection, four-condition report.
    ``options`` are ``evaluate_plan``'s (sweep_prompts, layers, search, max_new_tokens, n_train, ...)."""
    return evaluate_plan(model, plan_instructions(instructions, test_prompts, options.get("seed", 0)), out, **options)


def evaluate_plan(
    model: Model,
    plan: Plan,
    out: str | Path,
    *,
    sweep_dir: str | Path | None = None,
    max_new_tokens: int | None = None,
    n_train: int = 64,
    sweep_prompts: int = 12,
    search: str = "halving",
    layers: Sequence[int] | None = None,
    seed: int = 0,
    settings: Mapping[str, Choice] | None = None,
    conditional: bool = False,
    executor: Executor | None = None,
) -> Evaluation:
    """Run a plan: select each group's setting, then the four conditions on its items (see the module doc);
    ``conditional`` adds the same steering made conditional (``InstructionVector.condition``), on prompts
    without and with the instructions."""
    if search not in SEARCHES:
        raise WorkbenchError(f"unknown search {search!r}: use one of {', '.join(SEARCHES)}")
    out = Path(out)
    given_sweep = sweep_dir is not None
    sweep_dir = Path(sweep_dir) if sweep_dir else out / "sweep"
    groups = list(plan.groups.values())
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(plan.groups))
    if unknown:
        raise WorkbenchError(
            f"settings name groups the file does not have: {', '.join(unknown)}; its groups are {', '.join(plan.groups)}"
        )
    to_select = [g for g in groups if g.name not in settings]
    log(
        f"instruction vectors for {len(groups)} groups ({n_train} training pairs each): recorded once, kept in {sweep_dir / 'vectors'}"
    )
    if not to_select:
        table = None
    elif given_sweep:
        table = load_table(sweep_dir)
    else:
        exhaustive = search == "exhaustive"
        config = SweepConfig(
            model=model.name,
            instructions=tuple(to_select),
            layers=tuple(layers or default_layers(model)),
            coefficients=(0.5, 1.0, 2.0) if exhaustive else (1.0,),
            n_train=n_train,
            n_prompts=sweep_prompts,
            max_new_tokens=max_new_tokens,
            conditions=(False, True) if exhaustive else (False,),
            seed=seed,
            data="" if not plan.train else data_hash([p.with_instruction for ps in plan.train.values() for p in ps]),
        )
        log(f"selecting layer and setting on validation prompts for {len(to_select)} groups ({search} search)")
        first = max(1, min(HALVING_FIRST, sweep_prompts // 3))
        _warn_underpowered(to_select, plan, sweep_prompts, first if search == "halving" else 0)
        if search == "halving":
            table = run_halving(
                model, config, sweep_dir, first=first, pairs=plan.validation, train_pairs=plan.train, executor=executor
            ).table
        else:
            table = run_sweep(
                model, config, sweep_dir, pairs=plan.validation, train_pairs=plan.train, executor=executor
            ).table
    choices = select(table) if table is not None else {}
    choices.update(
        {
            (name, cond): replace(c, instruction=name, with_instruction=cond)
            for name, c in settings.items()
            for cond in (False, True)
        }
    )
    missing = {g.name for g in groups if (g.name, False) not in choices}
    vectors = vectors_for(model, [g for g in groups if g.name not in missing], sweep_dir, n_train, plan.train)
    buckets: dict[tuple, list[tuple[Example, tuple[tuple[str, ...], ...]]]] = defaultdict(list)
    skipped = dict(plan.skipped)
    for example, each in plan.items:
        names = tuple(dict.fromkeys(n for groups in each for n in groups))
        if set(names) & missing:
            skipped[example.key] = f"the sweep in {sweep_dir} does not cover {', '.join(sorted(set(names) & missing))}"
            continue
        tokens = max_new_tokens or max(i.budget for i in example.instructions)
        buckets[(names, tokens)].append((example, each))
    rows = []
    log(
        f"held-out test: {sum(map(len, buckets.values()))} records in {len(buckets)} batches, each generated and scored in four conditions"
    )
    for (names, tokens), entries in buckets.items():
        examples = [e for e, _ in entries]
        without = [s for n in names for s in choices[(n, False)].spec(vectors[n])]
        with_ = [s for n in names for s in choices.get((n, True), choices[(n, False)]).spec(vectors[n])]
        label = " + ".join(names)
        log(f"{label}: {len(examples)} records × 4 conditions, {tokens} new tokens")
        for i, r in enumerate(four_conditions(model, examples, without, with_, label, max_new_tokens=tokens)):
            r["groups"] = [
                list(g) for g in entries[i % len(entries)][1]
            ]  # per instruction; rows come condition by condition, examples in order
            rows.append(r)
        if conditional and without:
            gated = [
                replace(s, when=vectors[n].condition()) for n in names for s in choices[(n, False)].spec(vectors[n])
            ]
            for i, r in enumerate(conditional_conditions(model, examples, gated, label, max_new_tokens=tokens)):
                r["groups"] = [list(g) for g in entries[i % len(entries)][1]]
                rows.append(r)
    log(f"scoring {len(rows)} rows: IFEval's accuracies, strict and loose, with bootstrap CIs")
    scores = ifeval_scores(rows)
    result = {
        "model": model.name,
        "model_fingerprint": model.fingerprint(),
        "data": str(plan.data),
        "data_sha256": file_hash(plan.data),
        "selection_rule": selection_rule(),
        "degeneracy_rule": DEGENERACY_RULE,
        "checkers": checkers_version(),
        "pairs": plan.pairs,
        "search": search,
        "stopped_early": _stopped(table),
        "n_examples": len(plan.examples) or len(plan.items),
        "n_evaluated": len({r["prompt_id"] for r in rows}),
        "skipped": skipped,
        "groups": {
            g.name: {
                "members": [m.id for m in g.members],
                "vector_pairs": "file" if g.name in plan.train else "queries",
                "without_instruction": _setting(choices.get((g.name, False))),
                "with_instruction": _setting(choices.get((g.name, True), choices.get((g.name, False)))),
            }
            for g in groups
        },
        "scores": scores.to_dict("records"),
    }
    write_jsonl(out / "rows.jsonl", rows)
    write_atomic(out / "scores.csv", scores.to_csv(index=False))
    write_atomic(out / "summary.json", json.dumps(result, indent=2, default=float))
    evaluation = Evaluation(result, scores, pd.DataFrame(rows), out)
    write_atomic(out / "report.md", report_markdown(result, scores, evaluation.table))
    export(evaluation.drift_figure(), out, "drift", static=False)
    log(f"report: {out / 'report.md'} (validation against test: {out / 'drift.html'})")
    return evaluation


def ifeval_scores(rows: Sequence[dict]) -> pd.DataFrame:
    """IFEval's four accuracies per condition: prompt level over records, instruction level over
    (record, instruction); overall and per instruction id. Tidy: one row per value, with 95 % CI."""
    out = []
    by_cond: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_cond[r["condition"]].append(r)
    for cond in [c for c in CONDITIONS if c in by_cond]:
        group = by_cond[cond]
        each = [
            (iid, s, l) for r in group for iid, s, l in zip(r["instruction_ids"], r["strict_each"], r["loose_each"])
        ]
        # a vector group narrower than its id (one language, one keyword) is reported on its own too
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
        for (scope, level), values in series.items():
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
