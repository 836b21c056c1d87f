"""Groups: the instructions that share one vector (pairs rotate over the members), and the rule that
forms them from IFEval records: one vector per id, except one per language and one per keyword
(``DEFAULT_GROUP_BY``)."""

from __future__ import annotations

import inspect
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


def _kwarg_names(ifeval_id: str) -> list[str]:
    """The kwargs lm-eval's checker of a known id takes (its ``build_description``'s parameters)."""
    return [p for p in inspect.signature(ifeval_registry()[ifeval_id].build_description).parameters if p != "self"]


def check_group_by(group_by: Mapping[str, Sequence[str]], where: str = "group_by") -> dict[str, tuple[str, ...]]:
    """``group_by`` with every key an IFEval id and every name a kwarg of that id (``*`` alone: all of
    them), refused in one line otherwise: a name the id lacks would group nothing, silently (German and
    French in one vector)."""
    out = {}
    for ifeval_id, keys in group_by.items():
        if ifeval_id not in ifeval_registry():
            raise WorkbenchError(f"{where}: unknown IFEval id {ifeval_id!r}")
        if isinstance(keys, str):
            raise WorkbenchError(f"{where} {ifeval_id}: give a list of kwarg names, not the string {keys!r}")
        keys, takes = tuple(keys), _kwarg_names(ifeval_id)
        if "*" in keys and len(keys) > 1:
            raise WorkbenchError(f"{where} {ifeval_id}: * (every kwarg) stands alone: give * or the kwargs, not both")
        unknown = [k for k in keys if k != "*" and k not in takes]
        if unknown:
            raise WorkbenchError(
                f"{where} {ifeval_id}: no kwarg {', '.join(map(repr, unknown))}; it takes "
                f"{', '.join(takes) or 'no kwargs'} (or * for all, or none for one vector per id)"
            )
        out[ifeval_id] = keys
    return out


def parse_group_by(items: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """CLI ``--group-by ID=KEY[+KEY]`` (or ``ID=*``, or ``ID=`` for one vector per id) over the defaults;
    each key checked against the id's kwargs (``check_group_by``), an id given twice refused."""
    out, given = dict(DEFAULT_GROUP_BY), set()
    for item in items:
        ifeval_id, eq, keys = item.partition("=")
        names = keys.split("+") if keys else []
        if not eq or ifeval_id not in ifeval_registry() or not all(names):
            raise WorkbenchError(f"bad --group-by {item!r}: write IFEVAL_ID=KEY[+KEY], ID=* or ID= (one vector per id)")
        if ifeval_id in given:
            raise WorkbenchError(f"--group-by names {ifeval_id} twice: give each id once")
        out[ifeval_id] = tuple(names)
        given.add(ifeval_id)
    return check_group_by(out, "--group-by")
