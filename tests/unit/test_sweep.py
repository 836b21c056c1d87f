"""Sweeps on the tiny model: batching, resume, selection and the four-condition report."""

import json

import pandas as pd
import pytest

from workbench import WorkbenchError, generate
from workbench.instructions import make_pairs
from workbench.store import vector_for
from workbench.sweep import (
    NO_STEERING,
    Choice,
    SweepConfig,
    catalog_examples,
    four_conditions,
    run_sweep,
    select,
    summarize,
)

CONFIG = dict(
    model="tiny-random",
    instructions=("one_sentence",),
    layers=(1, 2),
    coefficients=(1.0, 4.0),
    n_train=6,
    n_prompts=3,
    max_new_tokens=6,
)


def test_batched_sweep_equals_each_cell_alone(tmp_path, tiny):
    config = SweepConfig(**CONFIG)
    table = run_sweep(tiny, config, tmp_path, progress=False).table
    vec = vector_for(tiny, "one_sentence", tmp_path, config.n_train)
    pairs = make_pairs("one_sentence", "validation", limit=3)
    assert len(table) == 2 * 3 * (1 + 2 * 3)  # conditions × prompts × (baseline + layers × settings)
    for _, row in table.sample(8, random_state=0).iterrows():
        pair = next(p for p in pairs if p.query_id == row["prompt_id"])
        prompt = pair.with_instruction if row["with_instruction"] else pair.without_instruction
        if row["layer"] == NO_STEERING:
            steer = []
        elif row["mode"] == "project":
            steer = [vec.steer(int(row["layer"]), mode="project")]
        else:
            steer = [vec.steer(int(row["layer"]), row["coefficient"])]
        alone = generate(tiny, [prompt], steer=steer, max_new_tokens=6)[0]
        assert alone.text == row["text"]


def test_interrupted_sweep_resumes_to_the_same_table(tmp_path, tiny):
    config = SweepConfig(**CONFIG)
    full = run_sweep(tiny, config, tmp_path / "full", progress=False).table
    part = tmp_path / "part"
    run_sweep(tiny, config, part, progress=False)
    units = sorted((part / "units").glob("*.jsonl"))
    for f in units[::2]:  # as if killed before these units were written
        f.unlink()
    (part / "table.csv").unlink()
    resumed = run_sweep(tiny, config, part, progress=False).table
    pd.testing.assert_frame_equal(full, resumed)


def test_other_configuration_refused(tmp_path, tiny):
    run_sweep(tiny, SweepConfig(**CONFIG), tmp_path, progress=False)
    with pytest.raises(WorkbenchError, match="another configuration"):
        run_sweep(tiny, SweepConfig(**{**CONFIG, "layers": (3,)}), tmp_path, progress=False)


def test_bad_grids_refused(tiny, tmp_path):
    with pytest.raises(WorkbenchError, match="grid is empty"):
        SweepConfig(**{**CONFIG, "coefficients": (), "project": False})
    with pytest.raises(WorkbenchError, match="unknown instruction"):
        SweepConfig(**{**CONFIG, "instructions": ("yell",)})
    with pytest.raises(WorkbenchError, match="out of range"):
        run_sweep(tiny, SweepConfig(**{**CONFIG, "layers": (7,)}), tmp_path, progress=False)
    assert not (tmp_path / "config.json").exists()


def _table(rows):
    base = dict(instruction="x", with_instruction=False, strict=True, logprob=-1.0, text="t")
    return pd.DataFrame([{**base, **r} for r in rows])


def test_selection_prefers_no_steering_on_ties_and_skips_degenerate():
    rows = []
    for loose in (True, False):
        rows.append(dict(layer=NO_STEERING, mode="none", coefficient=0.0, loose=loose, degenerate=False))
        rows.append(dict(layer=3, mode="add", coefficient=1.0, loose=loose, degenerate=False))  # tie
        rows.append(dict(layer=4, mode="add", coefficient=8.0, loose=True, degenerate=True))  # degenerate
    assert select(_table(rows), alpha=None)[("x", False)].layer == NO_STEERING  # the untested rule, best-v1
    rows.append(dict(layer=5, mode="project", coefficient=None, loose=True, degenerate=False))
    rows.append(dict(layer=5, mode="project", coefficient=None, loose=True, degenerate=False))
    choice = select(_table(rows), alpha=None)[("x", False)]
    assert (choice.layer, choice.mode, choice.score, choice.baseline) == (5, "project", 1.0, 0.5)


def test_four_conditions_and_summary(tiny):
    examples = catalog_examples("one_sentence", limit=3)
    vec = vector_for(tiny, "one_sentence", None, 6)
    choice = Choice("one_sentence", False, 2, "add", 2.0, 1.0, 0.0, 0.0)
    rows = four_conditions(tiny, examples, choice.spec(vec), [], "one_sentence", (choice, None), max_new_tokens=5)
    summary = summarize(pd.DataFrame(rows))
    assert list(summary["condition"]) == ["no_instruction", "steer", "instruction", "instruction_steer"]
    assert (summary["n"] == 3).all() and (summary["ci_low"] <= summary["compliance"]).all()
    assert summary.set_index("condition").loc["steer", "layer"] == 2
    assert json.dumps(rows)  # rows are plain JSON


def test_vector_cache_keeps_the_training_activations(tmp_path, tiny):
    """Separability reuses the activations saved beside the vector: same tensors, no second pass."""
    import torch

    from workbench.store import vector_for

    vec, w, wo = vector_for(tiny, "one_sentence", tmp_path, 6, return_activations=True)
    assert (tmp_path / "vectors" / "one_sentence.activations.pt").exists()
    again, w2, wo2 = vector_for(tiny, "one_sentence", tmp_path, 6, return_activations=True)
    assert torch.equal(w, w2) and torch.equal(wo, wo2) and torch.equal(vec.mean_diff, again.mean_diff)
    assert torch.allclose(vec.mean_diff, w.mean(0) - wo.mean(0), atol=1e-6)


def test_a_longer_generations_prefix_is_the_shorter_budgets_generation(tiny):
    """The demo's screen generates untold answers once at the largest budget and checks prefixes."""
    prompts = ["Explain tides.", "Describe the history of chess in detail."]
    long = generate(tiny, prompts, max_new_tokens=12, stop_at_eos=False)
    short = generate(tiny, prompts, max_new_tokens=5, stop_at_eos=False)
    for l, s in zip(long, short):
        assert l.first(5, tiny) == s and l.first(50, tiny) is l


def test_a_choice_read_back_from_json_has_its_types():
    """Regression: choices.json stores 0 for a score of 0.0; figures built Choice(**json) with ints."""
    import json
    from dataclasses import asdict

    c = Choice("title", False, 3, "add", 1.0, 0.0, 0.0, 0.0)
    back = Choice.from_json(
        json.loads(json.dumps({**asdict(c), "score": 0, "baseline": 0, "degenerate": 0, "coefficient": 1}))
    )
    assert back == c and isinstance(back.score, float) and isinstance(back.coefficient, float)


def test_a_sweep_result_shows_itself_and_keeps_its_table(tmp_path, tiny):
    import pandas as pd

    from workbench.sweep import select

    result = run_sweep(tiny, SweepConfig(**CONFIG), tmp_path / "s", progress=False)
    n_layers, n_settings = len(CONFIG["layers"]), len(CONFIG.get("coefficients", (0.5, 1.0, 2.0))) + 1
    assert "\n" not in repr(result) and f"× {n_layers} layers × {n_settings} settings" in repr(result)
    assert result.best() == select(result.table)
    card = result._repr_html_()
    assert (
        "SweepResult" in card
        and "compliance without the instruction" in card
        and card.count("<table>") == 1 + result.table["instruction"].nunique()
    )
    back = pd.read_parquet(result.to_parquet(tmp_path / "t.parquet"))
    pd.testing.assert_frame_equal(back, result.table, check_dtype=False)
    assert result.heatmap().data


def test_to_parquet_writes_an_instruction_without_kwargs(tmp_path):
    """Regression: ``title`` has kwargs ``[{}]``, and Parquet has no struct without fields."""
    import json

    import pandas as pd

    from workbench.sweep import SweepResult

    table = pd.DataFrame(
        {
            "instruction": ["title", "title"],
            "kwargs": [[{}], [{}]],
            "instruction_ids": [["detectable_format:title"]] * 2,
            "loose": [True, False],
        }
    )
    back = pd.read_parquet(SweepResult(table).to_parquet(tmp_path / "t.parquet"))
    assert [json.loads(k) for k in back["kwargs"]] == [[{}], [{}]] and list(back["instruction_ids"].map(list)) == [
        ["detectable_format:title"]
    ] * 2
