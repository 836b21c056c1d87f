"""Pairs: the project's neutral base queries, their seeded splits, and each query with and without
an instruction appended (any instruction or group). The split is a seeded hash of the base query,
so a query is in one split only and adding queries never moves the old ones."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from workbench.errors import WorkbenchError
from workbench.instructions.groups import Group, as_group
from workbench.instructions.instruction import Instruction

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
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise WorkbenchError(
            f"a number of queries or pairs is a whole number of at least 1, not {limit!r}"
        )  # [:-1] would drop one silently
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


def make_pairs(
    instruction: str | Instruction | Group, split: str = "train", limit: int | None = None, seed: int = 0
) -> list[Pair]:
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
