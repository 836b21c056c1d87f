"""``pairs``: with/without pairs written by hand, one a line::

    {"prompt": "Explain tides. Answer in capitals.", "prompt_without_instruction": "Explain tides.",
     "instruction": "change_case:english_capital"}

``instruction`` is an IFEval id (``kwargs`` beside it, an object, if the id takes any), an id with its
kwargs (``language:response_language[language=de]``) or a catalog name (``french``); ``key`` is
optional (default: the line number). Each line becomes the IFEval record it stands for, checked as
the ``ifeval`` reader checks one."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.instructions import IFEvalExample, Instruction, catalog, parse_spelling
from workbench.instructions.datasets import json_kind, json_object, read_records, record_from
from workbench.readers.base import Reader

SPELLINGS = (
    "an IFEval id (punctuation:no_comma), an id with kwargs (language:response_language[language=de]) or a catalog name"
)


@lru_cache
def _catalog() -> dict[str, Instruction]:
    return catalog()


def instruction(where: str, name: object) -> tuple[str, dict]:
    """(IFEval id, the kwargs its spelling carries) for a pair's ``instruction``."""
    if not isinstance(name, str) or not name.strip():
        raise WorkbenchError(f"{where}: instruction must be {SPELLINGS}, not {json_kind(name)}")
    named = _catalog().get(name.strip())
    if named is not None:
        if named.per_query or named.ifeval_id is None:
            raise WorkbenchError(
                f"{where}: {name} takes a word from each query; give its IFEval id and kwargs, e.g. "
                f"{named.ifeval_id}[{next(iter(named.kwargs), 'keywords')}=ocean]"
            )
        return named.ifeval_id, dict(named.kwargs)
    if ":" not in name or name.strip().startswith("text:"):
        raise WorkbenchError(
            f"{where}: instruction {name!r} is not {SPELLINGS} "
            f"({', '.join(n for n, i in _catalog().items() if not i.per_query)}); a checked pair needs one"
        )
    try:
        return parse_spelling(name)
    except WorkbenchError as exc:
        raise WorkbenchError(f"{where}: {exc}") from None


def parse(where: str, line: str, n: int) -> IFEvalExample:
    row = json_object(where, line, "a pair")
    iid, named = instruction(where, row.get("instruction"))
    kwargs = row.get("kwargs")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise WorkbenchError(f"{where}: kwargs must be an object of the instruction's kwargs, not {json_kind(kwargs)}")
    if kwargs and named:
        raise WorkbenchError(f"{where}: instruction {row['instruction']!r} carries its kwargs already; drop kwargs")
    if row.get("prompt_without_instruction") is None:
        raise WorkbenchError(f"{where}: prompt_without_instruction must be a non-empty string, not null")
    fields = {
        "key": row.get("key"),
        "prompt": row.get("prompt"),
        "instruction_id_list": [iid],
        "kwargs": [kwargs or named],
        "prompt_without_instruction": row.get("prompt_without_instruction"),
    }
    return record_from(where, fields, n)


def read(path: Path) -> list[IFEvalExample]:
    return read_records(path, parse, "a pairs JSONL file (prompt, prompt_without_instruction, instruction)")


READER = Reader(
    "pairs",
    "with/without pairs: prompt, prompt_without_instruction, instruction (IFEval id, ID[k=v] or catalog name), "
    "kwargs, key",
    read,
    lambda record: "instruction" in record,
)
