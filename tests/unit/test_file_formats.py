"""File formats with a version and one migration per version (``workbench.file_formats``): an older file
is brought up one version at a time, a newer one is refused in one line naming it, before anything is
written; per file kind (vector file, sweep folder, evaluation summary) a regression test."""

import json

import pytest
from safetensors import safe_open
from safetensors.torch import save_file

from workbench import WorkbenchError
from workbench.apps.file_evaluation.results import EVALUATION, Evaluation
from workbench.apps.file_evaluation.run import evaluate_instructions
from workbench.apps.study.files import STUDY
from workbench.file_formats import FileFormat
from workbench.instructions import Instruction
from workbench.store import vector_for
from workbench.sweep import Choice, SweepConfig, run_sweep
from workbench.sweep.run import SWEEP, load_table
from workbench.vectors import VECTOR, InstructionVector


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


# --- the mechanism ---------------------------------------------------------------------------


def test_an_older_file_is_brought_up_one_migration_at_a_time():
    seen = []

    def from_v1(d: dict) -> dict:
        seen.append((1, d["format"]))
        return {"size": d["n"]}

    def from_v2(d: dict) -> dict:
        seen.append((2, d["format"]))  # sees version 2's dict, number included
        return {**d, "unit": "tokens"}

    fmt = FileFormat("a made-up file", 3, {1: from_v1, 2: from_v2})
    assert fmt.read({"n": 4}, "f.json") == {"format": 3, "size": 4, "unit": "tokens"}  # no number: version 1
    assert seen == [(1, 1), (2, 2)]
    assert fmt.read({"format": 2, "size": 4}, "f.json") == {"format": 3, "size": 4, "unit": "tokens"}
    assert fmt.read(fmt.stamp({"size": 1, "unit": "s"}), "f.json") == {"format": 3, "size": 1, "unit": "s"}
    assert fmt.stamp({"format": 1, "size": 2}) == {"format": 3, "size": 2}


def test_the_studys_real_migration_from_format_1():
    assert STUDY.version == 2 and STUDY.read({"model": "m"}, "r") == {"model": "m", "format": 2, "exclusion": None}
    kept = {"format": 2, "exclusion": {"layer": 1}}
    assert STUDY.read(kept, "r") == kept


def test_a_newer_file_is_refused_naming_it_and_both_versions():
    fmt = FileFormat("a made-up file", 1)
    with pytest.raises(WorkbenchError) as err:
        fmt.read({"format": 2}, "runs/f.json")
    message = one_line(err)
    assert "runs/f.json holds a made-up file of format 2" in message and "up to 1" in message
    assert "upgrade the workbench" in message


@pytest.mark.parametrize("version", ["2", 1.0, True, None, [1], 0, -3])
def test_a_version_that_is_not_a_version_number_is_refused(version):
    with pytest.raises(WorkbenchError, match="not a version number|no format number") as err:
        FileFormat("a made-up file", 2, {1: dict}).read({"format": version}, "f.json")
    assert "f.json" in one_line(err)


def test_a_format_numbered_from_the_start_refuses_a_file_without_a_number():
    with pytest.raises(WorkbenchError, match="f.json does not hold a made-up file: it has no format number"):
        FileFormat("a made-up file", 1, unversioned=None).read({"n": 1}, "f.json")
    with pytest.raises(WorkbenchError, match="not a JSON object"):
        FileFormat("a made-up file", 1).read([1, 2], "f.json")


def test_a_format_needs_one_migration_from_each_older_version_and_no_other():
    assert FileFormat("a made-up file", 1).migrations == {}
    with pytest.raises(ValueError, match="needs one migration from each of"):
        FileFormat("a made-up file", 3, {1: dict})
    with pytest.raises(ValueError, match="needs one migration from each of"):
        FileFormat("a made-up file", 1, {1: dict})


# --- vector files ---------------------------------------------------------------------------------


def restamp(path, version) -> None:
    """Rewrite a vector file's metadata with another format number (or none)."""
    with safe_open(str(path), framework="pt") as f:
        meta, tensors = json.loads(f.metadata()["workbench"]), {k: f.get_tensor(k) for k in f.keys()}
    meta = {**meta, "format": version} if version is not None else {k: v for k, v in meta.items() if k != "format"}
    save_file(tensors, str(path), metadata={"workbench": json.dumps(meta)})


def test_a_newer_vector_file_is_refused_saying_upgrade(tmp_path, tiny, tiny_vector):
    saved = tiny_vector.save(tmp_path / "v")
    assert InstructionVector.load(saved, tiny).instruction_id == tiny_vector.instruction_id  # today's file loads
    restamp(saved, VECTOR.version + 1)
    with pytest.raises(WorkbenchError) as err:
        InstructionVector.load(saved)
    message = one_line(err)
    assert f"format {VECTOR.version + 1}" in message and "upgrade" in message and "recompute" not in message
    restamp(saved, None)  # never written by any workbench: refused
    with pytest.raises(WorkbenchError, match="no format number"):
        InstructionVector.load(saved)


def test_a_newer_vector_in_a_results_folder_is_not_overwritten(tmp_path, tiny):
    vector_for(tiny, "one_sentence", tmp_path, 4)
    (file,) = (tmp_path / "vectors").glob("*.safetensors")
    restamp(file, VECTOR.version + 1)
    before = {p: p.read_bytes() for p in (tmp_path / "vectors").iterdir()}
    with pytest.raises(WorkbenchError, match="upgrade"):
        vector_for(tiny, "one_sentence", tmp_path, 4)
    assert {p: p.read_bytes() for p in (tmp_path / "vectors").iterdir()} == before


# --- sweep folders ----------------------------------------------------------------------------------

TINY_SWEEP = dict(
    model="tiny-random",
    instructions=("one_sentence",),
    layers=(1,),
    coefficients=(1.0,),
    project=False,
    n_train=4,
    n_prompts=2,
    max_new_tokens=3,
    conditions=(False,),
)


def test_sweep_folders_old_resume_and_newer_are_refused_before_any_work(tmp_path, tiny):
    config = SweepConfig(**TINY_SWEEP)
    table = run_sweep(tiny, config, tmp_path, progress=False).table
    claimed = tmp_path / "config.json"
    assert json.loads(claimed.read_text())["format"] == SWEEP.version
    old = {k: v for k, v in json.loads(claimed.read_text()).items() if k != "format"}
    claimed.write_text(json.dumps(old))  # a folder from before the format was numbered
    assert run_sweep(tiny, config, tmp_path, progress=False).table.equals(table)  # resumes, nothing to do
    claimed.write_text(json.dumps({**old, "format": SWEEP.version + 1}))
    (tmp_path / "table.csv").unlink()
    (unit,) = (tmp_path / "units").glob("*L01.jsonl")
    unit.unlink()  # work that a resume would do
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(WorkbenchError) as err:
        run_sweep(tiny, config, tmp_path, progress=False)
    assert f"{tmp_path} holds a sweep of format {SWEEP.version + 1}" in one_line(err)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    with pytest.raises(WorkbenchError, match="upgrade"):
        load_table(tmp_path)  # a sweep given to read (evaluate's sweep_dir)


# --- evaluation summaries ---------------------------------------------------------------------------


def test_an_evaluation_summary_is_stamped_read_back_and_a_newer_one_refused(tmp_path, tiny):
    brief = Instruction.custom("Answer in under five words.", check=lambda r: len(r.split()) < 5, id="brief")
    options = dict(
        test_prompts=2, n_train=4, max_new_tokens=3, settings={"brief": Choice.manual("brief", 1, "add", 1.0)}
    )
    made = evaluate_instructions(tiny, [brief], tmp_path, **options)
    summary = tmp_path / "summary.json"
    assert json.loads(summary.read_text())["format"] == EVALUATION.version == 1
    back = Evaluation.load(tmp_path)
    same = json.dumps(back.summary, default=float) == json.dumps(made.summary, default=float)  # NaN != NaN
    assert same and back.scores.equals(made.scores) and len(back.table) == len(made.table)
    old = {k: v for k, v in json.loads(summary.read_text()).items() if k != "format"}
    summary.write_text(json.dumps(old))  # written before summaries were numbered
    assert Evaluation.load(tmp_path)["format"] == 1
    summary.write_text(json.dumps({**old, "format": EVALUATION.version + 1}))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(WorkbenchError) as err:
        Evaluation.load(tmp_path)
    assert f"holds an evaluation of format {EVALUATION.version + 1}" in one_line(err)
    with pytest.raises(WorkbenchError, match="upgrade"):
        evaluate_instructions(tiny, [brief], tmp_path, **options)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_workbench_evaluate_refuses_a_newer_evaluation_folder_before_loading_the_model(tmp_path, monkeypatch, capsys):
    from workbench.apps.cli.main import main
    from workbench.instructions import ifeval_records
    from workbench.io import write_jsonl

    data, out = tmp_path / "data.jsonl", tmp_path / "eval"
    write_jsonl(data, ifeval_records([Instruction.ifeval("punctuation:no_comma")], per_instruction=2))
    out.mkdir()
    (out / "summary.json").write_text(json.dumps({"format": EVALUATION.version + 1}))
    monkeypatch.setattr("workbench.models.load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    assert main(["evaluate", "--data", str(data), "--model", "tiny-random", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"format {EVALUATION.version + 1}" in err[0] and "upgrade" in err[0]
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]


def test_a_study_folder_is_claimed_with_its_format_and_an_older_claim_still_resumes(tmp_path, tiny):
    from workbench.apps.study import StudyConfig, StudyFiles
    from workbench.apps.study.files import STUDY_FOLDER
    from workbench.apps.study.run import _claim

    cfg = StudyConfig(model="tiny-random", layers=(1,), coefficients=(1.0,), instructions=("title",))
    files = StudyFiles.at(tmp_path)
    _claim(tiny, cfg, files)
    config = tmp_path / "config.json"
    claimed = json.loads(config.read_text())
    assert claimed["format"] == STUDY_FOLDER.version == 1
    config.write_text(json.dumps({k: v for k, v in claimed.items() if k != "format"}))  # before it was numbered
    _claim(tiny, cfg, files)  # resumes: the same configuration
    config.write_text(json.dumps({**claimed, "format": 2}))
    with pytest.raises(WorkbenchError, match="holds a study folder of format 2"):
        _claim(tiny, cfg, files)
