"""Numbers safe to publish: every bad input the probes found gets one line and exit 2 before any
work (nothing written), and every input that changes a result is part of the folder's identity.
One test per case; each failed on the main of 2026-12-01."""

import json
import os
import threading
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from workbench.apps.cli.main import main
from workbench.errors import WorkbenchError
from workbench.generation.steering import Steer
from workbench.instructions import Instruction
from workbench.io import claim_dir
from workbench.sweep import SweepConfig, run_sweep

TINY = ["--model", "tiny-random"]


def run(argv, capsys):
    """(exit code, stdout, stderr) of the CLI, argparse's own exits included."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def refused(argv, capsys, message, out: Path | None = None, after_progress: bool = False):
    """Exit 2 and one line (``after_progress``: the last line, after a progress bar's redraws)."""
    code, _, err = run(argv, capsys)
    assert code == 2, err
    line = err.splitlines()[-1] if after_progress else err
    assert message in line and line.count("\n") <= 1 and err.endswith("\n"), err
    if out is not None:
        assert not out.exists() or not any(out.iterdir()), f"{out} was written"


# --- coefficients --------------------------------------------------------------------------


@pytest.mark.parametrize("coef", ["nan", "inf", "-inf"])
def test_steer_refuses_a_coefficient_that_is_not_finite(coef, capsys):
    refused(
        ["steer", "hi", *TINY, "--vector", f"one_sentence@1:{coef}", "--max-new-tokens", "2"], capsys, "finite number"
    )


def test_steer_refuses_a_coefficient_that_swamps_the_stream(capsys):
    refused(
        ["steer", "hi", *TINY, "--vector", "one_sentence@1:1e30", "--n-train", "2", "--max-new-tokens", "2"],
        capsys,
        "exceeds 1000×",
    )


@pytest.mark.parametrize("coef", [float("nan"), float("inf"), 1e30])
def test_vector_steer_refuses_bad_coefficients(tiny_vector, coef):
    with pytest.raises(WorkbenchError):
        tiny_vector.steer(1, coef)
    with pytest.raises(WorkbenchError):
        tiny_vector.steer(1, coef, mode="project")


def test_steer_spec_refuses_non_finite_coefficients_but_keeps_nan_rows():
    u = torch.ones(8)
    with pytest.raises(WorkbenchError, match="finite"):
        Steer(u, 1, float("nan"))
    with pytest.raises(WorkbenchError, match="per-row"):
        Steer(u, 1, torch.tensor([1.0, float("inf")]))
    assert Steer(u, 1, torch.tensor([1.0, float("nan")])).layer == 1  # NaN = that row unsteered


@pytest.fixture
def vector_file(tiny_vector, tmp_path):
    return str(tiny_vector.save(tmp_path / "v.safetensors"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--coefficient", "nan"], "finite number"),
        (["--coefficient", "1e30"], "at most 1000"),
        (["--format", "lm-eval", "--layers", "1", "--coefficient", "inf"], "finite number"),
        (["--format", "lm-eval", "--layers", "1", "--coefficient", "1e30"], "exceeds 1000×"),
    ],
)
def test_export_refuses_bad_coefficients(vector_file, tmp_path, args, message, capsys):
    target = tmp_path / "out" / "cv.gguf"
    refused(["export", vector_file, "--out", str(target), *args], capsys, message)
    assert not target.exists()


# --- sizes and lists -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--n-prompts", "-3"], "at least 1"),
        (["--n-prompts", "0"], "at least 1"),
        (["--n-train", "-1"], "at least 1"),
        (["--max-new-tokens", "0"], "at least 1"),
        (["--layers", ""], "got nothing"),
        (["--layers", "-1"], "at least 0"),
        (["--coefficients", "1,nan"], "finite"),
    ],
)
def test_sweep_sizes_refused_before_anything_is_written(tmp_path, args, message, capsys):
    out = tmp_path / "s"
    refused(["sweep", "one_sentence", *TINY, "--out", str(out), *args], capsys, message, out)
    assert not out.exists()


def test_sweep_config_refuses_zero_sizes():
    for bad in ({"n_prompts": 0}, {"n_train": -1}, {"max_new_tokens": 0}, {"layers": (-2,)}, {"coefficients": (1e9,)}):
        with pytest.raises(WorkbenchError):
            SweepConfig(model="tiny-random", instructions=("one_sentence",), **{"layers": (1,), **bad})


@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate", *TINY, "--data", "x.jsonl", "--sweep-prompts", "0"], "at least 1"),
        (["demo", *TINY, "--follow-threshold", "nan"], "finite"),
        (["sweep", "json", *TINY, "--ray-workers", "0"], "at least 1"),
        (["vectors", "json", *TINY, "--device", "garbage"], "not a torch device"),
    ],
)
def test_other_arguments_refused(argv, message, capsys):
    refused(argv, capsys, message)


# --- output paths --------------------------------------------------------------------------


def test_out_that_is_a_file_refused_before_the_model_loads(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("keep me")
    refused(["vectors", "json", *TINY, "--out", str(f)], capsys, "is a file")
    assert f.read_text() == "keep me"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_out_in_a_read_only_folder_refused(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    refused(["vectors", "json", *TINY, "--out", str(ro / "v")], capsys, "cannot write")


def test_out_on_proc_refused(capsys):
    refused(["vectors", "json", *TINY, "--out", "/proc/workbench-results"], capsys, "cannot write")


def test_export_out_a_folder_and_export_model_out_a_file_refused(vector_file, tmp_path, capsys):
    refused(["export", vector_file, "--out", str(tmp_path)], capsys, "is a folder")
    f = tmp_path / "file.txt"
    f.write_text("x")
    refused(["export-model", "smollm2-135m-instruct", "--out", str(f)], capsys, "is a file")


# --- files the workbench reads -------------------------------------------------------------


def _damaged(tiny_vector, tmp_path, tensors=None, meta=None):
    from workbench.vectors import VECTOR

    base = {
        k: getattr(tiny_vector, k).contiguous()
        for k in ("mean_diff", "mean_with", "mean_without", "proj_with", "proj_without")
    }
    info = {"format": VECTOR.version, "instruction_id": "x", "model_name": "tiny-random", "n_pairs": 4}
    path = tmp_path / "bad.safetensors"
    save_file({**base, **(tensors or {})}, str(path), metadata={"workbench": json.dumps({**info, **(meta or {})})})
    return str(path)


@pytest.mark.parametrize(
    "tensors, meta, message",
    [
        ({}, {"surprise": 1}, "unknown metadata"),
        ({}, {"n_pairs": [4]}, "n_pairs"),
        ({}, {"model_name": ["a", "b"]}, "model_name"),
        ({"mean_diff": torch.ones(64)}, {}, "mean_diff"),
        ({"proj_with": torch.ones(3, dtype=torch.int64)}, {}, "proj_with"),
        ({"mean_with": torch.ones(63, 2)}, {}, "mean_with"),
    ],
)
def test_malformed_vector_files_refused(tiny_vector, tmp_path, tensors, meta, message, capsys):
    path = _damaged(tiny_vector, tmp_path, tensors, meta)
    refused(["export", path, "--out", str(tmp_path / "cv.gguf")], capsys, message)
    refused(["steer", "hi", *TINY, "--vector", f"{path}@1"], capsys, message)
    assert not (tmp_path / "cv.gguf").exists()


def test_missing_metadata_refused(tiny_vector, tmp_path):
    from workbench.vectors import InstructionVector

    path = tmp_path / "m.safetensors"
    save_file(
        {"mean_diff": tiny_vector.mean_diff.contiguous()}, str(path), metadata={"workbench": json.dumps({"format": 1})}
    )
    with pytest.raises(WorkbenchError):
        InstructionVector.load(path)


def test_corrupt_gguf_refused(tmp_path, capsys):
    bad = tmp_path / "m.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(256))
    refused(["steer", "hi", "--model", str(bad), "--vector", "json@1"], capsys, "cannot read")


def _sweep_args(out, *more):
    return [
        "sweep",
        "one_sentence",
        *TINY,
        "--layers",
        "1",
        "--coefficients",
        "1",
        "--no-project",
        "--n-prompts",
        "1",
        "--n-train",
        "2",
        "--max-new-tokens",
        "2",
        "--out",
        str(out),
        *more,
    ]


def test_corrupt_config_and_truncated_unit_refused_on_resume(tmp_path, capsys):
    out = tmp_path / "s"
    assert run(_sweep_args(out), capsys)[0] == 0
    unit = next((out / "units").glob("*L01.jsonl"))
    text = unit.read_text()
    unit.write_text(text[: len(text) // 2])
    refused(_sweep_args(out), capsys, "not JSON", after_progress=True)
    unit.write_text(text)
    (out / "config.json").write_text('{"kind": "sw')
    refused(_sweep_args(out), capsys, "damaged")


def test_another_configuration_names_what_differs(tmp_path, capsys):
    out = tmp_path / "s"
    assert run(_sweep_args(out), capsys)[0] == 0
    refused(_sweep_args(out, "--n-train", "3"), capsys, "differs in n_train")


def test_an_unexpected_error_is_one_line_with_a_hint(monkeypatch, capsys):
    from workbench.apps.cli import main as cli

    def boom(args):
        raise RuntimeError("kaboom\nsecond line")

    monkeypatch.setattr(cli, "cmd_vectors", boom)  # build_parser reads it when main runs
    code, _, err = run(["vectors", "json", *TINY], capsys)
    assert code == 1 and err.count("\n") == 1 and "RuntimeError: kaboom" in err and "--debug" in err
    code, _, err = run(["vectors", "json", *TINY, "--debug"], capsys)
    assert code == 1 and "Traceback" in err


# --- what a results folder knows ---------------------------------------------------------


def _no_digit_1(text: str) -> bool:
    return "1" not in text


def _no_digit_2(text: str) -> bool:
    return "2" not in text


def test_an_edited_checker_is_refused_naming_the_checker(tiny, tmp_path):
    """The same name, other code: as if the user rewrote the function in a notebook cell."""

    def config(check):
        check.__qualname__ = "no_digit"
        inst = Instruction.custom("Write no digits.", check=check, id="no_digit")
        return SweepConfig(
            model=tiny.name,
            instructions=(inst,),
            layers=(1,),
            coefficients=(1.0,),
            project=False,
            n_train=2,
            n_prompts=1,
            max_new_tokens=2,
        )

    run_sweep(tiny, config(_no_digit_1), tmp_path, progress=False)
    with pytest.raises(WorkbenchError, match=r"instructions\[0\]\.members\[0\]\.checker\.code"):
        run_sweep(tiny, config(_no_digit_2), tmp_path, progress=False)


def test_a_checker_reading_an_edited_global_gets_a_new_fingerprint():
    from workbench.instructions.instruction import fingerprint

    words = ["a"]

    def check(text):
        return any(w in text for w in words)

    before = fingerprint(check)
    words.append("b")
    assert fingerprint(check) != before
    assert fingerprint(_no_digit_1) == fingerprint(_no_digit_1) != fingerprint(_no_digit_2)


def test_names_that_share_a_safe_form_keep_both_results(tiny, tmp_path):
    names = ("startend:end_checker[end_phrase=Peace/out]", "startend:end_checker[end_phrase=Peace?out]")
    cfg = SweepConfig(
        model=tiny.name,
        instructions=names,
        layers=(1,),
        coefficients=(1.0,),
        project=False,
        n_train=2,
        n_prompts=1,
        max_new_tokens=2,
    )
    assert len({g.slug for g in cfg.groups}) == 2
    table = run_sweep(tiny, cfg, tmp_path, progress=False).table
    assert set(table["instruction"]) == set(names)


def test_plain_names_keep_their_file_names():
    from workbench.instructions import slug

    assert slug("one_sentence") == "one_sentence"
    assert slug("a/b") != slug("a?b") and slug("a/b").startswith("a-b-")


# --- concurrency ---------------------------------------------------------------------------


def _claim(barrier: threading.Barrier, out: Path, i: int, won: list[int], lost: list[int]) -> None:
    barrier.wait()
    try:
        claim_dir(out, {"i": i}, "sweep")
        won.append(i)
    except WorkbenchError:
        lost.append(i)


def test_two_processes_claiming_one_folder_cannot_both_win(tmp_path):
    """20 synchronized claims with different configurations: exactly one takes the folder."""
    for trial in range(5):
        out = tmp_path / f"t{trial}"
        barrier = threading.Barrier(20)
        won: list[int] = []
        lost: list[int] = []
        threads = [threading.Thread(target=_claim, args=(barrier, out, i, won, lost)) for i in range(20)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert len(won) == 1 and len(lost) == 19
        assert json.loads((out / "config.json").read_text())["i"] == won[0]


# --- random malformed input through the public entry points --------------------------------

SPEC_ALPHABET = st.sampled_from(
    list("@:[]=,.|-_ /")
    + [
        "nan",
        "inf",
        "1e30",
        "project",
        "json",
        "one_sentence",
        "startend:end_checker",
        "language:response_language",
        "language=",
        "text:",
        "0",
        "3",
        "-1",
        "é",
        "\x00",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(SPEC_ALPHABET, max_size=12).map("".join))
def test_random_spec_strings_give_only_workbench_errors(text):
    from workbench.apps.cli.commands import _parse_spec, parse_instructions

    try:
        name, layer, coef = _parse_spec(text)
        assert layer >= 0 and (coef == "project" or abs(coef) < float("inf"))
        if not name.endswith(".safetensors"):
            parse_instructions([name])
    except WorkbenchError:
        pass


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
FIELDS = [
    "instruction_id",
    "model_name",
    "n_pairs",
    "hook",
    "position",
    "phrasings",
    "instructions",
    "data_hash",
    "aggregator",
    "versions",
    "format",
    "junk",
]
TENSOR_NAMES = [
    "mean_diff",
    "mean_with",
    "mean_without",
    "proj_with",
    "proj_without",
    "proj_with_std",
    "proj_without_std",
    "junk",
]


@st.composite
def vector_files(draw):
    tensors = {}
    for name in draw(st.lists(st.sampled_from(TENSOR_NAMES), min_size=1, unique=True)):
        shape = draw(st.lists(st.integers(0, 4), max_size=3))
        dtype = draw(st.sampled_from([torch.float32, torch.float16, torch.int64, torch.bool]))
        t = torch.randn(shape).to(dtype) if dtype.is_floating_point else torch.zeros(shape, dtype=dtype)
        if dtype.is_floating_point and t.numel() and draw(st.booleans()):
            t.view(-1)[0] = draw(st.sampled_from([float("nan"), float("inf")]))
        tensors[name] = t
    meta = draw(st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=8))
    if draw(st.booleans()):
        meta["format"] = 1
    raw = draw(st.sampled_from(["json", "garbage", "none"]))
    return tensors, meta, raw


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(vector_files())
def test_random_vector_files_give_only_workbench_errors(tmp_path, case):
    from workbench.vectors import InstructionVector

    tensors, meta, raw = case
    path = tmp_path / "r.safetensors"
    metadata = {"json": {"workbench": json.dumps(meta)}, "garbage": {"workbench": "{not json"}, "none": None}[raw]
    save_file(tensors, str(path), metadata=metadata)
    try:
        vec = InstructionVector.load(path)
    except WorkbenchError:
        return
    assert vec.mean_diff.ndim == 2 and torch.isfinite(vec.mean_diff).all()  # what loads is a real vector


@pytest.mark.parametrize(
    "spelling, message",
    [
        ("detectable_format:number_bullet_lists[num_bullets=0]", "num_bullets must be a whole number from 1"),
        ("keywords:letter_frequency[letter=zz]", "letter must be one letter"),
        (
            "length_constraints:nth_paragraph_first_word[nth_paragraph=5,num_paragraphs=2,first_word=so]",
            "past num_paragraphs",
        ),
    ],
)
def test_spellings_lm_eval_would_silently_replace_are_refused(spelling, message, capsys):
    """lm-eval swaps these for random values: the text said 'the letter e' while checking 'zz'."""
    refused(["vectors", spelling, *TINY], capsys, message)


@pytest.mark.parametrize("n", [0, -1, -3])
def test_python_sizes_are_refused_not_sliced(tiny, n):
    """``[:limit]`` with -1 kept all pairs but one; -3 ran on 'everything but three'."""
    from workbench.extract import compute_vector
    from workbench.instructions import make_pairs

    with pytest.raises(WorkbenchError, match="at least 1"):
        make_pairs("one_sentence", limit=n)
    with pytest.raises(WorkbenchError, match="at least 1"):
        compute_vector(tiny, "one_sentence", n_pairs=n)
