"""Groups: the instructions that share one vector (pairs rotate over the members), and the rule that
forms them from IFEval records: one vector per id, except one per language and one per keyword
(``DEFAULT_GROUP_BY``)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from workbench.checkers import ifeval_registry
from workbench.errors import WorkbenchError
from workbench.instructions.ifeval import spelling
from workbench.instructions.instruction import Instruction, generic, slug
from workbench.instructions.lookup import get_instruction

# One vector per IFEval id, except where a kwarg changes the behaviour itself: one per language, and
# one per word for the keyword ids (the paper's keyword vectors: a word list names one vector per word,
# and a record naming two words composes two). Override per call (``group_by={"startend:end_checker":
# ("end_phrase",)}``; ``("*",)`` = every kwarg; ``()`` = one vector per id).
DEFAULT_GROUP_BY: dict[str, tuple[str, ...]] = {
    "language:response_language": ("language",),
    "keywords:existence": ("keywords",),
    "keywords:frequency": ("keyword",),
    "keywords:forbidden_words": ("forbidden_words",),
}


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


def as_group(instruction: str | Instruction | Group) -> Group:
    if isinstance(instruction, Group):
        return instruction
    inst = get_instruction(instruction)
    return Group(inst.id, (inst,))


def vector_groups(
    inst: Instruction, group_by: Mapping[str, Sequence[str]] | None = None
) -> tuple[tuple[str, Instruction], ...]:
    """The vector groups an IFEval instruction steers with, each with the member it adds to that group:
    one group named by its id plus the kwargs ``group_by`` names for that id; a word list among them
    gives one group per word (``keywords=[a, b]``: groups ``[keywords=a]`` and ``[keywords=b]``, whose
    vectors compose). Members keep the named kwargs; other per-query kwargs are left to each query."""
    if inst.ifeval_id is None:
        raise WorkbenchError(f"{inst.id!r} is not an IFEval instruction: only IFEval ids form vector groups")
    keys = (DEFAULT_GROUP_BY if group_by is None else group_by).get(inst.ifeval_id, ())
    if "*" in keys:
        keys = sorted(inst.kwargs)
    named = {k: inst.kwargs[k] for k in keys if inst.kwargs.get(k) is not None}
    choices = [[[w] for w in dict.fromkeys(v)] if isinstance(v, list) else [v] for v in named.values()]
    variants = [dict(zip(named, values)) for values in itertools.product(*choices)]
    return tuple((spelling(inst.ifeval_id, v), generic(inst, keep=v)) for v in variants)


def parse_group_by(items: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """CLI ``--group-by ID=KEY[+KEY]`` (or ``ID=*``, or ``ID=`` for one vector per id) over the defaults."""
    out = dict(DEFAULT_GROUP_BY)
    for item in items:
        ifeval_id, eq, keys = item.partition("=")
        if not eq or ifeval_id not in ifeval_registry():
            raise WorkbenchError(f"bad --group-by {item!r}: write IFEVAL_ID=KEY[+KEY], ID=* or ID= (one vector per id)")
        out[ifeval_id] = tuple(k for k in keys.split("+") if k)
    return out
