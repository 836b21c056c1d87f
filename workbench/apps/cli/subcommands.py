"""Each ``workbench`` subcommand's own arguments, one function a subcommand returning its parser;
``main`` gives each parser the ``cmd_*`` that runs it. Options several share are in ``arguments``."""

from __future__ import annotations

import argparse

from workbench.apps.cli.arguments import (
    Subcommand,
    Subparsers,
    add_debug_option,
    add_model_subcommand,
    add_ray_options,
    budget,
    count,
    finite,
    floats,
    layers,
    names,
    share,
)
from workbench.extract import AGGREGATORS
from workbench.instructions import IFEVAL_IDS
from workbench.models import DEMO_MODEL, EMBEDDED
from workbench.readers import AUTO, READERS
from workbench.store import DEFAULT_AGGREGATOR

EVALUATE_EPILOG = (
    "Each instruction id gets one vector (one per language, one per keyword); --group-by changes that. A record with "
    "several instructions composes their vectors, each at its own selected layer. IFEval ids: "
)


def add_vectors(sub: Subparsers, sources: str) -> argparse.ArgumentParser:
    s = add_model_subcommand(
        sub, Subcommand("vectors", "compute and save instruction vectors", "results/vectors", epilog=sources)
    )
    s.add_argument(
        "instructions",
        type=names,
        help="comma-separated instructions, e.g. one_sentence,language:response_language[language=de]",
    )
    s.add_argument("--n-train", type=count, default=64)
    add_aggregator_option(s)
    return s


def add_aggregator_option(s: argparse.ArgumentParser) -> None:
    """``--aggregator``: how training pairs become a vector (``extract.AGGREGATORS``)."""
    s.add_argument(
        "--aggregator",
        default=DEFAULT_AGGREGATOR,
        choices=list(AGGREGATORS),
        help="how pairs become a vector: the mean difference (the paper's) or the differences' first component",
    )


def add_steer(sub: Subparsers, sources: str) -> argparse.ArgumentParser:
    help = "one prompt: unsteered vs steered text side by side"
    s = add_model_subcommand(sub, Subcommand("steer", help, epilog=sources, engine=True))
    s.add_argument("prompt")
    s.add_argument(
        "--vector",
        action="append",
        required=True,
        help="NAME@LAYER[:COEF|:OPERATOR] (COEF added, × the norm; or an operator at its default: project, ablate); "
        "NAME is an instruction or a .safetensors file; repeat to compose. "
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
    s.add_argument("--max-new-tokens", type=count, default=64)
    s.add_argument("--n-train", type=count, default=64)
    add_aggregator_option(s)
    return s


def add_sweep(sub: Subparsers, sources: str) -> argparse.ArgumentParser:
    help = "layer × coefficient grid on validation prompts (resumable)"
    s = add_model_subcommand(sub, Subcommand("sweep", help, "results/sweep", epilog=sources, engine=True))
    s.add_argument("instructions", type=names)
    s.add_argument("--layers", type=layers, default=None, help="comma-separated layers (default: every ~10%% of depth)")
    s.add_argument(
        "--coefficients", type=floats, default=(0.5, 1.0, 2.0), help="× mean-difference norm (default 0.5,1,2)"
    )
    s.add_argument("--no-project", action="store_true", help="leave out the projection-matched setting")
    s.add_argument("--n-prompts", type=count, default=16)
    s.add_argument("--n-train", type=count, default=64)
    s.add_argument(
        "--max-new-tokens",
        type=count,
        default=None,
        help="default: each instruction's own budget (64 for most; more for JSON, sections, end phrases)",
    )
    add_aggregator_option(s)
    add_ray_options(s)
    return s


def add_evaluate(sub: Subparsers) -> argparse.ArgumentParser:
    help = "four-condition IFEval report on a dataset file (IFEval JSONL, pairs, the paper's: --format), every record"
    epilog = EVALUATE_EPILOG + ", ".join(IFEVAL_IDS) + "."
    s = add_model_subcommand(sub, Subcommand("evaluate", help, "results/evaluate", epilog=epilog, engine=True))
    s.add_argument("--data", help="a JSONL dataset: IFEval records with prompt_without_instruction, or see --format")
    s.add_argument(
        "--format",
        default=AUTO,
        metavar="FORMAT",
        help="the dataset's format: auto (default: the one format that recognises the first record), "
        + "; ".join(f"{r.name} ({r.description})" for r in READERS.values()).replace("%", "%%")
        + "; or module:function (file.py:function), your own reader Path -> list[IFEvalExample]",
    )
    s.add_argument(
        "--sweep",
        help="take layer and coefficient from this sweep folder (this model's, for these groups; it settles --layers, "
        "--sweep-prompts and --search, so they go without it)",
    )
    s.add_argument(
        "--pairs",
        default="queries",
        choices=["queries", "file"],
        help="vectors and selection from the project's queries with each instruction appended (default; every record "
        "is a test item), or from the file's own pairs split train/validation/test by a seeded hash (only test "
        "records are reported)",
    )
    s.add_argument(
        "--search",
        default=None,
        choices=["halving", "reuse", "exhaustive"],
        help="how the layer and setting are chosen on validation prompts, without the instruction and reused for "
        "instruction+steering, over layers x {1x, projection}: halving (default) = every layer on 4 prompts, the 3 "
        "best on the rest; reuse = every cell on every prompt; exhaustive = both prompt conditions x "
        "{0.5x,1x,2x,projection} on every prompt",
    )
    s.add_argument(
        "--group-by",
        action="append",
        default=[],
        metavar="ID=KEY[+KEY]",
        help="one vector per value of these kwargs for this id (ID=* for every kwarg, ID= for one per id); default "
        "language:response_language=language, keywords:existence=keywords, keywords:frequency=keyword, "
        "keywords:forbidden_words=forbidden_words (one per word)",
    )
    s.add_argument("--layers", type=layers, default=None, help="layers to sweep (default: every ~10%% of depth)")
    add_evaluate_run_options(s)
    add_aggregator_option(s)
    add_ray_options(s)
    return s


def add_evaluate_run_options(s: argparse.ArgumentParser) -> None:
    """``evaluate``'s sizes, its split's seed, and what else it reports."""
    s.add_argument(
        "--sweep-prompts",
        type=count,
        default=None,
        help="validation prompts per group (default 18: halving screens every layer on 5, the finalists get 13)",
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
        "--max-new-tokens", type=count, default=None, help="default: each record's instructions' largest budget"
    )
    s.add_argument("--n-train", type=count, default=64)


def add_analyze(sub: Subparsers, sources: str) -> argparse.ArgumentParser:
    help = "held-out separability (AUROC, Cohen's d) per layer"
    s = add_model_subcommand(sub, Subcommand("analyze", help, "results/analysis", epilog=sources))
    s.add_argument("instructions", type=names)
    s.add_argument("--n-train", type=count, default=64)
    return s


def add_figures(sub: Subparsers) -> argparse.ArgumentParser:
    s = sub.add_parser("figures", help="regenerate every figure from saved study results (no model)")
    s.add_argument("--results", default="results/demo")
    s.add_argument("--out", default="figures")
    s.add_argument("--html-only", action="store_true")
    add_debug_option(s)
    return s


def add_demo(sub: Subparsers, sources: str) -> argparse.ArgumentParser:
    help = "the whole study on one model: follow check, vectors, sweep, report, figures"
    command = Subcommand("demo", help, "results/demo", model=DEMO_MODEL, dtype="auto", epilog=sources, engine=True)
    s = add_model_subcommand(sub, command)
    s.add_argument("--quick", action="store_true", help="a ~3-minute version")
    s.add_argument("--layers", type=layers, default=None)
    s.add_argument(
        "--instructions",
        type=names,
        default=None,
        help="screen these (default: every IFEval id, French and German for language; 'catalog': the curated catalog)",
    )
    s.add_argument(
        "--follow-threshold",
        type=share,
        default=None,
        help="share following when told to count as followed (default 0.6)",
    )
    s.add_argument(
        "--min-gap", type=share, default=None, help="and this much above the unprompted share (default 0.25)"
    )
    s.add_argument(
        "--max-new-tokens",
        type=budget,
        default=None,
        help="new tokens per answer, or auto = each instruction's own budget (default 64: the demo's time limit; ids "
        "that need more are marked in the report)",
    )
    s.add_argument("--html-only", action="store_true", help="figures as HTML only (no Chromium needed)")
    add_ray_options(s)
    return s


def add_bench(sub: Subparsers) -> argparse.ArgumentParser:
    s = add_model_subcommand(sub, Subcommand("bench", "speed and memory, as ratios measured side by side"))
    s.add_argument("--quick", action="store_true")
    s.add_argument("--json", help="also write the figures to this JSON file")
    return s


def add_export(sub: Subparsers) -> argparse.ArgumentParser:
    s = sub.add_parser(
        "export", help="write a vector for llama.cpp (control-vector GGUF) or lm-eval's steered model (.pt)"
    )
    s.add_argument("vector", help="a .safetensors instruction vector")
    s.add_argument("--out", required=True, help="the file to write (.gguf for llama.cpp, .pt for lm-eval)")
    s.add_argument("--format", default="llama.cpp", choices=["llama.cpp", "lm-eval"])
    s.add_argument(
        "--coefficient", type=finite, default=1.0, help="× the layer's mean-difference norm (baked into the file)"
    )
    s.add_argument(
        "--project",
        action="store_true",
        help="lm-eval: clamp the projection to z̄ (the paper's projection matching) instead of adding",
    )
    s.add_argument(
        "--layers", type=layers, default=None, help="layers to include (llama.cpp default: all; lm-eval: required)"
    )
    add_debug_option(s)
    return s


def add_export_model(sub: Subparsers) -> argparse.ArgumentParser:
    s = sub.add_parser(
        "export-model", help="write an embedded model as a plain Hugging Face folder (for lm-eval's harness, offline)"
    )
    s.add_argument("name", choices=sorted(EMBEDDED))
    s.add_argument("--out", required=True)
    add_debug_option(s)
    return s
