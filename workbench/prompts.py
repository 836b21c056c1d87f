"""Prompts: the base queries, seeded splits, with/without pairs, and IFEval-format files.

Pairs come from two places: the project's neutral queries with an instruction appended (any
instruction or group, see ``workbench.instructions``), or an IFEval-format file whose records carry
``prompt_without_instruction``. Both split by a seeded hash of the base query, so a query is in one
split only and adding records never moves the old ones.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Mapping, Sequence

from workbench.errors import WorkbenchError
from workbench.instructions import Group, Instruction, as_group, group_name

SPLITS = ("train", "validation", "test")
SPLIT_SHARES = {"train": 0.5, "validation": 0.25, "test": 0.25}


@dataclass(frozen=True)
class Pair:
    """One base query with and without the instruction, both chat-templated by the caller's model."""

    query_id: str
    query: str
    instruction: Instruction
    phrasing: str
    with_instruction: str  # user message text
    without_instruction: str


@dataclass(frozen=True)
class Query:
    id: str
    text: str
    split: str


def split_of(text: str, seed: int = 0) -> str:
    """Stable split from a hash: adding queries never moves the old ones."""
    bucket = int(hashlib.sha256(f"{seed}:{text}".encode()).hexdigest(), 16) % 1000 / 1000
    edge = 0.0
    for split in SPLITS:
        edge += SPLIT_SHARES[split]
        if bucket < edge:
            return split
    return SPLITS[-1]


@lru_cache
def _query_texts() -> tuple[str, ...]:
    text = resources.files("workbench.data").joinpath("queries.txt").read_text()
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def queries(split: str | None = None, seed: int = 0, limit: int | None = None) -> list[Query]:
    """The neutral base queries (no instructions inside), optionally one split of them."""
    if split is not None and split not in SPLITS:
        raise WorkbenchError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    out = []
    for i, text in enumerate(_query_texts()):
        s = split_of(text, seed)
        if split is None or s == split:
            out.append(Query(id=f"q{i:04d}", text=text, split=s))
    # A seeded order, so the first `limit` queries span many topics, not one.
    out.sort(key=lambda q: hashlib.sha256(f"order:{seed}:{q.text}".encode()).digest())
    return out[:limit] if limit is not None else out


_TEMPLATE_WORDS = set(
    "explain how works what are the main benefits of describe history advice would you give someone "
    "curious about why do people find interesting a an".split()
)


def keyword(query: str) -> str:
    """The query's topic word (its longest word outside the question templates): the word a
    reply most likely uses, so including or excluding it is a real instruction."""
    words = [w.strip("?.,'\"").lower() for w in query.split()]
    words = [w for w in words if w.isalpha() and w not in _TEMPLATE_WORDS]
    return max(words, key=len) if words else "answer"


def instantiate(inst: Instruction, query: str) -> Instruction:
    """Fill per-query placeholders: ``{keyword}`` = the query's topic word, ``{query}`` = the query."""
    return inst.with_params(keyword=keyword(query), query=query) if inst.per_query else inst


def make_pairs(instruction: str | Instruction | Group, split: str = "train", limit: int | None = None, seed: int = 0) -> list[Pair]:
    """Pairs for one instruction or group: the query, then the instruction appended. A group's
    members rotate over the queries, and each member's phrasings rotate over its turns."""
    members = as_group(instruction).members
    pairs = []
    for i, q in enumerate(queries(split, seed=seed, limit=limit)):
        filled = instantiate(members[i % len(members)], q.text)
        text = filled.phrasing(i // len(members))
        pairs.append(Pair(q.id, q.text, filled, text, f"{q.text} {text}", q.text))
    return pairs


def data_hash(texts: list[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class IFEvalExample:
    key: str
    prompt: str
    instruction_id_list: list[str]
    kwargs: list[dict]
    prompt_without_instruction: str | None = None


def load_ifeval_jsonl(path: str | Path) -> list[IFEvalExample]:
    """Read an IFEval-format JSONL file (key, prompt, instruction_id_list, kwargs, ...)."""
    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(f"no such file: {path}; give an IFEval-format JSONL file")
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            ids = list(row["instruction_id_list"])
            kwargs = [{k: v for k, v in (kw or {}).items() if v is not None} for kw in row.get("kwargs", [{}] * len(ids))]
            out.append(IFEvalExample(str(row.get("key", n)), row["prompt"], ids, kwargs, row.get("prompt_without_instruction")))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise WorkbenchError(f"{path}:{n} is not an IFEval record ({exc}); each line needs prompt and instruction_id_list") from None
    if not out:
        raise WorkbenchError(f"{path} holds no examples; give a non-empty IFEval-format JSONL file")
    return out


def record_instructions(example: IFEvalExample) -> list[Instruction]:
    """A record's instructions as IFEval instructions with the record's own kwargs."""
    return [Instruction.ifeval(iid, **kw) for iid, kw in zip(example.instruction_id_list, example.kwargs)]


def file_pairs(
    examples: Sequence[IFEvalExample], group_by: Mapping[str, Sequence[str]] | None = None, seed: int = 0
) -> dict[str, dict[str, list[Pair]]]:
    """A file's own with/without pairs: group -> split -> pairs, from its single-instruction records
    with ``prompt_without_instruction``. The split hashes that base query (seeded), so one query never
    sits in two splits, whatever instruction it carries."""
    out: dict[str, dict[str, list[Pair]]] = defaultdict(lambda: {s: [] for s in SPLITS})
    for ex in examples:
        if len(ex.instruction_id_list) != 1 or not ex.prompt_without_instruction:
            continue
        (inst,) = record_instructions(ex)
        name = group_name(inst.ifeval_id, inst.kwargs, group_by)
        split = split_of(ex.prompt_without_instruction, seed)
        out[name][split].append(Pair(ex.key, ex.prompt_without_instruction, inst, "", ex.prompt, ex.prompt_without_instruction))
    return dict(out)


def ifeval_records(
    instructions: Sequence[Instruction | Sequence[Instruction]], split: str | None = "test", per_instruction: int = 2, seed: int = 0
) -> list[dict]:
    """IFEval-format records (with ``prompt_without_instruction``) from the project's queries: each
    entry (an instruction, or several for one multi-instruction record) on ``per_instruction`` queries.
    Write them with ``io.write_jsonl`` to get a file ``workbench evaluate --data`` reads."""
    pool = queries(split, seed=seed)
    records = []
    for k, entry in enumerate(instructions):
        insts = [entry] if isinstance(entry, Instruction) else list(entry)
        for j in range(per_instruction):
            q = pool[(k * per_instruction + j) % len(pool)]
            filled = [instantiate(i, q.text) for i in insts]
            if any(i.ifeval_id is None or i.source == "custom" for i in filled):
                raise WorkbenchError("IFEval records need IFEval instructions (Instruction.ifeval or catalog names)")
            records.append({
                "key": f"{k}-{j}", "prompt": " ".join([q.text, *(i.phrasing(j) for i in filled)]),
                "instruction_id_list": [i.ifeval_id for i in filled], "kwargs": [i.kwargs for i in filled],
                "prompt_without_instruction": q.text,
            })
    return records
