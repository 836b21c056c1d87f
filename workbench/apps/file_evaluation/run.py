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
   (default): successive halving, a screen of every layer at 1× on 5 validation prompts
   (``sweep.SCREEN_PROMPTS``: a cell flipping half the failing prompts passes it with p = 0.97), the 3
   best cells per group that beat no steering there, and 0.5×/1×/1.5×/2×/projection at the best one's
   layer, on the other 13 of the default 18, which alone score them (``sweep.search``); ``"reuse"``: every
   cell on every prompt; ``"exhaustive"``: both prompt conditions × {0.5×, 1×, 2×, projection} on every
   prompt.
4. **Report**: four conditions per record (a record with several instructions composes their vectors,
   each at its own selected layer), each record with its instructions' largest token budget; IFEval's
   prompt- and instruction-level accuracy, strict and loose, overall and per id, with exact
   (Clopper-Pearson) CIs, and McNemar's exact test of steering on the same records
   (``results.write_evaluation`` writes them; ``markdown`` renders the Markdown).

Every option is a field of ``EvaluateOptions`` (``plan``); ``evaluate_file(model, data, out,
options)`` takes one, and the same names as keywords override it (``evaluate_file(..., layers=(9,))``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd

from workbench.apps.file_evaluation.folders import claim_evaluation
from workbench.apps.file_evaluation.plan import EvaluateOptions, Item, Plan, default_layers, plan_instructions
from workbench.apps.file_evaluation.results import Evaluation, read_summary, write_evaluation
from workbench.checkers import checkers_version
from workbench.errors import WorkbenchError
from workbench.instructions import Group, Instruction, data_hash
from workbench.io import file_hash, log
from workbench.judging.quality import DEGENERACY_RULE
from workbench.models import Model
from workbench.rows import EvaluationRow
from workbench.store import vectors_for
from workbench.sweep import (
    SCREEN_PROMPTS,
    Choice,
    SweepConfig,
    conditional_conditions,
    fewest_prompts,
    four_conditions,
    load_halving,
    load_table,
    run_halving,
    run_sweep,
    select,
    selection_rule,
)

Choices = dict[tuple[str, bool], Choice]
Buckets = dict[tuple[tuple[str, ...], int], list[Item]]


def _options(options: EvaluateOptions | None, overrides: Mapping[str, object]) -> EvaluateOptions:
    """``options`` (default: the defaults) with keyword overrides, checked again."""
    return replace(options or EvaluateOptions(), **overrides)  # type: ignore[arg-type]


def evaluate_file(
    model: Model,
    data: str | Path,
    out: str | Path,
    options: EvaluateOptions | None = None,
    *,
    plan: Plan | None = None,
    **overrides,
) -> Evaluation:
    """Vectors, layer/setting selection on validation prompts (or ``options.sweep_dir``), then the four
    conditions on every test record; writes ``rows.jsonl``, ``scores.csv``, ``summary.json``,
    ``report.md``, ``drift.html`` and returns an ``Evaluation``. ``overrides`` are ``EvaluateOptions``
    fields by name; ``plan``: the file's plan if already made (``plan_file``)."""
    options = _options(options, overrides)
    plan = plan or options.plan_for(data)
    return evaluate_plan(model, plan, out, options)


def evaluate_instructions(
    model: Model,
    instructions: Sequence[str | Instruction | Group],
    out: str | Path,
    test_prompts: int = 12,
    options: EvaluateOptions | None = None,
    **overrides,
) -> Evaluation:
    """``evaluate_file`` for instructions rather than a file: vectors, selection, four-condition report.
    ``options`` / ``overrides``: as for ``evaluate_plan`` (sweep_prompts, layers, search, max_new_tokens, ...)."""
    options = _options(options, overrides)
    return evaluate_plan(model, plan_instructions(instructions, test_prompts, options.seed), out, options)


def evaluate_plan(
    model: Model, plan: Plan, out: str | Path, options: EvaluateOptions | None = None, **overrides
) -> Evaluation:
    """Run a plan: select each group's setting, then the four conditions on its items (see the module doc);
    ``options.conditional`` adds the same steering made conditional (``InstructionVector.condition``), on
    prompts without and with the instructions."""
    options = _options(options, overrides)
    out = Path(out)
    read_summary(out)  # a folder written by a newer workbench is refused before any work
    sweep_dir = Path(options.sweep_dir) if options.sweep_dir else out / "sweep"
    groups = list(plan.groups.values())
    settings = dict(options.settings or {})
    unknown = sorted(set(settings) - set(plan.groups))
    if unknown:
        have = ", ".join(plan.groups)
        raise WorkbenchError(
            f"settings name groups the file does not have: {', '.join(unknown)}; its groups are {have}"
        )
    to_select = [g for g in groups if g.name not in settings]
    search = claim_evaluation(out, plan, options, model)  # the kind of sweep selection reads: given, or run here
    log(
        f"instruction vectors for {len(groups)} groups ({options.n_train} training pairs each): "
        f"recorded once, kept in {sweep_dir / 'vectors'}"
    )
    table = _selection_table(model, plan, to_select, sweep_dir, options) if to_select else None
    choices = _choices(table, settings)
    missing = {g.name for g in groups if (g.name, False) not in choices}
    kept = [g for g in groups if g.name not in missing]
    vectors = vectors_for(model, kept, sweep_dir, options.n_train, plan.train, aggregator=options.aggregator)
    buckets, skipped = _buckets(plan, missing, sweep_dir, options.max_new_tokens)
    rows = _held_out(model, buckets, choices, vectors, options.conditional)
    summary = _summary(model, plan, options, table, rows, choices, skipped) | {"search": search}
    return write_evaluation(out, summary, rows)


def _selection_table(
    model: Model, plan: Plan, to_select: list[Group], sweep_dir: Path, options: EvaluateOptions
) -> pd.DataFrame:
    """The validation sweep's table for the groups to select: read from a given sweep, or run here."""
    if options.sweep_dir is not None:  # a halving sweep (evaluate's own OUT/sweep) or a plain one
        return load_halving(sweep_dir) if (sweep_dir / "round1").is_dir() else load_table(sweep_dir)
    exhaustive = options.search == "exhaustive"
    own = [p.with_instruction for ps in plan.train.values() for p in ps]
    config = SweepConfig(
        model=model.name,
        instructions=tuple(to_select),
        layers=tuple(options.layers or default_layers(model)),
        coefficients=(0.5, 1.0, 2.0) if exhaustive else (1.0,),
        n_train=options.n_train,
        n_prompts=options.sweep_prompts,
        max_new_tokens=options.max_new_tokens,
        conditions=(False, True) if exhaustive else (False,),
        seed=options.seed,
        data=data_hash(own) if plan.train else "",
        aggregator=options.aggregator,
    )
    log(f"selecting layer and setting on validation prompts for {len(to_select)} groups ({options.search} search)")
    first = min(SCREEN_PROMPTS, max(1, options.sweep_prompts // 3))  # the screen; the finalists get the rest
    halving = options.search == "halving"
    _warn_underpowered(to_select, plan, options.sweep_prompts, first if halving else 0)
    pairs, train, executor = plan.validation, plan.train, options.executor
    if halving:
        return run_halving(
            model, config, sweep_dir, first=first, pairs=pairs, train_pairs=train, executor=executor
        ).table
    return run_sweep(model, config, sweep_dir, pairs=pairs, train_pairs=train, executor=executor).table


def _choices(table: pd.DataFrame | None, settings: Mapping[str, Choice]) -> Choices:
    """Selection's choices, with the hand-set settings in both prompt conditions."""
    choices = select(table) if table is not None else {}
    choices.update(
        {
            (name, cond): replace(c, instruction=name, with_instruction=cond)
            for name, c in settings.items()
            for cond in (False, True)
        }
    )
    return choices


def _buckets(plan: Plan, missing: set[str], sweep_dir: Path, max_new_tokens: int | None) -> tuple[Buckets, dict]:
    """Test items batched by (vector groups, token budget); items a given sweep does not cover are skipped."""
    buckets: Buckets = defaultdict(list)
    skipped = dict(plan.skipped)
    for example, each in plan.items:
        names = tuple(dict.fromkeys(n for groups in each for n in groups))
        if set(names) & missing:
            skipped[example.key] = f"the sweep in {sweep_dir} does not cover {', '.join(sorted(set(names) & missing))}"
            continue
        tokens = max_new_tokens or max(i.budget for i in example.instructions)
        buckets[(names, tokens)].append((example, each))
    return buckets, skipped


def _held_out(
    model: Model, buckets: Buckets, choices: Choices, vectors: dict, conditional: bool
) -> list[EvaluationRow]:
    """Every batch in four conditions (and, ``conditional``, gated steering); each row keeps its record's
    groups per instruction (rows come condition by condition, examples in order)."""
    rows: list[EvaluationRow] = []
    n_records = sum(map(len, buckets.values()))
    log(f"held-out test: {n_records} records in {len(buckets)} batches, each generated and scored in four conditions")
    for (names, tokens), entries in buckets.items():
        examples = [e for e, _ in entries]
        without = [s for n in names for s in choices[(n, False)].spec(vectors[n])]
        with_ = [s for n in names for s in choices.get((n, True), choices[(n, False)]).spec(vectors[n])]
        label = " + ".join(names)
        log(f"{label}: {len(examples)} records × 4 conditions, {tokens} new tokens")
        made = four_conditions(model, examples, without, with_, label, max_new_tokens=tokens)
        if conditional and without:
            gated = [
                replace(s, when=vectors[n].condition()) for n in names for s in choices[(n, False)].spec(vectors[n])
            ]
            made += conditional_conditions(model, examples, gated, label, max_new_tokens=tokens)
        rows += [EvaluationRow(**r, groups=[list(g) for g in entries[i % len(entries)][1]]) for i, r in enumerate(made)]
    return rows


def _summary(
    model: Model,
    plan: Plan,
    options: EvaluateOptions,
    table: pd.DataFrame | None,
    rows: list[EvaluationRow],
    choices: Choices,
    skipped: dict[str, str],
) -> dict:
    """What ``summary.json`` records besides the scores (``write_evaluation`` adds them)."""
    return {
        "model": model.name,
        "model_fingerprint": model.fingerprint(),
        "data": str(plan.data),
        "data_sha256": file_hash(plan.data),
        "data_format": plan.reader,
        "selection_rule": selection_rule(),
        "degeneracy_rule": DEGENERACY_RULE,
        "checkers": checkers_version(),
        "custom_checkers": plan.custom_checkers,  # a Python checker's loose verdict: strict unless opted in
        "pairs": plan.pairs,
        "search": options.search,
        "aggregator": options.aggregator,
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
            for g in plan.groups.values()
        },
    }


def _setting(choice: Choice | None) -> dict:
    return choice.summary() if choice else {"layer": None, "mode": "none", "coefficient": None}


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
            f"warning: too few validation prompts for selection to find an effect (it needs {need} tested; "
            "n = prompts tested): "
            + ", ".join(f"{k} (n = {v})" for k, v in few.items())
            + "; these stay unsteered: give more validation records or --pairs queries"
        )


def _stopped(table: pd.DataFrame | None) -> list[str]:
    """Groups whose halving stopped after the first round: no cell beat no steering there."""
    if table is None or "round" not in table:
        return []
    return sorted(set(table["instruction"]) - set(table.loc[table["round"] == 2, "instruction"]))
