"""Every subcommand on the tiny model, and one-line errors with exit code 2."""

import json
import subprocess
import sys

import pytest

from workbench.apps.cli.main import SUBCOMMANDS, main

TINY = ["--model", "tiny-random"]


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_lists_every_subcommand():
    out = subprocess.run(
        [sys.executable, "-m", "workbench.apps.cli.main", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name in SUBCOMMANDS:
        assert name in out


def test_vectors_steer_and_export(tmp_path, capsys):
    code, out, _ = run(["vectors", "one_sentence,json", *TINY, "--n-train", "4", "--out", str(tmp_path / "v")], capsys)
    assert code == 0 and (tmp_path / "v" / "json.safetensors").exists()
    vec = str(tmp_path / "v" / "one_sentence.safetensors")
    code, out, _ = run(
        [
            "steer",
            "Explain tides.",
            *TINY,
            "--vector",
            f"{vec}@2:3",
            "--vector",
            "json@1:project",
            "--n-train",
            "4",
            "--max-new-tokens",
            "5",
        ],
        capsys,
    )
    result = json.loads(out)
    assert code == 0 and set(result) >= {"unsteered", "steered"}
    code, out, _ = run(["export", vec, "--out", str(tmp_path / "cv.gguf")], capsys)
    assert code == 0 and (tmp_path / "cv.gguf").stat().st_size > 0


def test_sweep_and_analyze(tmp_path, capsys):
    code, out, _ = run(
        [
            "sweep",
            "one_sentence",
            *TINY,
            "--layers",
            "1,2",
            "--coefficients",
            "1",
            "--n-prompts",
            "2",
            "--n-train",
            "4",
            "--max-new-tokens",
            "4",
            "--out",
            str(tmp_path / "s"),
        ],
        capsys,
    )
    assert code == 0 and (tmp_path / "s" / "table.csv").exists() and "layer" in out
    code, out, _ = run(["analyze", "one_sentence", *TINY, "--n-train", "6", "--out", str(tmp_path / "a")], capsys)
    assert code == 0 and (tmp_path / "a" / "separability_one_sentence.csv").exists()


def test_evaluate(tmp_path, capsys):
    data = tmp_path / "set.jsonl"
    rows = [
        {
            "key": i,
            "prompt": f"Describe rivers {i}. Answer in one short sentence.",
            "instruction_id_list": ["length_constraints:number_sentences"],
            "kwargs": [{"relation": "less than", "num_sentences": 2}],
            "prompt_without_instruction": f"Describe rivers {i}.",
        }
        for i in range(2)
    ] + [
        {
            "key": 9,
            "prompt": "Write a letter. End it with P.S.",
            "instruction_id_list": ["detectable_content:postscript"],
            "kwargs": [{"postscript_marker": "P.S."}],
        }
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    code, out, err = run(
        [
            "evaluate",
            *TINY,
            "--data",
            str(data),
            "--layers",
            "1",
            "--sweep-prompts",
            "2",
            "--max-new-tokens",
            "4",
            "--n-train",
            "4",
            "--out",
            str(tmp_path / "e"),
        ],
        capsys,
    )
    assert code == 0, err
    summary = json.loads((tmp_path / "e" / "summary.json").read_text())
    scores = {(r["scope"], r["condition"], r["level"], r["metric"]): r["n"] for r in summary["scores"]}
    for cond in ("no_instruction", "steer", "instruction", "instruction_steer"):
        assert scores[("all", cond, "prompt", "loose")] == 2
        assert scores[("length_constraints:number_sentences", cond, "instruction", "strict")] == 2
    assert list(summary["skipped"]) == ["9"] and "prompt_without_instruction" in summary["skipped"]["9"]
    assert "instruction_steer" in out and "number_sentences" in out  # the report is printed


def test_demo_refuses_a_model_that_follows_nothing(tmp_path, capsys):
    code, _, err = run(["demo", "--quick", *TINY, "--out", str(tmp_path / "d")], capsys)
    assert code == 2 and "follows none" in err.splitlines()[-1]


def test_demo_end_to_end_and_figures(tmp_path, capsys):
    out = tmp_path / "d"
    argv = [
        "demo",
        "--quick",
        *TINY,
        "--instructions",
        "one_sentence,json",
        "--follow-threshold",
        "0",
        "--min-gap",
        "-1",
        "--html-only",
        "--out",
        str(out),
    ]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    for name in (
        "report.md",
        "report.html",
        "summary.csv",
        "follow.csv",
        "separability.csv",
        "composition.csv",
        "figures/four_conditions.html",
        "figures/heatmap_compliance_without.html",
    ):
        assert (out / name).stat().st_size > 0, name
    summary = (out / "summary.csv").read_text()
    assert "instruction_steer" in summary and "exclude_word" in summary
    code, out_text, _ = run(["figures", "--results", str(out), "--out", str(tmp_path / "figs"), "--html-only"], capsys)
    assert (
        code == 0
        and (tmp_path / "figs" / "composition.html").exists()
        and (tmp_path / "figs" / "plotly.min.js").exists()
    )
    assert run(argv, capsys)[0] == 0  # a rerun resumes: every stage is already there


@pytest.mark.parametrize(
    "argv, message",
    [
        (["vectors", "shout", *TINY], "unknown instruction 'shout'"),
        (["steer", "hi", *TINY, "--vector", "one_sentence@99"], "out of range"),
        (["steer", "hi", *TINY, "--vector", "one_sentence"], "NAME@LAYER"),
        (["steer", "hi", "--model", "no-such/model-xyz", "--vector", "json@1"], "cannot load model"),
        (["sweep", "json", *TINY, "--layers", "1", "--coefficients", "", "--no-project"], "grid is empty"),
        (["figures", "--results", "/nonexistent/results"], "no study results"),
        (["evaluate", *TINY, "--data", "/nonexistent.jsonl"], "no such file"),
        (["steer", "hi", *TINY, "--vector", "/nonexistent.safetensors@1"], "no vector file"),
        pytest.param(
            ["vectors", "json", *TINY, "--device", "cuda"],
            "no CUDA GPU",
            marks=pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU is present"),
        ),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(argv, message, capsys, tmp_path):
    code, _, err = run(argv, capsys)
    assert code == 2
    assert message in err and err.count("\n") == 1, err


def test_results_of_another_configuration_refused(tmp_path, capsys):
    base = [
        "sweep",
        "one_sentence",
        *TINY,
        "--n-prompts",
        "1",
        "--n-train",
        "2",
        "--max-new-tokens",
        "2",
        "--out",
        str(tmp_path),
    ]
    assert run([*base, "--layers", "1"], capsys)[0] == 0
    code, _, err = run([*base, "--layers", "2"], capsys)
    assert code == 2 and "another configuration" in err


def test_compile_flag_reaches_generate(monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_COMPILE", "0")  # restored (unset) after the test; main sets it to 1
    from workbench.generation.generate import compile_default

    run(["vectors", "shout", *TINY], capsys)
    assert not compile_default()
    run(["vectors", "shout", *TINY, "--compile"], capsys)
    assert compile_default()
