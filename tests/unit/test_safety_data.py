"""Bad input fails as one WorkbenchError line before anything runs; checkers that fail say where;
user and model text is escaped in every HTML card and report (regression tests, one per case)."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench import WorkbenchError
from workbench.apps.file_evaluation import plan_file
from workbench.checkers import check, check_callable
from workbench.instructions import Instruction, load_ifeval_jsonl
from workbench.instructions.datasets import MAX_PROMPT_CHARS

GOOD = {
    "key": 1,
    "prompt": "Write about dogs. Use no commas.",
    "instruction_id_list": ["punctuation:no_comma"],
    "kwargs": [{}],
    "prompt_without_instruction": "Write about dogs.",
}
TWO = {
    "key": 2,
    "prompt": "Write about cats. Use no commas. Write in lowercase.",
    "kwargs": [{}, {}],
    "instruction_id_list": ["punctuation:no_comma", "change_case:english_lowercase"],
    "prompt_without_instruction": "Write about cats.",
}


def write(tmp_path, *records, name="data.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


# --- 1. IFEval-format files: every record checked when the file is read -----------------------------

BAD_RECORDS = [
    ({**TWO, "kwargs": [{}]}, "line 2: kwargs has 1 entry for 2 instruction ids"),
    ({**TWO, "kwargs": "none"}, "line 2: kwargs must be a list of objects, one per instruction id, not a string"),
    (
        {**TWO, "kwargs": ["a", "b"]},
        "line 2: kwargs must be a list of objects, one per instruction id, not a list holding a string",
    ),
    (
        {**TWO, "instruction_id_list": []},
        "line 2: instruction_id_list must be a non-empty list of id strings, not an empty list",
    ),
    (
        {**TWO, "instruction_id_list": "punctuation:no_comma"},
        "line 2: instruction_id_list must be a non-empty list of id strings, not a string",
    ),
    (
        {**TWO, "instruction_id_list": ["punctuation:no_comma", 3]},
        "line 2: instruction_id_list must be .* not a list holding a number",
    ),
    ({**TWO, "prompt": ""}, "line 2: prompt must be a non-empty string, not an empty string"),
    ({**TWO, "prompt": ["Write about cats."]}, "line 2: prompt must be a non-empty string, not a list"),
    ({k: v for k, v in TWO.items() if k != "prompt"}, "line 2: prompt must be a non-empty string, not null"),
    (
        {**TWO, "prompt_without_instruction": "  "},
        "line 2: prompt_without_instruction must be a non-empty string, not an empty string",
    ),
    (
        {**TWO, "prompt_without_instruction": 7},
        "line 2: prompt_without_instruction must be a non-empty string, not a number",
    ),
    ({**TWO, "key": 1}, "line 2: key '1' is already the key of line 1; each record needs its own key"),
    ({**TWO, "key": [2]}, "line 2: key must be a number or a non-empty string, not a list"),
    (
        {**TWO, "prompt": "x" * (MAX_PROMPT_CHARS + 1)},
        f"line 2: prompt has {MAX_PROMPT_CHARS + 1:,} characters, more than MAX_PROMPT_CHARS",
    ),
    ('{"key": 2, "prompt": ', "line 2: not JSON"),
    ("[1, 2]", "line 2: a list, where an IFEval record \\(a JSON object\\) belongs"),
    ("[" * 100_000, "line 2: not JSON"),
]


@pytest.mark.parametrize("record, message", BAD_RECORDS, ids=[m.split(": ", 1)[1][:40] for _, m in BAD_RECORDS])
def test_a_bad_record_is_one_error_naming_file_and_line(tmp_path, record, message):
    path = write(tmp_path, GOOD, record)
    with pytest.raises(WorkbenchError, match=f"^{path} {message}") as err:
        load_ifeval_jsonl(path)
    assert "\n" not in str(err.value) and err.value.__cause__ is None


def test_a_100k_character_prompt_is_refused_when_the_file_is_read_not_after_the_sweep(tmp_path):
    path = write(tmp_path, GOOD, {**TWO, "prompt": "Write about cats. " * 6000})
    with pytest.raises(WorkbenchError, match="line 2: prompt has 108,000 characters"):
        plan_file(path)


def test_a_file_that_is_not_utf8_names_its_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(
        json.dumps(GOOD).encode() + b"\n" + json.dumps(TWO).replace("cats", "chats \u00e9").encode("latin-1") + b"\n"
    )
    with pytest.raises(WorkbenchError, match=r"latin1.jsonl line 2: not UTF-8 \(byte 0xe9"):
        load_ifeval_jsonl(path)


def test_a_line_separator_inside_a_string_stays_in_its_record(tmp_path):
    """U+2028 is valid inside a JSON string; str.splitlines would have cut the record in two."""
    path = write(tmp_path, {**GOOD, "prompt": "Write about dogs.\u2028Use no commas."})
    path.write_text(path.read_text().replace("\\u2028", "\u2028"))
    assert load_ifeval_jsonl(path)[0].prompt == "Write about dogs.\u2028Use no commas."


def test_every_instruction_of_a_record_is_kept_and_bad_kwargs_name_the_line(tmp_path):
    plan = plan_file(write(tmp_path, GOOD, TWO))
    assert [len(example.instructions) for example, _ in plan.items] == [1, 2]
    bad = write(tmp_path, GOOD, {**TWO, "kwargs": [{}, {"ifeval_id": "x"}]}, name="bad.jsonl")
    with pytest.raises(
        WorkbenchError,
        match=r"bad.jsonl line 2 \(key 2\): change_case:english_lowercase takes no kwargs, not ifeval_id",
    ):
        plan_file(bad)


def test_a_training_record_with_bad_kwargs_fails_too(tmp_path):
    """A record without prompt_without_instruction is skipped, but its kwargs are still checked."""
    record = {k: v for k, v in TWO.items() if k != "prompt_without_instruction"}
    with pytest.raises(WorkbenchError, match="line 2 .*language:response_language needs language"):
        plan_file(
            write(tmp_path, GOOD, {**record, "instruction_id_list": ["language:response_language"], "kwargs": [{}]})
        )


def test_evaluate_exits_2_with_the_line_and_writes_nothing(tmp_path, capsys):
    from workbench.apps.cli.main import main

    out = tmp_path / "out"
    path = write(tmp_path, GOOD, {**TWO, "kwargs": [{}]})
    assert main(["evaluate", "--data", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"workbench evaluate: error: {path} line 2: kwargs has 1 entry for 2 instruction ids"]
    assert not out.exists() or not any(out.iterdir())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
KNOWN = {
    "punctuation:no_comma": (),
    "language:response_language": ("language",),
    "keywords:frequency": ("keyword", "frequency", "relation"),
    "detectable_format:number_bullet_lists": ("num_bullets",),
    "length_constraints:number_words": ("num_words", "relation"),
    "startend:end_checker": ("end_phrase",),
    "combination:repeat_prompt": ("prompt_to_repeat",),
}
kwarg_values = st.one_of(
    json_values, st.integers(-2, 50), st.sampled_from(["de", "fr", "at least", "less than", "ocean", "Peace!", "xx"])
)
FIELDS = ("key", "prompt", "prompt_without_instruction", "instruction_id_list", "kwargs")


@st.composite
def instruction(draw) -> tuple[str, dict | None]:
    """A known id (now and then an unknown or empty one) with kwargs of its own names and any values."""
    iid = draw(
        st.sampled_from(sorted(KNOWN)) | st.sampled_from(["no:such_id", ""])
        if draw(st.integers(0, 9)) == 0
        else st.sampled_from(sorted(KNOWN))
    )
    names = st.sampled_from([*KNOWN.get(iid, ()), "ifeval_id", "self", "x"])
    kwargs = draw(st.dictionaries(names, kwarg_values, max_size=3) | st.none() | st.builds(dict))
    return iid, kwargs


@st.composite
def records(draw) -> str:
    """A record near a valid one: any kwargs values; now and then a field replaced by any JSON value
    or left out, or one kwargs entry too many or too few."""
    pairs = draw(st.lists(instruction(), min_size=1, max_size=3))
    kwargs = [kw for _, kw in pairs] + draw(st.sampled_from([[]] * 9 + [[{}]]))
    record = {
        "key": draw(st.integers(0, 3) | st.text(max_size=2)),
        "prompt": draw(st.text(min_size=1, max_size=20)),
        "prompt_without_instruction": draw(st.text(min_size=1, max_size=20)),
        "instruction_id_list": [i for i, _ in pairs],
        "kwargs": kwargs[: -1 if draw(st.integers(0, 9)) == 0 else None],
    }
    for name in draw(st.sets(st.sampled_from(FIELDS), max_size=1) if draw(st.booleans()) else st.just(set())):
        if draw(st.booleans()):
            record[name] = draw(json_values)
        else:
            del record[name]
    return json.dumps(record)


lines = st.one_of(*[records()] * 8, st.binary(max_size=20), json_values.map(json.dumps))


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(st.lists(lines, min_size=1, max_size=4), st.booleans(), st.sampled_from(["queries", "file"]))
def test_no_malformed_file_escapes_as_anything_but_a_workbench_error(tmp_path, body, skip_unknown, pairs):
    path = tmp_path / "random.jsonl"
    path.write_bytes(b"\n".join(line if isinstance(line, bytes) else line.encode() for line in body))
    try:
        plan_file(path, pairs=pairs, skip_unknown=skip_unknown)
    except WorkbenchError as exc:
        assert "\n" not in str(exc)


def test_the_kwarg_kinds_are_lm_evals():
    import inspect

    from workbench.checkers import ifeval_registry
    from workbench.instructions.ifeval import COUNT_KWARGS, STRING_KWARGS, WORD_LIST_KWARGS

    names = {
        p for c in ifeval_registry().values() for p in inspect.signature(c.build_description).parameters if p != "self"
    }
    assert names == set(COUNT_KWARGS) | set(WORD_LIST_KWARGS) | set(STRING_KWARGS)


@pytest.mark.parametrize(
    "iid, kwargs, message",
    [
        (
            "keywords:existence",
            {"keywords": "ocean"},
            'keywords must be a non-empty list of words, not "ocean"',
        ),  # lm-eval: sorted into letters
        (
            "keywords:letter_frequency",
            {"letter": "zz"},
            'letter must be one letter a-z, not "zz"',
        ),  # lm-eval: a random letter
        (
            "detectable_format:number_bullet_lists",
            {"num_bullets": -1},
            "num_bullets must be a whole number from 1, not -1",
        ),  # lm-eval: random
        (
            "detectable_format:number_bullet_lists",
            {"num_bullets": 0},
            "num_bullets must be a whole number from 1, not 0",
        ),  # dropped, then random
        ("keywords:frequency", {"keyword": 3}, "keyword must be a non-empty string, not 3"),  # lm-eval: AttributeError
        (
            "length_constraints:nth_paragraph_first_word",
            {"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "so"},
            "nth_paragraph 3 is past num_paragraphs 2",
        ),
    ],
)
def test_kwargs_lm_eval_would_replace_by_random_ones_are_refused(tmp_path, iid, kwargs, message):
    path = write(tmp_path, GOOD, {**GOOD, "key": 2, "instruction_id_list": [iid], "kwargs": [kwargs]})
    with pytest.raises(WorkbenchError, match=f"line 2: kwargs of {iid}: {message}"):
        load_ifeval_jsonl(path)


def test_a_count_written_as_a_float_is_read_as_the_number_it_is(tmp_path):
    """pandas writes an integer column with nulls as floats (IFEval's kwargs exported from a table)."""
    record = {
        **GOOD,
        "instruction_id_list": ["detectable_format:number_bullet_lists"],
        "kwargs": [{"num_bullets": 3.0, "language": None}],
    }
    assert load_ifeval_jsonl(write(tmp_path, record))[0].kwargs == [{"num_bullets": 3}]
    with pytest.raises(WorkbenchError, match="num_bullets must be a whole number from 1, not 2.5"):
        load_ifeval_jsonl(write(tmp_path, {**record, "kwargs": [{"num_bullets": 2.5}]}))


# --- 2. checkers: an error says which reply and instruction; a verdict is a bool ----------------------


def _broken(reply: str) -> bool:
    return 1 / 0 > 0


def test_a_raising_checker_names_itself_and_the_reply():
    with pytest.raises(
        WorkbenchError,
        match=r"checker _broken of instruction 'pirate' raised ZeroDivisionError: division by zero "
        r"on the reply 'Arr, matey",
    ) as err:
        check_callable("Arr, matey, the treasure lies east.", _broken, "pirate")
    assert isinstance(err.value.__cause__, ZeroDivisionError)
    with pytest.raises(WorkbenchError, match="checker _broken (of instruction .*)?raised ZeroDivisionError"):
        Instruction.custom("Answer like a pirate.", check=_broken).check("Arr.")


def test_side_by_side_reports_a_failing_checker_instead_of_no_checker():
    from workbench.compare import follows

    with pytest.raises(WorkbenchError, match="checker _broken (of instruction .*)?raised ZeroDivisionError"):
        follows(Instruction.custom("Answer like a pirate.", check=_broken), "Arr.", "Hi")
    assert follows("text:Answer like a pirate.", "Arr.", "Hi") is None


@pytest.mark.parametrize("answer", ["yes", 1.0, None, "", [True]])
def test_a_checker_that_does_not_return_a_bool_is_refused(answer):
    """``bool("no")`` is True: a checker returning text would count every reply as following."""
    inst = Instruction.custom("Answer like a pirate.", check=lambda reply: answer, id="pirate")
    with pytest.raises(WorkbenchError, match=r"checker .*<lambda>.* returned .*not True or False"):
        inst.check("Arr.")
    assert (
        check_callable("Arr.", lambda reply: np.bool_(True)).strict
        and not check_callable("No.", lambda reply: np.bool_(False)).loose
    )


class _Exploding:
    def __init__(self, instruction_id):
        pass

    def build_description(self, **kwargs):
        return ""

    def get_instruction_args(self):
        return {}

    def check_following(self, value):
        raise IndexError("list index out of range")


def test_an_ifeval_checker_error_names_the_id_the_reply_and_the_prompt(monkeypatch, tiny):
    from workbench.checkers import ifeval_registry
    from workbench.judging.scoring import score_rows

    monkeypatch.setitem(ifeval_registry(), "detectable_format:title", _Exploding)
    ids, kwargs = ["punctuation:no_comma", "detectable_format:title"], [{}, {}]
    with pytest.raises(
        WorkbenchError,
        match=r"IFEval's checker for detectable_format:title raised IndexError: list index out of range "
        r"on the reply 'A reply'",
    ) as err:
        check("A reply", ids, kwargs)
    assert isinstance(err.value.__cause__, IndexError)
    row = {
        "text": "A reply",
        "instruction_ids": ids,
        "kwargs": kwargs,
        "prompt": "Write a poem about the sea. " * 5,
        "query": "q",
        "n_tokens": 2,
    }
    with pytest.raises(
        WorkbenchError,
        match=r"on the reply 'A reply' to the prompt 'Write a poem about the sea\. Write a poem about the sea\. "
        r"Writ…'$",
    ):
        score_rows(tiny, [row])


def test_fewer_kwargs_than_ids_is_an_error_not_a_dropped_instruction():
    with pytest.raises(WorkbenchError, match="1 kwargs for 2 instruction ids"):
        check("a reply", ["punctuation:no_comma", "change_case:english_lowercase"], [{}])


# --- 3. HTML: user and model text escaped in every card and in report.html --------------------------

EVIL = "<script>alert(1)</script>"


def test_a_crafted_vector_file_renders_no_live_script(tiny_vector, tmp_path):
    from dataclasses import replace

    from workbench.vectors import InstructionVector

    crafted = replace(
        tiny_vector, model_name=EVIL, hook=EVIL, position=EVIL, data_hash=EVIL, instruction_id=EVIL, phrasings=[EVIL]
    )
    back = InstructionVector.load(crafted.save(tmp_path / "crafted.safetensors"))
    card = back._repr_html_()
    assert EVIL not in card and "&lt;script&gt;" in card and "<svg" in card


def test_report_html_shows_raw_html_as_text_and_keeps_its_tables(tmp_path):
    from workbench.apps.study.report import copy_report

    (tmp_path / "results").mkdir()
    md = (
        f"# Report\n\n| instruction | compliance |\n|---|---|\n| {EVIL} | 0.50 |\n\n**{EVIL}** — *q*\n\n"
        f"- steered: '<img src=x onerror=alert(2)>'\n\n{EVIL}\n"
    )
    (tmp_path / "results" / "report.md").write_text(md)
    copy_report(tmp_path / "results", tmp_path / "out")
    page = (tmp_path / "out" / "report.html").read_text()
    assert "<script" not in page and "<img src=x" not in page and "<table>" in page and "<td>&lt;script&gt;" in page


def test_every_card_escapes_names_and_texts():
    import pandas as pd
    import torch

    from workbench.apps.file_evaluation.results import Evaluation
    from workbench.compare import COLUMNS, SideBySide
    from workbench.sweep import SweepResult
    from workbench.tokens import TokenProjections

    side = SideBySide(EVIL, EVIL, pd.DataFrame([[EVIL, EVIL, True, EVIL, False, -1.0, 0.0, False]], columns=COLUMNS))
    scores = pd.DataFrame(
        [
            {
                "scope": "all",
                "condition": c,
                "level": "prompt",
                "metric": "loose",
                "accuracy": 0.5,
                "ci_low": 0.4,
                "ci_high": 0.6,
                "n": 2,
            }
            for c in ("no_instruction", EVIL)
        ]
    )
    summary = {
        "model": EVIL,
        "data": EVIL,
        "n_evaluated": 1,
        "n_examples": 1,
        "groups": {EVIL: {"without_instruction": {"mode": EVIL}}},
    }
    rows = [
        {
            "instruction": EVIL,
            "with_instruction": False,
            "layer": layer,
            "mode": mode,
            "coefficient": coef,
            "loose": loose,
            "strict": loose,
            "logprob": -1.0,
            "degenerate": False,
            "text": EVIL,
            "prompt_id": "p",
        }
        for layer, mode, coef, loose in [(-1, "none", None, False), (2, EVIL, 1.0, True)]
    ]
    values = torch.zeros(2, 3)
    tokens = TokenProjections(EVIL, [EVIL, "b"], 1, values, torch.zeros(3), torch.ones(3), 1)
    for card in (
        side._repr_html_(),
        Evaluation(summary, scores, pd.DataFrame())._repr_html_(),
        SweepResult(pd.DataFrame(rows), model=EVIL)._repr_html_(),
        tokens._repr_html_(),
    ):
        assert EVIL not in card and "&lt;script&gt;" in card
