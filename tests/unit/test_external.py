"""`evaluate --data` on the tiny model: every record of a 25-id file, composition, custom checkers."""

import json

import pandas as pd
import pytest

from workbench import WorkbenchError, generate
from workbench.apps.file_evaluation import EvaluateOptions, evaluate_file, plan_file
from workbench.instructions import IFEVAL_IDS, Instruction, get_instruction, ifeval_records
from workbench.io import read_jsonl, write_jsonl
from workbench.store import vector_for
from workbench.sweep import Choice, SweepConfig, catalog_examples, four_conditions, run_sweep, select, summarize

FAST = dict(layers=(1, 2), sweep_prompts=2, n_train=4, max_new_tokens=6)


def every_id():
    return [
        Instruction.ifeval(i, **({"language": "de"} if i == "language:response_language" else {})) for i in IFEVAL_IDS
    ]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """All 25 ids once, two languages, and two multi-instruction records."""
    multi = [
        [get_instruction("no_commas"), get_instruction("lowercase")],
        [
            Instruction.ifeval("detectable_format:title"),
            Instruction.ifeval("language:response_language", language="fr"),
        ],
    ]
    records = ifeval_records(
        every_id() + [Instruction.ifeval("language:response_language", language="ja")] + multi, per_instruction=1
    )
    path = tmp_path_factory.mktemp("data") / "synthetic.jsonl"
    write_jsonl(path, records)
    return path, records


@pytest.fixture(scope="module")
def evaluated(tiny, synthetic, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    return out, evaluate_file(tiny, synthetic[0], out, **FAST)


def test_every_record_of_a_25_id_file_is_evaluated(evaluated, synthetic):
    out, result = evaluated
    drift = result.drift()
    assert (
        set(drift["instruction"]) == set(result["groups"]) and (out / "drift.html").exists()
    )  # validation against test, every group
    records = synthetic[1]
    assert result["skipped"] == {} and result["n_evaluated"] == len(records)
    assert result["data_format"] == "ifeval"  # auto, resolved, kept as provenance
    scores = {(r["scope"], r["condition"], r["level"], r["metric"]): r for r in result["scores"]}
    n_instructions = sum(len(r["instruction_id_list"]) for r in records)
    for cond in ("no_instruction", "steer", "instruction", "instruction_steer"):
        assert scores[("all", cond, "prompt", "loose")]["n"] == len(records)
        assert scores[("all", cond, "instruction", "strict")]["n"] == n_instructions
        for iid in IFEVAL_IDS:
            assert scores[(iid, cond, "instruction", "loose")]["n"] >= 1
    assert (
        "language:response_language[language=ja]" in result["groups"]
        and "language:response_language[language=de]" in result["groups"]
    )
    assert "| **prompt-level, all** |" in (out / "report.md").read_text()


def test_prompt_level_is_all_of_the_instruction_verdicts(evaluated):
    rows = read_jsonl(evaluated[0] / "rows.jsonl")
    assert len(rows) == 4 * evaluated[1]["n_evaluated"]
    for r in rows:
        assert r["loose"] == all(r["loose_each"]) and r["strict"] == all(r["strict_each"])
        assert len(r["loose_each"]) == len(r["instruction_ids"])
        assert not (r["strict"] and not r["loose"])


def test_a_multi_instruction_record_composes_each_groups_vector_at_its_own_layer(tiny, synthetic, tmp_path):
    """Hand-set settings (the tiny random model's own selection would steer nothing): each record
    is steered by the vectors of its groups, each at its own layer, and nothing else."""
    lower, comma = "change_case:english_lowercase", "punctuation:no_comma"
    settings = {lower: Choice.manual(lower, 1, "add", 8.0), comma: Choice.manual(comma, 2, "project")}
    result = evaluate_file(tiny, synthetic[0], tmp_path, **{**FAST, "layers": (1,)}, settings=settings)
    assert (
        result["groups"][lower]["without_instruction"]["layer"] == 1
        and result["groups"][comma]["without_instruction"]["mode"] == "project"
    )
    rows = read_jsonl(tmp_path / "rows.jsonl")
    plan = plan_file(synthetic[0])
    vec = {name: vector_for(tiny, plan.groups[name], tmp_path / "sweep", FAST["n_train"]) for name in (lower, comma)}
    both = [vec[lower].steer(1, 8.0), vec[comma].steer(2, mode="project")]
    multi = [r for r in rows if r["groups"] == [[comma], [lower]]]
    by_cond = {r["condition"]: r for r in multi}
    alone = generate(
        tiny,
        [by_cond["steer"]["query"], by_cond["instruction_steer"]["prompt"]],
        steer=both,
        max_new_tokens=FAST["max_new_tokens"],
    )
    assert [g.text for g in alone] == [by_cond["steer"]["text"], by_cond["instruction_steer"]["text"]]
    assert by_cond["steer"]["text"] != by_cond["no_instruction"]["text"]  # the vectors did act
    single = next(r for r in rows if r["groups"] == [[lower]] and r["condition"] == "steer")
    assert (
        generate(tiny, [single["query"]], steer=both[:1], max_new_tokens=FAST["max_new_tokens"])[0].text
        == single["text"]
    )


def test_unknown_ids_fail_before_anything_runs_unless_skipped(tmp_path, synthetic):
    records = synthetic[1][:3] + [
        {
            "key": "x",
            "prompt": "Hi. Rhyme.",
            "instruction_id_list": ["poetry:rhyme"],
            "kwargs": [{}],
            "prompt_without_instruction": "Hi.",
        }
    ]
    path = tmp_path / "bad.jsonl"
    write_jsonl(path, records)
    with pytest.raises(WorkbenchError, match="poetry:rhyme .*--skip-unknown"):
        plan_file(path)
    plan = plan_file(path, skip_unknown=True)
    assert list(plan.skipped) == ["x"] and len(plan.items) == 3
    bad_kwargs = {
        **synthetic[1][0],
        "key": "k7",
        "instruction_id_list": ["language:response_language"],
        "kwargs": [{"language": "xx"}],
    }
    write_jsonl(path, [bad_kwargs])
    with pytest.raises(WorkbenchError, match=r"bad.jsonl line 1 \(key k7\): unknown language 'xx'"):
        plan_file(path)


def test_file_pairs_report_only_test_records(tmp_path):
    records = ifeval_records(
        [Instruction.ifeval("language:response_language", language="de")], split=None, per_instruction=40
    )
    path = tmp_path / "own.jsonl"
    write_jsonl(path, records)
    plan = plan_file(path, pairs="file")
    (name,) = plan.groups
    test_queries = {e.query for e, _ in plan.items}
    assert test_queries and not test_queries & {p.query for p in plan.train[name] + plan.validation[name]}
    assert len(plan.items) + len(plan.train[name]) + len(plan.validation[name]) == 40


def test_custom_instruction_with_a_checker_goes_through_sweep_and_report(tiny, tmp_path):
    calls = []

    def short(text: str) -> bool:
        calls.append(text)
        return len(text.split()) < 5

    brief = Instruction.custom("Answer in under five words.", check=short, id="brief")
    config = SweepConfig(
        model=tiny.name,
        instructions=(brief,),
        layers=(1,),
        coefficients=(1.0,),
        n_train=4,
        n_prompts=2,
        max_new_tokens=6,
    )
    table = run_sweep(tiny, config, tmp_path, progress=False).table
    assert set(table["instruction"]) == {"brief"} and calls
    for _, row in table.iterrows():
        assert row["strict"] == (bool(row["text"].strip()) and short(row["text"]))
    choice = select(table)[("brief", False)]
    vec = vector_for(tiny, brief, tmp_path, 4)
    rows = four_conditions(
        tiny, catalog_examples(brief, "test", limit=2), choice.spec(vec), choice.spec(vec), "brief", max_new_tokens=6
    )
    assert set(summarize(__import__("pandas").DataFrame(rows))["condition"]) == {
        "no_instruction",
        "steer",
        "instruction",
        "instruction_steer",
    }
    assert json.loads(json.dumps(config.to_json()))["instructions"][0]["members"][0]["checker"]["name"].endswith(
        "short"
    )


def test_a_sweep_refuses_an_instruction_without_a_checker():
    with pytest.raises(WorkbenchError, match="no checker"):
        SweepConfig(model="m", instructions=(Instruction.custom("Answer like a pirate."),), layers=(1,))


def test_evaluate_instructions_runs_a_custom_checker_end_to_end(tiny, tmp_path):
    from workbench.apps.file_evaluation.run import evaluate_instructions

    brief = Instruction.custom("Answer in under five words.", check=lambda r: len(r.split()) < 5, id="brief")
    result = evaluate_instructions(
        tiny, [brief], tmp_path, test_prompts=3, layers=(1, 2), sweep_prompts=3, n_train=4, max_new_tokens=6
    )
    scores = {(r["scope"], r["condition"], r["level"], r["metric"]): r for r in result["scores"]}
    assert scores[("custom:brief", "steer", "instruction", "loose")]["n"] == 3 and result["n_evaluated"] == 3
    assert result["custom_checkers"] == {"brief": "strict"}  # no loose rewrites unless opted in
    assert "Custom checkers are scored strictly" in (tmp_path / "report.md").read_text()
    rows = read_jsonl(tmp_path / "rows.jsonl")
    assert all(r["strict"] == (bool(r["text"].strip()) and len(r["text"].split()) < 5) for r in rows)
    with pytest.raises(WorkbenchError, match="no checker"):
        evaluate_instructions(tiny, [Instruction.custom("Answer like a pirate.")], tmp_path / "x")


def test_conditional_rows_use_each_groups_own_condition(tiny, synthetic, tmp_path):
    """`conditional=True`: every record also gets the same steering, each vector gated by its own
    condition, on prompts without and with the instructions; the scores report both conditions."""
    from dataclasses import replace

    lower, comma = "change_case:english_lowercase", "punctuation:no_comma"
    settings = {lower: Choice.manual(lower, 1, "add", 8.0), comma: Choice.manual(comma, 2, "project")}
    evaluate_file(tiny, synthetic[0], tmp_path, **{**FAST, "layers": (1,)}, settings=settings, conditional=True)
    rows = read_jsonl(tmp_path / "rows.jsonl")
    assert {r["condition"] for r in rows} >= {"conditional", "instruction_conditional"}
    plan = plan_file(synthetic[0])
    vec = {name: vector_for(tiny, plan.groups[name], tmp_path / "sweep", FAST["n_train"]) for name in (lower, comma)}
    gated = [
        replace(vec[lower].steer(1, 8.0), when=vec[lower].condition()),
        replace(vec[comma].steer(2, mode="project"), when=vec[comma].condition()),
    ]
    multi = {r["condition"]: r for r in rows if r["groups"] == [[comma], [lower]]}
    alone = generate(
        tiny,
        [multi["conditional"]["query"], multi["instruction_conditional"]["prompt"]],
        steer=gated,
        max_new_tokens=FAST["max_new_tokens"],
    )
    assert [g.text for g in alone] == [multi["conditional"]["text"], multi["instruction_conditional"]["text"]]
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert {"conditional", "instruction_conditional"} <= set(scores["condition"])


def test_an_evaluation_shows_the_four_conditions_with_cis(evaluated):
    out, result = evaluated
    assert "\n" not in repr(result) and repr(result).startswith("Evaluation(")
    card = result._repr_html_()
    assert "no instruction" in card and "instruction + steering" in card and "prompt level" in card and "[" in card
    overall = result.overall()
    assert set(overall.index) >= {"no_instruction", "steer", "instruction", "instruction_steer"}
    assert len(result.table) == len(read_jsonl(out / "rows.jsonl")) and result.bars().data


def test_keyword_records_get_one_vector_per_word_and_compose_them(tmp_path):
    """The paper's keyword setup: each word its own vector group (its pairs name that word), and a
    record naming two words steers with both; ``--group-by keywords:existence=`` gives one group again."""
    records = [
        {
            "key": "a",
            "prompt": "Describe a farm. Include keywords apple, river in the response.",
            "instruction_id_list": ["keywords:existence"],
            "kwargs": [{"keywords": ["apple", "river"]}],
            "prompt_without_instruction": "Describe a farm.",
        },
        {
            "key": "b",
            "prompt": "Describe a town. Include keywords apple in the response.",
            "instruction_id_list": ["keywords:existence"],
            "kwargs": [{"keywords": ["apple"]}],
            "prompt_without_instruction": "Describe a town.",
        },
    ]
    write_jsonl(tmp_path / "kw.jsonl", records)
    plan = plan_file(tmp_path / "kw.jsonl")
    apple, river = "keywords:existence[keywords=apple]", "keywords:existence[keywords=river]"
    assert set(plan.groups) == {apple, river}
    assert [m.kwargs["keywords"] for m in plan.groups[apple].members] == [["apple"]]
    assert [names for _, names in plan.items] == [((apple, river),), ((apple,),)]
    assert [e.instructions[0].kwargs["keywords"] for e, _ in plan.items] == [
        ["apple", "river"],
        ["apple"],
    ]  # checked on the record's own words
    one = plan_file(tmp_path / "kw.jsonl", group_by={"keywords:existence": ()})
    assert list(one.groups) == ["keywords:existence"] and one.groups["keywords:existence"].members[0].per_query


def test_unsteered_conditions_are_generated_once_and_equal_their_own_generation(tiny, tiny_vector, monkeypatch):
    """Where no steering was selected, "steering" is the no-instruction reply and "instruction +
    steering" the instruction's: each is generated once and the rows equal a separate generation."""
    from workbench.sweep import conditions

    examples = catalog_examples("one_sentence", "test", limit=3)
    sizes = []
    real = conditions.generate
    monkeypatch.setattr(
        conditions, "generate", lambda model, prompts, **kw: sizes.append(len(prompts)) or real(model, prompts, **kw)
    )
    rows = four_conditions(tiny, examples, [], [], "one_sentence", max_new_tokens=6)
    assert sizes == [2 * 3] and [r["condition"] for r in rows] == [
        c for c in ("no_instruction", "steer", "instruction", "instruction_steer") for _ in range(3)
    ]
    by = {(r["condition"], r["prompt_id"]): r for r in rows}
    alone = generate(tiny, [e.query for e in examples], max_new_tokens=6)
    for e, g in zip(examples, alone):
        assert by[("steer", e.key)]["text"] == by[("no_instruction", e.key)]["text"] == g.text
        assert (
            by[("steer", e.key)]["logprob"] == by[("no_instruction", e.key)]["logprob"]
            and by[("steer", e.key)]["layer"] == -1
        )
    spec = [tiny_vector.steer(2, 4.0)]
    steered = four_conditions(tiny, examples, spec, [], "one_sentence", max_new_tokens=6)
    assert sizes[-1] == 3 * 3 and any(
        r["text"] != by[("steer", r["prompt_id"])]["text"] for r in steered if r["condition"] == "steer"
    )


def test_an_evaluations_own_halving_sweep_is_reused_with_the_same_choices(tiny, synthetic, evaluated, tmp_path):
    """Regression: --sweep OUT/sweep of an earlier evaluation (a halving sweep: round1/, round2/) was
    "no results in OUT/sweep", after the model had loaded."""
    out, first = evaluated
    settled = ("layers", "sweep_prompts")  # the sweep's own: refused beside it
    again = evaluate_file(
        tiny, synthetic[0], tmp_path, **{k: v for k, v in FAST.items() if k not in settled}, sweep_dir=out / "sweep"
    )
    assert again["groups"] == first["groups"] and again["stopped_early"] == first["stopped_early"]
    assert not (tmp_path / "sweep" / "round1").exists()  # nothing swept again
    with pytest.raises(WorkbenchError, match="holds no sweep") as info:
        EvaluateOptions(sweep_dir=tmp_path)
    assert "\n" not in str(info.value)


def _verdict_rows(verdicts: dict[str, list[tuple[bool, bool]]]) -> list[dict]:
    """Hand-made evaluation rows: per condition, each record's (first, second) instruction verdicts
    (strict = loose); record i is ``r{i}``, its first instruction ``a`` (vector group ``a[x]``), its second ``b``."""
    return [
        {
            "condition": cond,
            "prompt_id": f"r{i}",
            "instruction_ids": ["a", "b"],
            "groups": [["a[x]"], ["b"]],
            "strict_each": list(v),
            "loose_each": list(v),
            "strict": all(v),
            "loose": all(v),
            "stopped": True,
            "degenerate": False,
            "logprob": -1.0,
            "text": "t",
        }
        for cond, each in verdicts.items()
        for i, v in enumerate(each)
    ]


# steering passes r2..r5 where no instruction fails them: 4 wins, 0 losses on 8 records (p = 2/16);
# the instruction fails r0 where instruction + steering passes it, and passes r7 where it fails: 1 win, 1 loss
T, F = (True, True), (False, True)
VERDICTS = {
    "no_instruction": [T, T, F, F, F, F, F, F],
    "steer": [T, T, T, T, T, T, F, F],
    "instruction": [F, T, T, T, T, T, T, T],
    "instruction_steer": [T, T, T, T, T, T, T, F],
}


def test_paired_tests_pair_records_by_key_and_never_by_position():
    from workbench.apps.file_evaluation.results import paired_tests

    rows = _verdict_rows(VERDICTS)
    tests = paired_tests(rows).set_index(["scope", "level", "metric", "comparison"])
    steer = tests.loc[("all", "prompt", "loose", "steer vs no_instruction")]
    assert (steer["wins"], steer["losses"], steer["n"]) == (4, 0, 8)
    assert steer["delta"] == pytest.approx(0.5) and steer["p_value"] == pytest.approx(2 / 16)
    both = tests.loc[("all", "prompt", "strict", "instruction_steer vs instruction")]
    assert (both["wins"], both["losses"], both["delta"], both["p_value"]) == (1, 1, 0.0, 1.0)
    # instruction level: (record, instruction) pairs; b always passes, so only a's verdicts differ
    assert tests.loc[("all", "instruction", "loose", "steer vs no_instruction"), "n"] == 16
    assert tests.loc[("a", "instruction", "loose", "steer vs no_instruction"), "wins"] == 4
    assert tests.loc[("a[x]", "instruction", "loose", "steer vs no_instruction"), "p_value"] == pytest.approx(2 / 16)
    assert tests.loc[("b", "instruction", "loose", "steer vs no_instruction"), "p_value"] == 1.0
    # the steered rows reversed: paired by position it would be 6 wins, 2 losses; by key nothing changes
    steered = [r for r in rows if r["condition"] == "steer"]
    shuffled = [r for r in rows if r["condition"] != "steer"] + steered[::-1]
    pd.testing.assert_frame_equal(paired_tests(shuffled), paired_tests(rows))
    # a record missing from one condition: no pairing is guessed, that comparison's p-value is NaN
    missing = paired_tests([r for r in rows if (r["condition"], r["prompt_id"]) != ("steer", "r0")])
    missing = missing.set_index(["scope", "level", "metric", "comparison"])["p_value"]
    assert pd.isna(missing[("all", "prompt", "loose", "steer vs no_instruction")])
    assert missing[("all", "prompt", "loose", "instruction_steer vs instruction")] == 1.0


def test_a_report_shows_each_rows_paired_change_and_p_value_and_older_folders_still_load(tmp_path):
    from workbench.apps.file_evaluation import Evaluation
    from workbench.apps.file_evaluation.results import write_evaluation

    summary = {
        "model": "m",
        "data": "d.jsonl",
        "n_evaluated": 8,
        "n_examples": 8,
        "pairs": "queries",
        "search": "halving",
        "skipped": {},
        "groups": {"a[x]": {"without_instruction": {"layer": None, "mode": "none", "coefficient": None}}},
    }
    written = write_evaluation(tmp_path, summary, _verdict_rows(VERDICTS))
    report = (tmp_path / "report.md").read_text()
    assert "steer vs none: Δ (p)" in report and "inst+steer vs inst: Δ (p)" in report and "Clopper-Pearson" in report
    prompt_row = next(line for line in report.splitlines() if line.startswith("| **prompt-level, all** |"))
    assert prompt_row.endswith("| +0.50 (0.125) | +0.00 (1) |")
    loaded = Evaluation.load(tmp_path)
    pd.testing.assert_frame_equal(loaded.paired, written.paired, check_dtype=False)
    assert json.loads((tmp_path / "summary.json").read_text())["paired_tests"] == written["paired_tests"]
    (tmp_path / "paired.csv").unlink()  # a folder written before paired tests: none, and no error
    assert Evaluation.load(tmp_path).paired.empty
