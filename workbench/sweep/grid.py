"""The grid of a sweep: what it covers (``SweepConfig``), its units of work (one instruction ×
prompt condition × layer, all settings × prompts as batch rows), and how units pack into batches."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from workbench.errors import WorkbenchError
from workbench.generation.steering import Steer, pack
from workbench.instructions import Group, Instruction, Pair, as_group
from workbench.store import DEFAULT_AGGREGATOR, aggregator_named
from workbench.vectors import InstructionVector, check_multiples

NO_STEERING = -1  # the layer recorded for unsteered rows


@dataclass(frozen=True)
class SweepConfig:
    """What a sweep covers. Coefficients are in units of the layer's mean-difference norm.

    Instructions are catalog names, IFEval spellings, ``Instruction``s or ``Group``s; each needs a
    checker. ``max_new_tokens=None`` gives each its own budget (``instructions.budget``). ``aggregator``
    (a name in ``extract.AGGREGATORS``) makes the vectors; it is part of the folder's identity.
    With no layers the sweep runs only the unsteered baseline: does the model follow when told?
    """

    model: str
    instructions: tuple[str | Instruction | Group, ...]
    layers: tuple[int, ...]
    coefficients: tuple[float, ...] = (0.5, 1.0, 2.0)
    project: bool = True
    n_train: int = 64
    n_prompts: int = 16
    split: str = "validation"
    max_new_tokens: int | None = 64
    conditions: tuple[bool, ...] = (False, True)  # with the instruction in the prompt?
    seed: int = 0
    data: str = ""  # hash of the pairs given to run_sweep, when they are not the project's queries
    aggregator: str = DEFAULT_AGGREGATOR

    def __post_init__(self):
        if not self.instructions:
            raise WorkbenchError("no instructions to sweep: name at least one")
        if not self.coefficients and not self.project:
            raise WorkbenchError("the coefficient grid is empty: give coefficients or keep the projection mode")
        check_multiples(self.coefficients)
        aggregator_named(self.aggregator)
        for name in ("n_train", "n_prompts"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise WorkbenchError(f"{name} must be a whole number of at least 1, not {getattr(self, name)!r}")
        if self.max_new_tokens is not None and (not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1):
            raise WorkbenchError(
                f"max_new_tokens must be at least 1 (or None: each instruction's budget), not {self.max_new_tokens!r}"
            )
        if any(not isinstance(l, int) or l < 0 for l in self.layers):
            raise WorkbenchError(f"layers are whole numbers from 0, not {list(self.layers)}")
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names):
            raise WorkbenchError(
                f"two instructions share a name in this sweep: {sorted(n for n in names if names.count(n) > 1)}"
            )
        slugs = [g.slug for g in self.groups]
        if len(set(slugs)) != len(slugs):  # slugs carry a hash of the name, so this would be a bug
            raise WorkbenchError(
                f"two instructions share a file name in this sweep: {sorted(s for s in slugs if slugs.count(s) > 1)}"
            )
        for g in self.groups:
            if not g.checkable:
                raise WorkbenchError(
                    f"instruction {g.name!r} has no checker, and a sweep scores compliance: give it "
                    "check=<callable or IFEval id>"
                )

    @property
    def groups(self) -> list[Group]:
        return [as_group(i) for i in self.instructions]

    def budget(self, group: Group) -> int:
        return self.max_new_tokens if self.max_new_tokens is not None else group.budget

    def settings(self) -> list[tuple[str, float | None]]:
        """(mode, coefficient) per steered setting at one layer."""
        out = [("add", float(c)) for c in self.coefficients if c != 0]
        return out + ([("project", None)] if self.project else [])

    def to_json(self) -> dict:
        """Catalog names stay names; Instructions and Groups are written out in full. The default
        aggregator is left out, so a folder written before it could be chosen (its config has no
        ``aggregator``: it used the default) still resumes, and one made with another refuses it."""
        left_out = {"instructions"} | ({"aggregator"} if self.aggregator == DEFAULT_AGGREGATOR else set())
        plain = {k: v for k, v in asdict(self).items() if k not in left_out}
        named = [i if isinstance(i, str) else as_group(i).spec() for i in self.instructions]
        return json.loads(json.dumps({**plain, "instructions": named}))


def unit_name(instruction: str, with_instruction: bool, layer: int) -> str:
    cond = "with" if with_instruction else "without"
    return f"{instruction}__{cond}__{'none' if layer == NO_STEERING else f'L{layer:02d}'}.jsonl"


@dataclass
class Unit:
    """One (instruction, condition, layer) of a sweep: rows = settings × prompts."""

    group: Group
    with_instruction: bool
    layer: int
    vec: InstructionVector | None
    pairs: list[Pair]
    settings: list[tuple[str, float | None]]

    @property
    def name(self) -> str:
        return unit_name(self.group.slug, self.with_instruction, self.layer)

    def rows(self) -> list[tuple[str, float | None, Pair, str]]:
        return [
            (mode, coef, pair, pair.with_instruction if self.with_instruction else pair.without_instruction)
            for mode, coef in self.settings
            for pair in self.pairs
        ]


def unit_specs(units: Sequence[Unit]) -> list[Steer]:
    """The steering of a batch holding several units, one row per (setting, prompt): per-row
    coefficients (``steering.pack``), unsteered rows NaN."""
    rows = []
    for unit in units:
        for mode, coef, _, _ in unit.rows():
            vec = unit.vec
            rows.append([] if unit.layer == NO_STEERING or vec is None else [vec.steer(unit.layer, coef, mode=mode)])
    return pack(rows)


def chunks(units: Sequence[Unit], rows_per_batch: int, budget=lambda unit: 0) -> list[list[Unit]]:
    """Consecutive units packed up to ``rows_per_batch`` rows; a batch holds one token budget only."""
    chunks: list[list[Unit]] = []
    current: list[Unit] = []
    size = 0
    for unit in units:
        n = len(unit.rows())
        if current and (size + n > rows_per_batch or budget(unit) != budget(current[0])):
            chunks.append(current)
            current, size = [], 0
        current.append(unit)
        size += n
    return chunks + ([current] if current else [])
