"""Steered generation against an independent reference (``reference.py``: plain transformers, a
hand-written hook and loop), for every operator, through the twin and through the bridge, batched
and packed with per-row settings."""

import pytest
import torch
from reference import steered_greedy

from workbench import generate
from workbench.generation.steering import Steer, pack
from workbench.models import tiny_tokenizer
from workbench.models.tiny import tiny_hf

PROMPTS = ["Explain how volcanoes work.", "hi", "What are the main benefits of tea?"]
N = 8


@pytest.fixture(scope="module")
def plain():
    return tiny_hf(seed=0), tiny_tokenizer()


@pytest.mark.parametrize("op,c", [("add", 3.0), ("add", -6.0), ("project", 2.5), ("ablate", 0.0)])
@pytest.mark.parametrize("bridge", [False, True])
def test_generation_equals_the_reference(tiny, tiny_vector, plain, op, c, bridge):
    hf, tok = plain
    layer = 2
    direction = tiny_vector.directions[layer]
    spec = Steer(direction, layer, c, op)
    if bridge:
        with tiny.through_bridge():
            got = generate(tiny, PROMPTS, steer=spec, max_new_tokens=N, stop_at_eos=False)
    else:
        got = generate(tiny, PROMPTS, steer=spec, max_new_tokens=N, stop_at_eos=False)
    for prompt, g in zip(PROMPTS, got):
        assert list(g.token_ids) == steered_greedy(hf, tok, prompt, N, layer, direction, op, c), (prompt, op)


def test_the_reference_is_sensitive_to_steering(tiny_vector, plain):
    """Guard: the reference itself must change under steering, or the comparison above proves nothing."""
    hf, tok = plain
    d = tiny_vector.directions[2]
    assert steered_greedy(hf, tok, PROMPTS[0], N) != steered_greedy(hf, tok, PROMPTS[0], N, 2, d, "add", 6.0)


def test_packed_rows_equal_each_row_alone(tiny, tiny_vector, plain):
    """``pack``: one batch where every row has its own steering (none, add, project, two layers)
    gives each row what the reference gives it alone."""
    hf, tok = plain
    d1, d2 = tiny_vector.directions[1], tiny_vector.directions[2]
    rows = [
        [],
        [Steer(d2, 2, 3.0)],
        [Steer(d2, 2, 2.5, "project")],
        [Steer(d2, 2, -3.0)],
        [Steer(d1, 1, 4.0), Steer(d2, 2, 3.0)],
    ]
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(len(rows))]
    got = generate(tiny, prompts, steer=pack(rows), max_new_tokens=N, stop_at_eos=False, batch_size=2)
    for prompt, specs, g in zip(prompts, rows, got):
        alone = generate(tiny, [prompt], steer=specs, max_new_tokens=N, stop_at_eos=False)[0]
        assert g.token_ids == alone.token_ids
        if len(specs) == 1:
            s = specs[0]
            assert list(g.token_ids) == steered_greedy(hf, tok, prompt, N, s.layer, s.direction, s.mode, s.coefficient)


def test_pack_refuses_a_row_with_one_intervention_twice(tiny_vector):
    s = Steer(tiny_vector.directions[2], 2, 1.0)
    with pytest.raises(Exception, match="twice"):
        pack([[s, s.scaled(2.0)]])


def test_coefficients_are_multiples_of_the_layer_norm(tiny_vector):
    norm = float(tiny_vector.norms[2])
    assert tiny_vector.steer(2, 1.5).coefficient == pytest.approx(1.5 * norm)
    assert tiny_vector.steer(2, 1.5, absolute=True).coefficient == 1.5
    with pytest.warns(UserWarning, match="barely change"):
        tiny_vector.steer(2, 0.01 * norm, absolute=True)
    assert tiny_vector.steer(2, mode="project").coefficient == pytest.approx(float(tiny_vector.proj_with[2]))


def test_ablation_removes_the_direction(tiny, tiny_vector):
    from workbench.generation.steering import steering

    seen = []
    spec = tiny_vector.steer(2, mode="ablate")
    rec = ("blocks.2.hook_resid_post", lambda x, hook: seen.append(x.clone()))
    with steering(tiny, spec), tiny.bridge.hooks(fwd_hooks=[rec]), torch.inference_mode():
        tiny.hf(torch.tensor([[5, 6, 7, 8]]))
    u = tiny_vector.directions[2]
    assert (seen[0] @ u).abs().max() < 1e-4


def test_reprs_are_one_line(tiny, tiny_vector):
    for obj in (tiny, tiny_vector, tiny_vector.steer(2, 1.0)):
        text = repr(obj)
        assert "\n" not in text and len(text) < 200, text
    assert "<svg" in tiny_vector._repr_html_()
