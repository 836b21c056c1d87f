"""IFEval checkers offline, quality fields, bootstrap."""

import json
import subprocess
import sys

import numpy as np
import pytest

from workbench.instructions import catalog
from workbench.judging.quality import is_degenerate, repetition
from workbench.stats import bootstrap_ci

# Hand-made responses per catalog instruction: (response, strict, loose) as IFEval scores them.
# The loose column differs from strict where lm-eval's loose variants (first/last line removed,
# asterisks dropped) change the verdict.
CASES = {
    "lowercase": [("the sea is calm today.", True, True), ("The sea is calm today.", False, False)],
    "capitals": [("THE SEA IS CALM TODAY.", True, True), ("The sea is calm.", False, False)],
    "json": [
        ('{"answer": "calm"}', True, True),
        ("The sea is calm.", False, False),
        ('Here it is:\n{"a": 1}', False, True),
    ],
    "no_commas": [("The sea is calm today.", True, True), ("The sea, today, is calm.", False, False)],
    "quotation": [('"The sea is calm."', True, True), ("The sea is calm.", False, False)],
    "end_phrase": [
        ("The sea is calm. Is there anything else I can help with?", True, True),
        ("The sea is calm.", False, False),
    ],
    "title": [("<<Calm Seas>>\nThe sea is calm.", True, True), ("Calm Seas\nThe sea is calm.", False, False)],
    "bullet_list": [("* one\n* two\n* three", True, True), ("* one\n* two", False, False)],
    "one_sentence": [
        ("The sea is calm.", True, True),
        ("The sea is calm. The sky is blue.", False, False),
        ("Sure!\nThe sea is calm.", False, True),
    ],
    "concise": [("The sea is calm.", True, True), (" ".join(["word"] * 60), False, False)],
    "include_word": [("Volcanoes erupt when pressure builds.", True, True), ("Mountains can erupt.", False, False)],
    "exclude_word": [("Mountains can erupt.", True, True), ("Volcanoes erupt when pressure builds.", False, False)],
    "french": [
        ("La mer est calme aujourd'hui et le ciel est bleu.", True, True),
        ("The sea is calm today and the sky is blue.", False, False),
    ],
    "spanish": [
        ("El mar está tranquilo hoy y el cielo es azul.", True, True),
        ("The sea is calm today and the sky is blue.", False, False),
    ],
}
QUERY = "Explain how volcanoes work."

OFFLINE_SCRIPT = """
import json, socket, sys
def refuse(*a, **k):
    raise OSError("network is off in this test")
socket.socket.connect = refuse
socket.create_connection = refuse
import nltk
nltk.download = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("nltk.download was called"))
from workbench.checkers import check, ifeval_registry
from workbench.instructions import catalog
from workbench.instructions import instantiate
ifeval_registry()  # provisions punkt_tab; lm-eval's ifeval module must not be imported before it
from lm_eval.tasks.ifeval import utils
cases = json.loads(sys.argv[1])
out = {}
for name, items in cases.items():
    inst = instantiate(catalog()[name], "Explain how volcanoes work.")
    for i, (text, _, _) in enumerate(items):
        ours = check(text, [inst.ifeval_id], [inst.kwargs])
        ref_in = utils.InputExample(key=0, instruction_id_list=[inst.ifeval_id], prompt="", kwargs=[inst.kwargs])
        ref = (utils.test_instruction_following_strict(ref_in, text).follow_all_instructions,
               utils.test_instruction_following_loose(ref_in, text).follow_all_instructions)
        out[f"{name}/{i}"] = [ours.strict, ours.loose, bool(ref[0]), bool(ref[1])]
print(json.dumps(out))
"""


def test_every_catalog_instruction_has_cases():
    assert set(CASES) == set(catalog())


def test_checkers_match_lm_eval_and_hand_labels_with_network_off(tmp_path):
    env = {"WORKBENCH_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT, json.dumps(CASES)], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, items in CASES.items():
        for i, (text, strict, loose) in enumerate(items):
            ours_s, ours_l, ref_s, ref_l = got[f"{name}/{i}"]
            assert (ours_s, ours_l) == (ref_s, ref_l), f"{name}/{i} differs from lm-eval"
            assert (ours_s, ours_l) == (strict, loose), f"{name}/{i}: {text!r}"
    assert (tmp_path / "nltk_data" / "tokenizers" / "punkt_tab" / "english" / "ortho_context.tab").exists()


def test_repetition_and_degenerate_flag():
    assert repetition("one two three four five six") == 0.0
    assert repetition("a b c d " * 10) > 0.8
    assert is_degenerate(-1.0, 0.1, 0) and is_degenerate(-3.0, 0.1, 10) and is_degenerate(-1.0, 0.6, 10)
    assert not is_degenerate(-1.0, 0.1, 10)


def test_bootstrap_interval_contains_mean():
    mean, lo, hi = bootstrap_ci([1, 0, 1, 1, 0, 1, 1, 1])
    assert lo <= mean <= hi and mean == pytest.approx(0.75) and hi - lo > 0.1
    assert all(np.isnan(bootstrap_ci([])))


def test_quality_fields(tiny):
    from workbench.judging.quality import quality, response_logprob

    rows = quality(tiny, ["Explain tides.", "Why?"], ["Tides come from the moon.", ""], [6, 0])
    assert rows[0]["logprob"] < 0 and not np.isnan(rows[0]["logprob"]) and rows[1]["degenerate"]
    # the log-prob of a greedy continuation is the highest the model gives any continuation of that length
    from workbench import generate

    g = generate(tiny, ["Explain tides."], max_new_tokens=5)[0]
    greedy, other = response_logprob(tiny, ["Explain tides.", "Explain tides."], [g.text, "zzzzz"])
    assert greedy > other


def test_a_perfect_score_gets_an_exact_interval_not_the_bootstraps_point():
    """Regression (issue 35): 12 of 12 had the percentile bootstrap's [1.00, 1.00]; Clopper-Pearson's
    is [0.735, 1] (0.025^(1/12)), in the evaluation's scores and in the four conditions' summary."""
    import pandas as pd

    from workbench.apps.file_evaluation.results import ifeval_scores
    from workbench.sweep import summarize

    rows = [
        {"condition": c, "prompt_id": f"r{i}", "instruction_ids": ["a"], "strict_each": [True], "loose_each": [True]}
        | {"strict": True, "loose": True}
        for c in ("no_instruction", "steer")
        for i in range(12)
    ]
    scores = ifeval_scores(rows)
    assert set(scores.columns) == {"scope", "condition", "level", "metric", "accuracy", "ci_low", "ci_high", "n"}
    assert (scores["accuracy"] == 1).all() and (scores["ci_high"] == 1).all() and (scores["n"] == 12).all()
    assert scores["ci_low"].to_numpy() == pytest.approx(0.025 ** (1 / 12)) and 0.73 < 0.025 ** (1 / 12) < 0.74
    quality = {"instruction": "a", "layer": -1, "mode": "none", "coefficient": None, "logprob": -1.0}
    summary = summarize(pd.DataFrame([r | quality | {"degenerate": False} for r in rows]))
    assert summary["ci_low"].to_numpy() == pytest.approx(0.025 ** (1 / 12)) and (summary["ci_high"] == 1).all()
    assert bootstrap_ci([1] * 12)[1:] == (1.0, 1.0)  # what it was


def _cut(condition, iid, kwargs, passed, stopped=False):
    return {
        "condition": condition,
        "stopped": stopped,
        "loose": passed,
        "loose_each": [passed],
        "instruction_ids": [iid],
        "kwargs": [kwargs],
    }


AT_LEAST = {"num_words": 300, "relation": "at least"}


def test_cut_lines_call_a_failed_requirement_a_lower_bound_and_a_kept_prohibition_an_upper_one():
    """Issue 35: a reply cut at the budget that failed "at least 300 words" may pass with more tokens
    (a lower bound); one that passed "no comma" may still break it (an upper bound)."""
    import pandas as pd

    from workbench.apps.file_evaluation.markdown import cut_lines

    rows = pd.DataFrame(
        [
            _cut("steer", "length_constraints:number_words", AT_LEAST, False),
            _cut("steer", "length_constraints:number_words", AT_LEAST, False, stopped=True),  # ended: final
            _cut("no_instruction", "punctuation:no_comma", {}, True),
            _cut("no_instruction", "punctuation:no_comma", {}, True, stopped=True),
        ]
    )
    lower, upper = (line for line in cut_lines(rows) if line)
    assert "could still pass" in lower and "no_instruction 0/2, steer 1/2" in lower and "lower bounds" in lower
    assert "length_constraints:number_words (at least)" in lower and "no_comma" not in lower
    assert "could still break" in upper and "no_instruction 1/2, steer 0/2" in upper and "upper bounds" in upper
    assert "punctuation:no_comma" in upper and "number_words" not in upper


def test_cut_lines_do_not_call_a_broken_prohibition_a_lower_bound():
    import pandas as pd

    from workbench.apps.file_evaluation.markdown import cut_lines

    broken = [_cut("steer", iid, {}, False) for iid in ("punctuation:no_comma", "change_case:english_lowercase")]
    assert cut_lines(pd.DataFrame(broken)) == []
    less = _cut("steer", "length_constraints:number_words", {"num_words": 20, "relation": "less than"}, False)
    assert cut_lines(pd.DataFrame([less])) == []
    # one reply, two instructions: the failed requirement counts, the broken prohibition is not named
    both = _cut("steer", "punctuation:no_comma", {}, False) | {
        "instruction_ids": ["punctuation:no_comma", "detectable_content:postscript"],
        "kwargs": [{}, {"postscript_marker": "P.S."}],
        "loose_each": [False, False],
    }
    (line,) = (line for line in cut_lines(pd.DataFrame([both])) if line)
    assert "steer 1/1 (detectable_content:postscript)" in line and "no_comma" not in line


def test_cut_lines_count_a_custom_checker_either_way_and_say_so():
    import pandas as pd

    from workbench.apps.file_evaluation.markdown import cut_lines

    rows = pd.DataFrame([_cut("steer", "custom:brief", {}, False), _cut("steer", "custom:brief", {}, True)])
    lower, upper = (line for line in cut_lines(rows) if line)
    assert "steer 1/2" in lower and "steer 1/2" in upper
    assert all("custom:brief; a custom checker cannot be told, so it counts" in line for line in (lower, upper))


def test_the_evaluate_report_names_custom_checkers_that_opted_in_to_loose():
    from workbench.apps.file_evaluation.markdown import loose_lines

    assert loose_lines({"custom_checkers": {}}) == [] and loose_lines({}) == []
    (_, line) = loose_lines({"custom_checkers": {"brief": "strict", "pirate": "loose"}})
    assert "scored strictly" in line and line.endswith("`loose=True`: pirate.")
    assert loose_lines({"custom_checkers": {"brief": "strict"}})[1].endswith(": none.")
