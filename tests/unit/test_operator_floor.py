"""The ``floor`` operator (workbench/operators/floor.py): added as one file; everything else finds it."""

import pytest
import torch

from workbench import WorkbenchError, generate
from workbench.generation.compiled import supported
from workbench.generation.steering import OPERATORS, steering
from workbench.interop import export_lm_eval


def _resid(model, layer, ids, specs=()):
    seen = {}

    def record(x, hook):
        seen["x"] = x.clone()
        return x

    with steering(model, list(specs)), model.bridge.hooks(fwd_hooks=[(model.hook_name(layer), record)]):
        with torch.inference_mode():
            model.hf(ids)
    return seen["x"][0]


def test_floor_raises_the_projection_to_the_target_and_leaves_the_rest(tiny, tiny_vector):
    layer = 2
    ids = torch.tensor([tiny.encode(tiny.chat("hello there, how are you today?"))])
    u = tiny_vector.directions[layer] / tiny_vector.directions[layer].norm()
    before = _resid(tiny, layer, ids)
    target = float((before @ u).median())  # some positions below it, some above
    after = _resid(tiny, layer, ids, [tiny_vector.steer(layer, target, mode="floor")])
    expected = torch.maximum(
        before @ u, torch.tensor(target)
    )  # reference: max(x·u, c), written apart from the operator
    assert torch.allclose(after @ u, expected, atol=1e-4)
    assert torch.allclose(after - (after @ u)[:, None] * u, before - (before @ u)[:, None] * u, atol=1e-4)
    assert (before @ u < target).any() and (before @ u > target).any()  # the test can fail both ways


def test_floor_is_found_and_read_by_every_consumer(tiny, tiny_vector, tmp_path):
    assert "floor" in OPERATORS and OPERATORS["floor"].affine is None
    spec = tiny_vector.steer(1, mode="floor")
    assert spec.coefficient == pytest.approx(float(tiny_vector.proj_with[1]))  # a target: z̄ by default
    assert "affine" in supported(tiny, [spec])  # the compiled step refuses it; the eager engine runs it
    with pytest.raises(WorkbenchError, match="lm-eval has no 'floor' action"):
        export_lm_eval(spec, tmp_path / "s.pt")
    assert len(generate(tiny, ["hello"], steer=[spec], max_new_tokens=4)[0].token_ids) == 4  # eager decode runs it
