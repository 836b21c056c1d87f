"""llama.cpp control vectors and transfer between models."""

import json
import warnings

import pytest
import torch

from workbench import WorkbenchError, generate
from workbench.generation.steering import Steer
from workbench.interop import (
    control_vector_data,
    control_vector_specs,
    export_control_vector,
    import_control_vector,
    transfer,
)
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
    by_hand = generate(
        base,
        ["hello"],
        steer=Steer(tiny_vector.directions[2], 2, 3.0 * float(tiny_vector.norms[2])),
        max_new_tokens=8,
        stop_at_eos=False,
    )
    plain = generate(base, ["hello"], max_new_tokens=8, stop_at_eos=False)
    assert (
        out[0].token_ids == by_hand[0].token_ids != plain[0].token_ids
    )  # the same direction and scale, on the other model
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


def test_lm_eval_steered_model_generates_what_the_workbench_does(tmp_path, tiny, tiny_vector):
    """The exported .pt, loaded by lm-eval's own `steered` model in-process, continues token for token
    like the workbench: add, clamp (= project) and two composed vectors; a wrong layer or sign would differ."""
    from lm_eval.models.hf_steered import SteeredModel

    from workbench.interop import export_lm_eval
    from workbench.models import tiny_tokenizer
    from workbench.models.tiny import tiny_hf

    folder = tmp_path / "tiny-hf"
    tiny_hf().save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    prompt, n = "Explain how volcanoes work.", 8
    ids = tiny.encode(tiny.chat(prompt))
    cases = {
        "add": [tiny_vector.steer(2, 1.5)],
        "clamp": [tiny_vector.steer(1, mode="project")],
        "composed": [tiny_vector.steer(1, 1.0), tiny_vector.steer(2, -1.0)],
    }
    plain = generate(tiny, [prompt], max_new_tokens=n)[0].token_ids

    def until_stop(tokens):  # HF generate ends at end-of-turn (and pads); ours leaves the stop token out
        tokens = list(tokens)
        cut = min([tokens.index(s) for s in tiny.stop_token_ids if s in tokens], default=len(tokens))
        return tuple(tokens[:cut])

    for name, specs in cases.items():
        path = export_lm_eval(specs, tmp_path / f"{name}.pt", tiny)
        entries = torch.load(path, weights_only=False)
        modules = dict(tiny_hf().base_model.named_modules())
        assert set(entries) <= set(modules), entries.keys()  # names lm-eval resolves on base_model
        lm = SteeredModel(pretrained=str(folder), steer_path=str(path), device="cpu", dtype="float32")
        out = lm._model_generate(torch.tensor([ids]), max_length=len(ids) + n, stop=[], do_sample=False)
        ours = generate(tiny, [prompt], steer=specs, max_new_tokens=n)[0].token_ids
        assert until_stop(out[0, len(ids) :].tolist()) == ours != plain, name


def test_lm_eval_export_refuses_what_it_cannot_express(tmp_path, tiny_vector):
    from workbench.interop import export_lm_eval

    with pytest.raises(WorkbenchError, match="every position"):
        export_lm_eval([tiny_vector.steer(2, 1.0, positions="prompt")], tmp_path / "x.pt")
    with pytest.raises(WorkbenchError, match="one clamp"):
        export_lm_eval([tiny_vector.steer(2, mode="project"), tiny_vector.steer(2, 1.0)], tmp_path / "x.pt")
    assert not list(tmp_path.iterdir())


def test_ifeval_task_folder_loads_in_lm_eval_offline(tmp_path):
    """The written task is lm-eval's IFEval on a local file: it loads through TaskManager with
    --include_path, reads the file's prompts and scores a reply with IFEval's own process_results."""
    from lm_eval.tasks import TaskManager, get_task_dict

    from workbench.interop import write_ifeval_task

    data = tmp_path / "ifeval.jsonl"
    rows = [
        {
            "key": 1,
            "prompt": "Write about tea. Do not use any commas.",
            "instruction_id_list": ["punctuation:no_comma"],
            "kwargs": [{}],
        },
        {
            "key": 2,
            "prompt": "Write about the sea in all lowercase.",
            "instruction_id_list": ["change_case:english_lowercase"],
            "kwargs": [{}],
        },
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_ifeval_task(tmp_path / "tasks", data, max_gen_toks=64)
    task = get_task_dict(["ifeval_offline"], TaskManager(include_path=str(tmp_path / "tasks")))["ifeval_offline"]
    docs = list(task.test_docs())
    assert [d["prompt"] for d in docs] == [r["prompt"] for r in rows]
    assert task.config.generation_kwargs["max_gen_toks"] == 64
    assert task.process_results(docs[0], ["Tea is calm and warm."])["prompt_level_strict_acc"] is True
    assert task.process_results(docs[0], ["Tea, calm, warm."])["prompt_level_strict_acc"] is False
    with pytest.raises(WorkbenchError, match="no IFEval JSONL"):
        write_ifeval_task(tmp_path / "other", tmp_path / "missing.jsonl")


def test_export_model_refuses_unknown_and_nonempty(tmp_path):
    from workbench.interop import export_model

    with pytest.raises(WorkbenchError, match="not an embedded model"):
        export_model("tiny-random", tmp_path / "m")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(WorkbenchError, match="not empty"):
        export_model("smollm2-135m-instruct", tmp_path / "full")


def test_buffer_layout_is_llama_cpps(tmp_path, tiny_vector):
    """direction.N lands at (N − 1) · n_embd, times the strength, as llama.cpp's own loader puts it."""
    path = export_control_vector(tiny_vector, tmp_path / "v.gguf", 2.0, layers=[2])
    data, n_embd = control_vector_data(path, strength=0.5)
    assert n_embd == tiny_vector.d_model and len(data) == 2 * n_embd
    assert not data[:n_embd].any()
    assert data[n_embd:] == pytest.approx(tiny_vector.mean_diff[2].numpy(), rel=1e-6)
