"""Successive halving: the survivors are the best layers, and their rows are the full grid's rows."""

import pandas as pd
import pytest

from workbench import WorkbenchError
from workbench.sweep import NO_STEERING, REFINE, SweepConfig, best_cells, refined, run_halving, run_sweep

CONFIG = dict(
    model="tiny-random",
    instructions=("one_sentence", "no_commas"),
    layers=(0, 1, 2, 3),
    coefficients=(1.0,),
    n_train=6,
    n_prompts=5,
    max_new_tokens=5,
    conditions=(False,),
)


def _row(name, layer, mode, loose, degenerate=False):
    return {
        "instruction": name,
        "with_instruction": False,
        "layer": layer,
        "mode": mode,
        "coefficient": 1.0,
        "loose": loose,
        "strict": loose,
        "logprob": -1.0,
        "degenerate": degenerate,
        "text": "x",
    }


def test_best_cells_rank_by_compliance_then_degeneracy_then_size_then_layer():
    rows = [_row("a", NO_STEERING, "none", 0)]
    rows += [_row("a", 1, "add", 1), _row("a", 1, "project", 0)]
    rows += [_row("a", 2, "add", 1, degenerate=True), _row("a", 2, "project", 0.5)]  # the degenerate cell ranks last
    rows += [
        _row("a", 3, "add", 0.5),
        _row("a", 3, "project", 0.5),
    ]  # ties with layer 2's projection: projection, shallower first
    table = pd.DataFrame(rows)
    assert best_cells(table, keep=1, max_degenerate=0.2) == {"a": [(1, "add", 1.0)]}
    want = {"a": [(1, "add", 1.0), (2, "project", None), (3, "project", None)]}
    assert best_cells(table, keep=3, max_degenerate=0.2) == want
    five = best_cells(table, keep=5, max_degenerate=0.2)["a"]
    assert len(five) == 5 and (2, "add", 1.0) not in five
    assert best_cells(table, keep=2) == {"a": [(1, "add", 1.0), (2, "add", 1.0)]}  # the screen: degenerate breaks ties


def test_halving_rows_equal_the_full_grids_on_the_same_prompts(tmp_path, tiny):
    config = SweepConfig(**CONFIG)
    full = run_sweep(tiny, config, tmp_path / "full", progress=False).table
    halved = run_halving(
        tiny,
        config,
        tmp_path / "halved",
        first=2,
        keep=3,
        progress=False,
        stop_early=False,
        refine=(),
        screen_project=True,
    ).table
    two = halved[(halved["layer"] != NO_STEERING) & (halved["round"] == 2)]
    assert (two.groupby("instruction").apply(lambda g: len(g[["layer", "mode"]].drop_duplicates())) == 3).all()
    key = ["instruction", "layer", "mode", "coefficient", "prompt_id"]
    merged = halved.merge(full, on=key, suffixes=("", "_full"))
    # instructions × prompts × cells: the whole screen (baseline + 4 layers × 2 settings), then 3 finalists
    assert len(merged) == len(halved) == 2 * 2 * (1 + 8) + 2 * 3 * (1 + 3)
    assert (merged["text"] == merged["text_full"]).all() and (merged["loose"] == merged["loose_full"]).all()
    assert set(halved["round"]) == {1, 2} and len(full) > len(halved)
    assert (
        not (tmp_path / "halved" / "round1" / "vectors").exists() and (tmp_path / "halved" / "vectors").exists()
    )  # one shared vector cache


def test_halving_needs_room_for_two_rounds(tmp_path, tiny):
    with pytest.raises(WorkbenchError, match="first"):
        run_halving(tiny, SweepConfig(**CONFIG), tmp_path, first=5, progress=False)


def test_a_group_where_nothing_beats_no_steering_stops_after_the_first_round(tmp_path, tiny):
    """The random tiny model follows nothing, so no cell beats no steering: no second round is spent,
    and selection, which may only use the second round's prompts, selects no steering."""
    from workbench.sweep import select

    result = run_halving(tiny, SweepConfig(**CONFIG), tmp_path, first=2, keep=3, progress=False)
    assert set(result.table["round"]) == {1} and set(result.table["mode"]) == {"none", "add"}  # the screen: 1× only
    assert not (tmp_path / "round2").exists()
    choices = select(result.table).values()
    assert all(not c.steers and c.decided_by == "screen" for c in choices)
    assert all("stopped after the screen: no cell beat no steering on its 2 prompts" in c.reason for c in choices)


def test_the_screen_passes_on_a_cell_that_complies_but_loops_there():
    """Regression: Qwen's German vector at layers 18 and 20, 1×, answered 5 of 5 screen prompts in
    German with 2 of 5 looping; the screen ranked such cells last and stopped German with cells that
    complied with nothing. Quality is judged in round 2, where milder settings at the layer are tried."""
    rows = [_row("de", NO_STEERING, "none", 0.0)]
    rows += [_row("de", layer, "add", 0.0) for layer in (4, 6, 8, 10)]
    rows += [_row("de", 18, "add", 1.0, degenerate=0.4), _row("de", 20, "add", 1.0, degenerate=0.4)]
    survivors = best_cells(pd.DataFrame(rows), keep=3, beat_baseline=True)
    assert survivors == {"de": [(18, "add", 1.0), (20, "add", 1.0)]}
    assert best_cells(pd.DataFrame(rows), keep=3, max_degenerate=0.2, beat_baseline=True) == {}  # as before


def test_best_cells_can_keep_only_cells_that_beat_no_steering():
    rows = [
        _row("a", NO_STEERING, "none", 0.5),
        _row("a", 1, "add", 1),
        _row("a", 2, "add", 0.5),
        _row("b", NO_STEERING, "none", 1),
        _row("b", 1, "add", 1),
    ]
    table = pd.DataFrame(rows)
    assert best_cells(table, keep=3, beat_baseline=True) == {"a": [(1, "add", 1.0)]}


def test_finalists_get_a_finer_grid_at_the_winners_layer(tmp_path, tiny):
    """Round 2 tries 0.5×, 1×, 1.5×, 2× and the projection at the round-1 winner's layer, beside the
    other survivors; its rows are the full grid's rows for those cells on the same prompts."""
    assert refined({"a": [(2, "project", None), (1, "add", 1.0)]}) == {
        "a": [(2, "project", None), (1, "add", 1.0), (2, "add", 0.5), (2, "add", 1.0), (2, "add", 1.5), (2, "add", 2.0)]
    }
    config = SweepConfig(**CONFIG)
    halved = run_halving(tiny, config, tmp_path / "halved", first=2, keep=2, progress=False, stop_early=False).table
    two = halved[(halved["round"] == 2) & (halved["layer"] != NO_STEERING)]
    for _, g in two.groupby("instruction"):
        winner = g.loc[g["coefficient"] == 1.5, "layer"].unique()
        assert len(winner) == 1  # 1.5× is not in the first round's grid: only the winner's layer has it
        at_winner = g[g["layer"] == winner[0]]
        assert set(zip(at_winner["mode"], at_winner["coefficient"].fillna(0.0))) >= {("add", c) for c in REFINE} | {
            ("project", 0.0)
        }
        assert len(g[["layer", "mode", "coefficient"]].drop_duplicates()) <= 2 + len(REFINE) + 1
    finer = run_sweep(
        tiny, SweepConfig(**{**CONFIG, "coefficients": REFINE, "n_prompts": 5}), tmp_path / "finer", progress=False
    ).table
    merged = two.merge(finer, on=["instruction", "layer", "mode", "coefficient", "prompt_id"], suffixes=("", "_full"))
    assert len(merged) == len(two) and (merged["text"] == merged["text_full"]).all()
