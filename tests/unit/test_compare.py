"""The side-by-side table holds exactly what generating and checking each reply independently gives,
and its notebook card escapes the replies."""

import pandas as pd

from workbench import generate, get_instruction
from workbench.compare import COLUMNS, SideBySide, follows, side_by_side

PROMPTS = ["Describe tides.", "Why is the sky blue?", "Name a <b>bold</b> fish."]


def test_the_table_is_independent_generation_and_checks(tiny, tiny_vector):
    steer = tiny_vector.steer(2, 4.0)
    result = side_by_side(tiny, PROMPTS, "one_sentence", steer, max_new_tokens=6)
    t = result.table
    assert list(t.columns) == COLUMNS and list(t["prompt"]) == PROMPTS
    plain = [g.text for g in generate(tiny, PROMPTS, max_new_tokens=6)]
    steered = [g.text for g in generate(tiny, PROMPTS, steer=steer, max_new_tokens=6)]
    assert list(t["unsteered"]) == plain and list(t["steered"]) == steered and plain != steered
    inst = get_instruction("one_sentence")
    assert list(t["unsteered_follows"]) == [inst.check(x).loose for x in plain]
    assert list(t["steered_follows"]) == [inst.check(x).loose for x in steered]
    assert t["degenerate"].dtype == bool and t["logprob"].notna().all()
    assert repr(result).startswith(
        "SideBySide('one_sentence', Steer(one_sentence @ layer 2: add"
    ) and "3 prompts" in repr(result)


def test_several_steers_apply_together_and_a_per_query_instruction_is_filled(tiny, tiny_vector):
    both = [tiny_vector.steer(1, 2.0), tiny_vector.steer(3, 2.0)]
    result = side_by_side(tiny, PROMPTS[:2], "exclude_word", both, max_new_tokens=5)
    assert list(result.table["steered"]) == [g.text for g in generate(tiny, PROMPTS[:2], steer=both, max_new_tokens=5)]
    assert " + " in result.steer
    assert (
        follows("exclude_word", "Tides rise.", "Describe tides.") is False
    )  # the topic word of the prompt is filled in


def test_the_card_escapes_the_texts(tiny_vector, tiny):
    result = side_by_side(tiny, PROMPTS[2:], "one_sentence", tiny_vector.steer(2, 1.0), max_new_tokens=4)
    result.table.loc[0, "steered"] = "<script>alert(1)</script>"
    card = result._repr_html_()
    assert "<script>" not in card and "&lt;script&gt;" in card and "&lt;b&gt;bold&lt;/b&gt;" in card
    assert "✓" in card or "✗" in card


def test_an_instruction_without_checker_gives_no_verdict():
    assert follows("text:Answer like a pirate.", "Arr.", "Hi") is None
    card = SideBySide(
        "x", "s", pd.DataFrame([["p", "a", None, "b", None, -1.0, 0.0, False]], columns=COLUMNS)
    )._repr_html_()
    assert "–" in card
