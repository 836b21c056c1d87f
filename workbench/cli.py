"""The ``workbench`` command line: thin wrappers over the library, the embedded model by default."""

from __future__ import annotations

import argparse
import math
import os
import sys
import traceback

from workbench.commands import (
    cmd_analyze,
    cmd_bench,
    cmd_demo,
    cmd_evaluate,
    cmd_export,
    cmd_export_model,
    cmd_figures,
    cmd_steer,
    cmd_sweep,
    cmd_vectors,
)
from workbench.errors import WorkbenchError
from workbench.instructions import IFEVAL_IDS, catalog
from workbench.models import DEFAULT_MODEL, DEMO_MODEL, DTYPES, EMBEDDED

SUBCOMMANDS = ("vectors", "steer", "sweep", "evaluate", "analyze", "figures", "demo", "bench", "export", "export-model")


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (no usage block), like every other error of the CLI."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


ENGINES = ("workbench", "vllm")  # --engine: where replies are generated


def _numbers(kind: type, what: str, allow_empty: bool = True, minimum: int | None = None):
    def parse(text: str) -> tuple:
        try:
            values = tuple(kind(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}") from None
        if not values and not allow_empty:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got nothing")
        if not all(math.isfinite(v) for v in values):
            raise argparse.ArgumentTypeError(f"expected finite {what}, got {text!r}")
        if minimum is not None and any(v < minimum for v in values):
            raise argparse.ArgumentTypeError(f"expected {what} of at least {minimum}, got {text!r}")
        return values

    return parse


_floats = _numbers(float, "numbers")
_layers = _numbers(int, "layers (integers from 0)", allow_empty=False, minimum=0)


def _count(text: str) -> int:
    """A size: a whole number of at least 1 (prompts, pairs, tokens, workers)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _share(text: str) -> float:
    value = _finite(text)
    if not -1 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a share between -1 and 1, got {value}")
    return value


def _device(text: str) -> str:
    import torch

    try:
        torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"not a torch device: {text!r} (e.g. cpu, cuda, cuda:1)") from None
    return text


def _budget(text: str) -> str:
    if text != "auto" and not (text.isdigit() and int(text) > 0):
        raise argparse.ArgumentTypeError(f"expected a number of tokens (at least 1) or auto, got {text!r}")
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


def _instructions_help() -> str:
    return (
        "Instructions come from three sources: a catalog name (" + ", ".join(catalog()) + "); "
        "an IFEval id with optional kwargs, ID or ID[key=value,...] (lists as a|b), e.g. language:response_language[language=de] "
        "or startend:end_checker[end_phrase=Peace!]; or free text, text:SENTENCE (vectors, steering and separability only: "
        "a sweep needs a checker, which Python gives with Instruction.custom(text, check=...)). IFEval ids: "
        + ", ".join(IFEVAL_IDS)
        + "."
    )


def _ray_options(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="run the sweep's batches on Ray workers, one model replica each: a cluster's ADDRESS (auto: the one `ray start` joined "
        "this node to), or none for a Ray instance on this machine (needs pip install 'workbench[ray]')",
    )
    s.add_argument(
        "--ray-workers", type=_count, default=None, help="Ray workers (default: one per GPU, else one per CPU)"
    )


def _debug_option(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--debug", action="store_true", help="show the full traceback of an unexpected error (also WORKBENCH_DEBUG=1)"
    )


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="workbench", description="Steer instruction following with activation vectors (Stolfo et al., ICLR 2025)."
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, func, help, out=None, model=DEFAULT_MODEL, dtype="float32", epilog=None, engine=False):
        s = sub.add_parser(name, help=help, description=help, epilog=epilog)
        if engine:
            s.add_argument(
                "--engine",
                choices=ENGINES,
                default="workbench",
                help="where replies are generated: the workbench's own decode loop (default, the reference) or vLLM, with the same "
                "steering and greedy tokens (needs `make vllm`); vectors and scores are computed by the workbench either way",
            )
        s.add_argument(
            "--model", default=model, help=f"embedded name, .gguf path, HF folder or hub id (default {model})"
        )
        s.add_argument(
            "--dtype",
            default=dtype,
            choices=["auto", *DTYPES],
            help=f"compute precision; auto = bfloat16 where the hardware has it, else float32 (default {dtype})",
        )
        s.add_argument("--device", default=None, type=_device, help="torch device, e.g. cuda or cuda:1 (default: cpu)")
        s.add_argument(
            "--compile",
            action="store_true",
            help="decode through the compiled step (torch.compile; CUDA graphs on a GPU): "
            "worth it for sweeps, the first generation compiles (minutes on a CPU); same as WORKBENCH_COMPILE=1",
        )
        _debug_option(s)
        if out is not None:
            s.add_argument("--out", default=out, help=f"output folder (default {out})")
        s.set_defaults(func=func)
        return s

    sources = _instructions_help()
    s = add("vectors", cmd_vectors, "compute and save instruction vectors", "results/vectors", epilog=sources)
    s.add_argument(
        "instructions",
        type=_names,
        help="comma-separated instructions, e.g. one_sentence,language:response_language[language=de]",
    )
    s.add_argument("--n-train", type=_count, default=64)

    s = add("steer", cmd_steer, "one prompt: unsteered vs steered text side by side", epilog=sources, engine=True)
    s.add_argument("prompt")
    s.add_argument(
        "--vector",
        action="append",
        required=True,
        help="NAME@LAYER[:COEF|:project]; NAME is an instruction or a .safetensors file; repeat to compose. "
        "Vectors computed from an instruction are cached on disk",
    )
    s.add_argument("--absolute", action="store_true", help="coefficients are absolute, not × the mean-difference norm")
    s.add_argument("--positions", default="all", choices=["all", "prompt", "generated"])
    s.add_argument(
        "--conditional",
        action="store_true",
        help="steer only if the prompt does not already carry the instruction "
        "(its projection where the vector separates best is below the midpoint of the training means)",
    )
    s.add_argument("--max-new-tokens", type=_count, default=64)
    s.add_argument("--n-train", type=_count, default=64)

    s = add(
        "sweep",
        cmd_sweep,
        "layer × coefficient grid on validation prompts (resumable)",
        "results/sweep",
        epilog=sources,
        engine=True,
    )
    s.add_argument("instructions", type=_names)
    s.add_argument(
        "--layers", type=_layers, default=None, help="comma-separated layers (default: every ~10%% of depth)"
    )
    s.add_argument(
        "--coefficients", type=_floats, default=(0.5, 1.0, 2.0), help="× mean-difference norm (default 0.5,1,2)"
    )
    s.add_argument("--no-project", action="store_true", help="leave out the projection-matched setting")
    s.add_argument("--n-prompts", type=_count, default=16)
    s.add_argument("--n-train", type=_count, default=64)
    s.add_argument(
        "--max-new-tokens",
        type=_count,
        default=None,
        help="default: each instruction's own budget (64 for most; more for JSON, sections, end phrases)",
    )
    _ray_options(s)

    s = add(
        "evaluate",
        cmd_evaluate,
        "four-condition IFEval report on an IFEval-format JSONL file, every record of it",
        "results/evaluate",
        engine=True,
        epilog="Each instruction id gets one vector (one per language, one per keyword); --group-by changes that. A record with several instructions "
        "composes their vectors, each at its own selected layer. IFEval ids: " + ", ".join(IFEVAL_IDS) + ".",
    )
    s.add_argument("--data", help="IFEval-format JSONL with prompt_without_instruction")
    s.add_argument("--sweep", help="take layer and coefficient from this sweep folder")
    s.add_argument(
        "--pairs",
        default="queries",
        choices=["queries", "file"],
        help="vectors and selection from the project's queries with each instruction appended (default; every record is a test item), "
        "or from the file's own pairs split train/validation/test by a seeded hash (only test records are reported)",
    )
    s.add_argument(
        "--search",
        default="halving",
        choices=["halving", "reuse", "exhaustive"],
        help="how the layer and setting are chosen on validation prompts, without the instruction and reused for instruction+steering, "
        "over layers x {1x, projection}: halving (default) = every layer on 4 prompts, the 3 best on the rest; reuse = every cell on every prompt; "
        "exhaustive = both prompt conditions x {0.5x,1x,2x,projection} on every prompt",
    )
    s.add_argument(
        "--group-by",
        action="append",
        default=[],
        metavar="ID=KEY[+KEY]",
        help="one vector per value of these kwargs for this id (ID=* for every kwarg, ID= for one per id); default language:response_language=language, keywords:existence=keywords, keywords:frequency=keyword, keywords:forbidden_words=forbidden_words (one per word)",
    )
    s.add_argument("--layers", type=_layers, default=None, help="layers to sweep (default: every ~10%% of depth)")
    s.add_argument(
        "--sweep-prompts",
        type=_count,
        default=12,
        help="validation prompts per group (default 12: halving screens every cell on 2, the finalists get 10)",
    )
    s.add_argument(
        "--skip-unknown",
        action="store_true",
        help="leave out records with ids lm-eval does not know (listed in the summary) instead of failing",
    )
    s.add_argument("--seed", type=int, default=0, help="seed of the train/validation/test split")
    s.add_argument(
        "--conditional",
        action="store_true",
        help="also report the selected steering made conditional (steer only prompts "
        "that do not already carry the instruction), on prompts without and with it",
    )
    s.add_argument(
        "--max-new-tokens", type=_count, default=None, help="default: each record's instructions' largest budget"
    )
    s.add_argument("--n-train", type=_count, default=64)
    _ray_options(s)

    s = add(
        "analyze", cmd_analyze, "held-out separability (AUROC, Cohen's d) per layer", "results/analysis", epilog=sources
    )
    s.add_argument("instructions", type=_names)
    s.add_argument("--n-train", type=_count, default=64)

    s = sub.add_parser("figures", help="regenerate every figure from saved study results (no model)")
    s.add_argument("--results", default="results/demo")
    s.add_argument("--out", default="figures")
    s.add_argument("--html-only", action="store_true")
    _debug_option(s)
    s.set_defaults(func=cmd_figures)

    s = add(
        "demo",
        cmd_demo,
        "the whole study on one model: follow check, vectors, sweep, report, figures",
        "results/demo",
        model=DEMO_MODEL,
        dtype="auto",
        epilog=sources,
        engine=True,
    )
    s.add_argument("--quick", action="store_true", help="a ~3-minute version")
    s.add_argument("--layers", type=_layers, default=None)
    s.add_argument(
        "--instructions",
        type=_names,
        default=None,
        help="screen these (default: every IFEval id, French and German for language; 'catalog': the curated catalog)",
    )
    s.add_argument(
        "--follow-threshold",
        type=_share,
        default=None,
        help="share following when told to count as followed (default 0.6)",
    )
    s.add_argument(
        "--min-gap", type=_share, default=None, help="and this much above the unprompted share (default 0.25)"
    )
    s.add_argument(
        "--max-new-tokens",
        type=_budget,
        default=None,
        help="new tokens per answer, or auto = each instruction's own budget (default 64: the demo's time limit; ids that need more are marked in the report)",
    )
    s.add_argument("--html-only", action="store_true", help="figures as HTML only (no Chromium needed)")
    _ray_options(s)

    s = add("bench", cmd_bench, "speed and memory, as ratios measured side by side")
    s.add_argument("--quick", action="store_true")
    s.add_argument("--json", help="also write the figures to this JSON file")

    s = sub.add_parser(
        "export", help="write a vector for llama.cpp (control-vector GGUF) or lm-eval's steered model (.pt)"
    )
    s.add_argument("vector", help="a .safetensors instruction vector")
    s.add_argument("--out", required=True, help="the file to write (.gguf for llama.cpp, .pt for lm-eval)")
    s.add_argument("--format", default="llama.cpp", choices=["llama.cpp", "lm-eval"])
    s.add_argument(
        "--coefficient", type=_finite, default=1.0, help="× the layer's mean-difference norm (baked into the file)"
    )
    s.add_argument(
        "--project",
        action="store_true",
        help="lm-eval: clamp the projection to z̄ (the paper's projection matching) instead of adding",
    )
    s.add_argument(
        "--layers", type=_layers, default=None, help="layers to include (llama.cpp default: all; lm-eval: required)"
    )
    _debug_option(s)
    s.set_defaults(func=cmd_export)
    s = sub.add_parser(
        "export-model", help="write an embedded model as a plain Hugging Face folder (for lm-eval's harness, offline)"
    )
    s.add_argument("name", choices=sorted(EMBEDDED))
    s.add_argument("--out", required=True)
    _debug_option(s)
    s.set_defaults(func=cmd_export_model)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if getattr(args, "engine", None) == "vllm" and args.compile:
        parser.error("--engine vllm decodes in vLLM, eagerly: drop --compile")
    if getattr(args, "compile", False):
        os.environ["WORKBENCH_COMPILE"] = "1"  # read by generate, here and in Ray workers started from here
    try:
        args.func(args)
    except WorkbenchError as exc:
        print(f"workbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished units are saved; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # anything else is a bug of ours: one line, the traceback on request
        if args.debug or os.environ.get("WORKBENCH_DEBUG"):
            traceback.print_exc()
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        print(
            f"workbench {args.command}: unexpected error: {type(exc).__name__}: {first} (a bug: rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
