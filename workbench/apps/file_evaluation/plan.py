"""What an evaluation will do, decided before any model loads: ``EvaluateOptions`` (every choice of
``evaluate_file`` / ``evaluate_plan``, checked where it is built) and ``Plan`` (the test items, their
vector groups and, with ``pairs="file"``, the file's own training and validation pairs)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from workbench.checkers import unknown_ids
from workbench.errors import WorkbenchError
from workbench.instructions import (
    NO_TWIN,
    SAME_TWIN,
    Group,
    IFEvalExample,
    Instruction,
    as_group,
    check_group_by,
    file_pairs,
    make_pairs,
    record_instructions,
    split_of,
    twin,
    vector_groups,
)
from workbench.models import Model
from workbench.readers import AUTO, READERS, ReaderSpec, reader_for, reader_named
from workbench.store import DEFAULT_AGGREGATOR, aggregator_named
from workbench.sweep import Choice, Example, Executor, pair_example

SEARCHES = ("halving", "reuse", "exhaustive")
PAIR_SOURCES = ("queries", "file")
MIN_FILE_PAIRS = 4  # a group with fewer training pairs in the file takes the project's queries
SETTLED_BY_A_SWEEP = ("layers", "sweep_prompts", "search")  # a given sweep's own: set beside it, they would be ignored


def default_layers(model: Model) -> tuple[int, ...]:
    """Layers every ~10 % of depth, from a fifth of the way in to the second-to-last."""
    n = model.n_layers
    return tuple(range(max(1, n // 5), n - 1, max(1, n // 10)))


@dataclass(frozen=True)
class EvaluateOptions:
    """How to evaluate a file or a list of instructions (see ``file_evaluation.run``'s module doc).

    ``sweep_dir``: a finished selection sweep to reuse (default: ``OUT/sweep``, run here), this model's
    and for this run's groups (``folders``); it settled ``layers``, ``sweep_prompts`` and ``search``, so
    those set beside it are refused;
    ``max_new_tokens=None`` gives each record its instructions' budget; ``settings`` (group name ->
    ``Choice.manual(...)``) fixes a group's steering instead of selecting it; ``conditional`` adds the
    same steering gated by each vector's condition; ``executor`` runs the selection sweep (e.g. on Ray).
    ``group_by``, ``pairs`` and ``skip_unknown`` shape the plan (``plan_file``). ``aggregator``: how
    the vectors are made (a name in ``extract.AGGREGATORS``); a given sweep made with another is refused.
    ``reader``: the file's format (``readers.read_dataset``: ``auto``, ``ifeval``, ``pairs``, ``paper``,
    ``module:function`` or a callable), resolved here, so a bad one fails before the file is read."""

    sweep_dir: str | Path | None = None
    max_new_tokens: int | None = None
    n_train: int = 64
    sweep_prompts: int = 18  # a screen of 5 and 13 for the finalists: 80 % power at a gain of half the failing prompts
    group_by: Mapping[str, Sequence[str]] | None = None
    pairs: str = "queries"
    search: str = "halving"
    layers: Sequence[int] | None = None
    skip_unknown: bool = False
    seed: int = 0
    settings: Mapping[str, Choice] | None = None
    conditional: bool = False
    executor: Executor | None = None
    aggregator: str = DEFAULT_AGGREGATOR
    reader: ReaderSpec = AUTO

    def __post_init__(self) -> None:
        if self.pairs not in PAIR_SOURCES:
            raise WorkbenchError(f"unknown pair source {self.pairs!r}: use one of {', '.join(PAIR_SOURCES)}")
        if self.search not in SEARCHES:
            raise WorkbenchError(f"unknown search {self.search!r}: use one of {', '.join(SEARCHES)}")
        aggregator_named(self.aggregator)
        if self.group_by is not None:
            check_group_by(self.group_by)
        if not (isinstance(self.reader, str) and (self.reader == AUTO or self.reader in READERS)):
            object.__setattr__(self, "reader", reader_named(self.reader))  # resolved once: a module imported once
        if self.sweep_dir is not None:
            default = {f.name: f.default for f in fields(self)}
            set_here = {f"{k}=": getattr(self, k) for k in SETTLED_BY_A_SWEEP if getattr(self, k) != default[k]}
            refuse_beside_sweep(self.sweep_dir, set_here)
        if self.sweep_dir is not None and not any((Path(self.sweep_dir) / d).is_dir() for d in ("units", "round1")):
            raise WorkbenchError(
                f"{self.sweep_dir} holds no sweep (no units/ or round1/): give a `workbench sweep --out` folder "
                "or an earlier evaluation's OUT/sweep"
            )
        made = sweep_aggregator(self.sweep_dir) if self.sweep_dir is not None else self.aggregator
        if made != self.aggregator:
            raise WorkbenchError(
                f"the sweep in {self.sweep_dir} chose its settings for {made} vectors, not {self.aggregator}: "
                f"use --aggregator {made} (aggregator={made!r}) or another sweep"
            )

    def plan_for(self, data: str | Path) -> Plan:
        """``plan_file`` of ``data`` with these options' grouping, pair source, skipping, seed and reader."""
        return plan_file(data, self.group_by, self.pairs, self.skip_unknown, self.seed, self.reader)


def refuse_beside_sweep(sweep: str | Path | None, given: Mapping[str, object]) -> None:
    """A given sweep already settled the layers, the validation prompts and the search: ``given`` (an
    option as spelled, ``--search`` or ``search=``, to its value; None: not set) beside it would be
    ignored, so it is refused in one line."""
    named = [f"{k}{v!r}" if k.endswith("=") else f"{k} {_shown(v)}" for k, v in given.items() if v is not None]
    if sweep is not None and named:
        raise WorkbenchError(
            f"{' and '.join(named)} would be ignored beside the sweep in {sweep}, whose own layers, prompts and search "
            f"chose the settings: leave {'them' if len(named) > 1 else 'it'} out, or select anew without the sweep"
        )


def _shown(value: object) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def sweep_config(folder: str | Path) -> dict:
    """What a sweep folder records of itself: its ``config.json`` (a halving sweep's: its first
    round's, which names every group); empty where there is no readable one (``load_table`` speaks
    for a damaged folder)."""
    config = Path(folder) / "config.json"
    config = config if config.is_file() else Path(folder) / "round1" / "config.json"
    try:
        claimed = json.loads(config.read_text())
    except (OSError, ValueError):
        return {}
    return claimed if isinstance(claimed, dict) else {}


def sweep_aggregator(folder: str | Path) -> str:
    """The aggregator a sweep folder's vectors were made with, from ``sweep_config`` (no key: the
    default, which every sweep before the choice used); the default too where there is no readable one."""
    made = sweep_config(folder).get("aggregator", DEFAULT_AGGREGATOR)
    return made if isinstance(made, str) else DEFAULT_AGGREGATOR


Item = tuple[Example, tuple[tuple[str, ...], ...]]  # a test item with each instruction's vector groups


@dataclass
class Plan:
    """What an evaluation of one file will do; made without the model."""

    data: str
    examples: list[IFEvalExample]
    items: list[Item]
    groups: dict[str, Group]
    skipped: dict[str, str] = field(default_factory=dict)
    pairs: str = "queries"
    train: dict = field(default_factory=dict)  # group -> the file's training pairs (pairs="file")
    validation: dict = field(default_factory=dict)
    reader: str = ""  # the format the file was read in (``auto`` resolved); empty for your instructions

    @property
    def custom_checkers(self) -> dict[str, str]:
        """Each Python checker's loose rule, by instruction: ``strict`` (the default) or ``loose`` (opted in)."""
        return {m.id: "loose" if m.loose else "strict" for g in self.groups.values() for m in g.members if m.checker}


def _one_line(text: str) -> str:
    """An error message on one line, whatever ids, keys or values from the file it quotes."""
    return " ".join(text.splitlines())


def plan_file(
    data: str | Path,
    group_by: Mapping[str, Sequence[str]] | None = None,
    pairs: str = "queries",
    skip_unknown: bool = False,
    seed: int = 0,
    reader: ReaderSpec = AUTO,
) -> Plan:
    """Read and check the file (``reader``: its format, ``readers.read_dataset``); group its instructions.
    Unknown ids are an error unless skipped."""
    if pairs not in PAIR_SOURCES:
        raise WorkbenchError(f"unknown pair source {pairs!r}: use one of {', '.join(PAIR_SOURCES)}")
    if group_by is not None:
        check_group_by(group_by)
    chosen = reader_for(data, reader)
    examples = chosen(data)
    bad = unknown_ids([i for ex in examples for i in ex.instruction_id_list])
    if bad and not skip_unknown:
        raise WorkbenchError(
            _one_line(
                f"{data} uses ids lm-eval's IFEval does not know: {', '.join(bad)} "
                "(pass --skip-unknown to leave those records out)"
            )
        )
    skipped: dict[str, str] = {}
    members: dict[str, dict] = defaultdict(dict)
    items: list[Item] = []
    known = []
    for ex in examples:
        if set(ex.instruction_id_list) & set(bad):
            skipped[ex.key] = f"unknown id {', '.join(i for i in ex.instruction_id_list if i in bad)}"
            continue
        try:  # every record's kwargs, used or not: bad input fails here, before any model loads
            insts = record_instructions(ex)
        except WorkbenchError as exc:
            raise WorkbenchError(_one_line(f"{data} line {ex.line} (key {ex.key}): {exc}")) from None
        known.append(ex)
        if (without := twin(ex)) is None:
            skipped[ex.key] = SAME_TWIN if ex.prompt_without_instruction else NO_TWIN
            continue
        if pairs == "file" and split_of(without, seed) != "test":
            continue  # a training or validation record
        each = [vector_groups(i, group_by) for i in insts]
        for name, member in (g for groups in each for g in groups):
            members[name][member.id] = member
        example = Example(ex.key, without, ex.prompt, insts)
        items.append((example, tuple(tuple(n for n, _ in groups) for groups in each)))
    if not items:
        raise WorkbenchError(
            _one_line(f"{data} ({chosen.name}): no record can be evaluated; {_why_none(skipped, pairs)}")
        )
    groups = {name: Group(name, tuple(ms[k] for k in sorted(ms))) for name, ms in sorted(members.items())}
    plan = Plan(str(data), examples, items, groups, skipped, pairs, reader=chosen.name)
    if pairs == "file":
        own = file_pairs(known, group_by, seed)
        for name in groups:
            splits = own.get(name, {})
            if len(splits.get("train", [])) >= MIN_FILE_PAIRS and splits.get("validation"):
                plan.train[name], plan.validation[name] = splits["train"], splits["validation"]
    return plan


def _why_none(skipped: dict[str, str], pairs: str) -> str:
    """Why a file leaves nothing to evaluate: its most common skip reason, or the split."""
    if not skipped:
        return f"with --pairs {pairs}, none of its records fell in the test split: use --pairs queries or a larger file"
    reason, n = Counter(skipped.values()).most_common(1)[0]
    return f"{len(skipped)} skipped, {n} for {reason}"


def plan_instructions(instructions: Sequence[str | Instruction | Group], test_prompts: int = 12, seed: int = 0) -> Plan:
    """A plan for your own instructions (each needs a checker): its test items are the project's test
    queries with the instruction appended, one group per instruction."""
    groups = {g.name: g for g in map(as_group, instructions)}
    for g in groups.values():
        if not g.checkable:
            raise WorkbenchError(
                f"instruction {g.name!r} has no checker, and an evaluation scores compliance: "
                "give it check=<callable or IFEval id>"
            )
    items: list[Item] = [
        (pair_example(p), ((g.name,),))
        for g in groups.values()
        for p in make_pairs(g, "test", limit=test_prompts, seed=seed)
    ]
    return Plan("instructions: " + ", ".join(groups), [], items, groups)
