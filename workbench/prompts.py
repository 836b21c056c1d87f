"""Prompts: the instruction catalog, the base queries, seeded splits and with/without pairs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from workbench.errors import WorkbenchError

SPLITS = ("train", "validation", "test")
SPLIT_SHARES = {"train": 0.5, "validation": 0.25, "test": 0.25}


@dataclass(frozen=True)
class Instruction:
    """One instruction family member: how to say it and how IFEval checks it."""

    id: str
    family: str
    ifeval_id: str
    kwargs: dict
    phrasings: tuple[str, ...]
    params: dict = field(default_factory=dict)

    def phrasing(self, index: int = 0) -> str:
        return self.phrasings[index % len(self.phrasings)]

    def with_params(self, **params) -> "Instruction":
        """The same instruction for another parameter, e.g. ``include_word.with_params(word="ocean")``."""
        unknown = set(params) - set(self.params)
        if unknown:
            raise WorkbenchError(f"instruction {self.id} takes parameters {sorted(self.params)}, not {sorted(unknown)}")
        return _build({**self._raw, "params": {**self.params, **params}})

    @property
    def _raw(self) -> dict:
        return _raw_catalog()[self.id]


@dataclass(frozen=True)
class Pair:
    """One base query with and without the instruction, both chat-templated by the caller's model."""

    query_id: str
    query: str
    instruction: Instruction | None
    phrasing: str
    with_instruction: str  # user message text
    without_instruction: str


def _fill(value, params: dict):
    if isinstance(value, str) and any(v is None for v in params.values()):
        return value  # a per-query parameter, filled by ``instantiate``
    if isinstance(value, str):
        return value.format(**params)
    if isinstance(value, list):
        return [_fill(v, params) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, params) for k, v in value.items()}
    return value


def _build(raw: dict) -> Instruction:
    params = raw.get("params", {})
    return Instruction(
        id=raw["id"],
        family=raw["family"],
        ifeval_id=raw["ifeval_id"],
        kwargs=_fill(raw["kwargs"], params),
        phrasings=tuple(_fill(raw["phrasings"], params)),
        params=params,
    )


@lru_cache
def _raw_catalog() -> dict[str, dict]:
    text = resources.files("workbench.data").joinpath("instructions.json").read_text()
    return {raw["id"]: raw for raw in json.loads(text)}


def catalog() -> dict[str, Instruction]:
    """Every instruction the workbench can build vectors for, by id."""
    return {key: _build(raw) for key, raw in _raw_catalog().items()}


def get_instruction(instruction: str | Instruction) -> Instruction:
    if isinstance(instruction, Instruction):
        return instruction
    known = catalog()
    if instruction not in known:
        raise WorkbenchError(f"unknown instruction {instruction!r}: choose one of {', '.join(known)}")
    return known[instruction]


def by_ifeval_id(ifeval_id: str, kwargs: dict | None = None) -> Instruction | None:
    """The catalog instruction checked by an IFEval id (kwargs picks e.g. the language), if any."""
    kwargs = {k: v for k, v in (kwargs or {}).items() if v is not None}
    for inst in catalog().values():
        if inst.ifeval_id != ifeval_id:
            continue
        if all(inst.kwargs.get(k) == v for k, v in kwargs.items() if k in inst.kwargs and not inst.params):
            return inst
    return None


@dataclass(frozen=True)
class Query:
    id: str
    text: str
    split: str


def _split_of(text: str, seed: int) -> str:
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
        s = _split_of(text, seed)
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
    """Fill per-query parameters (a ``None`` word becomes the query's keyword)."""
    missing = {k: keyword(query) for k, v in inst.params.items() if v is None}
    return inst.with_params(**missing) if missing else inst


def make_pairs(instruction: str | Instruction, split: str = "train", limit: int | None = None, seed: int = 0) -> list[Pair]:
    """Pairs for one instruction: the query, then the instruction appended (phrasings rotate)."""
    inst = get_instruction(instruction)
    pairs = []
    for i, q in enumerate(queries(split, seed=seed, limit=limit)):
        filled = instantiate(inst, q.text)
        pairs.append(
            Pair(
                query_id=q.id,
                query=q.text,
                instruction=filled,
                phrasing=filled.phrasing(i),
                with_instruction=f"{q.text} {filled.phrasing(i)}",
                without_instruction=q.text,
            )
        )
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
