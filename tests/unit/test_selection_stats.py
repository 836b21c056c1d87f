"""Selection that holds: a cell that wins by noise is not selected, a real effect is, and with no
effect anywhere a group selects steering at most alpha of the time (synthetic scores; the reference
p-values are computed by hand, independently of the code)."""

import itertools

import numpy as np
import pandas as pd
import pytest
from sweep_tables import sweep_table as _table

from workbench.stats import ALPHA, maxt_pvalues, prompts_needed
from workbench.sweep import evidence, select
from workbench.sweep.grid import NO_STEERING
from workbench.sweep.selection import selection_rule

CELLS = [(layer, "add", 1.0) for layer in (3, 5, 7, 9)] + [(layer, "project", None) for layer in (3, 5, 7, 9)]


def test_maxt_matches_a_hand_count():
    """Two cells, 3 prompts: enumerate the 8 sign patterns by hand."""
    gains = np.array([[1, 1], [1, 0], [0, -1]], dtype=float)
    best = [
        max(sum(s * g for s, g in zip(signs, gains[:, c])) for c in range(2)) / 3
        for signs in itertools.product((1, -1), repeat=3)
    ]
    want = [np.mean([b >= gains[:, c].mean() - 1e-12 for b in best]) for c in range(2)]
    assert np.allclose(maxt_pvalues(gains), want)


def test_a_cell_that_wins_by_noise_is_not_selected():
    """Best of 8 cells at 4/8 against a baseline of 2/8: what noise gives; best-v1 took it."""
    rng = np.random.default_rng(1)
    base = [1, 1, 0, 0, 0, 0, 0, 0]
    steered = {c: rng.permutation([1, 1, 0, 0, 0, 0, 0, 0]).tolist() for c in CELLS}
    steered[CELLS[2]] = [1, 0, 1, 1, 1, 0, 0, 0]
    assert select(_table(base, steered), alpha=None)[("x", False)].layer == 7  # the old rule selects the lucky cell
    assert select(_table(base, steered))[("x", False)].layer == NO_STEERING


def test_a_real_effect_is_selected_with_its_p_value():
    base = [0] * 8
    steered = {c: [0] * 8 for c in CELLS}
    steered[CELLS[5]] = [1] * 8
    choice = select(_table(base, steered))[("x", False)]
    assert (
        (choice.layer, choice.mode) == (5, "project")
        and choice.p_value == pytest.approx(1 / 256)
        and choice.n_tested == 8
    )
    assert "p = 0.0039" in repr(choice)


def test_a_significant_cell_that_is_degenerate_is_not_selected():
    base = [0] * 8
    steered = {c: [0] * 8 for c in CELLS}
    steered[CELLS[0]] = [1] * 8
    assert select(_table(base, steered))[("x", False)].layer == 3
    one = _table(
        base, steered, degenerate={CELLS[0]: [1, 0, 0, 0, 0, 0, 0, 0]}
    )  # 1/8 <= 0.2, but its 80 % upper bound is 0.33 (maxT-v2); 1 more than unsteered in 8 passes maxT-v3
    assert select(one, rule="maxT-v2")[("x", False)].layer == NO_STEERING and select(one)[("x", False)].layer == 3
    assert select(one, alpha=None)[("x", False)].layer == 3
    three = _table(base, steered, degenerate={CELLS[0]: [1, 1, 1, 0, 0, 0, 0, 0]})  # 3 more than unsteered in 8
    assert select(three)[("x", False)].decided_by == "quality"
    choice = select(_table(base, steered, degenerate={CELLS[0]: [1, 1, 0, 0, 0, 0, 0, 0]}), alpha=None)[
        ("x", False)
    ]  # 2/8 > 0.2
    assert choice.layer == NO_STEERING


def test_halving_tests_survivors_on_the_second_round_only():
    """Round 1 chose the cell, so its round-1 wins cannot count as evidence."""
    base = [0] * 10
    steered = {CELLS[0]: [1, 1] + [0] * 8, CELLS[1]: [0] * 10}
    rounds = [1, 1] + [2] * 8
    assert select(_table(base, steered, rounds=rounds))[("x", False)].layer == NO_STEERING
    steered[CELLS[0]] = [1] * 10
    choice = select(_table(base, steered, rounds=rounds))[("x", False)]
    assert choice.layer == 3 and choice.n_tested == 8


def _draw(rng: np.random.Generator, difficulty: np.ndarray, base_rate: float) -> list[int]:
    """One cell's answers: mostly the prompt's difficulty, otherwise a fresh draw at the base rate."""
    return np.where(rng.random(8) < 0.7, difficulty, rng.random(8) < base_rate).astype(int).tolist()


@pytest.mark.parametrize("base_rate", [0.1, 0.5])
def test_false_positive_rate_on_null_data_is_at_most_alpha(base_rate):
    """No cell does anything: every cell and the baseline answer each prompt with the same chance,
    correlated through a per-prompt difficulty. 400 groups; allow 3 binomial SDs above alpha."""
    rng = np.random.default_rng(0)
    selected = 0
    trials = 400
    for _ in range(trials):
        difficulty = rng.random(8) < base_rate
        t = _table(_draw(rng, difficulty, base_rate), {c: _draw(rng, difficulty, base_rate) for c in CELLS})
        selected += select(t)[("x", False)].layer != NO_STEERING
    assert selected / trials <= ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / trials), selected


def test_rule_names_and_power_table():
    assert selection_rule().startswith("maxT-v3") and selection_rule(None).startswith("best-v1")
    assert selection_rule(rule="maxT-v2").startswith("maxT-v2")
    assert prompts_needed(0.75, 0.0, cells=8) <= 12 < prompts_needed(0.25, 0.0, cells=8)


def test_the_evaluate_report_puts_validation_beside_test():
    from workbench.apps.file_evaluation.drift import drift_lines

    result = {
        "selection_rule": "maxT-v1",
        "stopped_early": ["b"],
        "groups": {
            "a": {
                "without_instruction": {
                    "layer": 3,
                    "mode": "add",
                    "coefficient": 1.0,
                    "validation": 0.75,
                    "validation_baseline": 0.0,
                    "validation_degenerate": 0.125,
                    "p_value": 0.0156,
                    "n_tested": 6,
                }
            },
            "b": {"without_instruction": {"layer": None, "mode": "none", "coefficient": None}},
        },
    }
    scores = pd.DataFrame(
        [
            {"scope": "a", "level": "instruction", "metric": "loose", "condition": c, "accuracy": v}
            for c, v in (("no_instruction", 0.1), ("steer", 0.4))
        ]
    )
    rows = pd.DataFrame(
        [
            {"condition": "steer", "groups": [["a"]], "degenerate": d, "logprob": -1.0}
            for d in (True, False, False, False)
        ]
    )
    table = "\n".join(drift_lines(result, scores, rows))
    assert (
        "| a | layer 3, add 1× | 0.75 vs 0.00 | 0.0156 (6) | 0.40 vs 0.10 | +0.75 → +0.30 | 0.12 / 0.25 | -1.00 |"
        in table
    )
    assert "| b | none (stopped after round 1) |" in table and "maxT-v1" in table


def test_evaluate_warns_where_too_few_prompts_can_be_tested(capsys):
    """Halving chooses on the first 2 of 5 validation prompts and tests on 3: p >= 1/8, never below 0.05;
    maxT-v3 needs 5 tested prompts (2^-5 < 0.05); maxT-v2 needed 8 (0 degenerate of 8 bounds the share
    under 0.2)."""
    from workbench.apps.file_evaluation.run import Plan, _warn_underpowered
    from workbench.instructions import as_group
    from workbench.sweep import fewest_prompts

    assert fewest_prompts() == 5 and fewest_prompts(rule="maxT-v2") == 8
    few, many = as_group("json"), as_group("title")
    plan = Plan(
        "file.jsonl", [], [], {}, validation={few.name: [object()] * 5}
    )  # "title" uses the project's 12 validation queries
    _warn_underpowered([few, many], plan, sweep_prompts=12, chosen_on=2)
    out = capsys.readouterr().out
    assert f"{few.name} (n = 3)" in out and many.name not in out
    _warn_underpowered([many], plan, sweep_prompts=6, chosen_on=2)  # 4 tested: p >= 1/16
    assert f"{many.name} (n = 4)" in capsys.readouterr().out


def test_the_evaluate_report_says_which_replies_were_cut_before_their_check():
    from workbench.apps.file_evaluation.markdown import cut_lines

    rows = pd.DataFrame(
        [{"condition": "steer", "stopped": s, "loose": l} for s, l in ((False, False), (False, True), (True, False))]
        + [{"condition": "no_instruction", "stopped": True, "loose": False}]
    )
    text = "".join(cut_lines(rows))
    assert "no_instruction 0/1, steer 1/3" in text
    assert cut_lines(rows.assign(stopped=True)) == []


@pytest.mark.parametrize("alpha", [0.0, 1.0, 5.0, -0.1, float("nan")])
def test_an_alpha_outside_zero_to_one_is_refused(alpha):
    """alpha = 5 would let every cell through: a silently wrong selection."""
    from workbench import WorkbenchError

    with pytest.raises(WorkbenchError, match="between 0 and 1"):
        select(_table([0] * 8, {CELLS[0]: [1] * 8}), alpha=alpha)


def test_halving_finalists_are_scored_on_the_second_round_only():
    """The first round chose the finalists, so its prompts flatter them (the winner's curse): a cell
    that led there but ties on round 2 loses the tie to the smaller coefficient (best-v1 reads all rows)."""

    def row(layer, coefficient, prompt, loose, rnd):
        mode = "none" if layer == NO_STEERING else "add"
        return {
            "instruction": "a",
            "with_instruction": False,
            "layer": layer,
            "mode": mode,
            "coefficient": coefficient,
            "prompt_id": prompt,
            "loose": loose,
            "strict": loose,
            "logprob": -1.0,
            "degenerate": False,
            "text": "x",
            "round": rnd,
        }

    rows = [row(NO_STEERING, 0.0, p, 0, 1) for p in range(4)] + [row(3, 1.0, p, 1, 1) for p in range(4)]
    for p in range(4, 12):
        rows += [row(NO_STEERING, 0.0, p, 0, 2), row(3, 1.0, p, int(p < 11), 2), row(3, 0.5, p, int(p < 11), 2)]
    table = pd.DataFrame(rows)
    chosen = select(table)[("a", False)]
    assert (chosen.layer, chosen.coefficient, chosen.score, chosen.n_tested) == (
        3,
        0.5,
        7 / 8,
        8,
    ) and chosen.p_value <= 1 / 64
    assert select(table, alpha=None)[("a", False)].coefficient == 1.0
    assert (
        len(evidence(table)) == 24 and len(evidence(table[table["round"] == 1])) == 8
    )  # stopped after round 1: rows kept, no test


def test_upper_bound_is_clopper_pearsons_and_selection_wants_it_under_the_cut_off():
    from workbench.stats import upper_bound

    assert upper_bound(0, 8, 0.8) == pytest.approx(1 - 0.2 ** (1 / 8), abs=1e-9)  # (1 - p)^8 = 0.2
    assert upper_bound(3, 3, 0.8) == 1.0 and upper_bound(0, 0, 0.8) == 1.0
    assert upper_bound(1, 10, 0.8) > 0.2 > upper_bound(0, 10, 0.8)

    def table(degenerate_prompts):
        rows = []
        for p in range(10):
            rows += [
                {
                    "instruction": "a",
                    "with_instruction": False,
                    "layer": layer,
                    "mode": mode,
                    "coefficient": 1.0 if layer >= 0 else 0.0,
                    "prompt_id": p,
                    "loose": int(layer >= 0),
                    "strict": int(layer >= 0),
                    "logprob": -1.0,
                    "text": "x",
                    "degenerate": layer >= 0 and p < degenerate_prompts,
                }
                for layer, mode in ((NO_STEERING, "none"), (3, "add"))
            ]
        return pd.DataFrame(rows)

    assert select(table(0))[("a", False)].layer == 3
    chosen = select(table(1), rule="maxT-v2")[("a", False)]  # 1 of 10: under the cut-off, its 80 % bound (0.27) not
    assert not chosen.steers and select(table(1), alpha=None)[("a", False)].layer == 3
    assert select(table(1))[("a", False)].layer == 3  # maxT-v3: 1 more than unsteered in 10, excess bound 0.1


def test_clopper_pearson_matches_its_closed_forms_and_a_tabulated_interval():
    """k = 0 and k = n have closed forms, 5 of 10 is tabulated ([0.1871, 0.8129]), and every bound is
    where a binomial tail (summed here with exact integers) equals α/2."""
    import math

    from workbench.stats import clopper_pearson, upper_bound

    for n in (1, 5, 12, 40):
        rate, low, high = clopper_pearson(n, n)
        assert (rate, high) == (1.0, 1.0) and low == pytest.approx(0.025 ** (1 / n), abs=1e-9)  # low^n = α/2
        rate, low, high = clopper_pearson(0, n)
        assert (rate, low) == (0.0, 0.0) and high == pytest.approx(1 - 0.025 ** (1 / n), abs=1e-9)
    assert clopper_pearson(5, 10) == pytest.approx((0.5, 0.1871, 0.8129), abs=1e-4)
    k, n = 3, 7
    rate, low, high = clopper_pearson(k, n)
    tail = lambda p, ks: sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in ks)  # noqa: E731
    assert tail(low, range(k, n + 1)) == pytest.approx(0.025, abs=1e-9)  # P(X ≥ 3 | low) = α/2
    assert tail(high, range(k + 1)) == pytest.approx(0.025, abs=1e-9)  # P(X ≤ 3 | high) = α/2
    assert upper_bound(k, n, 0.975) == pytest.approx(high, abs=1e-12)  # the one-sided bound at 1 − α/2
    mirrored = clopper_pearson(n - k, n)
    assert (mirrored[1], mirrored[2]) == pytest.approx((1 - high, 1 - low), abs=1e-12)
    narrower = clopper_pearson(k, n, level=0.8)
    assert low < narrower[1] < rate < narrower[2] < high
    rate, low, high = clopper_pearson(600, 1200)  # large n: C(1200, 600) is beyond a float, the logs are not
    assert high - low == pytest.approx(2 * 1.96 * math.sqrt(0.25 / 1200), abs=2e-3) and low < 0.5 < high
    assert all(np.isnan(clopper_pearson(0, 0)))


def test_mcnemar_exact_is_the_two_sided_sign_test_on_the_discordant_pairs():
    from workbench.stats import mcnemar_exact

    assert mcnemar_exact(8, 0) == pytest.approx(2 / 256) and mcnemar_exact(0, 8) == pytest.approx(2 / 256)
    assert mcnemar_exact(5, 1) == pytest.approx(2 * 7 / 64)  # P(X ≤ 1), X ~ Bin(6, 1/2): (1 + 6) / 64
    assert mcnemar_exact(4, 4) == 1.0 and mcnemar_exact(3, 2) == 1.0  # 2·P(X ≤ 2 | 5) = 1
    assert mcnemar_exact(0, 0) == 1.0  # no discordant pair: no evidence
