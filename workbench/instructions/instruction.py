"""``Instruction``: one instruction from any of three sources, how to say it and how to check it.

* **IFEval's registry** (lm-eval): any of its 25 ids with any kwargs; the text is the registry's own
  description, so no sentence is written by hand: ``Instruction.ifeval("language:response_language", language="de")``.
* **The curated catalog** (``data/instructions.json``) adds phrasings to the IFEval instructions it names.
* **Free text**, checked by an IFEval id or a Python ``str -> bool``, or by nothing (vectors, separability
  and steering need no checker; a sweep or evaluation does): ``Instruction.custom("Answer like a pirate.", check=f)``.
  A Python checker is scored strictly (its loose verdict is its strict one) unless ``loose=True`` opts in
  to IFEval's loose rewrites; IFEval's ids, however reached, keep IFEval's loose rule.

Per-query kwargs are placeholders filled from each base query: ``{keyword}`` (the query's topic word)
and ``{query}`` (the query itself, e.g. the prompt to repeat).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from workbench.checkers import Check, Checker, check, check_callable
from workbench.errors import WorkbenchError
from workbench.instructions.curated import catalog_phrasings
from workbench.instructions.ifeval import FAMILIES, LIST_KWARGS, PER_QUERY, budget, full_kwargs, spelling

PLACEHOLDERS = ("{keyword}", "{query}")


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
    loose: bool = False  # a Python checker's opt-in to IFEval's loose rewrites (first/last line, asterisks)

    def __post_init__(self) -> None:
        if not isinstance(self.loose, bool):
            raise WorkbenchError(f"instruction {self.id!r}: loose must be True or False, not {self.loose!r}")
        if self.loose and self.checker is None:
            raise WorkbenchError(
                f"instruction {self.id!r}: loose=True is for a Python checker (check=<callable>); "
                "an IFEval id always uses IFEval's loose rule"
            )

    # --- the three sources -------------------------------------------------------------------
    @classmethod
    def ifeval(cls, ifeval_id: str, /, **kwargs) -> Instruction:
        """An IFEval instruction; its text is the registry's own description for these kwargs."""
        full, text = full_kwargs(ifeval_id, kwargs)
        given = {k: v for k, v in kwargs.items() if v is not None}
        extra = catalog_phrasings(ifeval_id, full)
        family = FAMILIES.get(ifeval_id.split(":")[0], "custom")
        return cls(spelling(ifeval_id, given), (text, *extra), ifeval_id, full, family, "ifeval")

    @classmethod
    def custom(
        cls,
        text: str | Sequence[str],
        check: Checker | str | None = None,
        id: str | None = None,
        loose: bool = False,
        **kwargs,
    ) -> Instruction:
        """Free text. ``check``: a ``str -> bool`` callable, an IFEval id (with ``kwargs``), or None.
        ``loose``: a callable's loose verdict tries IFEval's rewrites too (default: strict only)."""
        phrasings = (text,) if isinstance(text, str) else tuple(text)
        if not phrasings or not all(isinstance(p, str) and p.strip() for p in phrasings):
            raise WorkbenchError("a custom instruction needs its text: one or more non-empty sentences")
        name = id or readable(phrasings[0])
        if isinstance(check, str):
            full, _ = full_kwargs(check, kwargs)
            family = FAMILIES.get(check.split(":")[0], "custom")
            return cls(name, phrasings, check, full, family, "custom", loose=loose)  # loose=True is refused
        if kwargs:
            raise WorkbenchError(f"kwargs {sorted(kwargs)} need an IFEval id as the checker (check='id')")
        if check is not None and not callable(check):
            raise WorkbenchError(f"check must be a callable str -> bool or an IFEval id, not {type(check).__name__}")
        return cls(name, phrasings, None, {}, "custom", "custom", check, loose)

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

    def with_params(self, **values: str) -> Instruction:
        """Fill placeholders, e.g. ``include_word.with_params(keyword="ocean")``."""
        unknown = set(values) - {p.strip("{}") for p in PLACEHOLDERS}
        if unknown:
            raise WorkbenchError(f"instruction {self.id} takes parameters keyword and query, not {sorted(unknown)}")
        return replace(self, kwargs=_fill(self.kwargs, values), phrasings=tuple(_fill(list(self.phrasings), values)))

    def check(self, response: str, prompt: str = "") -> Check:
        """Does the response follow it? IFEval strict and loose; a callable strict, and loose only
        where it opted in (``loose``)."""
        if self.checker is not None:
            return check_callable(response, self.checker, instruction=self.id, loose=self.loose)
        if self.ifeval_id is None:
            raise WorkbenchError(
                f"instruction {self.id!r} has no checker: give check=<callable or IFEval id> to sweep or evaluate it"
            )
        if self.per_query:
            raise WorkbenchError(
                f"instruction {self.id!r} still has a per-query placeholder: fill it with instantiate(inst, query)"
            )
        return check(response, [self.ifeval_id], [self.kwargs], prompt)

    def spec(self) -> dict:
        """What defines it, as JSON (for provenance and sweep configurations)."""
        checker: dict[str, str | bool] | None = None
        if self.checker is not None:
            module = getattr(self.checker, "__module__", "?")
            qualname = getattr(self.checker, "__qualname__", repr(self.checker))
            checker = {"name": f"{module}.{qualname}", "code": fingerprint(self.checker), "loose": self.loose}
        return {
            "id": self.id,
            "source": self.source,
            "ifeval_id": self.ifeval_id,
            "kwargs": self.kwargs,
            "phrasings": list(self.phrasings),
            "checker": checker,
        }

    def __repr__(self) -> str:
        check_by = self.ifeval_id or (getattr(self.checker, "__name__", "callable") if self.checker else "no checker")
        check_by = f"{check_by}, loose rewrites" if self.loose else check_by
        text = self.phrasings[0] if len(self.phrasings[0]) <= 60 else self.phrasings[0][:57] + "..."
        return f"Instruction({self.id!r}, {self.source}, checked by {check_by}: {text!r})"


def slug(text: str) -> str:
    """A file-name-safe form of a name. Where making it safe loses characters, a hash of the full
    name follows the readable part, so two names never share a file (``Peace/out``, ``Peace?out``)."""
    safe = readable(text)[:72]
    return safe if safe == text else f"{safe}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def readable(text: str) -> str:
    """A name made of file-safe characters (a custom instruction's default id)."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", text).strip("-")[:80] or "instruction"


_SIMPLE = (str, int, float, bool, type(None), bytes)


def _plain(value, depth: int):
    """A stable text for what a checker's code captures: constants and containers of them by value,
    functions by their own fingerprint, anything else by its type only."""
    if isinstance(value, _SIMPLE):
        return repr(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(map(repr, value)) if isinstance(value, (set, frozenset)) else [_plain(v, depth) for v in value]
        return f"{type(value).__name__}({', '.join(items)})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_plain(k, depth)}: {_plain(v, depth)}" for k, v in value.items()) + "}"
    if isinstance(value, re.Pattern):
        return f"re({value.pattern!r}, {value.flags})"
    if callable(value) and hasattr(value, "__code__") and depth < 3:
        return fingerprint(value, depth + 1)
    return f"<{type(value).__module__}.{type(value).__qualname__}>"


def _code_text(code, depth: int) -> str:
    consts = [_code_text(c, depth) if hasattr(c, "co_code") else _plain(c, depth) for c in code.co_consts]
    return f"{code.co_code.hex()}|{consts}|{code.co_names}|{code.co_varnames}"


def fingerprint(fn, depth: int = 0) -> str:
    """A hash of what a checker computes: its bytecode and constants, its defaults and closure, and
    the globals it names (by value where they are data, recursively where they are functions). An
    edited checker gets a new fingerprint, so a results folder made with the old one is refused."""
    fn = getattr(fn, "__func__", fn)
    if isinstance(fn, functools.partial):
        text = f"{fingerprint(fn.func, depth + 1)}|{_plain(fn.args, depth)}|{_plain(fn.keywords, depth)}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]
    code = getattr(fn, "__code__", None)
    if code is None:  # a callable object or a builtin: its type and its fields
        parts = [type(fn).__qualname__, _plain(getattr(fn, "__dict__", {}), depth)]
        call = type(fn).__call__  # the class's own method (with code), or type's, which has none
        if hasattr(call, "__code__"):
            parts.append(fingerprint(call, depth + 1))
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
    names = getattr(fn, "__globals__", {})
    captured = [
        _plain(c.cell_contents, depth) if c is not None and _has_contents(c) else "<empty>"
        for c in (fn.__closure__ or ())
    ]
    used = {n: _plain(names[n], depth) for n in code.co_names if n in names and not isinstance(names[n], type(re))}
    text = "|".join(
        [
            _code_text(code, depth),
            _plain(fn.__defaults__, depth),
            _plain(fn.__kwdefaults__, depth),
            str(captured),
            str(used),
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _has_contents(cell) -> bool:
    try:
        _ = cell.cell_contents  # an empty cell raises on reading
    except ValueError:
        return False
    return True


def generic(inst: Instruction, keep: Mapping | None = None) -> Instruction:
    """The same IFEval instruction with its per-query kwargs left to each query (a record's own
    keyword means nothing for another query), except those ``keep`` fixes (a per-word vector's word)."""
    if inst.ifeval_id is None or inst.source != "ifeval":
        return inst
    keep = dict(keep or {})
    kwargs = {k: (keep[k] if k in keep else PER_QUERY[k] if k in PER_QUERY else v) for k, v in inst.kwargs.items()}
    kwargs = {k: ([v] if k in LIST_KWARGS and isinstance(v, str) else v) for k, v in kwargs.items()}
    given = {k: v for k, v in kwargs.items() if k not in PER_QUERY or k in keep}
    return replace(Instruction.ifeval(inst.ifeval_id, **kwargs), id=spelling(inst.ifeval_id, given))
