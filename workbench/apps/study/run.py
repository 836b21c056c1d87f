"""The end-to-end study behind ``workbench demo``: which instructions the model follows, their
vectors, a layer × coefficient sweep, the held-out four-condition report, word exclusion, a
two-instruction composition, separability, figures and a Markdown/HTML report.

Every stage writes into the output folder and is skipped when its results are already there. The
folder's files are named in ``files`` (``StudyFiles``); ``run_study`` returns them as
``StudyResults``, which the report and the figures read. Stages: ``stages``; the configuration:
``config``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import pandas as pd

from workbench import analysis
from workbench.apps.study.config import StudyConfig, screen_instructions
from workbench.apps.study.figures import make_figures
from workbench.apps.study.files import STUDY_FOLDER, Choices, StudyFiles, StudyResults
from workbench.apps.study.report import write_report
from workbench.apps.study.stages import (
    composition,
    composition_pair,
    exclusion,
    followed,
    report_unit,
    screen,
    separability_all,
)
from workbench.errors import WorkbenchError
from workbench.io import claim_dir, log, write_atomic
from workbench.judging.quality import DEGENERACY_RULE
from workbench.models import Model
from workbench.store import vector_for
from workbench.sweep import (
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

__all__ = ["StudyConfig", "StudyResults", "run_study", "screen_instructions"]


def run_study(
    model: Model,
    out: str | Path,
    cfg: StudyConfig,
    figures: bool = True,
    static: bool = True,
    executor: Executor | None = None,
) -> StudyResults:
    """The whole study into ``out`` (resumed where a run before stopped); its results, as saved."""
    files = StudyFiles.at(out)
    _claim(model, cfg, files)
    t0 = time.time()
    log(f"{model.name} in {cfg.dtype}; results in {files.folder}")
    size = f"{len(screen_instructions(cfg.instructions))} instructions × {cfg.screen_prompts} prompts"
    log(f"1/7 which instructions does {model.name} follow when told? ({size})")
    follow = screen(model, cfg, files, executor)
    write_atomic(files.follow, follow.to_csv(index=False))  # kept even when nothing counts as followed
    names = followed(follow, cfg)
    if not names:
        raise WorkbenchError(
            f"{model.name} follows none of the screened instructions when told (threshold {cfg.follow_threshold}); "
            "try another model"
        )
    log(f"   followed: {', '.join(names)}")
    table = _sweep(model, cfg, files, names, executor)
    choices = select(table)
    log("3/7 held-out test prompts in four conditions")
    rows = _held_out(model, cfg, files, names, choices)
    log("4/7 word exclusion with a negative include-word vector")
    ex_rows, ex_choice = exclusion(model, cfg, files)
    summary = summarize(pd.DataFrame(rows + ex_rows))
    cells = cell_summary(table)
    comp = _composition(model, cfg, files, names, cells, choices)
    log("6/7 separability (held-out AUROC per layer) and vector geometry")
    sep, proj, vectors = separability_all(model, names, cfg, files)
    results = StudyResults(
        files=files,
        run=_run_record(cfg, files, names, model.name, t0) | {"exclusion": asdict(ex_choice)},
        summary=summary,
        cells=cells,
        choices=choices,
        separability=sep,
        gain_vs_separability=analysis.gain_vs_separability(analysis.steering_gain(cells), sep),
        projections=proj,
        mean_diffs={n: v.mean_diff for n, v in vectors.items()},
        proj_with={n: v.proj_with for n, v in vectors.items()},
        follow=follow,
        composition=comp,
        logit_lens=analysis.logit_lens(model, vectors),
    )
    results.save()
    if figures:
        log("7/7 figures and report")
        make_figures(files.folder, files.figures, static)
    write_report(results)
    log(f"done in {results['seconds']:.0f} s: {files.report_md}")
    return results


def _claim(model: Model, cfg: StudyConfig, files: StudyFiles) -> None:
    """The folder refuses a study of another configuration, model or rules."""
    identity = asdict(cfg) | {
        "layers": list(cfg.layers),
        "coefficients": list(cfg.coefficients),
        "instructions": list(cfg.instructions),
        "selection_rule": selection_rule(),
        "degeneracy_rule": DEGENERACY_RULE,
        "model_fingerprint": model.fingerprint(),
    }
    claim_dir(files.folder, identity, "study", STUDY_FOLDER)


def _sweep(model: Model, cfg: StudyConfig, files: StudyFiles, names: list[str], executor: Executor | None):
    """The layer × coefficient sweep of the followed instructions on validation prompts: its table."""
    log(
        f"2/7 sweep: {len(names)} instructions × layers {list(cfg.layers)} × {list(cfg.coefficients)} + projection "
        f"× {cfg.sweep_prompts} validation prompts"
    )
    log(
        f"   vectors: {len(names)} instructions × {cfg.n_train} training pairs, recorded once into "
        f"{files.sweep / 'vectors'}"
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
    return run_sweep(model, sweep_cfg, files.sweep, executor=executor).table


def _held_out(model: Model, cfg: StudyConfig, files: StudyFiles, names: list[str], choices: Choices) -> list[dict]:
    """Each followed instruction's test prompts in four conditions, and where it steers, conditionally."""
    rows = []
    for name in names:
        vec = vector_for(model, name, files.sweep, cfg.n_train)
        cw = choices[(name, False)]
        cwi = choices.get((name, True), cw)
        examples = catalog_examples(name, "test", limit=cfg.test_prompts)
        tokens = cfg.tokens(name)
        make = partial(four_conditions, model, examples, cw.spec(vec), cwi.spec(vec), name, (cw, cwi), tokens)
        rows += report_unit(files, name, make)
        if cw.steers:  # the same steering, conditional: on prompts without and with the instruction
            gated = [replace(spec, when=vec.condition()) for spec in cw.spec(vec)]
            make = partial(conditional_conditions, model, examples, gated, name, cw, tokens)
            rows += report_unit(files, f"{name}__conditional", make)
    return rows


def _composition(
    model: Model, cfg: StudyConfig, files: StudyFiles, names: list[str], cells: pd.DataFrame, choices: Choices
) -> pd.DataFrame | None:
    """Two followed instructions' vectors at once, each at its own layer (None with fewer than two)."""
    if len(names) < 2:
        log("5/7 composition skipped: needs two followed instructions")
        return None
    a, b = composition_pair(names, choices)
    log(f"5/7 composition: {a} + {b}, each at its own layer")
    comp = composition(model, cfg, files, a, b, cells, choices)
    comp.insert(0, "b_name", b)
    comp.insert(0, "a_name", a)
    return comp


def _run_record(cfg: StudyConfig, files: StudyFiles, names: list[str], model: str, t0: float) -> dict:
    """``result.json``: the run's model, precision, rules and followed instructions, and its time summed
    over the invocations that made the folder."""
    earlier = json.loads(files.result.read_text()).get("seconds", 0.0) if files.result.exists() else 0.0
    this_run = round(time.time() - t0, 1)
    return {
        "model": model,
        "dtype": cfg.dtype,
        "selection_rule": selection_rule(),
        "degeneracy_rule": DEGENERACY_RULE,
        "sweep_with_instruction": True in cfg.conditions,
        "followed": names,
        "n_pairs": cfg.n_train,
        "seconds": round(earlier + this_run, 1),
        "this_run_seconds": this_run,
    }  # StudyResults.save stamps its format
