"""llama.cpp control vectors and transfer between models."""

import warnings

import pytest
import torch

from workbench.steering import Steer
from workbench import WorkbenchError, generate
from workbench.interop import control_vector_specs, export_control_vector, import_control_vector, transfer
from workbench.models import tiny_model


def test_control_vector_round_trip(tmp_path, tiny_vector):
    import gguf

    path = export_control_vector(tiny_vector, tmp_path / "cv.gguf", coefficient=2.0)
    reader = gguf.GGUFReader(str(path))
    assert {t.name for t in reader.tensors} == {f"direction.{l}" for l in range(1, tiny_vector.n_layers)}
    assert all(t.tensor_type == gguf.GGMLQuantizationType.F32 for t in reader.tensors)
    back = import_control_vector(path)
    for layer, v in back.items():
        assert torch.allclose(v, 2.0 * tiny_vector.mean_diff[layer])


def test_control_vector_steers_like_the_vector(tmp_path, tiny, tiny_vector):
    path = export_control_vector(tiny_vector, tmp_path / "cv.gguf", coefficient=1.0, layers=[2])
    from_file = generate(tiny, ["hello"], steer=control_vector_specs(path, strength=1.5), max_new_tokens=8)
    direct = generate(tiny, ["hello"], steer=tiny_vector.steer(2, 1.5), max_new_tokens=8)
    assert from_file[0].token_ids == direct[0].token_ids


def test_control_vector_bad_inputs(tmp_path, tiny_vector):
    with pytest.raises(WorkbenchError, match="direction.0"):
        export_control_vector(tiny_vector, tmp_path / "x.gguf", layers=[0])
    (tmp_path / "junk.gguf").write_bytes(b"junk")
    with pytest.raises(WorkbenchError, match="not a GGUF"):
        import_control_vector(tmp_path / "junk.gguf")
    assert not list(tmp_path.glob("*.tmp"))


def test_transfer_between_two_tiny_models(tiny_vector):
    base = tiny_model(seed=3, name="tiny-base")
    moved = transfer(tiny_vector, base)
    assert moved.model_name == "tiny-base" and moved.versions["transferred_from"] == "tiny-random"
    out = generate(base, ["hello"], steer=moved.steer(2, 3.0), max_new_tokens=8, stop_at_eos=False)
    by_hand = generate(base, ["hello"], steer=Steer(tiny_vector.directions[2], 2, 3.0 * float(tiny_vector.norms[2])), max_new_tokens=8, stop_at_eos=False)
    plain = generate(base, ["hello"], max_new_tokens=8, stop_at_eos=False)
    assert out[0].token_ids == by_hand[0].token_ids != plain[0].token_ids  # the same direction and scale, on the other model
    with pytest.raises(WorkbenchError, match="cannot transfer"):
        transfer(tiny_vector, tiny_model(d_model=32, name="narrow"))


def test_transfer_warns_on_different_residual_bases(tiny_vector):
    a, b = tiny_model(seed=4, name="a"), tiny_model(seed=5, name="b")
    b.bridge.compatibility_mode = True
    with pytest.warns(UserWarning, match="residual bases differ"):
        transfer(tiny_vector, b, source=a)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        transfer(tiny_vector, tiny_model(seed=6, name="c"), source=a)
