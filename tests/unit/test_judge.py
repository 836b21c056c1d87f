"""The degeneracy judge against hand-labelled replies, and the cases that motivated rule v2.

``tests/data/degenerate_labels.jsonl``: 318 real Qwen2.5-Coder-0.5B-Instruct replies (unsteered, steered,
with and without the instruction), each with the measures ``quality`` gave it and a label from reading
it; how they were drawn and labelled is in ``degenerate_labels.md``. The stored log-probs came from the
model, so these tests need none.
"""

import json
import math
from pathlib import Path

import pytest

from workbench.errors import WorkbenchError
from workbench.judging.quality import (
    DEGENERACY_RULE,
    DEGENERACY_RULES,
    MIN_COMPRESSION,
    Measures,
    compression,
    degeneracy_rule,
    degenerate_v1,
    degenerate_v2,
    quality,
    repetition,
)

LABELS = Path(__file__).parents[1] / "data" / "degenerate_labels.jsonl"
# (false positives, false negatives) measured on the sample; v1 is pinned, v2 may only improve.
# "v2, no prompts": v2 when the caller passes no prompts (logprob_prompt = logprob).
MEASURED = {"v1": (15, 39), "v2": (1, 12), "v2, no prompts": (10, 11)}


def sample() -> list[dict]:
    return [json.loads(line) for line in LABELS.read_text().splitlines() if line.strip()]


def measures(row: dict, with_prompt: bool = True) -> Measures:
    lp_prompt = row["logprob_prompt"] if with_prompt else row["logprob"]
    return Measures(row["text"], row["n_tokens"], row["logprob"], lp_prompt, row["repetition"], row["compression"])


def errors(rule, rows, with_prompt: bool = True) -> tuple[list[int], list[int]]:
    flagged = {r["id"]: rule(measures(r, with_prompt)) for r in rows}
    fp = [r["id"] for r in rows if flagged[r["id"]] and r["label"] == "fine"]
    fn = [r["id"] for r in rows if not flagged[r["id"]] and r["label"] == "degenerate"]
    return fp, fn


def test_sample_is_labelled_and_its_measures_are_the_packages():
    rows = sample()
    assert len(rows) >= 150 and {r["label"] for r in rows} == {"fine", "degenerate"}
    assert sum(r["label"] == "degenerate" for r in rows) >= 50
    for r in rows:
        assert r["repetition"] == pytest.approx(repetition(r["text"]), abs=1e-4)
        assert r["compression"] == pytest.approx(compression(r["text"]), abs=1e-4)


def test_v2_makes_fewer_errors_than_v1_on_labelled_replies():
    rows = sample()
    fp1, fn1 = errors(degenerate_v1, rows)
    fp2, fn2 = errors(degenerate_v2, rows)
    assert (len(fp1), len(fn1)) == MEASURED["v1"], (fp1, fn1)
    assert len(fp2) <= MEASURED["v2"][0] and len(fn2) <= MEASURED["v2"][1], (fp2, fn2)
    assert len(fp2) < len(fp1) and len(fn2) < len(fn1)
    # before callers pass the prompt as sent, v2 still beats v1 on both counts
    fp0, fn0 = errors(degenerate_v2, rows, with_prompt=False)
    assert len(fp0) <= MEASURED["v2, no prompts"][0] and len(fn0) <= MEASURED["v2, no prompts"][1], (fp0, fn0)
    assert len(fp0) < len(fp1) and len(fn0) < len(fn1)


def test_v2_judges_constrained_answers_and_collapses_right():
    rows = sample()
    constrained = [
        r for r in rows if r["instruction_ids"] == ["detectable_format:constrained_response"] and r["with_instruction"]
    ]
    formulaic = [r for r in constrained if r["kind"] == "formulaic"]
    assert len(formulaic) >= 5 and all(r["text"] in ("My answer is yes.", "My answer is no.") for r in formulaic)
    assert all(degenerate_v1(measures(r)) for r in formulaic)  # the bug
    assert not any(degenerate_v2(measures(r)) for r in constrained)
    collapses = [r for r in rows if r["kind"] == "collapse"]
    assert len(collapses) >= 30 and all(degenerate_v2(measures(r)) for r in collapses)
    assert sum(not degenerate_v1(measures(r)) for r in collapses) >= 20  # the other bug


def test_character_collapse_is_degenerate_under_v2_only():
    text = "<<<<<‹<<<<" * 30  # one "word": no repeated word 4-gram, and the model repeats it easily
    m = Measures.of(text, 64, -0.7)
    assert m.repetition == 0.0 and m.compression < MIN_COMPRESSION
    assert degenerate_v2(m) and not degenerate_v1(m)


def test_formulaic_answer_is_fine_given_its_instruction():
    row = next(r for r in sample() if r["text"] == "My answer is yes." and r["with_instruction"])
    assert "My answer is yes." in row["prompt"] and row["logprob"] < -2.5 < row["logprob_prompt"]
    assert not degenerate_v2(measures(row)) and degenerate_v1(measures(row))
    # the bare question alone cannot vouch for it: that is why quality takes the prompts
    assert degenerate_v2(Measures.of(row["text"], row["n_tokens"], row["logprob"]))


def test_ordinary_answers_are_fine_and_empty_is_degenerate():
    fluent = Measures.of("Tides come from the Moon's pull on the oceans; the Sun adds a smaller one.", 19, -1.2)
    assert not degenerate_v2(fluent) and not degenerate_v1(fluent)
    answers = [r for r in sample() if r["kind"] == "answer"]
    assert len(answers) >= 100 and not any(degenerate_v2(measures(r)) for r in answers)
    for empty in (Measures.of("", 0, math.nan), Measures.of(" \n", 1, -0.3)):
        assert degenerate_v2(empty)
    assert degenerate_v1(Measures.of("", 0, math.nan))


def test_short_replies_get_an_opening_allowance_long_ones_barely():
    assert not degenerate_v2(Measures.of("Start by planning a route.", 6, -3.1))  # -2.5 - 4/6 = -3.17
    assert degenerate_v2(Measures.of("Start by planning a route.", 6, -3.3))
    long = "Steering adds a direction to the residual stream at one layer, and the reply follows it. " * 3
    assert degenerate_v2(Measures.of(long, 64, -2.6))  # -2.5 - 4/64 = -2.56


def test_rule_registry_names_the_default_and_refuses_unknown_names():
    assert (
        DEGENERACY_RULE == "v2" and DEGENERACY_RULES["v1"] is degenerate_v1 and DEGENERACY_RULES["v2"] is degenerate_v2
    )
    with pytest.raises(WorkbenchError, match="v1, v2"):
        degeneracy_rule("v3")


def test_quality_scores_the_prompt_as_sent(tiny):
    queries = ["Explain tides.", "Explain tides."]
    prompts = ["Explain tides.", "Explain tides. Answer with one of: My answer is yes., My answer is no."]
    rows = quality(tiny, queries, ["Tides come from the moon."] * 2, [6, 6], prompts=prompts)
    assert rows[0]["logprob_prompt"] == rows[0]["logprob"] == rows[1]["logprob"]
    assert rows[1]["logprob_prompt"] != rows[1]["logprob"] and 0 < rows[0]["compression"]
    plain = quality(tiny, queries, ["Tides come from the moon."] * 2, [6, 6], rule="v1")
    assert all(r["logprob_prompt"] == r["logprob"] for r in plain)
    with pytest.raises(WorkbenchError, match="one prompt per reply"):
        quality(tiny, queries, ["a", "b"], [1, 1], prompts=prompts[:1])
    with pytest.raises(WorkbenchError, match="unknown degeneracy rule"):
        quality(tiny, queries, ["a", "b"], [1, 1], rule="v0")
