"""The engine on any device: batches sized from memory, an out-of-memory batch halved and finished,
the device and precision reaching the bench, the load-time probe asked once. Every test runs on CPU
here and on CUDA where there is one (``DEVICES``)."""

import json

import pytest
import torch

from workbench import WorkbenchError, generate
from workbench.generation.batching import MEMORY_FRACTION, auto_batch_size, row_bytes
from workbench.models import TINY_MODEL, load_model, tiny_model

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
PROMPTS = [
    "Describe tides.",
    "Name a colour.",
    "Say hello to the reader in a short sentence.",
    "Count to three.",
    "Why is the sky blue?",
    "What is rain?",
]


def _free(monkeypatch, model, rows: int, max_len: int) -> None:
    """Pretend the device has room for exactly ``rows`` rows of ``max_len`` tokens."""
    monkeypatch.setattr(
        "workbench.generation.batching.free_bytes",
        lambda device: int(rows * row_bytes(model, max_len) / MEMORY_FRACTION) + 1,
    )


def _batch_sizes(monkeypatch, model) -> list[int]:
    seen: list[int] = []
    forward = type(model).forward

    def spy(self, ids, *args, **kwargs):
        seen.append(ids.shape[0])
        return forward(self, ids, *args, **kwargs)

    monkeypatch.setattr(type(model), "forward", spy)
    return seen


def test_auto_batch_size_follows_free_memory_and_the_rows_there_are(monkeypatch, tiny):
    _free(monkeypatch, tiny, 5, 100)
    assert auto_batch_size(tiny, 100) == 5
    assert auto_batch_size(tiny, 100, rows=3) == 3
    assert auto_batch_size(tiny, 400) < 5  # longer rows: fewer fit
    _free(monkeypatch, tiny, 500, 100)
    assert auto_batch_size(tiny, 100) == 500  # no fixed cap


def test_batch_size_override_and_its_bad_values(monkeypatch, tiny):
    monkeypatch.setenv("WORKBENCH_BATCH_SIZE", "2")
    assert auto_batch_size(tiny, 100, rows=10) == 2
    for bad in ("0", "many"):
        monkeypatch.setenv("WORKBENCH_BATCH_SIZE", bad)
        with pytest.raises(WorkbenchError, match="WORKBENCH_BATCH_SIZE"):
            auto_batch_size(tiny, 100)


def test_generation_batches_never_exceed_the_estimate(monkeypatch, tiny):
    longest = max(len(tiny.encode(tiny.chat(p))) for p in PROMPTS)
    _free(monkeypatch, tiny, 4, longest + 8)
    seen = _batch_sizes(monkeypatch, tiny)
    generate(tiny, PROMPTS, max_new_tokens=8)
    assert seen and max(seen) == 4


def test_an_out_of_memory_batch_is_halved_and_completes(monkeypatch, tiny):
    expected = generate(tiny, PROMPTS, max_new_tokens=8, batch_size=2)
    forward = type(tiny).forward

    def tight(self, ids, *args, **kwargs):
        if ids.shape[0] > 2:
            raise torch.OutOfMemoryError("injected: more than 2 rows")
        return forward(self, ids, *args, **kwargs)

    monkeypatch.setattr(type(tiny), "forward", tight)
    with pytest.warns(UserWarning, match="out of memory at 6 rows"):
        got = generate(tiny, PROMPTS, max_new_tokens=8, batch_size=6)
    assert got == expected


def test_one_row_out_of_memory_is_a_clear_error(monkeypatch, tiny):
    def never(self, ids, *args, **kwargs):
        raise torch.OutOfMemoryError("injected")

    monkeypatch.setattr(type(tiny), "forward", never)
    with pytest.raises(WorkbenchError, match="one row does not fit"):
        generate(tiny, PROMPTS[:1], max_new_tokens=4)


@pytest.mark.parametrize("device", DEVICES)
def test_sampling_runs_on_the_models_device_and_takes_a_seed(tiny, device):
    model = tiny if device == "cpu" else load_model(TINY_MODEL, device=device)
    a, b = (generate(model, PROMPTS[:3], max_new_tokens=6, do_sample=True, seed=3) for _ in range(2))
    assert a == b


def test_cli_passes_device_and_dtype_to_bench(monkeypatch):
    from workbench.apps.cli.main import main

    seen = {}
    monkeypatch.setattr("workbench.apps.bench.run_bench", lambda name, **kw: seen.update(name=name, **kw))
    assert main(["bench", "--quick", "--model", "tiny-random", "--device", "cpu", "--dtype", "bfloat16"]) == 0
    assert seen == {"name": "tiny-random", "quick": True, "json_path": None, "device": "cpu", "dtype": "bfloat16"}


def test_the_bridge_cache_probe_runs_once_per_library_versions(monkeypatch, tmp_path):
    from workbench.models import cache_probe

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    calls = []
    probe = cache_probe.bridge_honours_cache
    monkeypatch.setattr(cache_probe, "bridge_honours_cache", lambda model: calls.append(1) or probe(model))
    first, second = tiny_model(), tiny_model()
    assert len(calls) == 1 and first.bridge_cache_ok == second.bridge_cache_ok
    (key,) = json.loads((tmp_path / "probes.json").read_text())
    assert "transformers=" in key and "float32" in key


def test_the_models_twin_hooks_are_kept_and_removed_by_their_owner():
    model = tiny_model()
    layers = model.twin.base_model.layers
    assert len(model.twin_link.handles) == len(layers) and all(layer._forward_hooks for layer in layers)
    assert model.runner is model.twin
    ids = torch.arange(1, 6)[None]
    before = model.forward(ids, torch.ones_like(ids), torch.arange(5)[None])
    model.drop_twin()
    assert not any(layer._forward_hooks for layer in layers)  # every hook it registered, gone
    assert model.twin is None and model.runner is model.hf
    assert torch.allclose(model.forward(ids, torch.ones_like(ids), torch.arange(5)[None]), before, atol=1e-5)


def test_roofline_counts_the_bytes_a_step_reads(tiny):
    from workbench.apps.bench import roofline

    assert roofline.weight_bytes(tiny) == tiny.hf.num_parameters() * 4  # float32, shared tensors once
    ids = torch.arange(1, 12)[None]
    cache = tiny.new_cache()
    tiny.forward(ids, torch.ones_like(ids), torch.arange(11)[None], cache)
    stored = sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))
    assert roofline.kv_bytes(tiny, 11) == stored
    assert 0 < roofline.share(tiny, 10.0, 11, roofline.read_bandwidth("cpu", gib=0.05, repeats=1))


def test_sampling_draws_from_the_tempered_softmax():
    # reference by hand: p_i ∝ exp(l_i / T); a -inf logit is never drawn
    import math

    from workbench.generation.decoding import sample

    logits = torch.tensor([0.0, 1.0, 2.0, float("-inf")]).expand(40_000, 4)
    g = torch.Generator().manual_seed(0)
    for temperature in (1.0, 0.5):
        weights = [math.exp(l / temperature) for l in (0.0, 1.0, 2.0)] + [0.0]
        expected = torch.tensor([w / sum(weights) for w in weights])
        freq = torch.bincount(sample(logits, temperature, g), minlength=4) / 40_000
        assert torch.allclose(freq, expected, atol=0.01), (temperature, freq, expected)
        assert freq[3] == 0
