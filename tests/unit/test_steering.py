"""Steering hooks and KV-cached generation on the tiny model."""

import pytest
import torch

from workbench import WorkbenchError, generate
from workbench.generation.steering import Steer, position_mask, steering

PROMPTS = ["hi", "a longer prompt about the sea and the sky", "medium prompt here"]


def _record(model, layer):
    seen = {}

    def hook(x, hook):
        seen["x"] = x.clone()
        return x

    return seen, (model.hook_name(layer), hook)


@pytest.mark.parametrize("positions", ["all", "prompt", "generated"])
@pytest.mark.parametrize("mode", ["add", "project"])
def test_cached_equals_uncached(tiny, tiny_vector, positions, mode):
    spec = tiny_vector.steer(2, 3.0 if mode == "add" else None, mode=mode, positions=positions, absolute=True)
    cached = generate(tiny, PROMPTS, steer=spec, max_new_tokens=12)
    uncached = generate(tiny, PROMPTS, steer=spec, max_new_tokens=12, use_cache=False)
    assert [g.token_ids for g in cached] == [g.token_ids for g in uncached]


@pytest.mark.parametrize("positions", ["all", "prompt", "generated"])
def test_steering_changes_output_per_positions_mode(tiny, tiny_vector, positions):
    plain = generate(tiny, PROMPTS, max_new_tokens=12)
    steered = generate(
        tiny, PROMPTS, steer=tiny_vector.steer(1, 20.0, positions=positions, absolute=True), max_new_tokens=12
    )
    assert [g.token_ids for g in plain] != [g.token_ids for g in steered]


def test_batch_equals_one_by_one(tiny, tiny_vector):
    spec = tiny_vector.steer(1, 4.0, absolute=True)
    batched = generate(tiny, PROMPTS, steer=spec, max_new_tokens=12)
    single = [generate(tiny, [p], steer=spec, max_new_tokens=12)[0] for p in PROMPTS]
    assert [g.token_ids for g in batched] == [g.token_ids for g in single]


def test_per_prompt_coefficients_equal_separate_runs(tiny, tiny_vector):
    coefs = torch.tensor([0.0, 5.0, float("nan")])
    together = generate(
        tiny, PROMPTS, steer=tiny_vector.steer(1, coefs, absolute=True), max_new_tokens=10, batch_size=2
    )
    for prompt, c, got in zip(PROMPTS, coefs.tolist(), together):
        steer = () if c != c or c == 0 else tiny_vector.steer(1, c, absolute=True)
        assert generate(tiny, [prompt], steer=steer, max_new_tokens=10)[0].token_ids == got.token_ids


def test_hooks_removed_after_exit_and_exception(tiny, tiny_vector):
    point = tiny.bridge.hook_dict[tiny.hook_name(2)]
    with steering(tiny, tiny_vector.steer(2, 1.0, absolute=True)):
        assert len(point.fwd_hooks) == 1
    assert len(point.fwd_hooks) == 0
    with pytest.raises(RuntimeError):
        with steering(tiny, [tiny_vector.steer(2, 1.0, absolute=True), tiny_vector.steer(3, 1.0, absolute=True)]):
            raise RuntimeError("boom")
    assert all(len(tiny.bridge.hook_dict[tiny.hook_name(l)].fwd_hooks) == 0 for l in range(tiny.n_layers))


def test_add_shifts_projection_by_coefficient(tiny, tiny_vector):
    ids = torch.tensor([tiny.encode(tiny.chat("hello"))])
    u = tiny_vector.directions[2]
    seen, rec = _record(tiny, 2)
    with tiny.bridge.hooks(fwd_hooks=[rec]), torch.inference_mode():
        tiny.hf(ids)
    base = seen["x"][0] @ u
    with (
        steering(tiny, tiny_vector.steer(2, 2.5, absolute=True)),
        tiny.bridge.hooks(fwd_hooks=[rec]),
        torch.inference_mode(),
    ):
        tiny.hf(ids)
    assert torch.allclose(seen["x"][0] @ u - base, torch.full_like(base, 2.5), atol=1e-4)


def test_project_sets_projection_to_target(tiny, tiny_vector):
    ids = torch.tensor([tiny.encode(tiny.chat("hello"))])
    u = tiny_vector.directions[1]
    seen, rec = _record(tiny, 1)
    with (
        steering(tiny, tiny_vector.steer(1, mode="project")),
        tiny.bridge.hooks(fwd_hooks=[rec]),
        torch.inference_mode(),
    ):
        tiny.hf(ids)
    target = float(tiny_vector.proj_with[1])
    assert torch.allclose(seen["x"][0] @ u, torch.full((ids.shape[1],), target), atol=1e-3)


def test_position_mask_from_offset_and_prompt_width():
    assert position_mask("prompt", 3, 0, 3).tolist() == [True, True, True]
    assert position_mask("generated", 3, 0, 3).tolist() == [False, False, False]
    assert position_mask("generated", 1, 4, 3).tolist() == [True]
    assert position_mask("prompt", 1, 4, 3).tolist() == [False]
    # uncached: the whole sequence again, prompt then generated columns
    assert position_mask("generated", 5, 0, 3).tolist() == [False, False, False, True, True]
    assert position_mask("all", 2, 7, 3).tolist() == [True, True]


def test_composition_of_two_specs_adds_both(tiny, tiny_vector):
    ids = torch.tensor([tiny.encode(tiny.chat("hello"))])
    u = tiny_vector.directions[2]
    seen, rec = _record(tiny, 2)  # added after the steering hooks, so it sees their sum
    with tiny.bridge.hooks(fwd_hooks=[rec]), torch.inference_mode():
        tiny.hf(ids)
    base = seen["x"][0] @ u
    with (
        steering(tiny, [tiny_vector.steer(2, 1.0, absolute=True), tiny_vector.steer(2, -3.0, absolute=True)]),
        tiny.bridge.hooks(fwd_hooks=[rec]),
        torch.inference_mode(),
    ):
        tiny.hf(ids)
    assert torch.allclose(seen["x"][0] @ u - base, torch.full_like(base, -2.0), atol=1e-4)


def test_bad_specs_fail_loudly(tiny, tiny_vector):
    with pytest.raises(WorkbenchError, match="mode"):
        Steer(tiny_vector.directions[0], 0, 1.0, mode="multiply")
    with pytest.raises(WorkbenchError, match="positions"):
        Steer(tiny_vector.directions[0], 0, 1.0, positions="middle")
    with pytest.raises(WorkbenchError, match="NaN"):
        Steer(torch.full((64,), float("nan")), 0, 1.0)
    with pytest.raises(WorkbenchError, match="out of range"):
        generate(tiny, ["x"], steer=Steer(tiny_vector.directions[0], 9, 1.0))
    with pytest.raises(WorkbenchError, match="width"):
        generate(tiny, ["x"], steer=Steer(torch.ones(32), 0, 1.0))


def test_twin_shares_weights_and_fires_resid_hooks(tiny, tiny_vector):
    """The fast twin computes with the bridge's own weight tensors, and steering reaches it."""
    bridge_ptrs = {p.data_ptr() for p in tiny.hf.parameters()}
    assert {p.data_ptr() for p in tiny.twin.parameters()} == bridge_ptrs
    spec = tiny_vector.steer(1, 4.0, absolute=True)
    with steering(tiny, spec):
        assert tiny.runner is tiny.twin  # only resid_post hooks: the fast path
    twin = generate(tiny, PROMPTS, steer=spec, max_new_tokens=12, stop_at_eos=False)
    with tiny.through_bridge():
        assert tiny.runner is tiny.hf
        bridge = generate(tiny, PROMPTS, steer=spec, max_new_tokens=12, stop_at_eos=False)
    assert tiny.runner is tiny.twin
    assert [g.token_ids for g in twin] == [g.token_ids for g in bridge]
    assert twin != generate(tiny, PROMPTS, max_new_tokens=12, stop_at_eos=False)


def test_other_tl_hooks_select_the_bridge_and_fire(tiny, tiny_vector):
    """A hook on any other TL hook point (here attention scores) must still fire during generation."""
    calls = []

    def scores(x, hook):
        calls.append(x.shape)
        return x

    with tiny.bridge.hooks(fwd_hooks=[("blocks.0.attn.hook_attn_scores", scores)]):
        assert tiny.runner is tiny.hf
        generate(tiny, ["hi"], max_new_tokens=3, stop_at_eos=False)
    assert len(calls) == 3  # prefill and two decoding steps
    assert tiny.runner is tiny.twin  # hooks gone: back to the fast path
