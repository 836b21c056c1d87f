"""Conditional steering: a prompt is steered only when its unsteered last-token projection at the
condition's layer is below the threshold; decided once per prompt, so batching and the cache agree."""

from dataclasses import replace

import pytest
import torch

from workbench import generate
from workbench.extract import record_last_token
from workbench.generation.steering import Condition
from workbench.vectors import InstructionVector

PROMPTS = [
    "Explain how volcanoes work.",
    "hi",
    "What are the main benefits of tea?",
    "Describe the history of jazz.",
    "a b c",
    "Why do cats purr?",
]


@pytest.fixture(scope="module")
def split_condition(tiny, tiny_vector):
    """A condition whose threshold sits at the median projection: half the prompts steered."""
    layer = 1
    u = tiny_vector.directions[layer]
    proj = record_last_token(tiny, PROMPTS)[:, layer] @ (u / u.norm())
    threshold = float(proj.median())
    return Condition(u, layer, threshold), (proj < threshold).tolist()


def test_only_the_rows_below_the_threshold_are_steered(tiny, tiny_vector, split_condition):
    condition, gate = split_condition
    assert 0 < sum(gate) < len(gate)  # both kinds of rows in one batch
    spec = tiny_vector.steer(2, 2.0)
    got = generate(tiny, PROMPTS, steer=replace(spec, when=condition), max_new_tokens=8, stop_at_eos=False)
    steered = generate(tiny, PROMPTS, steer=spec, max_new_tokens=8, stop_at_eos=False)
    plain = generate(tiny, PROMPTS, max_new_tokens=8, stop_at_eos=False)
    assert sum(s.token_ids != p.token_ids for s, p in zip(steered, plain)) >= 3  # steering changes these prompts at all
    for g, s, p, on in zip(got, steered, plain, gate):
        assert g.token_ids == (s.token_ids if on else p.token_ids)


def test_batch_single_cached_uncached_agree(tiny, tiny_vector, split_condition):
    condition, _ = split_condition
    spec = tiny_vector.steer(2, 2.0, when=condition)
    batch = generate(tiny, PROMPTS, steer=spec, max_new_tokens=8, stop_at_eos=False, batch_size=4)
    single = [generate(tiny, [p], steer=spec, max_new_tokens=8, stop_at_eos=False)[0] for p in PROMPTS]
    uncached = generate(tiny, PROMPTS, steer=spec, max_new_tokens=8, stop_at_eos=False, use_cache=False)
    assert [g.token_ids for g in batch] == [g.token_ids for g in single] == [g.token_ids for g in uncached]


def test_default_condition_and_its_provenance(tmp_path, tiny_vector):
    d = tiny_vector.separation()
    c = tiny_vector.condition()
    assert c.layer == int(d.argmax())
    assert c.threshold == pytest.approx(float(tiny_vector.proj_with[c.layer] + tiny_vector.proj_without[c.layer]) / 2)
    back = InstructionVector.load(tiny_vector.save(tmp_path / "v"))
    assert torch.equal(back.proj_with_std, tiny_vector.proj_with_std) and back.condition().key() == c.key()
    assert "if projection at layer" in repr(tiny_vector.steer(2, 1.0, when=c))


def test_conditional_rows_sit_between_always_and_never(tiny, tiny_vector):
    """In the report's conditional rows, a threshold of +inf steers like unconditional steering and
    −inf like no steering, on prompts with and without the instruction."""
    from workbench.sweep import Choice, catalog_examples, conditional_conditions, four_conditions

    examples = catalog_examples("one_sentence", "test", limit=3)
    choice = Choice.manual("one_sentence", 2, "add", 2.0)
    spec = choice.spec(tiny_vector)
    four = four_conditions(tiny, examples, spec, spec, "one_sentence", (choice, choice), 8)

    def by(rows, cond):
        return [r["text"] for r in rows if r["condition"] == cond]

    for threshold, without, with_ in (
        (float("inf"), "steer", "instruction_steer"),
        (float("-inf"), "no_instruction", "instruction"),
    ):
        when = Condition(tiny_vector.directions[1], 1, threshold)
        rows = conditional_conditions(tiny, examples, [replace(s, when=when) for s in spec], "one_sentence", choice, 8)
        assert by(rows, "conditional") == by(four, without) and by(rows, "instruction_conditional") == by(four, with_)
