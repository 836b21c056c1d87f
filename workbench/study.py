"""The end-to-end study behind ``workbench demo``: which instructions the model follows, their
vectors, a layer × coefficient sweep, the held-out four-condition report, word exclusion, a
two-instruction composition, separability, figures and a Markdown/HTML report.

Every stage writes into the output folder and is skipped when its results are already there.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd
import torch

from workbench import analysis
from workbench.errors import WorkbenchError
from workbench.evaluate import DEGENERACY_RULE, score_rows
from workbench.generate import Generation, generate
from workbench.instructions import IFEVAL_IDS, catalog, get_instruction, instantiate, make_pairs
from workbench.io import atomic_path, claim_dir, log, read_jsonl, write_atomic, write_jsonl
from workbench.models import Model, dtype_name, native_bf16
from workbench.report import make_figures, unit_path, write_report
from workbench.store import vector_for
from workbench.sweep import (
    MAX_DEGENERATE,
    Choice,
    Executor,
    SweepConfig,
    catalog_examples,
    cell_summary,
    conditional_conditions,
    four_conditions,
    run_sweep,
    select,
    selection_rule,
    summarize,
)


@dataclass(frozen=True)
class StudyConfig:
    model: str
    quick: bool = False
    screen_prompts: int = 8  # validation prompts to measure following when told
    n_train: int = 64
    sweep_prompts: int = 8
    test_prompts: int = 20
    max_new_tokens: int | None = (
        64  # None: each instruction's own budget (instructions.budget; ~3× slower when all 26 are screened)
    )
    layers: tuple[int, ...] = ()
    coefficients: tuple[float, ...] = (1.0, 2.0)
    max_instructions: int = 3
    follow_threshold: float = 0.6  # share following when told, to count as "followed"
    min_gap: float = 0.25  # and this much above the share following without being told
    instructions: tuple[
        str, ...
    ] = ()  # empty: every IFEval id; ("catalog",): the curated catalog (screen_instructions)
    sweep_with_instruction: bool = True  # also sweep with the instruction in the prompt (for "instruction + steering")
    dtype: str = "float32"  # the model's compute precision (part of the results' identity)

    @property
    def conditions(self) -> tuple[bool, ...]:
        """Prompt conditions the sweep covers: without the instruction, and with it unless skipped."""
        return (False, True) if self.sweep_with_instruction and not self.quick else (False,)

    @classmethod
    def for_model(cls, model: Model, quick: bool = False, **overrides) -> StudyConfig:
        n = model.n_layers
        cost = _relative_cost(
            model
        )  # SmolLM2 float32 = 1 (805 s for the full study); Qwen bfloat16 ≈ 1.5; Qwen float32 ≈ 3.4
        large = cost > 2.0
        if quick:
            base = dict(
                screen_prompts=8,
                n_train=32,
                sweep_prompts=8,
                test_prompts=12,
                max_new_tokens=48,
                layers=tuple(sorted({min(max(l, 0), n - 1) for l in (n // 2 - 3, n // 2, n // 2 + 3)})),
                coefficients=(1.0,),
                max_instructions=1,
                instructions=("one_sentence",),
            )
        elif large:  # e.g. Qwen2.5-0.5B, ~3.5× SmolLM2's compute per token: fewer cells, same study
            base = dict(
                screen_prompts=5,
                sweep_prompts=8,
                test_prompts=14,
                coefficients=(1.0,),
                sweep_with_instruction=False,
                layers=tuple(sorted({min(round(n * f), n - 1) for f in (0.4, 0.55, 0.7, 0.8)})),
            )
        else:
            base = dict(
                layers=tuple(sorted({round(n * f) for f in (0.3, 0.4, 0.5, 0.6, 0.7)}))
            )  # middle layers, where the paper steers
            if cost > 1.2:  # "instruction + steering" then reuses the setting chosen without the instruction
                base["sweep_with_instruction"] = False
        overrides = {
            k: v for k, v in overrides.items() if v is not None or k == "max_new_tokens"
        }  # None tokens = auto budgets
        if overrides.get("instructions"):
            base["max_instructions"] = min(3, len(screen_instructions(overrides["instructions"])))
        base.update(overrides)
        return cls(model=model.name, quick=quick, dtype=dtype_name(model.dtype), **base)


def _relative_cost(model: Model) -> float:
    """Time per token relative to SmolLM2-135M in float32 (≈ 106M non-embedding weights; unembedding
    apart). Native bfloat16 runs about 2.2× faster on CPU (measured on Qwen2.5-0.5B)."""
    body = sum(p.numel() for name, p in model.hf.named_parameters() if "embed" not in name and "lm_head" not in name)
    fast = dtype_name(model.dtype) in ("bfloat16", "float16") and native_bf16()
    return body / 106e6 / (2.2 if fast else 1.0)


def screen_instructions(names: tuple[str, ...] = ()) -> tuple[str, ...]:
    """What the demo screens: by default (or ``("all",)``) every id lm-eval's IFEval registry builds,
    in its own words (languages: French and German); ``("catalog",)``: the curated catalog; else
    the given names."""
    if names in ((), ("all",)):
        langs = ("language:response_language[language=fr]", "language:response_language[language=de]")
        return tuple(i for i in IFEVAL_IDS if i != "language:response_language") + langs
    return tuple(catalog()) if names == ("catalog",) else names


def _tokens(cfg: StudyConfig, *names: str) -> int:
    return cfg.max_new_tokens or max(get_instruction(n).budget for n in names)


def screen(model: Model, cfg: StudyConfig, out: Path, executor: Executor | None = None) -> pd.DataFrame:
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
    told = run_sweep(model, config, out / "screen", executor=executor).table
    pairs = {name: make_pairs(name, "validation", limit=cfg.screen_prompts) for name in names}
    path = out / "screen" / "untold.jsonl"
    if path.exists():
        gens = [Generation(**{**g, "token_ids": tuple(g["token_ids"])}) for g in read_jsonl(path)]
    else:
        queries = [p.without_instruction for p in next(iter(pairs.values()))]
        gens = generate(model, queries, max_new_tokens=max(_tokens(cfg, n) for n in names))
        write_jsonl(path, [asdict(g) for g in gens])
    untold = [
        {
            "instruction": name,
            "with_instruction": False,
            "loose": p.instruction.check(g.first(_tokens(cfg, name), model).text, p.without_instruction).loose,
        }
        for name in names
        for p, g in zip(pairs[name], gens)
    ]
    table = pd.concat([told, pd.DataFrame(untold)], ignore_index=True)
    follow = table.groupby(["instruction", "with_instruction"])["loose"].mean().unstack()
    follow.columns = ["without" if not c else "with" for c in follow.columns]
    follow["gap"] = follow["with"] - follow["without"]
    follow["tokens"] = [_tokens(cfg, n) for n in follow.index]
    follow["needs"] = [
        get_instruction(n).budget for n in follow.index
    ]  # its own budget: more than `tokens` may cut a reply short
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


def _report_unit(out: Path, label: str, make_rows) -> list[dict]:
    path = unit_path(out, label)
    if path.exists():
        return read_jsonl(path)
    rows = make_rows()
    write_jsonl(path, rows)
    return rows


def exclusion(model: Model, cfg: StudyConfig, out: Path) -> tuple[list[dict], Choice]:
    """Word exclusion: the include-word vector with a negative coefficient (the paper's setup)."""
    vec = vector_for(model, "include_word", out / "sweep", cfg.n_train)
    layer = model.n_layers // 2
    val = catalog_examples("exclude_word", "validation", limit=cfg.sweep_prompts)
    best, best_score = None, -1.0
    for coef in (-1.0, -2.0):
        choice = Choice("exclude_word", False, layer, "add", coef, 0.0, 0.0, 0.0)
        rows = _report_unit(out, f"exclude_val_{coef:g}", lambda: _score_examples(model, val, choice.spec(vec), cfg))
        frac = sum(r["loose"] for r in rows) / len(rows)
        degenerate = sum(r["degenerate"] for r in rows) / len(rows)
        if degenerate <= MAX_DEGENERATE and frac > best_score:
            best, best_score = choice, frac
    best = best or Choice("exclude_word", False, layer, "add", -1.0, 0.0, 0.0, 0.0)
    test = catalog_examples("exclude_word", "test", limit=cfg.test_prompts)
    rows = _report_unit(
        out,
        "exclude_word",
        lambda: four_conditions(
            model, test, best.spec(vec), best.spec(vec), "exclude_word", (best, best), _tokens(cfg, "exclude_word")
        ),
    )
    return rows, best


def _score_examples(model, examples, steer, cfg) -> list[dict]:
    gens = generate(model, [e.query for e in examples], steer=steer, max_new_tokens=_tokens(cfg, "exclude_word"))
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
    model: Model, cfg: StudyConfig, out: Path, a: str, b: str, cells: pd.DataFrame, choices: dict
) -> pd.DataFrame:
    """Two instruction vectors at once, each at its own layer: coefficient grid on test prompts."""
    va, vb = vector_for(model, a, out / "sweep", cfg.n_train), vector_for(model, b, out / "sweep", cfg.n_train)
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
            model, [p.without_instruction for _, _, p in cells_ab], steer=steer, max_new_tokens=_tokens(cfg, a, b)
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

    rows = _report_unit(out, f"compose_{a}_{b}", make_rows)
    t = pd.DataFrame(rows)
    grid = t.groupby(["coef_a", "coef_b"])[["a", "b", "both", "degenerate"]].mean().reset_index()
    grid["layer_a"], grid["layer_b"], grid["n"] = la, lb, len(pairs)
    return grid


def separability_all(
    model: Model, names: list[str], cfg: StudyConfig, out: Path
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    seps, projs, vectors = [], [], {}
    for name in names:
        vec, w, wo = vector_for(model, name, out / "sweep", cfg.n_train, return_activations=True)
        vectors[name] = vec
        seps.append(analysis.separability(w, wo, name))
        mid = model.n_layers // 2
        projs.append(analysis.projections_frame(w, wo, sorted({2, mid, model.n_layers - 2}), name))
    return pd.concat(seps, ignore_index=True), pd.concat(projs, ignore_index=True), vectors


def run_study(
    model: Model,
    out: str | Path,
    cfg: StudyConfig,
    figures: bool = True,
    static: bool = True,
    executor: Executor | None = None,
) -> dict:
    out = Path(out)
    claim_dir(
        out,
        asdict(cfg)
        | {
            "layers": list(cfg.layers),
            "coefficients": list(cfg.coefficients),
            "instructions": list(cfg.instructions),
            "selection_rule": selection_rule(),
            "degeneracy_rule": DEGENERACY_RULE,
            "model_fingerprint": model.fingerprint(),
        },
        "study",
    )
    t0 = time.time()
    log(f"{model.name} in {cfg.dtype}; results in {out}")
    log(
        f"1/7 which instructions does {model.name} follow when told? ({len(screen_instructions(cfg.instructions))} instructions × {cfg.screen_prompts} prompts)"
    )
    follow = screen(model, cfg, out, executor)
    write_atomic(out / "follow.csv", follow.to_csv(index=False))
    names = followed(follow, cfg)
    if not names:
        raise WorkbenchError(
            f"{model.name} follows none of the screened instructions when told (threshold {cfg.follow_threshold}); try another model"
        )
    log(f"   followed: {', '.join(names)}")
    log(
        f"2/7 sweep: {len(names)} instructions × layers {list(cfg.layers)} × {list(cfg.coefficients)} + projection × {cfg.sweep_prompts} validation prompts"
    )
    log(
        f"   vectors: {len(names)} instructions × {cfg.n_train} training pairs, recorded once into {out / 'sweep' / 'vectors'}"
    )
    sweep_cfg = SweepConfig(
        model=model.name,
        instructions=tuple(names),
        layers=cfg.layers,
        coefficients=cfg.coefficients,
        n_train=cfg.n_train,
        n_prompts=cfg.sweep_prompts,
        max_new_tokens=cfg.max_new_tokens,
        conditions=cfg.conditions,
    )
    table = run_sweep(model, sweep_cfg, out / "sweep", executor=executor).table
    choices = select(table)
    log("3/7 held-out test prompts in four conditions")
    rows = []
    for name in names:
        vec = vector_for(model, name, out / "sweep", cfg.n_train)
        cw = choices[(name, False)]
        cwi = choices.get((name, True), cw)
        examples = catalog_examples(name, "test", limit=cfg.test_prompts)
        rows += _report_unit(
            out,
            name,
            lambda: four_conditions(model, examples, cw.spec(vec), cwi.spec(vec), name, (cw, cwi), _tokens(cfg, name)),
        )
        if cw.steers:  # the same steering, conditional: on prompts without and with the instruction
            conditional = [replace(spec, when=vec.condition()) for spec in cw.spec(vec)]
            rows += _report_unit(
                out,
                f"{name}__conditional",
                lambda: conditional_conditions(model, examples, conditional, name, cw, _tokens(cfg, name)),
            )
    log("4/7 word exclusion with a negative include-word vector")
    ex_rows, ex_choice = exclusion(model, cfg, out)
    summary = summarize(pd.DataFrame(rows + ex_rows))
    write_atomic(out / "summary.csv", summary.to_csv(index=False))
    comp = None
    cells = cell_summary(table)
    if len(names) >= 2:
        a, b = composition_pair(names, choices)
        log(f"5/7 composition: {a} + {b}, each at its own layer")
        comp = composition(model, cfg, out, a, b, cells, choices)
        comp.insert(0, "b_name", b)
        comp.insert(0, "a_name", a)
        write_atomic(out / "composition.csv", comp.to_csv(index=False))
    else:
        log("5/7 composition skipped: needs two followed instructions")
    log("6/7 separability (held-out AUROC per layer) and vector geometry")
    sep, proj, vectors = separability_all(model, names, cfg, out)
    gain = analysis.steering_gain(cells)
    joined = analysis.gain_vs_separability(gain, sep)
    write_atomic(out / "separability.csv", sep.to_csv(index=False))
    write_atomic(out / "gain_vs_separability.csv", joined.to_csv(index=False))
    write_atomic(out / "cells.csv", cells.to_csv(index=False))
    write_atomic(
        out / "choices.json",
        json.dumps({f"{k[0]}|{'with' if k[1] else 'without'}": asdict(v) for k, v in choices.items()}, indent=2),
    )
    write_atomic(out / "projections.csv", proj.to_csv(index=False))
    with atomic_path(out / "mean_diffs.pt") as tmp:  # tensors only; loaded with weights_only=True
        torch.save({n: v.mean_diff for n, v in vectors.items()}, tmp)
    with atomic_path(out / "proj_with.pt") as tmp:
        torch.save({n: v.proj_with for n, v in vectors.items()}, tmp)
    write_atomic(out / "logit_lens.csv", analysis.logit_lens(model, vectors).to_csv(index=False))
    earlier = (
        json.loads((out / "result.json").read_text()).get("seconds", 0.0) if (out / "result.json").exists() else 0.0
    )
    this_run = round(time.time() - t0, 1)
    result = {
        "model": model.name,
        "dtype": cfg.dtype,
        "selection_rule": selection_rule(),
        "degeneracy_rule": DEGENERACY_RULE,
        "sweep_with_instruction": True in cfg.conditions,
        "followed": names,
        "n_pairs": cfg.n_train,
        "seconds": round(earlier + this_run, 1),
        "this_run_seconds": this_run,
    }
    write_atomic(out / "result.json", json.dumps(result, indent=2))
    if figures:
        log("7/7 figures and report")
        make_figures(out, out / "figures", static)
    write_report(out, follow, summary, comp, sep, joined, choices, ex_choice, result)
    log(f"done in {result['seconds']:.0f} s: {out / 'report.md'}")
    return result
