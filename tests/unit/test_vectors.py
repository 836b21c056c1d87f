"""Instruction vectors: extraction, artifact round trip and refusal of foreign vectors."""

import pytest
import torch

from workbench import WorkbenchError
from workbench.extract import compute_vector, record_last_token
from workbench.instructions import make_pairs
from workbench.models import tiny_model
from workbench.vectors import InstructionVector


def test_record_matches_unbatched_full_forward(tiny):
    prompts = ["short", "a somewhat longer prompt"]
    batched = record_last_token(tiny, prompts, batch_size=2)
    for i, p in enumerate(prompts):
        ids = torch.tensor([tiny.encode(tiny.chat(p))])
        _, cache = tiny.bridge.run_with_cache(ids, names_filter=lambda n: n.endswith("hook_resid_post"))
        for layer in range(tiny.n_layers):
            assert torch.allclose(batched[i, layer], cache[f"blocks.{layer}.hook_resid_post"][0, -1], atol=1e-5)


def test_vector_is_mean_difference(tiny):
    pairs = make_pairs("json", limit=6)
    vec, w, wo = compute_vector(tiny, pairs=pairs, return_activations=True)
    assert torch.allclose(vec.mean_diff, (w - wo).mean(0), atol=1e-5)
    assert torch.allclose(vec.directions.norm(dim=-1), torch.ones(tiny.n_layers))
    assert vec.n_pairs == 6 and vec.instruction_id == "json" and len(vec.phrasings) == 3
    assert torch.allclose(vec.proj_with, torch.einsum("nld,ld->l", w, vec.directions) / 6, atol=1e-4)


def test_round_trip_is_exact(tmp_path, tiny, tiny_vector):
    path = tiny_vector.save(tmp_path / "v")
    back = InstructionVector.load(path, tiny)
    for name in ("mean_diff", "mean_with", "mean_without", "proj_with", "proj_without"):
        assert torch.equal(getattr(back, name), getattr(tiny_vector, name))
    assert back.data_hash == tiny_vector.data_hash and back.phrasings == tiny_vector.phrasings
    assert back.versions["transformer-lens"] == tiny_vector.versions["transformer-lens"]


def test_foreign_width_and_model_refused(tmp_path, tiny_vector):
    wide = tiny_model(d_model=96, name="tiny-wide")
    path = tiny_vector.save(tmp_path / "v")
    with pytest.raises(WorkbenchError, match="d_model 64"):
        InstructionVector.load(path, wide)
    other = tiny_model(seed=1, name="tiny-other")
    with pytest.raises(WorkbenchError, match="computed on"):
        InstructionVector.load(path, other)
    assert InstructionVector.load(path, other, allow_other_model=True).model_name == "tiny-random"


def test_corrupt_and_foreign_files_refused(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(WorkbenchError, match="not a workbench vector"):
        InstructionVector.load(bad)
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(3)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(WorkbenchError, match="not a workbench vector"):
        InstructionVector.load(tmp_path / "foreign.safetensors")
    with pytest.raises(WorkbenchError, match="no vector file"):
        InstructionVector.load(tmp_path / "missing.safetensors")


def test_truncated_file_refused(tmp_path, tiny_vector):
    path = tiny_vector.save(tmp_path / "v")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WorkbenchError):
        InstructionVector.load(path)


def test_extraction_is_deterministic(tiny):
    a = compute_vector(tiny, "french", n_pairs=5)
    b = compute_vector(tiny, "french", n_pairs=5)
    assert torch.equal(a.mean_diff, b.mean_diff)


def test_logit_lens_reads_a_direction_through_the_unembedding(tiny, tiny_vector):
    """A vector pointing along one token's unembedding row promotes that token first."""
    from dataclasses import replace

    from workbench.analysis import logit_lens

    token = 100
    row = tiny.hf.get_output_embeddings().weight[token].detach().float()
    planted = replace(tiny_vector, mean_diff=row.expand(tiny.n_layers, -1).clone())
    table = logit_lens(tiny, {"planted": planted}, k=3)
    assert len(table) == tiny.n_layers * 3
    firsts = table[table["rank"] == 0]
    assert (firsts["token"] == tiny.tokenizer.decode([token])).all()
    assert (table.groupby("layer")["logit"].apply(lambda v: v.is_monotonic_decreasing)).all()
