"""Evaluate steering on an external IFEval-format JSONL (e.g. the paper's format test set)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pandas as pd

from workbench.models import Model
from workbench.prompts import by_ifeval_id, load_ifeval_jsonl
from workbench.study import log
from workbench.io import write_atomic, write_jsonl
from workbench.sweep import Example, SweepConfig, four_conditions, load_table, run_sweep, select, summarize, vector_for


def default_layers(model: Model) -> tuple[int, ...]:
    n = model.n_layers
    return tuple(range(max(1, n // 5), n - 1, max(1, n // 10)))


def evaluate_file(model: Model, data: str | Path, out: str | Path, sweep_dir: str | Path | None = None, max_new_tokens: int = 64, n_train: int = 64, sweep_prompts: int = 12) -> dict:
    """Vectors from the catalog's training pairs, layer/coefficient from a validation sweep
    (or ``sweep_dir``), then the four conditions on the file's prompts; writes ``summary.json``."""
    out = Path(out)
    examples = load_ifeval_jsonl(data)
    groups: dict[str, list[Example]] = defaultdict(list)
    skipped: dict[str, str] = {}
    for ex in examples:
        label = ",".join(ex.instruction_id_list)
        if len(ex.instruction_id_list) != 1:
            skipped[label] = "several instructions in one prompt (compose vectors by hand)"
            continue
        inst = by_ifeval_id(ex.instruction_id_list[0], ex.kwargs[0])
        if inst is None:
            skipped[label] = "no catalog instruction builds a vector for this id"
            continue
        if not ex.prompt_without_instruction:
            skipped[label] = "the record has no prompt_without_instruction"
            continue
        groups[inst.id].append(Example(ex.key, ex.prompt_without_instruction, ex.prompt, ex.instruction_id_list, ex.kwargs))
    sweep_dir = Path(sweep_dir) if sweep_dir else out / "sweep"
    choices = {}
    if groups:
        if (sweep_dir / "units").exists() and sweep_dir != out / "sweep":
            table = load_table(sweep_dir)
        else:
            log(f"selecting layer and coefficient on validation prompts for {', '.join(groups)}")
            config = SweepConfig(model=model.name, instructions=tuple(sorted(groups)), layers=default_layers(model), n_train=n_train, n_prompts=sweep_prompts, max_new_tokens=max_new_tokens)
            table = run_sweep(model, config, sweep_dir)
        choices = select(table)
    rows = []
    for name, exs in groups.items():
        if (name, False) not in choices:
            skipped[name] = f"the sweep in {sweep_dir} does not cover it"
            continue
        vec = vector_for(model, name, sweep_dir, n_train)
        cw = choices[(name, False)]
        cwi = choices.get((name, True), cw)
        log(f"{name}: {len(exs)} prompts × 4 conditions")
        rows += four_conditions(model, exs, cw.spec(vec), cwi.spec(vec), name, (cw, cwi), max_new_tokens)
    summary = summarize(pd.DataFrame(rows)) if rows else pd.DataFrame()
    result = {"model": model.name, "data": str(data), "n_examples": len(examples), "skipped": skipped, "instructions": {}}
    for name, g in (summary.groupby("instruction") if len(summary) else []):
        result["instructions"][name] = {
            r["condition"]: {k: r[k] for k in ("loose", "strict", "n", "layer", "mode", "coefficient", "logprob", "degenerate", "ci_low", "ci_high")}
            for r in g.to_dict("records")
        }
    write_jsonl(out / "rows.jsonl", rows)
    write_atomic(out / "summary.json", json.dumps(result, indent=2, default=float))
    return result
