"""Instructions from three sources, one type.

* **IFEval's registry** (lm-eval): any of its 25 ids with any kwargs; the text is the registry's own
  description, so no sentence is written by hand: ``Instruction.ifeval("language:response_language", language="de")``.
* **The curated catalog** (``data/instructions.json``): named instructions with several phrasings each.
* **Free text**, checked by an IFEval id or a Python ``str -> bool``, or by nothing (vectors, separability
  and steering need no checker; a sweep or evaluation does): ``Instruction.custom("Answer like a pirate.", check=f)``.

Per-query kwargs are placeholders filled from each base query: ``{keyword}`` (the query's topic word)
and ``{query}`` (the query itself, e.g. the prompt to repeat). A ``Group`` is the set of instructions
that share one vector; the grouping rule is ``DEFAULT_GROUP_BY``.
"""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from typing import Mapping, Sequence

from workbench.checkers import Check, Checker, check, check_callable, ifeval_registry
from workbench.errors import WorkbenchError

PLACEHOLDERS = ("{keyword}", "{query}")

# lm-eval's IFEval ids, listed here so `--help` needs no import of lm-eval (a test keeps them equal).
IFEVAL_IDS = (
    "change_case:capital_word_frequency", "change_case:english_capital", "change_case:english_lowercase",
    "combination:repeat_prompt", "combination:two_responses", "detectable_content:number_placeholders",
    "detectable_content:postscript", "detectable_format:constrained_response", "detectable_format:json_format",
    "detectable_format:multiple_sections", "detectable_format:number_bullet_lists", "detectable_format:number_highlighted_sections",
    "detectable_format:title", "keywords:existence", "keywords:forbidden_words", "keywords:frequency", "keywords:letter_frequency",
    "language:response_language", "length_constraints:nth_paragraph_first_word", "length_constraints:number_paragraphs",
    "length_constraints:number_sentences", "length_constraints:number_words", "punctuation:no_comma", "startend:end_checker",
    "startend:quotation",
)

# Values for kwargs a spelling leaves out. lm-eval would draw them at random; we fix them, so a
# vector's provenance says what it was built from. Placeholders are filled per query.
IFEVAL_DEFAULTS: dict[str, dict] = {
    "keywords:existence": {"keywords": ["{keyword}"]},
    "keywords:frequency": {"keyword": "{keyword}", "frequency": 3, "relation": "at least"},
    "keywords:forbidden_words": {"forbidden_words": ["{keyword}"]},
    "keywords:letter_frequency": {"letter": "z", "let_frequency": 3, "let_relation": "at least"},
    "length_constraints:number_sentences": {"num_sentences": 2, "relation": "less than"},
    "length_constraints:number_paragraphs": {"num_paragraphs": 3},
    "length_constraints:number_words": {"num_words": 40, "relation": "less than"},
    "length_constraints:nth_paragraph_first_word": {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "however"},
    "detectable_content:number_placeholders": {"num_placeholders": 2},
    "detectable_content:postscript": {"postscript_marker": "P.S."},
    "detectable_format:number_bullet_lists": {"num_bullets": 3},
    "detectable_format:number_highlighted_sections": {"num_highlights": 2},
    "detectable_format:multiple_sections": {"section_spliter": "Section", "num_sections": 3},
    "combination:repeat_prompt": {"prompt_to_repeat": "{query}"},
    "startend:end_checker": {"end_phrase": "Is there anything else I can help with?"},
    "change_case:capital_word_frequency": {"capital_frequency": 3, "capital_relation": "at least"},
}
REQUIRED: dict[str, tuple[str, ...]] = {"language:response_language": ("language",)}
PER_QUERY: dict[str, str] = {"keywords": "{keyword}", "keyword": "{keyword}", "forbidden_words": "{keyword}", "prompt_to_repeat": "{query}"}
LIST_KWARGS = ("keywords", "forbidden_words")

# One vector per IFEval id, except where a kwarg changes the behaviour itself: one per language.
# Override per call (``group_by={"startend:end_checker": ("end_phrase",)}``; ``("*",)`` = every kwarg).
DEFAULT_GROUP_BY: dict[str, tuple[str, ...]] = {"language:response_language": ("language",)}

# New tokens a reply needs before its check can pass: a cut-off answer is not a failure of steering.
DEFAULT_BUDGET = 64
BUDGETS: dict[str, int] = {
    "detectable_format:json_format": 128,
    "detectable_format:number_bullet_lists": 128,
    "detectable_format:number_highlighted_sections": 160,
    "detectable_format:multiple_sections": 256,
    "detectable_content:number_placeholders": 128,
    "detectable_content:postscript": 192,
    "length_constraints:number_paragraphs": 256,
    "length_constraints:nth_paragraph_first_word": 256,
    "combination:two_responses": 192,
    "combination:repeat_prompt": 128,
    "startend:end_checker": 160,
    "keywords:frequency": 128,
    "keywords:letter_frequency": 128,
    "change_case:capital_word_frequency": 128,
}
MAX_BUDGET = 512

FAMILIES = {
    "keywords": "keywords", "language": "language", "length_constraints": "length", "detectable_content": "content",
    "detectable_format": "format", "combination": "combination", "startend": "startend", "change_case": "case",
    "punctuation": "punctuation",
}


def budget(ifeval_id: str | None, kwargs: Mapping | None = None) -> int:
    """Default new-token budget for one instruction; "at least N words/sentences" scale with N."""
    kwargs = kwargs or {}
    base = BUDGETS.get(ifeval_id or "", DEFAULT_BUDGET)
    if ifeval_id == "length_constraints:number_words" and kwargs.get("relation") == "at least":
        base = max(base, int(kwargs.get("num_words", 0) * 1.6) + 32)
    if ifeval_id == "length_constraints:number_sentences" and kwargs.get("relation") == "at least":
        base = max(base, 32 * int(kwargs.get("num_sentences", 0)) + 32)
    return min(base, MAX_BUDGET)


def _value_text(value) -> str:
    return "|".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def spelling(ifeval_id: str, kwargs: Mapping | None = None) -> str:
    """The one-line name of an IFEval instruction: ``id`` or ``id[key=value,...]`` (lists joined by ``|``)."""
    kwargs = {k: v for k, v in (kwargs or {}).items() if v is not None}
    if not kwargs:
        return ifeval_id
    return f"{ifeval_id}[{','.join(f'{k}={_value_text(kwargs[k])}' for k in sorted(kwargs))}]"


def _parse_value(key: str, text: str):
    text = text.strip()
    if key in LIST_KWARGS:
        return [w.strip() for w in text.split("|") if w.strip()]
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def parse_spelling(text: str) -> tuple[str, dict]:
    """``id[key=value,...]`` -> (id, kwargs); the inverse of ``spelling``."""
    m = re.fullmatch(r"\s*([\w:]+)\s*(?:\[(.*)\])?\s*", text, flags=re.S)
    if not m:
        raise WorkbenchError(f"bad instruction {text!r}: write ID or ID[key=value,...], e.g. language:response_language[language=de]")
    ifeval_id, body = m.group(1), m.group(2)
    kwargs = {}
    for item in re.split(r",(?=\s*\w+\s*=)", body or ""):
        if not item.strip():
            continue
        key, eq, value = item.partition("=")
        if not eq:
            raise WorkbenchError(f"bad kwarg {item!r} in {text!r}: write key=value")
        kwargs[key.strip()] = _parse_value(key.strip(), value)
    return ifeval_id, kwargs


def _fill(value, values: Mapping[str, str]):
    if isinstance(value, str):
        for name, filler in values.items():
            value = value.replace("{" + name + "}", filler)
        return value
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    return value


def _has_placeholder(value) -> bool:
    return any(p in json.dumps(value) for p in PLACEHOLDERS)


@dataclass(frozen=True)
class Instruction:
    """One instruction: how to say it (phrasings rotate over pairs) and how to check it."""

    id: str
    phrasings: tuple[str, ...]
    ifeval_id: str | None = None
    kwargs: dict = field(default_factory=dict)
    family: str = "custom"
    source: str = "custom"  # "ifeval" | "catalog" | "custom"
    checker: Checker | None = field(default=None, compare=False)

    # --- the three sources -------------------------------------------------------------------
    @classmethod
    def ifeval(cls, ifeval_id: str, **kwargs) -> "Instruction":
        """An IFEval instruction; its text is the registry's own description for these kwargs."""
        full, text = _ifeval_kwargs(ifeval_id, kwargs)
        given = {k: v for k, v in kwargs.items() if v is not None}
        extra = tuple(p for inst in catalog().values() if inst.ifeval_id == ifeval_id and inst.kwargs == full for p in inst.phrasings)
        family = FAMILIES.get(ifeval_id.split(":")[0], "custom")
        return cls(spelling(ifeval_id, given), (text, *extra), ifeval_id, full, family, "ifeval")

    @classmethod
    def custom(cls, text: str | Sequence[str], check: Checker | str | None = None, id: str | None = None, **kwargs) -> "Instruction":
        """Free text. ``check``: a ``str -> bool`` callable, an IFEval id (with ``kwargs``), or None."""
        phrasings = (text,) if isinstance(text, str) else tuple(text)
        if not phrasings or not all(isinstance(p, str) and p.strip() for p in phrasings):
            raise WorkbenchError("a custom instruction needs its text: one or more non-empty sentences")
        name = id or slug(phrasings[0])
        if isinstance(check, str):
            full, _ = _ifeval_kwargs(check, kwargs)
            return cls(name, phrasings, check, full, FAMILIES.get(check.split(":")[0], "custom"), "custom")
        if kwargs:
            raise WorkbenchError(f"kwargs {sorted(kwargs)} need an IFEval id as the checker (check='id')")
        if check is not None and not callable(check):
            raise WorkbenchError(f"check must be a callable str -> bool or an IFEval id, not {type(check).__name__}")
        return cls(name, phrasings, None, {}, "custom", "custom", check)

    # --- use ----------------------------------------------------------------------------------
    def phrasing(self, index: int = 0) -> str:
        return self.phrasings[index % len(self.phrasings)]

    @property
    def checkable(self) -> bool:
        return self.checker is not None or self.ifeval_id is not None

    @property
    def per_query(self) -> bool:
        """Does it take a value from each query (a keyword, the prompt to repeat)?"""
        return _has_placeholder(self.kwargs) or _has_placeholder(list(self.phrasings))

    @property
    def budget(self) -> int:
        return budget(self.ifeval_id, self.kwargs)

    @property
    def slug(self) -> str:
        """A file-name-safe form of the id."""
        return slug(self.id)

    def with_params(self, **values: str) -> "Instruction":
        """Fill placeholders, e.g. ``include_word.with_params(keyword="ocean")``."""
        unknown = set(values) - {p.strip("{}") for p in PLACEHOLDERS}
        if unknown:
            raise WorkbenchError(f"instruction {self.id} takes parameters keyword and query, not {sorted(unknown)}")
        return replace(self, kwargs=_fill(self.kwargs, values), phrasings=tuple(_fill(list(self.phrasings), values)))

    def check(self, response: str, prompt: str = "") -> Check:
        """Does the response follow it? IFEval strict and loose (a callable is scored the same way)."""
        if self.checker is not None:
            return check_callable(response, self.checker)
        if self.ifeval_id is None:
            raise WorkbenchError(f"instruction {self.id!r} has no checker: give check=<callable or IFEval id> to sweep or evaluate it")
        if self.per_query:
            raise WorkbenchError(f"instruction {self.id!r} still has a per-query placeholder: fill it with prompts.instantiate(inst, query)")
        return check(response, [self.ifeval_id], [self.kwargs], prompt)

    def spec(self) -> dict:
        """What defines it, as JSON (for provenance and sweep configurations)."""
        checker = None if self.checker is None else f"{getattr(self.checker, '__module__', '?')}.{getattr(self.checker, '__qualname__', repr(self.checker))}"
        return {"id": self.id, "source": self.source, "ifeval_id": self.ifeval_id, "kwargs": self.kwargs, "phrasings": list(self.phrasings), "checker": checker}

    def __repr__(self) -> str:
        check_by = self.ifeval_id or (getattr(self.checker, "__name__", "callable") if self.checker else "no checker")
        text = self.phrasings[0] if len(self.phrasings[0]) <= 60 else self.phrasings[0][:57] + "..."
        return f"Instruction({self.id!r}, {self.source}, checked by {check_by}: {text!r})"


def slug(text: str) -> str:
    """A file-name-safe form of a name."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", text).strip("-")[:80] or "instruction"


def _ifeval_kwargs(ifeval_id: str, kwargs: Mapping) -> tuple[dict, str]:
    """The full kwargs (defaults filled, values validated by the registry) and IFEval's text for them."""
    registry = ifeval_registry()
    if ifeval_id not in registry:
        raise WorkbenchError(f"unknown IFEval instruction id {ifeval_id!r}: known ids are {', '.join(sorted(registry))}")
    allowed = [p for p in inspect.signature(registry[ifeval_id].build_description).parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise WorkbenchError(f"{ifeval_id} takes {', '.join(allowed) or 'no kwargs'}, not {', '.join(unknown)}")
    full = {**IFEVAL_DEFAULTS.get(ifeval_id, {}), **{k: v for k, v in kwargs.items() if v is not None}}
    missing = [k for k in REQUIRED.get(ifeval_id, ()) if k not in full]
    if missing:
        raise WorkbenchError(f"{ifeval_id} needs {', '.join(missing)}: e.g. {spelling(ifeval_id, {missing[0]: 'de'})}")
    return full, describe(ifeval_id, full)  # the registry validates the values


def describe(ifeval_id: str, kwargs: Mapping) -> str:
    """IFEval's own instruction sentence for these kwargs."""
    try:
        return ifeval_registry()[ifeval_id](ifeval_id).build_description(**kwargs)
    except (KeyError, ValueError, TypeError) as exc:
        if ifeval_id == "language:response_language":
            from lm_eval.tasks.ifeval.instructions_util import LANGUAGE_CODES

            raise WorkbenchError(f"unknown language {kwargs.get('language')!r}: use one of {', '.join(sorted(LANGUAGE_CODES))}") from None
        raise WorkbenchError(f"bad kwargs for {ifeval_id}: {exc}") from None


def generic(inst: Instruction) -> Instruction:
    """The same IFEval instruction with its per-query kwargs left to each query (a record's own
    keyword means nothing for another query)."""
    if inst.ifeval_id is None or inst.source != "ifeval":
        return inst
    kwargs = {k: (PER_QUERY[k] if k in PER_QUERY else v) for k, v in inst.kwargs.items()}
    kwargs = {k: ([v] if k in LIST_KWARGS and isinstance(v, str) else v) for k, v in kwargs.items()}
    given = {k: v for k, v in kwargs.items() if k not in PER_QUERY}
    return replace(Instruction.ifeval(inst.ifeval_id, **kwargs), id=spelling(inst.ifeval_id, given))


# --- the catalog -------------------------------------------------------------------------------
@lru_cache
def _raw_catalog() -> tuple[dict, ...]:
    return tuple(json.loads(resources.files("workbench.data").joinpath("instructions.json").read_text()))


def catalog() -> dict[str, Instruction]:
    """The curated instructions (several phrasings each), by name."""
    return {
        raw["id"]: Instruction(raw["id"], tuple(raw["phrasings"]), raw["ifeval_id"], raw["kwargs"], raw["family"], "catalog")
        for raw in _raw_catalog()
    }


def get_instruction(instruction: "str | Instruction") -> Instruction:
    """A catalog name, an IFEval spelling (``id`` or ``id[key=value,...]``), ``text:SENTENCE`` or an Instruction."""
    if isinstance(instruction, Instruction):
        return instruction
    if not isinstance(instruction, str) or not instruction.strip():
        raise WorkbenchError(f"an instruction is a catalog name, an IFEval id or text:SENTENCE, not {instruction!r}")
    known = catalog()
    if instruction in known:
        return known[instruction]
    if instruction.startswith("text:"):
        return Instruction.custom(instruction[len("text:"):].strip())
    ifeval_id, kwargs = parse_spelling(instruction) if ":" in instruction else (instruction, {})
    if ifeval_id not in ifeval_registry():
        raise WorkbenchError(
            f"unknown instruction {instruction!r}: use a catalog name ({', '.join(known)}), an IFEval id "
            "(`workbench vectors --help` lists them), or text:SENTENCE"
        )
    return Instruction.ifeval(ifeval_id, **kwargs)


@dataclass(frozen=True)
class Group:
    """Instructions that share one vector, e.g. IFEval's end_checker over several end phrases.
    Pairs rotate over the members."""

    name: str
    members: tuple[Instruction, ...]

    def __post_init__(self):
        if not self.members:
            raise WorkbenchError(f"group {self.name!r} has no instructions")

    @property
    def checkable(self) -> bool:
        return all(m.checkable for m in self.members)

    @property
    def budget(self) -> int:
        return max(m.budget for m in self.members)

    @property
    def slug(self) -> str:
        return slug(self.name)

    def spec(self) -> dict:
        return {"name": self.name, "members": [m.spec() for m in self.members]}

    def __repr__(self) -> str:
        return f"Group({self.name!r}, {len(self.members)} instruction{'s' * (len(self.members) != 1)})"


def as_group(instruction: "str | Instruction | Group") -> Group:
    if isinstance(instruction, Group):
        return instruction
    inst = get_instruction(instruction)
    return Group(inst.id, (inst,))


def group_name(ifeval_id: str, kwargs: Mapping, group_by: Mapping[str, Sequence[str]] | None = None) -> str:
    """Which vector an IFEval instruction uses: its id, plus the kwargs ``group_by`` names for that id."""
    keys = (DEFAULT_GROUP_BY if group_by is None else group_by).get(ifeval_id, ())
    if "*" in keys:
        keys = sorted(kwargs)
    return spelling(ifeval_id, {k: kwargs[k] for k in keys if k in kwargs})


def parse_group_by(items: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """CLI ``--group-by ID=KEY[+KEY]`` (or ``ID=*``, or ``ID=`` for one vector per id) over the defaults."""
    out = dict(DEFAULT_GROUP_BY)
    for item in items:
        ifeval_id, eq, keys = item.partition("=")
        if not eq or ifeval_id not in ifeval_registry():
            raise WorkbenchError(f"bad --group-by {item!r}: write IFEVAL_ID=KEY[+KEY], ID=* or ID= (one vector per id)")
        out[ifeval_id] = tuple(k for k in keys.split("+") if k)
    return out
