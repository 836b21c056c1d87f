"""The ``workbench`` command line: thin wrappers over the library, the embedded model by default."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.instructions import IFEVAL_IDS, catalog
from workbench.models import DEFAULT_MODEL, DEMO_MODEL, DTYPES

SUBCOMMANDS = ("vectors", "steer", "sweep", "evaluate", "analyze", "figures", "demo", "bench", "export")


def _numbers(kind: type, what: str):
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}") from None

    return parse


_floats, _ints = _numbers(float, "numbers"), _numbers(int, "integers")


def _budget(text: str) -> str:
    if text != "auto" and not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a number of tokens or auto, got {text!r}")
    return text


def _names(text: str) -> tuple[str, ...]:
    """Comma-separated instructions; commas inside ``[...]`` belong to an instruction's kwargs."""
    names, depth, current = [], 0, ""
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            names.append(current)
            current = ""
        else:
            current += ch
    return tuple(x.strip() for x in [*names, current] if x.strip())


def _instructions(names):
    """Parse instruction spellings before any model loads, so a typo costs no loading time."""
    from workbench.instructions import get_instruction

    return [get_instruction(n) for n in names]


def _instructions_help() -> str:
    return (
        "Instructions come from three sources: a catalog name (" + ", ".join(catalog()) + "); "
        "an IFEval id with optional kwargs, ID or ID[key=value,...] (lists as a|b), e.g. language:response_language[language=de] "
        "or startend:end_checker[end_phrase=Peace!]; or free text, text:SENTENCE (vectors, steering and separability only: "
        "a sweep needs a checker, which Python gives with Instruction.custom(text, check=...)). IFEval ids: " + ", ".join(IFEVAL_IDS) + "."
    )


def _load(args):
    from workbench.models import load_model

    return load_model(args.model, device=args.device, dtype=args.dtype)


def cmd_vectors(args) -> None:
    from workbench.extract import compute_vector

    instructions = _instructions(args.instructions)
    model = _load(args)
    for inst in instructions:
        vec = compute_vector(model, inst, n_pairs=args.n_train, progress=True)
        path = vec.save(Path(args.out) / f"{inst.slug}.safetensors")
        print(f"{inst.id}: {vec.n_pairs} pairs, norm at middle layer {float(vec.norms[model.n_layers // 2]):.2f} -> {path}")


def _parse_spec(text: str):
    """INSTRUCTION_OR_FILE@LAYER[:COEF|:project]"""
    try:
        name, rest = text.rsplit("@", 1)
        layer, _, coef = rest.partition(":")
        return name, int(layer), coef or "1"
    except ValueError:
        raise WorkbenchError(f"bad --vector {text!r}: use NAME@LAYER[:COEF] (e.g. one_sentence@15:1.5 or french@19:project)") from None


def cmd_steer(args) -> None:
    from workbench.generate import generate
    from workbench.models import check_layer
    from workbench.store import cached_vector
    from workbench.vectors import InstructionVector

    parsed = [_parse_spec(text) for text in args.vector]
    for name, _, _ in parsed:
        if name.endswith(".safetensors"):
            if not Path(name).is_file():
                raise WorkbenchError(f"no vector file at {name}: compute one with `workbench vectors`")
        else:
            _instructions([name])
    model = _load(args)
    specs = []
    for text, (name, layer, coef) in zip(args.vector, parsed):
        check_layer(model, layer)
        vec = InstructionVector.load(name, model) if name.endswith(".safetensors") else cached_vector(model, name, n_pairs=args.n_train)
        if coef == "project":
            specs.append(vec.steer(layer, mode="project", positions=args.positions))
        else:
            try:
                value = float(coef)
            except ValueError:
                raise WorkbenchError(f"bad coefficient {coef!r} in --vector {text!r}: use a number or 'project'") from None
            specs.append(vec.steer(layer, value, absolute=args.absolute, positions=args.positions))
    plain, steered = (generate(model, [args.prompt], steer=s, max_new_tokens=args.max_new_tokens)[0] for s in ([], specs))
    print(json.dumps({"prompt": args.prompt, "unsteered": plain.text, "steered": steered.text, "vectors": args.vector}, indent=2, ensure_ascii=False))


def cmd_sweep(args) -> None:
    from workbench.external import default_layers
    from workbench.sweep import SweepConfig, cell_summary, run_sweep, select

    instructions = tuple(_instructions(args.instructions))
    model = _load(args)
    config = SweepConfig(model=model.name, instructions=instructions, layers=args.layers or default_layers(model), coefficients=args.coefficients,
                         project=not args.no_project, n_train=args.n_train, n_prompts=args.n_prompts, max_new_tokens=args.max_new_tokens)
    table = run_sweep(model, config, args.out)
    cell_summary(table).to_csv(Path(args.out) / "cells.csv", index=False)
    for (name, cond), c in select(table).items():
        print(f"{name} ({'with' if cond else 'without'} instruction): layer {c.layer} {c.mode} {c.coefficient} -> {c.score:.2f} (baseline {c.baseline:.2f})")


def cmd_evaluate(args) -> None:
    from workbench.external import evaluate_file, plan_file
    from workbench.instructions import parse_group_by

    if not args.data:
        raise WorkbenchError("give --data FILE.jsonl (IFEval format with prompt_without_instruction); `workbench demo` evaluates the catalog")
    group_by = parse_group_by(args.group_by)
    plan = plan_file(args.data, group_by, args.pairs, args.skip_unknown, args.seed)
    print(f"{len(plan.items)} records to evaluate in {len(plan.groups)} vector groups; {len(plan.skipped)} skipped", file=sys.stderr)
    model = _load(args)
    result = evaluate_file(model, args.data, args.out, args.sweep, args.max_new_tokens, args.n_train, args.sweep_prompts, group_by,
                           args.pairs, args.search, args.layers, args.skip_unknown, args.seed, plan=plan)
    print((Path(args.out) / "report.md").read_text())


def cmd_analyze(args) -> None:
    from workbench import analysis
    from workbench.extract import compute_vector

    instructions = _instructions(args.instructions)
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
    from workbench.report import copy_report, make_figures

    written = make_figures(args.results, args.out, static=not args.html_only) + copy_report(args.results, args.out)
    print(f"wrote {len(written)} files to {args.out}")


def cmd_demo(args) -> None:
    from workbench.study import StudyConfig, run_study

    if args.instructions and args.instructions not in (("all",), ("catalog",)):
        _instructions(args.instructions)
    model = _load(args)
    tokens = {} if args.max_new_tokens is None else {"max_new_tokens": None if args.max_new_tokens == "auto" else int(args.max_new_tokens)}
    cfg = StudyConfig.for_model(model, quick=args.quick, layers=args.layers, instructions=args.instructions,
                                follow_threshold=args.follow_threshold, min_gap=args.min_gap, **tokens)
    run_study(model, args.out, cfg, static=not args.html_only)


def cmd_bench(args) -> None:
    from workbench.bench import run_bench

    run_bench(args.model, quick=args.quick, json_path=args.json)


def cmd_export(args) -> None:
    from workbench.interop import export_control_vector, export_lm_eval
    from workbench.vectors import InstructionVector

    vec = InstructionVector.load(args.vector)
    if args.format == "lm-eval":
        if not args.layers:
            raise WorkbenchError("--format lm-eval needs --layers L (one or more layers to steer)")
        specs = [vec.steer(l, mode="project") if args.project else vec.steer(l, args.coefficient) for l in args.layers]
        path = export_lm_eval(specs, args.out)
        print(f"wrote lm-eval steering file {path}: lm_eval --model steered --model_args pretrained=DIR,steer_path={path}")
        return
    path = export_control_vector(vec, args.out, coefficient=args.coefficient, layers=args.layers)
    print(f"wrote llama.cpp control vector {path}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="workbench", description="Steer instruction following with activation vectors (Stolfo et al., ICLR 2025).")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, func, help, out=None, model=DEFAULT_MODEL, dtype="float32", epilog=None):
        s = sub.add_parser(name, help=help, description=help, epilog=epilog)
        s.add_argument("--model", default=model, help=f"embedded name, .gguf path, HF folder or hub id (default {model})")
        s.add_argument("--dtype", default=dtype, choices=["auto", *DTYPES],
                       help=f"compute precision; auto = bfloat16 where the hardware has it, else float32 (default {dtype})")
        s.add_argument("--device", default=None, help="torch device, e.g. cuda or cuda:1 (default: cpu)")
        if out is not None:
            s.add_argument("--out", default=out, help=f"output folder (default {out})")
        s.set_defaults(func=func)
        return s

    sources = _instructions_help()
    s = add("vectors", cmd_vectors, "compute and save instruction vectors", "results/vectors", epilog=sources)
    s.add_argument("instructions", type=_names, help="comma-separated instructions, e.g. one_sentence,language:response_language[language=de]")
    s.add_argument("--n-train", type=int, default=64)

    s = add("steer", cmd_steer, "one prompt: unsteered vs steered text side by side", epilog=sources)
    s.add_argument("prompt")
    s.add_argument("--vector", action="append", required=True, help="NAME@LAYER[:COEF|:project]; NAME is an instruction or a .safetensors file; repeat to compose. "
                   "Vectors computed from an instruction are cached on disk")
    s.add_argument("--absolute", action="store_true", help="coefficients are absolute, not × the mean-difference norm")
    s.add_argument("--positions", default="all", choices=["all", "prompt", "generated"])
    s.add_argument("--max-new-tokens", type=int, default=64)
    s.add_argument("--n-train", type=int, default=64)

    s = add("sweep", cmd_sweep, "layer × coefficient grid on validation prompts (resumable)", "results/sweep", epilog=sources)
    s.add_argument("instructions", type=_names)
    s.add_argument("--layers", type=_ints, default=None, help="comma-separated layers (default: every ~10%% of depth)")
    s.add_argument("--coefficients", type=_floats, default=(0.5, 1.0, 2.0), help="× mean-difference norm (default 0.5,1,2)")
    s.add_argument("--no-project", action="store_true", help="leave out the projection-matched setting")
    s.add_argument("--n-prompts", type=int, default=16)
    s.add_argument("--n-train", type=int, default=64)
    s.add_argument("--max-new-tokens", type=int, default=None, help="default: each instruction's own budget (64 for most; more for JSON, sections, end phrases)")

    s = add("evaluate", cmd_evaluate, "four-condition IFEval report on an IFEval-format JSONL file, every record of it", "results/evaluate",
            epilog="Each instruction id gets one vector (one per language); --group-by changes that. A record with several instructions "
                   "composes their vectors, each at its own selected layer. IFEval ids: " + ", ".join(IFEVAL_IDS) + ".")
    s.add_argument("--data", help="IFEval-format JSONL with prompt_without_instruction")
    s.add_argument("--sweep", help="take layer and coefficient from this sweep folder")
    s.add_argument("--pairs", default="queries", choices=["queries", "file"],
                   help="vectors and selection from the project's queries with each instruction appended (default; every record is a test item), "
                        "or from the file's own pairs split train/validation/test by a seeded hash (only test records are reported)")
    s.add_argument("--search", default="halving", choices=["halving", "reuse", "exhaustive"],
                   help="how the layer and setting are chosen on validation prompts, without the instruction and reused for instruction+steering, "
                        "over layers x {1x, projection}: halving (default) = every layer on 4 prompts, the 3 best on the rest; reuse = every cell on every prompt; "
                        "exhaustive = both prompt conditions x {0.5x,1x,2x,projection} on every prompt")
    s.add_argument("--group-by", action="append", default=[], metavar="ID=KEY[+KEY]",
                   help="one vector per value of these kwargs for this id (ID=* for every kwarg, ID= for one per id); default language:response_language=language")
    s.add_argument("--layers", type=_ints, default=None, help="layers to sweep (default: every ~10%% of depth)")
    s.add_argument("--sweep-prompts", type=int, default=8, help="validation prompts per group (default 8)")
    s.add_argument("--skip-unknown", action="store_true", help="leave out records with ids lm-eval does not know (listed in the summary) instead of failing")
    s.add_argument("--seed", type=int, default=0, help="seed of the train/validation/test split")
    s.add_argument("--max-new-tokens", type=int, default=None, help="default: each record's instructions' largest budget")
    s.add_argument("--n-train", type=int, default=64)

    s = add("analyze", cmd_analyze, "held-out separability (AUROC, Cohen's d) per layer", "results/analysis", epilog=sources)
    s.add_argument("instructions", type=_names)
    s.add_argument("--n-train", type=int, default=64)

    s = sub.add_parser("figures", help="regenerate every figure from saved study results (no model)")
    s.add_argument("--results", default="results/demo")
    s.add_argument("--out", default="figures")
    s.add_argument("--html-only", action="store_true")
    s.set_defaults(func=cmd_figures)

    s = add("demo", cmd_demo, "the whole study on one model: follow check, vectors, sweep, report, figures", "results/demo", model=DEMO_MODEL, dtype="auto", epilog=sources)
    s.add_argument("--quick", action="store_true", help="a ~3-minute version")
    s.add_argument("--layers", type=_ints, default=None)
    s.add_argument("--instructions", type=_names, default=None, help="screen these (default: every IFEval id, French and German for language; 'catalog': the curated catalog)")
    s.add_argument("--follow-threshold", type=float, default=None, help="share following when told to count as followed (default 0.6)")
    s.add_argument("--min-gap", type=float, default=None, help="and this much above the unprompted share (default 0.25)")
    s.add_argument("--max-new-tokens", type=_budget, default=None, help="new tokens per answer, or auto = each instruction's own budget (default 64: the demo's time limit; ids that need more are marked in the report)")
    s.add_argument("--html-only", action="store_true", help="figures as HTML only (no Chromium needed)")

    s = add("bench", cmd_bench, "speed and memory, as ratios measured side by side")
    s.add_argument("--quick", action="store_true")
    s.add_argument("--json", help="also write the figures to this JSON file")

    s = sub.add_parser("export", help="write a vector for llama.cpp (control-vector GGUF) or lm-eval's steered model (.pt)")
    s.add_argument("vector", help="a .safetensors instruction vector")
    s.add_argument("--out", required=True, help="the file to write (.gguf for llama.cpp, .pt for lm-eval)")
    s.add_argument("--format", default="llama.cpp", choices=["llama.cpp", "lm-eval"])
    s.add_argument("--coefficient", type=float, default=1.0, help="× the layer's mean-difference norm (baked into the file)")
    s.add_argument("--project", action="store_true", help="lm-eval: clamp the projection to z̄ (the paper's projection matching) instead of adding")
    s.add_argument("--layers", type=_ints, default=None, help="layers to include (llama.cpp default: all; lm-eval: required)")
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
