"""The study's stages (``run_study`` runs them in order): the screen, which instructions count as
followed, word exclusion, a two-instruction composition and separability. Each keeps its held-out rows
as a report unit (``StudyFiles.unit``), so a rerun resumes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from functools import partial

import pandas as pd
import torch

from workbench import analysis
from workbench.apps.study.config import StudyConfig, screen_instructions
from workbench.apps.study.files import StudyFiles
from workbench.generation.generate import Generation, generate
from workbench.generation.steering import Steer
from workbench.instructions import get_instruction, instantiate, make_pairs
from workbench.io import read_jsonl, write_jsonl
from workbench.judging.scoring import score_rows
from workbench.models import Model
from workbench.store import vector_for
from workbench.sweep import (
    MAX_DEGENERATE,
    Choice,
    Example,
    Executor,
    SweepConfig,
    catalog_examples,
    four_conditions,
    run_sweep,
)


def screen(model: Model, cfg: StudyConfig, files: StudyFiles, executor: Executor | None = None) -> pd.DataFrame:
    """Does the model follow each instruction when told? (validation prompts, no steering)

    Told: one unsteered sweep unit per instruction. Untold: the same queries for every instruction,
    so they are generated once, at the largest budget, and each instruction checks its own prefix."""
    names = screen_instructions(cfg.instructions)
    config = SweepConfig(
        model=model.name,
        instructions=names,
        layers=(),
        n_train=cfg.n_train,
        n_prompts=cfg.screen_prompts,
        max_new_tokens=cfg.max_new_tokens,
        conditions=(True,),
    )
    told = run_sweep(model, config, files.screen, executor=executor).table
    pairs = {name: make_pairs(name, "validation", limit=cfg.screen_prompts) for name in names}
    path = files.screen / "untold.jsonl"
    if path.exists():
        gens = [Generation(**{**g, "token_ids": tuple(g["token_ids"])}) for g in read_jsonl(path)]
    else:
        queries = [p.without_instruction for p in next(iter(pairs.values()))]
        gens = generate(model, queries, max_new_tokens=max(cfg.tokens(n) for n in names))
        write_jsonl(path, [asdict(g) for g in gens])
    untold = [
        {
            "instruction": name,
            "with_instruction": False,
            "loose": p.instruction.check(g.first(cfg.tokens(name), model).text, p.without_instruction).loose,
        }
        for name in names
        for p, g in zip(pairs[name], gens)
    ]
    table = pd.concat([told, pd.DataFrame(untold)], ignore_index=True)
    follow = table.groupby(["instruction", "with_instruction"])["loose"].mean().unstack()
    follow.columns = ["without" if not c else "with" for c in follow.columns]
    follow["gap"] = follow["with"] - follow["without"]
    follow["tokens"] = [cfg.tokens(n) for n in follow.index]
    follow["needs"] = [get_instruction(n).budget for n in follow.index]  # more than `tokens` may cut a reply short
    return follow.sort_values("gap", ascending=False).reset_index()


def followed(follow: pd.DataFrame, cfg: StudyConfig) -> list[str]:
    """Instructions followed when told, largest gap first, one per family before any second."""
    ok = follow[(follow["with"] >= cfg.follow_threshold) & (follow["gap"] >= cfg.min_gap)]
    names = list(ok["instruction"])
    first, seen = [], set()
    for name in names:
        family = get_instruction(name).family
        if family not in seen:
            first.append(name)
            seen.add(family)
    return (first + [n for n in names if n not in first])[: cfg.max_instructions]


def report_unit(files: StudyFiles, label: str, make_rows: Callable[[], Sequence[Mapping]]) -> list[dict]:
    """One report unit's held-out rows: read back when a run before made them, else made and kept."""
    path = files.unit(label)
    if path.exists():
        return read_jsonl(path)
    rows = [dict(r) for r in make_rows()]
    write_jsonl(path, rows)
    return rows


def exclusion(model: Model, cfg: StudyConfig, files: StudyFiles) -> tuple[list[dict], Choice]:
    """Word exclusion: the include-word vector with a negative coefficient (the paper's setup)."""
    vec = vector_for(model, "include_word", files.sweep, cfg.n_train)
    layer = model.n_layers // 2
    val = catalog_examples("exclude_word", "validation", limit=cfg.sweep_prompts)
    best, best_score = None, -1.0
    for coef in (-1.0, -2.0):
        choice = Choice("exclude_word", False, layer, "add", coef, 0.0, 0.0, 0.0)
        rows = report_unit(files, f"exclude_val_{coef:g}", partial(_score_examples, model, val, choice.spec(vec), cfg))
        frac = sum(r["loose"] for r in rows) / len(rows)
        degenerate = sum(r["degenerate"] for r in rows) / len(rows)
        if degenerate <= MAX_DEGENERATE and frac > best_score:
            best, best_score = choice, frac
    best = best or Choice("exclude_word", False, layer, "add", -1.0, 0.0, 0.0, 0.0)
    test = catalog_examples("exclude_word", "test", limit=cfg.test_prompts)
    spec = best.spec(vec)
    make = partial(four_conditions, model, test, spec, spec, "exclude_word", (best, best), cfg.tokens("exclude_word"))
    rows = report_unit(files, "exclude_word", make)
    return rows, best


def _score_examples(model: Model, examples: list[Example], steer: list[Steer], cfg: StudyConfig) -> list[dict]:
    gens = generate(model, [e.query for e in examples], steer=steer, max_new_tokens=cfg.tokens("exclude_word"))
    rows = [
        {
            "query": e.query,
            "prompt": e.query,
            "instruction_ids": e.instruction_ids,
            "kwargs": e.kwargs,
            "text": g.text,
            "n_tokens": len(g.token_ids),
        }
        for e, g in zip(examples, gens)
    ]
    return score_rows(model, rows)


def best_layer(cells: pd.DataFrame, name: str, choices: dict) -> int:
    """The selected layer, or (when no steering was selected) the layer where adding the vector
    without the instruction came closest to working."""
    choice = choices[(name, False)]
    if choice.steers:
        return choice.layer
    c = cells[(cells["instruction"] == name) & (~cells["with_instruction"].astype(bool)) & (cells["mode"] == "add")]
    return int(c.sort_values(["compliance", "layer"], ascending=[False, True]).iloc[0]["layer"])


def composition_pair(names: list[str], choices: dict) -> tuple[str, str]:
    """The two followed instructions whose steering gained most on validation."""
    ranked = sorted(names, key=lambda n: -(choices[(n, False)].score - choices[(n, False)].baseline))
    return ranked[0], ranked[1]


def composition(
    model: Model, cfg: StudyConfig, files: StudyFiles, a: str, b: str, cells: pd.DataFrame, choices: dict
) -> pd.DataFrame:
    """Two instruction vectors at once, each at its own layer: coefficient grid on test prompts."""
    va, vb = vector_for(model, a, files.sweep, cfg.n_train), vector_for(model, b, files.sweep, cfg.n_train)
    la, lb = best_layer(cells, a, choices), best_layer(cells, b, choices)
    ia, ib = get_instruction(a), get_instruction(b)
    pairs = make_pairs(a, "test", limit=cfg.sweep_prompts)
    grid = (0.0, 1.0, 2.0) if not cfg.quick else (0.0, 1.0)
    cells_ab = [(x, y, p) for x in grid for y in grid for p in pairs]

    def make_rows():  # the whole grid in one packed batch: per-prompt coefficients for each vector
        xs = torch.tensor([x for x, _, _ in cells_ab])
        ys = torch.tensor([y for _, y, _ in cells_ab])
        steer = [va.steer(la, xs), vb.steer(lb, ys)]
        gens = generate(
            model, [p.without_instruction for _, _, p in cells_ab], steer=steer, max_new_tokens=cfg.tokens(a, b)
        )
        rows = []
        for (x, y, p), g in zip(cells_ab, gens):
            fa, fb = instantiate(ia, p.query), instantiate(ib, p.query)
            rows.append(
                {
                    "query": p.query,
                    "prompt": p.query,
                    "instruction_ids": [fa.ifeval_id, fb.ifeval_id],
                    "kwargs": [fa.kwargs, fb.kwargs],
                    "text": g.text,
                    "n_tokens": len(g.token_ids),
                    "coef_a": x,
                    "coef_b": y,
                    "layer_a": la,
                    "layer_b": lb,
                }
            )
        rows = score_rows(model, rows)
        for r in rows:
            r["a"], r["b"] = r["loose_each"]
            r["both"] = r["loose"]
        return rows

    rows = report_unit(files, f"compose_{a}_{b}", make_rows)
    t = pd.DataFrame(rows)
    grid = t.groupby(["coef_a", "coef_b"])[["a", "b", "both", "degenerate"]].mean().reset_index()
    grid["layer_a"], grid["layer_b"], grid["n"] = la, lb, len(pairs)
    return grid


def separability_all(
    model: Model, names: list[str], cfg: StudyConfig, files: StudyFiles
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Held-out separability per layer, training projections at three layers, and each vector."""
    seps, projs, vectors = [], [], {}
    for name in names:
        vec, w, wo = vector_for(model, name, files.sweep, cfg.n_train, return_activations=True)
        vectors[name] = vec
        seps.append(analysis.separability(w, wo, name))
        mid = model.n_layers // 2
        projs.append(analysis.projections_frame(w, wo, sorted({2, mid, model.n_layers - 2}), name))
    return pd.concat(seps, ignore_index=True), pd.concat(projs, ignore_index=True), vectors
