"""The ``workbench`` command line: thin wrappers over the library, the embedded model by default."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.models import DEFAULT_MODEL, DEMO_MODEL, DTYPES

SUBCOMMANDS = ("vectors", "steer", "sweep", "evaluate", "analyze", "figures", "demo", "bench", "export")


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _load(args):
    from workbench.models import load_model

    return load_model(args.model, device=args.device, dtype=args.dtype)


def cmd_vectors(args) -> None:
    from workbench.vectors import compute_vector

    model = _load(args)
    for name in args.instructions:
        vec = compute_vector(model, name, n_pairs=args.n_train, progress=True)
        path = vec.save(Path(args.out) / f"{name}.safetensors")
        print(f"{name}: {vec.n_pairs} pairs, norm at middle layer {float(vec.norms[model.n_layers // 2]):.2f} -> {path}")


def _parse_spec(text: str):
    """INSTRUCTION_OR_FILE@LAYER[:COEF|:project]"""
    try:
        name, rest = text.split("@")
        layer, _, coef = rest.partition(":")
        return name, int(layer), coef or "1"
    except ValueError:
        raise WorkbenchError(f"bad --vector {text!r}: use NAME@LAYER[:COEF] (e.g. one_sentence@15:1.5 or french@19:project)") from None


def cmd_steer(args) -> None:
    from workbench.generate import generate
    from workbench.models import check_layer
    from workbench.vectors import InstructionVector, compute_vector

    model = _load(args)
    specs = []
    for text in args.vector:
        name, layer, coef = _parse_spec(text)
        check_layer(model, layer)
        vec = InstructionVector.load(name, model) if name.endswith(".safetensors") else compute_vector(model, name, n_pairs=args.n_train)
        if coef == "project":
            specs.append(vec.steer(layer, mode="project", positions=args.positions))
        else:
            try:
                value = float(coef)
            except ValueError:
                raise WorkbenchError(f"bad coefficient {coef!r} in --vector {text!r}: use a number or 'project'") from None
            specs.append(vec.steer(layer, value, relative=not args.absolute, positions=args.positions))
    plain, steered = (generate(model, [args.prompt], steer=s, max_new_tokens=args.max_new_tokens)[0] for s in ([], specs))
    print(json.dumps({"prompt": args.prompt, "unsteered": plain.text, "steered": steered.text, "vectors": args.vector}, indent=2, ensure_ascii=False))


def cmd_sweep(args) -> None:
    from workbench.external import default_layers
    from workbench.sweep import SweepConfig, cell_summary, run_sweep, select

    model = _load(args)
    config = SweepConfig(model=model.name, instructions=args.instructions, layers=args.layers or default_layers(model), coefficients=args.coefficients,
                         project=not args.no_project, n_train=args.n_train, n_prompts=args.n_prompts, max_new_tokens=args.max_new_tokens)
    table = run_sweep(model, config, args.out)
    cell_summary(table).to_csv(Path(args.out) / "cells.csv", index=False)
    for (name, cond), c in select(table).items():
        print(f"{name} ({'with' if cond else 'without'} instruction): layer {c.layer} {c.mode} {c.coefficient} -> {c.score:.2f} (baseline {c.baseline:.2f})")


def cmd_evaluate(args) -> None:
    from workbench.external import evaluate_file

    if not args.data:
        raise WorkbenchError("give --data FILE.jsonl (IFEval format with prompt_without_instruction); `workbench demo` evaluates the catalog")
    model = _load(args)
    result = evaluate_file(model, args.data, args.out, args.sweep, args.max_new_tokens, args.n_train)
    print(json.dumps(result, indent=2, default=float))


def cmd_analyze(args) -> None:
    from workbench import analysis
    from workbench.vectors import compute_vector

    model = _load(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.instructions:
        _, w, wo = compute_vector(model, name, n_pairs=args.n_train, return_activations=True, progress=True)
        sep = analysis.separability(w, wo, name)
        sep.to_csv(out / f"separability_{name}.csv", index=False)
        best = sep.loc[sep["auroc"].idxmax()]
        print(f"{name}: best held-out AUROC {best['auroc']:.3f} at layer {int(best['layer'])}; wrote {out / f'separability_{name}.csv'}")


def cmd_figures(args) -> None:
    from workbench.study import make_figures

    written = make_figures(args.results, args.out, static=not args.html_only)
    print(f"wrote {len(written)} files to {args.out}")


def cmd_demo(args) -> None:
    from workbench.study import StudyConfig, run_study

    model = _load(args)
    cfg = StudyConfig.for_model(model, quick=args.quick, layers=args.layers, instructions=args.instructions,
                                follow_threshold=args.follow_threshold, min_gap=args.min_gap)
    run_study(model, args.out, cfg, static=not args.html_only)


def cmd_bench(args) -> None:
    from workbench.bench import run_bench

    run_bench(args.model, quick=args.quick, json_path=args.json)


def cmd_export(args) -> None:
    from workbench.interop import export_control_vector
    from workbench.vectors import InstructionVector

    vec = InstructionVector.load(args.vector)
    path = export_control_vector(vec, args.out, coefficient=args.coefficient, layers=args.layers)
    print(f"wrote llama.cpp control vector {path}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="workbench", description="Steer instruction following with activation vectors (Stolfo et al., ICLR 2025).")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, func, help, out=None, model=DEFAULT_MODEL, dtype="float32"):
        s = sub.add_parser(name, help=help, description=help)
        s.add_argument("--model", default=model, help=f"embedded name, .gguf path, HF folder or hub id (default {model})")
        s.add_argument("--dtype", default=dtype, choices=["auto", *DTYPES],
                       help=f"compute precision; auto = bfloat16 where the hardware has it, else float32 (default {dtype})")
        s.add_argument("--device", default=None, help="torch device, e.g. cuda or cuda:1 (default: cpu)")
        if out is not None:
            s.add_argument("--out", default=out, help=f"output folder (default {out})")
        s.set_defaults(func=func)
        return s

    s = add("vectors", cmd_vectors, "compute and save instruction vectors", "results/vectors")
    s.add_argument("instructions", type=_names, help="comma-separated catalog ids, e.g. one_sentence,french")
    s.add_argument("--n-train", type=int, default=64)

    s = add("steer", cmd_steer, "one prompt: unsteered vs steered text side by side")
    s.add_argument("prompt")
    s.add_argument("--vector", action="append", required=True, help="NAME@LAYER[:COEF|:project]; NAME is a catalog id or a .safetensors file; repeat to compose")
    s.add_argument("--absolute", action="store_true", help="coefficients are absolute, not × the mean-difference norm")
    s.add_argument("--positions", default="all", choices=["all", "prompt", "generated"])
    s.add_argument("--max-new-tokens", type=int, default=64)
    s.add_argument("--n-train", type=int, default=64)

    s = add("sweep", cmd_sweep, "layer × coefficient grid on validation prompts (resumable)", "results/sweep")
    s.add_argument("instructions", type=_names)
    s.add_argument("--layers", type=_ints, default=None, help="comma-separated layers (default: every ~10%% of depth)")
    s.add_argument("--coefficients", type=_floats, default=(0.5, 1.0, 2.0), help="× mean-difference norm (default 0.5,1,2)")
    s.add_argument("--no-project", action="store_true", help="leave out the projection-matched setting")
    s.add_argument("--n-prompts", type=int, default=16)
    s.add_argument("--n-train", type=int, default=64)
    s.add_argument("--max-new-tokens", type=int, default=64)

    s = add("evaluate", cmd_evaluate, "four-condition report on an IFEval-format JSONL file", "results/evaluate")
    s.add_argument("--data", help="IFEval-format JSONL with prompt_without_instruction")
    s.add_argument("--sweep", help="take layer and coefficient from this sweep folder")
    s.add_argument("--max-new-tokens", type=int, default=64)
    s.add_argument("--n-train", type=int, default=64)

    s = add("analyze", cmd_analyze, "held-out separability (AUROC, Cohen's d) per layer", "results/analysis")
    s.add_argument("instructions", type=_names)
    s.add_argument("--n-train", type=int, default=64)

    s = sub.add_parser("figures", help="regenerate every figure from saved study results (no model)")
    s.add_argument("--results", default="results/demo")
    s.add_argument("--out", default="figures")
    s.add_argument("--html-only", action="store_true")
    s.set_defaults(func=cmd_figures)

    s = add("demo", cmd_demo, "the whole study on one model: follow check, vectors, sweep, report, figures", "results/demo", model=DEMO_MODEL, dtype="auto")
    s.add_argument("--quick", action="store_true", help="a ~3-minute version")
    s.add_argument("--layers", type=_ints, default=None)
    s.add_argument("--instructions", type=_names, default=None, help="screen only these (default: whole catalog)")
    s.add_argument("--follow-threshold", type=float, default=None, help="share following when told to count as followed (default 0.6)")
    s.add_argument("--min-gap", type=float, default=None, help="and this much above the unprompted share (default 0.25)")
    s.add_argument("--html-only", action="store_true", help="figures as HTML only (no Chromium needed)")

    s = add("bench", cmd_bench, "speed and memory, as ratios measured side by side")
    s.add_argument("--quick", action="store_true")
    s.add_argument("--json", help="also write the figures to this JSON file")

    s = sub.add_parser("export", help="write a vector as a llama.cpp control-vector GGUF")
    s.add_argument("vector", help="a .safetensors instruction vector")
    s.add_argument("--out", required=True, help="the .gguf file to write")
    s.add_argument("--coefficient", type=float, default=1.0, help="scale baked into the file (× mean-difference norm)")
    s.add_argument("--layers", type=_ints, default=None, help="layers to include (default all)")
    s.set_defaults(func=cmd_export)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        args.func(args)
    except WorkbenchError as exc:
        print(f"workbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished units are saved; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
