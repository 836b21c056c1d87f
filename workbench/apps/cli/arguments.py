"""The command line's argument types, each refusal one line, and the options several subcommands share."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass

from workbench.instructions import IFEVAL_IDS, catalog
from workbench.models import DEFAULT_MODEL, DTYPES

Subparsers = argparse._SubParsersAction  # what ArgumentParser.add_subparsers returns
ENGINES = ("workbench", "vllm")  # --engine: where replies are generated
VLLM_FLAGS = {"vllm_memory": "gpu_memory_utilization", "vllm_max_len": "max_model_len"}  # -> VLLMOptions fields


class Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (no usage block), like every other error of the CLI."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def numbers(kind: type, what: str, allow_empty: bool = True, minimum: int | None = None) -> Callable[[str], tuple]:
    """An argument type: comma-separated finite numbers of ``kind`` (at least ``minimum``)."""

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


floats = numbers(float, "numbers")
layers = numbers(int, "layers (integers from 0)", allow_empty=False, minimum=0)


def count(text: str) -> int:
    """A size: a whole number of at least 1 (prompts, pairs, tokens, workers)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def share(text: str) -> float:
    value = finite(text)
    if not -1 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a share between -1 and 1, got {value}")
    return value


def memory_share(text: str) -> float:
    """A share of memory: above 0, at most 1."""
    value = finite(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a share above 0 and at most 1, got {value}")
    return value


def device(text: str) -> str:
    import torch

    try:
        torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"not a torch device: {text!r} (e.g. cpu, cuda, cuda:1)") from None
    return text


def budget(text: str) -> str:
    if text != "auto" and not (text.isdigit() and int(text) > 0):
        raise argparse.ArgumentTypeError(f"expected a number of tokens (at least 1) or auto, got {text!r}")
    return text


def names(text: str) -> tuple[str, ...]:
    """Comma-separated instructions; commas inside ``[...]`` belong to an instruction's kwargs."""
    found, depth, current = [], 0, ""
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            found.append(current)
            current = ""
        else:
            current += ch
    return tuple(x.strip() for x in [*found, current] if x.strip())


def instructions_help() -> str:
    """The epilog of every subcommand that takes instructions: their three sources."""
    return (
        "Instructions come from three sources: a catalog name (" + ", ".join(catalog()) + "); "
        "an IFEval id with optional kwargs, ID or ID[key=value,...] (lists as a|b), "
        "e.g. language:response_language[language=de] "
        "or startend:end_checker[end_phrase=Peace!]; or free text, text:SENTENCE (vectors, steering and separability "
        "only: a sweep needs a checker, which Python gives with Instruction.custom(text, check=...)). IFEval ids: "
        + ", ".join(IFEVAL_IDS)
        + "."
    )


def add_ray_options(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="run the sweep's batches on Ray workers, one model replica each: a cluster's ADDRESS (auto: the one "
        "`ray start` joined this node to), or none for a Ray instance on this machine "
        "(needs pip install 'workbench[ray]')",
    )
    s.add_argument(
        "--ray-workers", type=count, default=None, help="Ray workers (default: one per GPU, else one per CPU)"
    )


def add_debug_option(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--debug", action="store_true", help="show the full traceback of an unexpected error (also WORKBENCH_DEBUG=1)"
    )


@dataclass(frozen=True)
class Subcommand:
    """A subcommand that loads a model: its name, help (also its description), and the shared options'
    defaults. ``out``: the default output folder (None: no ``--out``); ``engine``: it takes ``--engine``."""

    name: str
    help: str
    out: str | None = None
    model: str = DEFAULT_MODEL
    dtype: str = "float32"
    epilog: str | None = None
    engine: bool = False


def add_model_subcommand(sub: Subparsers, command: Subcommand) -> argparse.ArgumentParser:
    """The subcommand's parser with the options every model-loading subcommand shares, in the order
    ``--help`` lists them; the caller adds its own arguments after them."""
    s = sub.add_parser(command.name, help=command.help, description=command.help, epilog=command.epilog)
    if command.engine:
        s.add_argument(
            "--engine",
            choices=ENGINES,
            default="workbench",
            help="where replies are generated: the workbench's own decode loop (default, the reference) or vLLM, "
            "with the same steering and greedy tokens (needs `make vllm`); vectors and scores are computed by the "
            "workbench either way",
        )
        s.add_argument(
            "--vllm-memory",
            type=memory_share,
            default=None,
            metavar="SHARE",
            help="with --engine vllm: the share of GPU memory vLLM may take (on a CPU: of host RAM for its KV cache; "
            "default 0.25)",
        )
        s.add_argument(
            "--vllm-max-len",
            type=count,
            default=None,
            metavar="N",
            help="with --engine vllm: the longest prompt + reply in tokens (default: the model's own)",
        )
    model, dtype = command.model, command.dtype
    s.add_argument("--model", default=model, help=f"embedded name, .gguf path, HF folder or hub id (default {model})")
    s.add_argument(
        "--dtype",
        default=dtype,
        choices=["auto", *DTYPES],
        help=f"compute precision; auto = bfloat16 where the hardware has it, else float32 (default {dtype})",
    )
    s.add_argument("--device", default=None, type=device, help="torch device, e.g. cuda or cuda:1 (default: cpu)")
    s.add_argument(
        "--compile",
        action="store_true",
        help="decode through the compiled step (torch.compile; CUDA graphs on a GPU): "
        "worth it for sweeps, the first generation compiles (minutes on a CPU); same as WORKBENCH_COMPILE=1",
    )
    add_debug_option(s)
    if command.out is not None:
        s.add_argument("--out", default=command.out, help=f"output folder (default {command.out})")
    return s
