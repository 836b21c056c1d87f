"""Issue 36's silent paths (a 304-case reliability probe): bad input said nothing, or said the wrong
thing. Each is one line now, before any work, with nothing written or lost. One test per case; each
failed on the code before its fix."""

import errno
import json
import re
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest
from markdown_it import MarkdownIt

from workbench import WorkbenchError
from workbench.apps.cli.main import main
from workbench.apps.file_evaluation.plan import EvaluateOptions, plan_file
from workbench.instructions import load_ifeval_jsonl, parse_group_by
from workbench.readers import read_dataset

LANGUAGE = "language:response_language"
RECORDS = [
    {
        "key": k,
        "prompt": f"Explain {topic}. Answer in {name}.",
        "instruction_id_list": [LANGUAGE],
        "kwargs": [{"language": code}],
        "prompt_without_instruction": f"Explain {topic}.",
    }
    for k, (topic, name, code) in enumerate([("tides", "German", "de"), ("rain", "French", "fr")])
]


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "languages.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    return path


def run(argv, capsys):
    """(exit code, stderr) of the CLI; a ``SystemExit`` that escapes it fails the test."""
    code = main(argv)
    return code, capsys.readouterr().err


def refused_before_work(argv, capsys, monkeypatch, out: Path, code: int = 2) -> str:
    """The CLI's one line and exit code, the model never loaded, ``out`` never made."""
    monkeypatch.setattr("workbench.models.load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    got, err = run(argv, capsys)
    assert got == code and err.count("\n") == 1 and err.endswith("\n"), err
    assert not out.exists(), f"{out} was written"
    return err


# --- 1. --group-by: every key a kwarg of its id, every spec well formed ---------------------------------


def test_a_group_by_key_the_id_lacks_is_refused_naming_the_ones_it_takes(data, tmp_path, capsys, monkeypatch):
    """Regression: ``language=nokwarg`` grouped by nothing, so German and French shared one vector."""
    out = tmp_path / "out"
    argv = ["evaluate", "--data", str(data), "--group-by", f"{LANGUAGE}=nokwarg", "--out", str(out)]
    err = refused_before_work(argv, capsys, monkeypatch, out)
    assert "no kwarg 'nokwarg'; it takes language" in err
    assert len(plan_file(data).groups) == 2  # the default: one vector per language
    with pytest.raises(WorkbenchError, match="keywords:frequency: no kwarg 'keywords'; it takes keyword, frequency"):
        parse_group_by(["keywords:frequency=keyword+keywords"])
    with pytest.raises(WorkbenchError, match="punctuation:no_comma: no kwarg 'x'; it takes no kwargs"):
        parse_group_by(["punctuation:no_comma=x"])
    for where in (EvaluateOptions, lambda group_by: plan_file(data, group_by)):
        with pytest.raises(WorkbenchError, match="no kwarg 'nokwarg'"):
            where(group_by={LANGUAGE: ("nokwarg",)})
        with pytest.raises(WorkbenchError, match="a list of kwarg names, not the string 'language'"):
            where(group_by={LANGUAGE: "language"})  # a string would be read as its letters


@pytest.mark.parametrize(
    "spec, message",
    [
        (f"{LANGUAGE}=+", "bad --group-by"),  # read as ID=, one vector per id
        (f"{LANGUAGE}=language+", "bad --group-by"),
        ("keywords:frequency=keyword++relation", "bad --group-by"),
        (f"{LANGUAGE}=*+language", "* (every kwarg) stands alone"),
    ],
)
def test_a_malformed_group_by_is_refused(spec, message):
    with pytest.raises(WorkbenchError, match=re.escape(message)) as err:
        parse_group_by([spec])
    assert "\n" not in str(err.value)


def test_a_group_by_naming_an_id_twice_is_refused():
    """Regression: the second ``--group-by`` of an id replaced the first without a word."""
    with pytest.raises(WorkbenchError, match=f"names {LANGUAGE} twice"):
        parse_group_by([f"{LANGUAGE}=language", f"{LANGUAGE}="])
    assert parse_group_by([f"{LANGUAGE}=", "startend:end_checker=*"])[LANGUAGE] == ()


# --- 2. a custom reader that exits, or is interrupted ----------------------------------------------------


def reader_module(tmp_path: Path) -> Path:
    module = tmp_path / "odd_reader_xyz.py"
    module.write_text(
        "import sys\ndef leaves(path):\n    sys.exit(0)\ndef stopped(path):\n    raise KeyboardInterrupt\n"
    )
    return module


def test_a_reader_that_calls_sys_exit_is_an_error_naming_it(data, tmp_path, capsys, monkeypatch):
    """Regression: ``sys.exit(0)`` in a reader ended ``workbench evaluate`` with exit 0 and no word."""
    module, out = reader_module(tmp_path), tmp_path / "out"
    argv = ["evaluate", "--data", str(data), "--format", f"{module}:leaves", "--out", str(out)]
    err = refused_before_work(argv, capsys, monkeypatch, out)
    assert f"reader {module}:leaves called sys.exit(0) while reading {data}" in err
    with pytest.raises(WorkbenchError, match="called sys.exit"):
        read_dataset(data, f"{module}:leaves")
    exits_on_import = tmp_path / "exits_on_import_xyz.py"
    exits_on_import.write_text("import sys\nsys.exit(3)\n")
    with pytest.raises(WorkbenchError, match="cannot import .* SystemExit: 3"):
        read_dataset(data, f"{exits_on_import}:read")


def test_ctrl_c_while_reading_says_nothing_ran(data, tmp_path, capsys, monkeypatch):
    """Regression: Ctrl-C in a reader said "finished units are saved; rerun to resume" when nothing had run."""
    module, out = reader_module(tmp_path), tmp_path / "out"
    argv = ["evaluate", "--data", str(data), "--format", f"{module}:stopped", "--out", str(out)]
    err = refused_before_work(argv, capsys, monkeypatch, out, code=130)
    assert f"interrupted while reading {data}, before any work: nothing ran" in err and "finished units" not in err
    with pytest.raises(KeyboardInterrupt):  # still a KeyboardInterrupt to a notebook
        read_dataset(data, f"{module}:stopped")


# --- 3. the machine's refusals: disk full, no permission -------------------------------------------------


@pytest.mark.parametrize(
    "raised, said",
    [
        (lambda path: OSError(errno.ENOSPC, "No space left on device"), "No space left on device (ENOSPC)"),
        (lambda path: PermissionError(errno.EACCES, "Permission denied", path), "Permission denied (EACCES)"),
    ],
)
def test_an_os_error_is_reported_as_what_it_is_not_as_a_bug(raised, said, tiny_vector, tmp_path, capsys, monkeypatch):
    """Regression: a full disk or a refused permission read "unexpected error ... (a bug)"."""
    import gguf

    vector, out = tiny_vector.save(tmp_path / "v.safetensors"), tmp_path / "control.gguf"

    def write(writer):  # a full disk names no file; a refusal names the file written, the temp file here
        raise raised(str(writer.path))

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", write)
    code, err = run(["export", str(vector), "--out", str(out)], capsys)
    assert code == 1 and err == f"workbench export: error: {said}: {out}\n", err
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


# --- 4. dataset text in report.md's tables ---------------------------------------------------------------

EVIL = "a|b <b>bold</b>\nsecond line"


def rows(md: str, first: str) -> list[list[str]]:
    """The rendered cells of each table row whose first cell starts with ``first``."""
    page = MarkdownIt("commonmark", {"html": True}).enable("table").render(md)
    found = [r for r in page.split("<tr>") if r.strip().startswith(f"<td>{first}")]
    return [[c.split("</td>")[0] for c in r.split("<td>")[1:]] for r in found]


def test_dataset_text_in_report_tables_keeps_the_table_and_shows_as_text():
    """Regression: a ``|`` in a group name split its cell, a line break ended its row, a tag was rendered."""
    from workbench.apps.file_evaluation.drift import drift_lines
    from workbench.apps.file_evaluation.markdown import report_markdown
    from workbench.apps.study.report import _md_table

    shown = "a|b &lt;b&gt;bold&lt;/b&gt; second line"
    none = {"layer": None, "mode": "none", "coefficient": None, "decided_by": "screen", "reason": f"{EVIL} failed"}
    result = {"groups": {EVIL: {"without_instruction": none}}, "selection_rule": "maxT-v3"}
    row = {"metric": "loose", "accuracy": 0.5, "ci_low": 0.0, "ci_high": 1.0, "n": 2}
    scores = pd.DataFrame(
        [
            {"scope": scope, "level": level, "condition": condition, **row}
            for scope, level in (("all", "prompt"), (EVIL, "instruction"))
            for condition in ("no_instruction", "steer")
        ]
    )
    drift = "\n".join(drift_lines(result, scores, pd.DataFrame()))
    (drift_row,) = rows(drift, "a|b")
    assert drift_row[0] == shown and len(drift_row) == 8
    page = MarkdownIt("commonmark", {"html": True}).enable("table").render(drift)
    assert "<b>" not in page and f"(screen): {shown} failed" in page  # the decision's line: name and reason
    run = {"model": "m", "data": "d", "n_evaluated": 2, "n_examples": 2, "pairs": "queries", "search": "halving"}
    report = report_markdown({**result, **run, "skipped": {}}, scores, pd.DataFrame())
    (scores_row, drift_row), (prompt_row,) = rows(report, "a|b"), rows(report, "<strong>prompt")
    assert scores_row[0] == drift_row[0] == shown and len(scores_row) == len(prompt_row)
    study = _md_table(pd.DataFrame([{"instruction": EVIL, "compliance": 0.5}]))
    assert rows(study, "a|b") == [[shown, "0.50"]]


# --- 5. a key given twice in one record -------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, key",
    [
        (json.dumps(RECORDS[0])[:-1] + ', "prompt": "Explain fog."}', "prompt"),
        (json.dumps(RECORDS[0]).replace('"language": "de"', '"language": "de", "language": "fr"'), "language"),
    ],
)
def test_a_record_with_a_key_given_twice_is_refused(line, key, tmp_path):
    """Regression: JSON keeps the last of two equal keys, so one of them was dropped without a word."""
    path = tmp_path / "twice.jsonl"
    path.write_text(json.dumps(RECORDS[1]) + "\n" + line + "\n")
    for read in (load_ifeval_jsonl, read_dataset):
        with pytest.raises(WorkbenchError, match=f"{path} line 2: key '{key}' is given twice in one object") as err:
            read(path)
        assert "\n" not in str(err.value)


# --- 6. plotly.js beside the HTML figures ----------------------------------------------------------------


def test_plotly_js_is_written_atomically_and_a_truncated_one_rewritten(tmp_path, monkeypatch):
    """Regression: a ``plotly.min.js`` cut short (a full disk) was kept forever, since it existed."""
    from plotly.offline import get_plotlyjs

    from workbench.plots.theme import export

    bundled = get_plotlyjs().encode()
    js = tmp_path / "figs" / "plotly.min.js"
    js.parent.mkdir()
    js.write_bytes(bundled[:1000])
    export(go.Figure(), js.parent, "empty", static=False)
    assert js.read_bytes() == bundled

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    fresh = tmp_path / "fresh"
    monkeypatch.setattr("os.fsync", full)
    with pytest.raises(OSError, match="No space left") as err:
        export(go.Figure(), fresh, "empty", static=False)
    assert err.value.filename == str(fresh / "plotly.min.js") and not list(fresh.iterdir())  # no half file
