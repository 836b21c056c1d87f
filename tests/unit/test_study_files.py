"""A study folder's typed results: one place names the files, a round trip keeps every table, an older
folder (format 1) still reads, a newer one and an unfinished one are refused in one line."""

import json
from dataclasses import asdict

import pandas as pd
import pytest
import torch

from workbench import WorkbenchError
from workbench.apps.study.files import STUDY, StudyFiles, StudyResults
from workbench.sweep import Choice

TITLE = Choice("title", False, 3, "add", 1.0, 0.75, 0.0, 0.125, p_value=0.0156, n_tested=8)
EXCLUDE = Choice("exclude_word", False, 2, "add", -1.0, 0.0, 0.0, 0.0)


def study(folder) -> StudyResults:
    summary = pd.DataFrame(
        [
            {"instruction": "title", "condition": c, "compliance": v, "degenerate": d}
            for c, v, d in (("no_instruction", 0.0, 0.0), ("steer", 0.5, 0.25))
        ]
    )
    return StudyResults(
        files=StudyFiles.at(folder),
        run={"model": "m", "dtype": "bfloat16", "followed": ["title"], "seconds": 1.0, "exclusion": asdict(EXCLUDE)},
        summary=summary,
        cells=pd.DataFrame({"instruction": ["title"], "with_instruction": [False], "layer": [3]}),
        choices={("title", False): TITLE},
        separability=pd.DataFrame({"instruction": ["title"], "layer": [3], "auroc": [1.0]}),
        gain_vs_separability=pd.DataFrame({"instruction": ["title"], "layer": [3]}),
        projections=pd.DataFrame({"instruction": ["title"], "layer": [3], "projection": [0.5]}),
        mean_diffs={"title": torch.ones(4, 3)},
        proj_with={"title": torch.arange(4.0)},
        follow=pd.DataFrame({"instruction": ["title"], "with": [1.0]}),
        logit_lens=pd.DataFrame({"instruction": ["title"], "token": ["NA"]}),
    )


def test_a_study_reads_back_what_it_wrote(tmp_path):
    made = study(tmp_path)
    made.save()
    back = StudyResults.load(tmp_path)
    assert json.loads(made.files.result.read_text())["format"] == STUDY.version
    assert back.choices == made.choices and back.exclusion == EXCLUDE and back["followed"] == ["title"]
    pd.testing.assert_frame_equal(back.summary, made.summary)
    assert back.logit_lens is not None and list(back.logit_lens["token"]) == ["NA"]  # a token, not a missing value
    assert back.composition is None and not made.files.composition.exists()
    assert torch.equal(back.mean_diffs["title"], made.mean_diffs["title"]) and back.caption == "m (bfloat16)"
    drift = back.drift().iloc[0]
    assert drift["val_gain"] == 0.75 and drift["test_gain"] == 0.5 and drift["p"] == "0.0156"


def test_a_format_1_folder_reads_without_the_exclusion(tmp_path):
    made = study(tmp_path)
    made.save()
    run = json.loads(made.files.result.read_text())
    del run["format"], run["exclusion"]
    made.files.result.write_text(json.dumps(run))
    back = StudyResults.load(tmp_path)
    assert back.exclusion is None and back["format"] == STUDY.version and back.choices == made.choices
    assert STUDY.read({}, "result.json") == {"format": STUDY.version, "exclusion": None}


def test_a_newer_or_unfinished_folder_is_refused_in_one_line(tmp_path):
    made = study(tmp_path)
    made.save()
    made.files.result.write_text(json.dumps({"format": STUDY.version + 1}))
    with pytest.raises(WorkbenchError, match=f"format {STUDY.version + 1}; this workbench reads formats up to"):
        StudyResults.load(tmp_path)
    made.files.summary.unlink()
    with pytest.raises(WorkbenchError, match="lacks summary.csv: its study did not finish") as err:
        StudyResults.load(tmp_path)
    assert "\n" not in str(err.value)
    with pytest.raises(WorkbenchError, match="no study results"):
        StudyResults.load(tmp_path / "elsewhere")


def test_every_file_name_lives_in_one_place():
    files = StudyFiles.at("r")
    paths = [p for p in vars(files).values() if p != files.folder]
    assert len({p.name for p in paths}) == len(paths) and all(p.parent == files.folder for p in paths)
    assert files.unit("language:response_language[language=de]").parent.name == "units"
