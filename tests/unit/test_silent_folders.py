"""Issue 36's silent paths in an evaluation's folders: a sweep reused from another model or for other
groups, options a reused sweep makes moot, two search kinds in one sweep folder, two data files in one
``--out``, and a run stopped between files. Each is refused in one line now, before any work, nothing
written or lost; each test failed on the code before its fix."""

import json
import os
import shutil
from pathlib import Path

import pytest

from workbench import WorkbenchError
from workbench.apps.cli.main import main
from workbench.apps.file_evaluation import EvaluateOptions, Evaluation, evaluate_file, evaluate_plan, plan_file
from workbench.apps.file_evaluation.results import write_evaluation
from workbench.instructions import Group, get_instruction
from workbench.io import file_hash
from workbench.models import tiny_model

TINY = ["--model", "tiny-random"]
SMALL = dict(n_train=4, max_new_tokens=4)  # what a reused sweep leaves to set


def records(ifeval_id: str, topics: tuple[str, ...] = ("tides", "rain")) -> str:
    return "".join(
        json.dumps(
            {
                "key": k,
                "prompt": f"Explain {topic}. Do it as told.",
                "instruction_id_list": [ifeval_id],
                "kwargs": [{}],
                "prompt_without_instruction": f"Explain {topic}.",
            }
        )
        + "\n"
        for k, topic in enumerate(topics)
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    """Two files: ``no_comma`` records and ``english_lowercase`` ones (one vector group each)."""
    folder = tmp_path_factory.mktemp("data")
    a, b = folder / "no_comma.jsonl", folder / "lowercase.jsonl"
    a.write_text(records("punctuation:no_comma"))
    b.write_text(records("change_case:english_lowercase"))
    return a, b


@pytest.fixture(scope="module")
def other():
    """Another model: its own name and weights."""
    return tiny_model(seed=1, name="tiny-other")


@pytest.fixture(scope="module")
def earlier(data, other, tmp_path_factory) -> Path:
    """The other model's evaluation of the ``no_comma`` file, its settings from a ``reuse`` sweep."""
    out = tmp_path_factory.mktemp("earlier")
    evaluate_file(other, data[0], out, layers=(1,), sweep_prompts=2, search="reuse", **SMALL)
    return out


def run(argv, capsys):
    code = main(argv)
    return code, capsys.readouterr().err


def refused(argv, capsys, monkeypatch, code: int = 2) -> str:
    """The CLI's one line and exit code, the model never loaded."""
    monkeypatch.setattr("workbench.models.load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    got, err = run(argv, capsys)
    assert got == code and err.count("\n") == 1 and err.endswith("\n"), err
    return err


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- 1. a reused sweep: this model's, for these groups; the options it settles go without it ---------------


def test_a_sweep_from_another_model_is_refused_naming_both(earlier, data, other, tmp_path, capsys):
    """Regression: ``--sweep`` of another model's evaluation (its ``vectors/`` gone) was used as is, and
    this model's vectors were written into that folder."""
    sweep, out = tmp_path / "sweep", tmp_path / "out"
    shutil.copytree(earlier / "sweep", sweep)
    shutil.rmtree(sweep / "vectors")
    before = snapshot(sweep)
    code, err = run(["evaluate", *TINY, "--data", str(data[0]), "--sweep", str(sweep), "--out", str(out)], capsys)
    said = err.splitlines()[-1]  # after the plan's line: the model loads before its name can be compared
    assert code == 2 and said.startswith("workbench evaluate: error: "), err
    assert f"the sweep in {sweep} was made with model tiny-other, not tiny-random" in said
    assert snapshot(sweep) == before and not out.exists()
    same_name = tiny_model(name="tiny-other")  # the name, other weights
    with pytest.raises(WorkbenchError, match="made with another tiny-other") as info:
        evaluate_file(same_name, data[0], out, sweep_dir=sweep, **SMALL)
    assert f"fingerprint {other.fingerprint()}, this one's {same_name.fingerprint()}" in str(info.value)
    assert snapshot(sweep) == before and not out.exists()


def test_a_sweep_for_other_groups_is_refused_naming_both(earlier, data, other, tmp_path, capsys, monkeypatch):
    """Regression: a sweep of other instructions was read as is: every record skipped, or a group's
    setting taken from another group of the same name."""
    sweep, out = earlier / "sweep", tmp_path / "out"
    err = refused(
        ["evaluate", *TINY, "--data", str(data[1]), "--sweep", str(sweep), "--out", str(out)], capsys, monkeypatch
    )
    assert f"the sweep in {sweep} chose settings for punctuation:no_comma, none of this run's groups" in err
    assert "(change_case:english_lowercase)" in err and not out.exists()
    plan = plan_file(data[0])
    plan.groups = {"punctuation:no_comma": Group("punctuation:no_comma", (get_instruction("lowercase"),))}
    with pytest.raises(WorkbenchError, match="chose settings for another punctuation:no_comma: members") as info:
        evaluate_plan(other, plan, out, sweep_dir=sweep, **SMALL)
    assert '"punctuation:no_comma" there' in str(info.value) and not out.exists()


@pytest.mark.parametrize(
    "given", [["--search", "exhaustive"], ["--layers", "1,2"], ["--sweep-prompts", "18"], ["--search", "halving"]]
)
def test_options_a_reused_sweep_settles_are_refused_beside_it(given, data, tmp_path, capsys, monkeypatch):
    """Regression: ``--layers``, ``--sweep-prompts`` and ``--search`` beside ``--sweep`` were ignored
    without a word (even at their default values: the user set them)."""
    sweep, out = tmp_path / "sweep", tmp_path / "out"
    (sweep / "units").mkdir(parents=True)
    argv = ["evaluate", *TINY, "--data", str(data[0]), "--sweep", str(sweep), *given, "--out", str(out)]
    err = refused(argv, capsys, monkeypatch)
    assert f"{' '.join(given)} would be ignored beside the sweep in {sweep}" in err and not out.exists()
    with pytest.raises(WorkbenchError, match=r"layers=\(1,\) and search='exhaustive' would be ignored beside"):
        EvaluateOptions(sweep_dir=sweep, search="exhaustive", layers=(1,))
    assert EvaluateOptions(sweep_dir=sweep, search="halving", sweep_prompts=18).sweep_dir == sweep  # the defaults


# --- 2. one search kind per sweep folder ------------------------------------------------------------------


def test_another_search_into_a_sweep_folder_is_refused_naming_both_kinds(data, tmp_path, capsys, monkeypatch):
    """Regression: ``--search exhaustive`` over a halving run added a second sweep to ``OUT/sweep``."""
    out = tmp_path / "out"
    (out / "sweep" / "round1").mkdir(parents=True)  # a halving run's, from before the claim
    argv = ["evaluate", *TINY, "--data", str(data[0]), "--search", "exhaustive", "--out", str(out)]
    err = refused(argv, capsys, monkeypatch)
    assert f"{out / 'sweep'} holds a halving sweep; --search exhaustive would add a second one there" in err
    assert snapshot(out) == {}
    (out / "sweep" / "units").mkdir()  # both: written before a folder kept to one search
    err = refused(
        ["evaluate", *TINY, "--data", str(data[0]), "--sweep", str(out / "sweep"), "--out", str(tmp_path / "b")],
        capsys,
        monkeypatch,
    )
    assert f"{out / 'sweep'} holds two sweeps, a halving one (round1/, round2/) and another (units/)" in err


def test_a_reused_sweep_is_reported_as_the_search_it_holds(earlier, data, other, tmp_path):
    """Regression: the summary named ``--search`` (its default, halving), not the sweep that was read."""
    again = evaluate_file(other, data[0], tmp_path, sweep_dir=earlier / "sweep", **SMALL)
    assert again["search"] == "reuse" and "reuse search" in (tmp_path / "report.md").read_text()
    assert json.loads((earlier / "sweep" / "search.json").read_text())["search"] == "reuse"  # claimed where it ran
    assert not (tmp_path / "sweep").exists()  # nothing swept here


# --- 3. one data file per --out ---------------------------------------------------------------------------


@pytest.mark.parametrize("claimed", [True, False])  # False: a folder written before the claim, its summary's hash
def test_other_data_into_an_evaluation_folder_is_refused_naming_both_hashes(
    claimed, earlier, data, tmp_path, capsys, monkeypatch
):
    """Regression: two evaluations of different files into one ``--out`` both exited 0, the last winning."""
    out = tmp_path / "out"
    shutil.copytree(earlier, out)
    if not claimed:
        (out / "config.json").unlink()
    before = snapshot(out)
    err = refused(["evaluate", *TINY, "--data", str(data[1]), "--out", str(out)], capsys, monkeypatch)
    mine, held = file_hash(data[1]), file_hash(data[0])
    assert f"{out} holds an evaluation of other data (sha256 {held[:16]}), not of {data[1]} (sha256 {mine[:16]})" in err
    assert snapshot(out) == before


# --- 4. the evaluation's files as one unit: summary.json last ----------------------------------------------


def rows(verdicts: list[bool]) -> list[dict]:
    """Hand-made rows: record i in each condition, passing or failing its one instruction."""
    return [
        {
            "condition": cond,
            "prompt_id": f"r{i}",
            "instruction_ids": ["a"],
            "groups": [["a"]],
            "strict_each": [v],
            "loose_each": [v],
            "strict": v,
            "loose": v,
            "stopped": True,
            "degenerate": False,
            "logprob": -1.0,
            "text": "t",
        }
        for cond in ("no_instruction", "steer", "instruction", "instruction_steer")
        for i, v in enumerate(verdicts)
    ]


SUMMARY = {
    "model": "m",
    "data": "d.jsonl",
    "n_evaluated": 2,
    "n_examples": 2,
    "pairs": "queries",
    "search": "halving",
    "skipped": {},
    "groups": {"a": {"without_instruction": {"layer": None, "mode": "none", "coefficient": None}}},
}


def test_a_run_stopped_between_files_leaves_a_folder_load_calls_incomplete(tmp_path, monkeypatch):
    """Regression: a run killed after ``rows.jsonl`` left it beside the last run's ``summary.json``, and
    ``Evaluation.load`` read the two as one evaluation."""
    import workbench.apps.file_evaluation.results as results

    write_evaluation(tmp_path, SUMMARY, rows([True, False]))
    assert Evaluation.load(tmp_path)["n_evaluated"] == 2
    real = results.write_atomic

    def killed(path, text):
        if Path(path).name == "scores.csv":
            raise KeyboardInterrupt
        real(path, text)

    monkeypatch.setattr(results, "write_atomic", killed)
    with pytest.raises(KeyboardInterrupt):
        write_evaluation(tmp_path, SUMMARY, rows([False, False]))
    with pytest.raises(WorkbenchError, match="is incomplete .* summary.json is written last") as info:
        Evaluation.load(tmp_path)
    assert "\n" not in str(info.value)


def test_summary_json_is_written_last(tmp_path, monkeypatch):
    renamed = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: renamed.append(Path(b).name) or real(a, b))
    write_evaluation(tmp_path, SUMMARY, rows([True, False]))
    assert renamed[-1] == "summary.json" and {"rows.jsonl", "scores.csv", "report.md"} <= set(renamed[:-1])


def test_rows_the_summary_was_not_written_with_are_refused(tmp_path):
    """Regression: ``rows.jsonl`` of one run beside another's ``summary.json`` loaded as one evaluation."""
    first, second = tmp_path / "first", tmp_path / "second"
    write_evaluation(first, SUMMARY, rows([True, False]))
    write_evaluation(second, SUMMARY, rows([False, False]))
    shutil.copy(second / "rows.jsonl", first / "rows.jsonl")
    with pytest.raises(WorkbenchError, match="is incomplete or mixed: its rows.jsonl is not the one its summary.json"):
        Evaluation.load(first)
    assert Evaluation.load(second)["rows_sha256"] == file_hash(second / "rows.jsonl")
