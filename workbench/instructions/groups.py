"""Groups: the instructions that share one vector (pairs rotate over the members), and the rule that
forms them from IFEval records: one vector per id, except one per language (``DEFAULT_GROUP_BY``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from workbench.checkers import ifeval_registry
from workbench.errors import WorkbenchError
from workbench.instructions.ifeval import spelling
from workbench.instructions.instruction import Instruction, slug
from workbench.instructions.lookup import get_instruction

# One vector per IFEval id, except where a kwarg changes the behaviour itself: one per language.
# Override per call (``group_by={"startend:end_checker": ("end_phrase",)}``; ``("*",)`` = every kwarg).
DEFAULT_GROUP_BY: dict[str, tuple[str, ...]] = {"language:response_language": ("language",)}


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
