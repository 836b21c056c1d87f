"""``evaluate --data`` through vLLM equals the workbench's: the same selections, the same scores,
the same replies, on a 2-id file with the embedded SmolLM2 in float32 (``model.backend``: what
``--engine vllm`` attaches)."""

from dataclasses import replace

import pandas as pd

from workbench.apps.file_evaluation.run import evaluate_file
from workbench.instructions import Instruction, get_instruction, ifeval_records
from workbench.io import write_jsonl
from workbench.sweep import Choice

FRENCH = "language:response_language[language=fr]"


def test_evaluate_through_vllm_equals_the_workbench(engine, smol, tmp_path):
    records = ifeval_records(
        [Instruction.ifeval("language:response_language", language="fr"), get_instruction("lowercase")],
        per_instruction=3,
    )
    write_jsonl(tmp_path / "two.jsonl", records)
    options = dict(
        layers=(12, 15),
        sweep_prompts=4,
        n_train=16,
        max_new_tokens=24,
        search="reuse",
        settings={FRENCH: Choice.manual(FRENCH, 15, "add", 1.0)},
    )  # French steered for sure; lowercase selected on validation
    ours = evaluate_file(smol, tmp_path / "two.jsonl", tmp_path / "workbench", **options)
    theirs = evaluate_file(replace(smol, backend=engine), tmp_path / "two.jsonl", tmp_path / "vllm", **options)
    assert theirs["groups"] == ours["groups"]
    pd.testing.assert_frame_equal(theirs.scores, ours.scores)
    key = ["prompt_id", "condition"]
    a, b = ours.table.sort_values(key).reset_index(drop=True), theirs.table.sort_values(key).reset_index(drop=True)
    assert (a["text"] == b["text"]).all() and (a["loose"] == b["loose"]).all()
    steered, plain = (
        a[(a["condition"] == c) & a["instruction_ids"].apply(lambda ids: ids == ["language:response_language"])][
            "text"
        ].tolist()
        for c in ("steer", "no_instruction")
    )
    assert steered != plain  # the guard: steering changed the French records' replies, so the comparison could fail
