"""What each ``workbench`` subcommand does, given its parsed arguments (``subcommands`` spells them)."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from pathlib import Path

from workbench.apps.cli.arguments import VLLM_FLAGS
from workbench.errors import WorkbenchError
from workbench.generation.steering import OPERATORS, Steer
from workbench.io import check_writable_dir, check_writable_file
from workbench.vectors import InstructionVector


def parse_instructions(names):
    """Parse instruction spellings before any model loads, so a typo costs no loading time."""
    from workbench.instructions import get_instruction

    return [get_instruction(n) for n in names]


def _load(args):
    """The model; with ``--engine vllm`` its generation runs in vLLM (``vllm_engine.use_vllm``)."""
    from workbench.models import load_model

    vllm = getattr(args, "engine", "workbench") == "vllm"
    memory = {k: v for k in VLLM_FLAGS if (v := getattr(args, k, None)) is not None}
    if memory and not vllm:
        raise WorkbenchError(f"--{next(iter(memory)).replace('_', '-')} needs --engine vllm")
    if vllm:
        from workbench.engines.vllm.engine import import_vllm, use_vllm

        import_vllm()  # not installed: one line, before any loading
    model = load_model(args.model, device=args.device, dtype=args.dtype)
    return use_vllm(model, **{VLLM_FLAGS[k]: v for k, v in memory.items()}) if vllm else model


def _executor(args):
    """``--ray [ADDRESS]``: the sweep's batches on Ray workers (``local``: a Ray instance on this machine)."""
    if getattr(args, "ray", None) is None:
        return None
    from workbench.sweep.cluster import RayExecutor, require_ray

    require_ray()
    return RayExecutor(address=None if args.ray == "local" else args.ray, workers=args.ray_workers)


def _report(executor) -> None:
    if executor is not None:
        print(executor.summary(), file=sys.stderr)


def cmd_vectors(args) -> None:
    from workbench.extract import AGGREGATORS, compute_vector

    instructions = parse_instructions(args.instructions)
    check_writable_dir(args.out)
    model = _load(args)
    for inst in instructions:
        vec = compute_vector(model, inst, n_pairs=args.n_train, progress=True, aggregator=AGGREGATORS[args.aggregator])
        path = vec.save(Path(args.out) / f"{inst.slug}.safetensors")
        norm = float(vec.norms[model.n_layers // 2])
        print(f"{inst.id}: {vec.n_pairs} pairs, norm at middle layer {norm:.2f} -> {path}")


def _parse_spec(text: str) -> tuple[str, int, float | str]:
    """INSTRUCTION_OR_FILE@LAYER[:COEF|:OPERATOR] -> (name, layer, a finite coefficient to add, or the name
    of an operator whose coefficient is a target (its default, z̄) or none: project, ablate, ...)."""
    try:
        name, rest = text.rsplit("@", 1)
        layer_text, _, coef_text = rest.partition(":")
        layer = int(layer_text)
    except ValueError:
        raise WorkbenchError(
            f"bad --vector {text!r}: use NAME@LAYER[:COEF] (e.g. one_sentence@15:1.5 or french@19:project)"
        ) from None
    if not name or layer < 0:
        raise WorkbenchError(
            f"bad --vector {text!r}: use NAME@LAYER[:COEF] with a layer from 0 (e.g. one_sentence@15:1.5)"
        )
    if coef_text in OPERATORS and OPERATORS[coef_text].coefficient != "scale":
        return name, layer, coef_text
    try:
        coef = float(coef_text or "1")
    except ValueError:
        named = [n for n, op in OPERATORS.items() if op.coefficient != "scale"]
        raise WorkbenchError(
            f"bad coefficient {coef_text!r} in --vector {text!r}: use a number or one of {', '.join(named)}"
        ) from None
    if not math.isfinite(coef):
        raise WorkbenchError(f"bad coefficient {coef_text!r} in --vector {text!r}: it must be a finite number")
    return name, layer, coef


def steer_at(vec: InstructionVector, layer: int, setting: float | str, **options) -> Steer:
    """A vector's steering at ``layer`` from a command line's setting: an operator's name (``"project"``:
    projection matching to z̄; its default coefficient, and ``absolute`` means nothing there) or a
    coefficient added, × the layer's mean-difference norm unless ``absolute``. ``options``: the rest of
    ``InstructionVector.steer`` (positions, when)."""
    if isinstance(setting, str):
        options.pop("absolute", None)
        return vec.steer(layer, mode=setting, **options)
    return vec.steer(layer, setting, **options)


def cmd_steer(args) -> None:
    from workbench.generation.generate import generate
    from workbench.models import check_layer
    from workbench.store import cached_vector

    parsed = [_parse_spec(text) for text in args.vector]
    files = {}
    for name, _, _ in parsed:
        if name.endswith(".safetensors"):
            files[name] = InstructionVector.load(name)  # a bad file is refused before the model loads
        else:
            parse_instructions([name])
    model = _load(args)
    specs = []
    for name, layer, coef in parsed:
        check_layer(model, layer)
        if name in files:
            vec = files[name]
            vec.check_compatible(model)
        else:
            vec = cached_vector(model, name, n_pairs=args.n_train, aggregator=args.aggregator)
        when = vec.condition() if args.conditional else None
        specs.append(steer_at(vec, layer, coef, absolute=args.absolute, positions=args.positions, when=when))
    plain, steered = (
        generate(model, [args.prompt], steer=s, max_new_tokens=args.max_new_tokens)[0] for s in ([], specs)
    )
    print(
        json.dumps(
            {"prompt": args.prompt, "unsteered": plain.text, "steered": steered.text, "vectors": args.vector},
            indent=2,
            ensure_ascii=False,
        )
    )


def cmd_sweep(args) -> None:
    from workbench.apps.file_evaluation.plan import default_layers
    from workbench.sweep import SweepConfig, cell_summary, run_sweep, select

    instructions = tuple(parse_instructions(args.instructions))
    check_writable_dir(args.out)
    executor = _executor(args)
    model = _load(args)
    config = SweepConfig(
        model=model.name,
        instructions=instructions,
        layers=args.layers or default_layers(model),
        coefficients=args.coefficients,
        project=not args.no_project,
        n_train=args.n_train,
        n_prompts=args.n_prompts,
        max_new_tokens=args.max_new_tokens,
        aggregator=args.aggregator,
    )
    table = run_sweep(model, config, args.out, executor=executor).table
    _report(executor)
    cell_summary(table).to_csv(Path(args.out) / "cells.csv", index=False)
    for (name, cond), c in select(table).items():
        prompt = "with" if cond else "without"
        setting = f"layer {c.layer} {c.mode} {c.coefficient}"
        print(f"{name} ({prompt} instruction): {setting} -> {c.score:.2f} (baseline {c.baseline:.2f})")


def cmd_evaluate(args) -> None:
    from workbench.apps.file_evaluation.folders import check_evaluation
    from workbench.apps.file_evaluation.plan import EvaluateOptions, refuse_beside_sweep
    from workbench.apps.file_evaluation.results import read_summary
    from workbench.apps.file_evaluation.run import evaluate_file
    from workbench.instructions import parse_group_by

    if not args.data:
        raise WorkbenchError(
            "give --data FILE.jsonl (IFEval format with prompt_without_instruction, or another: --format); "
            "`workbench demo` evaluates the catalog"
        )
    settled = {"--layers": args.layers, "--sweep-prompts": args.sweep_prompts, "--search": args.search}
    refuse_beside_sweep(args.sweep, settled)  # given at all, even at its default: the sweep settled it
    options = EvaluateOptions(
        sweep_dir=args.sweep,
        max_new_tokens=args.max_new_tokens,
        n_train=args.n_train,
        sweep_prompts=args.sweep_prompts or EvaluateOptions.sweep_prompts,
        group_by=parse_group_by(args.group_by),
        pairs=args.pairs,
        search=args.search or EvaluateOptions.search,
        layers=args.layers,
        skip_unknown=args.skip_unknown,
        seed=args.seed,
        conditional=args.conditional,
        aggregator=args.aggregator,
        reader=args.format,
    )
    plan = options.plan_for(args.data)
    check_writable_dir(args.out)
    read_summary(Path(args.out))  # an evaluation of a newer format there: refused before the model loads
    check_evaluation(Path(args.out), plan, options)  # other data there, another search, a sweep for other groups
    print(
        f"{len(plan.items)} records to evaluate in {len(plan.groups)} vector groups; {len(plan.skipped)} skipped",
        file=sys.stderr,
    )
    executor = _executor(args)
    model = _load(args)
    evaluate_file(model, args.data, args.out, replace(options, executor=executor), plan=plan)
    _report(executor)
    print((Path(args.out) / "report.md").read_text())


def cmd_analyze(args) -> None:
    from workbench import analysis
    from workbench.extract import compute_vector

    instructions = parse_instructions(args.instructions)
    check_writable_dir(args.out)
    model = _load(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for inst in instructions:
        _, w, wo = compute_vector(model, inst, n_pairs=args.n_train, return_activations=True, progress=True)
        sep = analysis.separability(w, wo, inst.id)
        path = out / f"separability_{inst.slug}.csv"
        sep.to_csv(path, index=False)
        best = sep.loc[sep["auroc"].idxmax()]
        print(f"{inst.id}: best held-out AUROC {best['auroc']:.3f} at layer {int(best['layer'])}; wrote {path}")


def cmd_figures(args) -> None:
    from workbench.apps.study.report import copy_report, make_figures

    check_writable_dir(args.out)
    written = make_figures(args.results, args.out, static=not args.html_only) + copy_report(args.results, args.out)
    print(f"wrote {len(written)} files to {args.out}")


def cmd_demo(args) -> None:
    from workbench.apps.study.run import StudyConfig, run_study

    if args.instructions and args.instructions not in (("all",), ("catalog",)):
        parse_instructions(args.instructions)
    check_writable_dir(args.out)
    executor = _executor(args)
    model = _load(args)
    tokens = (
        {}
        if args.max_new_tokens is None
        else {"max_new_tokens": None if args.max_new_tokens == "auto" else int(args.max_new_tokens)}
    )
    cfg = StudyConfig.for_model(
        model,
        quick=args.quick,
        layers=args.layers,
        instructions=args.instructions,
        follow_threshold=args.follow_threshold,
        min_gap=args.min_gap,
        **tokens,
    )
    run_study(model, args.out, cfg, static=not args.html_only, executor=executor)
    _report(executor)


def cmd_bench(args) -> None:
    from workbench.apps.bench import run_bench

    run_bench(args.model, quick=args.quick, json_path=args.json, device=args.device, dtype=args.dtype)


def cmd_export(args) -> None:
    from workbench.interop import export_control_vector, export_lm_eval

    check_writable_file(args.out)
    vec = InstructionVector.load(args.vector)
    if args.format == "lm-eval":
        if not args.layers:
            raise WorkbenchError("--format lm-eval needs --layers L (one or more layers to steer)")
        specs = [steer_at(vec, l, "project" if args.project else args.coefficient) for l in args.layers]
        path = export_lm_eval(specs, args.out)
        print(
            f"wrote lm-eval steering file {path}: lm_eval --model steered --model_args pretrained=DIR,steer_path={path}"
        )
        return
    path = export_control_vector(vec, args.out, coefficient=args.coefficient, layers=args.layers)
    print(f"wrote llama.cpp control vector {path}")


def cmd_export_model(args) -> None:
    from workbench.interop import export_model

    check_writable_dir(args.out)
    path = export_model(args.name, args.out)
    print(f"wrote {path}: a plain Hugging Face folder (float32) that lm-eval and transformers load offline")
