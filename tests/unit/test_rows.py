"""Real rows against their declared types (``workbench.rows``): a sweep's and the four conditions',
scored, as they go to JSONL. mypy checks the code that builds them; this checks the rows themselves:
every required key, no undeclared one, each value of its declared type."""

import types
import typing
from typing import get_args, get_origin, get_type_hints

import numpy as np
import pytest
from typing_extensions import NotRequired

from workbench.instructions import as_group, make_pairs
from workbench.rows import ScoredConditionRow, ScoredSweepRow
from workbench.store import vector_for
from workbench.sweep import NO_STEERING, Choice, Local, Unit, catalog_examples, four_conditions


def mismatches(row: dict, kind: type) -> list[str]:
    """What in ``row`` disagrees with the TypedDict ``kind``: missing and undeclared keys, values of
    another type. Empty when the row is one."""
    hints = get_type_hints(kind, include_extras=True)
    required = {k for k, hint in hints.items() if get_origin(hint) is not NotRequired}
    wrong = [f"missing {k!r}" for k in sorted(required - row.keys())]
    wrong += [f"undeclared {k!r}" for k in sorted(row.keys() - hints.keys())]
    typed = sorted(row.keys() & hints.keys())
    return wrong + [f"{k!r}: {row[k]!r} is not {hints[k]}" for k in typed if not conforms(row[k], hints[k])]


def conforms(value, hint) -> bool:
    """Whether ``value`` is of type ``hint``: a class (a bool is not an int, an int not a float, numpy's
    bool not a bool), ``X | None``, ``list[X]``, ``NotRequired[X]``."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is NotRequired:
        return conforms(value, args[0])
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, a) for a in args)
    if origin is list:
        return isinstance(value, list) and all(conforms(v, args[0]) for v in value)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


@pytest.fixture(scope="module")
def sweep_rows(tiny):
    """Two units in one batch, as a sweep packs them: the unsteered baseline and a layer with an
    additive and a target setting; scored with a judge."""
    group, pairs = as_group("one_sentence"), make_pairs("one_sentence", "validation", limit=2)
    vec = vector_for(tiny, "one_sentence", None, 6)
    units = [
        Unit(group, False, NO_STEERING, None, pairs, [("none", 0.0)]),
        Unit(group, True, 1, vec, pairs, [("add", 1.0), ("project", None)]),
    ]
    ((_, per_unit),) = Local().map(tiny, [(units, 3)], judge=lambda prompt, reply: 0.5)
    return [row for rows in per_unit for row in rows]


@pytest.fixture(scope="module")
def condition_rows(tiny):
    examples = catalog_examples("one_sentence", limit=2)
    choice = Choice("one_sentence", False, 2, "add", 2.0, 1.0, 0.0, 0.0)
    spec = choice.spec(vector_for(tiny, "one_sentence", None, 6))
    return four_conditions(tiny, examples, spec, [], "one_sentence", (choice, None), max_new_tokens=3)


def test_a_sweeps_rows_are_scored_sweep_rows(sweep_rows):
    assert len(sweep_rows) == 2 * 1 + 2 * 2
    assert {type(r["target"]) for r in sweep_rows} == {float, type(None)}  # both sides of `float | None`
    for row in sweep_rows:
        assert type(row) is dict and mismatches(row, ScoredSweepRow) == []
        assert row["judge"] == 0.5


def test_the_four_conditions_rows_are_scored_condition_rows(condition_rows):
    assert {r["condition"] for r in condition_rows} == {"no_instruction", "steer", "instruction", "instruction_steer"}
    assert {r["coefficient"] for r in condition_rows} == {2.0, None}
    for row in condition_rows:
        assert type(row) is dict and "judge" not in row  # no judge: its key is left out
        assert mismatches(row, ScoredConditionRow) == []


def test_the_checker_sees_a_missing_key_an_undeclared_key_and_a_wrong_type(sweep_rows):
    row = dict(sweep_rows[0])
    assert mismatches({k: v for k, v in row.items() if k != "text"}, ScoredSweepRow) == ["missing 'text'"]
    assert mismatches({k: v for k, v in row.items() if k != "judge"}, ScoredSweepRow) == []  # NotRequired
    assert mismatches({**row, "condition": "steer"}, ScoredSweepRow) == ["undeclared 'condition'"]
    assert mismatches(row, ScoredConditionRow) == ["missing 'condition'", "undeclared 'target'"]
    wrong = {
        "layer": True,  # a bool is not an int
        "n_tokens": 3.0,
        "coefficient": "1.0",
        "logprob": 1,  # an int is not a float
        "strict_each": [np.bool_(True)],
        "kwargs": [[]],
        "instruction_ids": "punctuation:no_comma",
        "judge": None,
    }
    for key, value in wrong.items():
        assert mismatches({**row, key: value}, ScoredSweepRow) == [
            f"{key!r}: {value!r} is not {get_type_hints(ScoredSweepRow, include_extras=True)[key]}"
        ]


def test_an_evaluations_rows_jsonl_holds_evaluation_rows(tiny, tmp_path):
    """As written to ``rows.jsonl`` and read back (JSON: what a later reader of the file sees)."""
    from workbench import Instruction, evaluate_instructions
    from workbench.io import read_jsonl
    from workbench.rows import EvaluationRow

    brief = Instruction.custom("Answer in under five words.", check=lambda r: len(r.split()) < 5, id="brief")
    setting = {"brief": Choice.manual("brief", 1, "add", 1.0)}
    evaluate_instructions(tiny, [brief], tmp_path, test_prompts=2, n_train=4, max_new_tokens=3, settings=setting)
    rows = read_jsonl(tmp_path / "rows.jsonl")
    assert len(rows) == 8 and all(not mismatches(r, EvaluationRow) for r in rows), mismatches(rows[0], EvaluationRow)
