"""maxT-v3: a quality guard relative to no steering, a screen that cannot miss a strong effect, and a
decision record for every group (synthetic scores; reference numbers computed by hand)."""

import numpy as np
import pytest
from sweep_tables import sweep_table as _table

from workbench.stats import maxt_pvalues
from workbench.stats.excess import excess_bound
from workbench.stats.power import screen_power
from workbench.sweep import SCREEN_PROMPTS, Choice, best_cells, select
from workbench.sweep.guards import CellQuality, relative_guard, steered_share_guard

CELLS = [(layer, "add", 1.0) for layer in (3, 5, 7, 9)] + [(layer, "project", None) for layer in (3, 5, 7, 9)]


def test_excess_bound_by_hand():
    """(m / n)(2π − 1), π the Clopper–Pearson 80 % upper bound of worse in m: 1 of 2 → 1 − π² = 0.2."""
    assert excess_bound(0, 0, 10, 0.8) == 0.0  # the replies fail alike
    assert excess_bound(1, 0, 10, 0.8) == pytest.approx(0.1)  # π = 1 with 1 of 1
    assert excess_bound(1, 1, 10, 0.8) == pytest.approx(0.2 * (2 * np.sqrt(0.8) - 1), abs=1e-9)
    assert excess_bound(3, 0, 10, 0.8) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        excess_bound(6, 5, 10, 0.8)


def test_the_german_case_passes_v3_and_was_refused_by_v2():
    """10 of 10 against 0 of 10, 1 degenerate steered and 1 unsteered (on the same or another prompt):
    no worse than the model itself, which maxT-v2's absolute bound (0 of 10 needed) refused."""
    base, steered = [0] * 10, {c: [0] * 10 for c in CELLS}
    steered[CELLS[7]] = [1] * 10
    one = [1] + [0] * 9
    for unsteered in (one, [0, 1] + [0] * 8):
        t = _table(base, steered, degenerate={CELLS[7]: one}, base_degenerate=unsteered)
        chosen = select(t)[("x", False)]
        assert (chosen.layer, chosen.mode, chosen.decided_by) == (9, "project", "selected")
        assert "degenerate 1/10 vs 1/10 unsteered" in chosen.reason
        refused = select(t, rule="maxT-v2")[("x", False)]
        assert not refused.steers and refused.decided_by == "quality"


def test_a_cell_that_loops_clearly_more_than_unsteered_is_refused_with_the_reason():
    base, steered = [0] * 10, {c: [0] * 10 for c in CELLS}
    steered[CELLS[0]] = [1] * 10
    t = _table(base, steered, degenerate={CELLS[0]: [1, 1, 1] + [0] * 7})
    chosen = select(t)[("x", False)]
    assert not chosen.steers and chosen.decided_by == "quality"
    assert "degenerate 3/10 vs 0/10 unsteered" in chosen.reason and "excess bound 0.30 > 0.15" in chosen.reason
    assert chosen.candidate.layer == 3 and chosen.candidate.p_value == pytest.approx(1 / 1024 * 1)


def test_the_guards_on_their_own():
    """No worse than unsteered passes, however many discordant prompts (the bound alone would refuse 3
    against 3 on different prompts: 0.28); one more in 10 passes (0.10); two more fail (0.20: title's
    projection on SmolLM2 looped so on validation, and 42 % of its test replies were degenerate)."""
    same = CellQuality(degenerate=2, unsteered=2, worse=0, better=0, n=10)
    swapped = CellQuality(degenerate=3, unsteered=3, worse=3, better=3, n=10)
    assert relative_guard(same) and relative_guard(swapped) and swapped.excess > 0.15
    assert relative_guard(CellQuality(1, 0, 1, 0, 10))
    assert not relative_guard(CellQuality(2, 0, 2, 0, 10)) and not relative_guard(CellQuality(2, 1, 2, 1, 13))
    worse = CellQuality(degenerate=4, unsteered=0, worse=4, better=0, n=10)
    assert not relative_guard(worse)
    assert not steered_share_guard(same)  # v2: 2 of 10 steered, whatever the model does unsteered
    assert not relative_guard(CellQuality(0, 0, 0, 0, 0))  # nothing paired: nothing passes


def test_every_stage_gives_its_decision_and_a_one_line_reason():
    base = [0] * 8
    nothing = select(_table(base, {c: [0] * 8 for c in CELLS}))[("x", False)]
    assert nothing.decided_by == "no gain" and nothing.reason.startswith("no cell complied more than no steering")
    weak = {c: [0] * 8 for c in CELLS}
    weak[CELLS[1]] = [1, 1, 0, 0, 0, 0, 0, 0]
    noise = select(_table(base, weak))[("x", False)]
    assert noise.decided_by == "significance" and "not significant at alpha 0.05" in noise.reason
    assert "layer 5 add 1×: 0.25 vs 0.00 on 8 prompts, p = " in noise.reason
    strong = {c: [0] * 8 for c in CELLS}
    strong[CELLS[1]] = [1] * 8
    chosen = select(_table(base, strong))[("x", False)]
    assert chosen.decided_by == "selected" and chosen.candidate.layer == 5
    for c in (nothing, noise, chosen):
        assert "\n" not in c.reason and Choice.from_json(__import__("dataclasses").asdict(c)) == c
    assert "(significance: best gain not significant" in repr(noise)


def test_a_screened_out_group_says_so_and_names_its_best_screen_cell():
    base = [0] * 5
    t = _table(base, {c: [0] * 5 for c in CELLS}, rounds=[1] * 5)
    chosen = select(t)[("x", False)]
    assert chosen.decided_by == "screen" and chosen.candidate is not None
    assert "no cell beat no steering on its 5 prompts" in chosen.reason


def test_the_screen_keeps_a_strong_effect_with_95_percent_probability():
    """1 − 0.5^5 = 0.97: a cell that flips half the failing prompts wins at least one of 5 (2 gave 0.75);
    checked by simulation through ``best_cells`` beside 15 inert cells."""
    assert SCREEN_PROMPTS == 5 and screen_power(0.5, 5) == pytest.approx(0.96875) and screen_power(0.5, 2) == 0.75
    rng = np.random.default_rng(0)
    cells = [(layer, "add", 1.0) for layer in range(16)]
    kept = 0
    for _ in range(400):
        steered = {c: [0] * SCREEN_PROMPTS for c in cells}
        steered[cells[7]] = (rng.random(SCREEN_PROMPTS) < 0.5).astype(int).tolist()
        survivors = best_cells(_table([0] * SCREEN_PROMPTS, steered), keep=3, beat_baseline=True)
        kept += (7, "add", 1.0) in survivors.get("x", [])
    assert kept / 400 >= 0.95 - 3 * np.sqrt(0.95 * 0.05 / 400), kept


def _halving_selects(rng, n_screen: int, n_final: int, cells: int = 16, flip: float = 0.5) -> bool:
    """One synthetic group through halving: a real cell flipping ``flip`` of the (all failing) prompts
    among ``cells`` − 1 near-inert cells (each flips a prompt either way 5 % of the time), screened on
    ``n_screen`` prompts; the 3 best that beat no steering go on to ``n_final`` fresh prompts, where
    maxT decides."""

    def answers(n, real):
        return (rng.random(n) < flip).astype(int) if real else (rng.random(n) < 0.05).astype(int)

    grid = [(layer, "add", 1.0) for layer in range(cells)]
    screen = {c: answers(n_screen, i == 0).tolist() for i, c in enumerate(grid)}
    survivors = best_cells(_table([0] * n_screen, screen), keep=3, beat_baseline=True).get("x", [])
    if (0, "add", 1.0) not in survivors:
        return False
    final = np.column_stack([answers(n_final, c == (0, "add", 1.0)) for c in survivors]).astype(float)
    p = maxt_pvalues(final)
    best = int(np.argmax(final.mean(0)))
    return survivors[best] == (0, "add", 1.0) and p[best] <= 0.05


def test_halving_selects_a_cell_flipping_half_the_failing_prompts_with_80_percent_power():
    """At the default budget (``evaluate``: 18 prompts, a screen of 5 and 13 for the finalists) among
    16 cells: measured 0.83 (400 groups, seed 0); the old budget (2 + 10 of 12) gave 0.49."""
    from workbench.apps.file_evaluation.plan import EvaluateOptions

    assert EvaluateOptions().sweep_prompts == 18
    rng = np.random.default_rng(0)
    new = np.mean([_halving_selects(rng, 5, 13) for _ in range(400)])
    old = np.mean([_halving_selects(rng, 2, 10) for _ in range(400)])
    assert new >= 0.8 > old, (new, old)


def test_an_unknown_rule_is_refused_before_any_selection():
    from workbench import WorkbenchError

    with pytest.raises(WorkbenchError, match="unknown selection rule 'maxT-v9': one of maxT-v2, maxT-v3"):
        select(_table([0] * 8, {CELLS[0]: [1] * 8}), rule="maxT-v9")
    with pytest.raises(WorkbenchError, match="unknown selection rule"):
        select(_table([0] * 8, {CELLS[0]: [1] * 8}), alpha=None, rule="maxT-v9")


def test_alpha_none_is_best_v1_whatever_rule_is_named():
    """Regression: alpha=None beside rule="maxT-v2" took v2's bound (1 of 8 degenerate refused) instead of
    best-v1's point value (1 of 8 <= 0.2 passes)."""
    base, steered = [0] * 8, {c: [0] * 8 for c in CELLS}
    steered[CELLS[0]] = [1] * 8
    t = _table(base, steered, degenerate={CELLS[0]: [1] + [0] * 7})
    assert select(t, alpha=None, rule="maxT-v2")[("x", False)].layer == 3
    assert select(t, rule="maxT-v2")[("x", False)].decided_by == "quality"
