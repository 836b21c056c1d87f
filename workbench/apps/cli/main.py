"""The ``workbench`` command: thin wrappers over the library, the embedded model by default. Each
subcommand's arguments are spelled in ``subcommands``; here each gets the ``cmd_*`` that runs it."""

from __future__ import annotations

import argparse
import errno
import os
import sys
import traceback

from workbench.apps.cli.arguments import Parser, instructions_help
from workbench.apps.cli.commands import (
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
from workbench.apps.cli.subcommands import (
    add_analyze,
    add_bench,
    add_demo,
    add_evaluate,
    add_export,
    add_export_model,
    add_figures,
    add_steer,
    add_sweep,
    add_vectors,
)
from workbench.errors import InterruptedBeforeWork, WorkbenchError

SUBCOMMANDS = ("vectors", "steer", "sweep", "evaluate", "analyze", "figures", "demo", "bench", "export", "export-model")


def build_parser() -> argparse.ArgumentParser:
    """The ``workbench`` parser; the subcommands in ``SUBCOMMANDS``' order, each calling its ``cmd_*``."""
    p = Parser(
        prog="workbench", description="Steer instruction following with activation vectors (Stolfo et al., ICLR 2025)."
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sources = instructions_help()
    add_vectors(sub, sources).set_defaults(func=cmd_vectors)
    add_steer(sub, sources).set_defaults(func=cmd_steer)
    add_sweep(sub, sources).set_defaults(func=cmd_sweep)
    add_evaluate(sub).set_defaults(func=cmd_evaluate)
    add_analyze(sub, sources).set_defaults(func=cmd_analyze)
    add_figures(sub).set_defaults(func=cmd_figures)
    add_demo(sub, sources).set_defaults(func=cmd_demo)
    add_bench(sub).set_defaults(func=cmd_bench)
    add_export(sub).set_defaults(func=cmd_export)
    add_export_model(sub).set_defaults(func=cmd_export_model)
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
    except InterruptedBeforeWork as exc:  # Ctrl-C while the input was read: nothing ran
        print(
            f"workbench {args.command}: interrupted {exc}, before any work: nothing ran, nothing saved", file=sys.stderr
        )
        return 130
    except KeyboardInterrupt:
        print("interrupted: finished units are saved; rerun the same command to resume", file=sys.stderr)
        return 130
    except OSError as exc:  # the machine refused (disk full, permission, read-only): what, and where
        if args.debug or os.environ.get("WORKBENCH_DEBUG"):
            traceback.print_exc()
        print(f"workbench {args.command}: error: {os_error(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # anything else is a bug of ours: one line, the traceback on request
        if args.debug or os.environ.get("WORKBENCH_DEBUG"):
            traceback.print_exc()
        hint = "a bug: rerun with --debug for the traceback"
        print(f"workbench {args.command}: unexpected error: {one_line(exc)} ({hint})", file=sys.stderr)
        return 1
    return 0


def os_error(exc: OSError) -> str:
    """An ``OSError`` as what it is, on one line: its errno's meaning and name, and the path(s)."""
    if exc.errno is None:  # no errno: a library's own words
        return one_line(exc)
    paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
    text = f"{os.strerror(exc.errno)} ({errno.errorcode.get(exc.errno, exc.errno)})" + (f": {paths}" if paths else "")
    return " ".join(text.splitlines())


def one_line(exc: Exception) -> str:
    """The exception's type and the first line of its message (at most 200 characters)."""
    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"


if __name__ == "__main__":
    sys.exit(main())
