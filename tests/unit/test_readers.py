"""Dataset readers (``workbench.readers``): each built-in format on a small file (the paper's formats on
real lines of its repository, ``tests/data/paper/SOURCE.md``), ``auto`` picking one and refusing to
guess, your own reader as a callable or ``module:function``, and ``evaluate --format``."""

import json
from pathlib import Path

import pytest

from workbench import WorkbenchError
from workbench.apps.file_evaluation.plan import EvaluateOptions, plan_file
from workbench.instructions import SAME_TWIN, IFEvalExample, file_pairs, load_ifeval_jsonl, twin
from workbench.io import write_jsonl
from workbench.readers import READERS, Reader, read_dataset, reader_named
from workbench.readers.base import checked_records

PAPER = Path(__file__).parents[1] / "data" / "paper"

# One set of records written in both formats: plain ids with kwargs, an id spelled with its kwargs,
# a catalog name, no key (the line number).
IFEVAL = [
    {
        "key": "a",
        "prompt": "Explain tides. Answer in capitals.",
        "instruction_id_list": ["change_case:english_capital"],
        "kwargs": [{}],
        "prompt_without_instruction": "Explain tides.",
    },
    {
        "key": 7,
        "prompt": "Explain rain. Use 3 bullets.",
        "instruction_id_list": ["detectable_format:number_bullet_lists"],
        "kwargs": [{"num_bullets": 3}],
        "prompt_without_instruction": "Explain rain.",
    },
    {
        "key": "c",
        "prompt": "Explain snow. Answer in German.",
        "instruction_id_list": ["language:response_language"],
        "kwargs": [{"language": "de"}],
        "prompt_without_instruction": "Explain snow.",
    },
    {
        "prompt": "Explain fog. Answer in French.",
        "instruction_id_list": ["language:response_language"],
        "kwargs": [{"language": "fr"}],
        "prompt_without_instruction": "Explain fog.",
    },
]
PAIRS = [
    {
        "key": "a",
        "prompt": IFEVAL[0]["prompt"],
        "prompt_without_instruction": "Explain tides.",
        "instruction": "capitals",
    },
    {
        "key": 7,
        "prompt": IFEVAL[1]["prompt"],
        "prompt_without_instruction": "Explain rain.",
        "instruction": "detectable_format:number_bullet_lists",
        "kwargs": {"num_bullets": 3},
    },
    {
        "key": "c",
        "prompt": IFEVAL[2]["prompt"],
        "prompt_without_instruction": "Explain snow.",
        "instruction": "language:response_language[language=de]",
    },
    {"prompt": IFEVAL[3]["prompt"], "prompt_without_instruction": "Explain fog.", "instruction": "french"},
]


def write(path: Path, *records) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


@pytest.fixture
def ifeval_file(tmp_path):
    return write(tmp_path / "ifeval.jsonl", *IFEVAL)


@pytest.fixture
def pairs_file(tmp_path):
    return write(tmp_path / "pairs.jsonl", *PAIRS)


def one_line_error(match: str, call, *args, **kwargs) -> str:
    with pytest.raises(WorkbenchError, match=match) as err:
        call(*args, **kwargs)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_the_built_in_formats_are_found_in_order_each_a_reader():
    assert list(READERS)[:3] == ["ifeval", "pairs", "paper"]
    assert all(isinstance(r, Reader) and r.description and r.recognizes for r in READERS.values())
    assert reader_named("pairs") is READERS["pairs"]


def test_the_same_records_as_ifeval_and_as_pairs_read_alike(ifeval_file, pairs_file):
    as_ifeval = read_dataset(ifeval_file, "ifeval")
    assert read_dataset(pairs_file, "pairs") == as_ifeval == load_ifeval_jsonl(ifeval_file)
    assert [e.key for e in as_ifeval] == ["a", "7", "c", "4"]  # no key: the line number
    assert read_dataset(pairs_file) == read_dataset(ifeval_file) == as_ifeval  # auto


def test_the_papers_stripped_file_reads_as_its_plain_twin():
    """``original_prompt`` (with) and ``prompt`` (without): the same three records as the plain file."""
    stripped = read_dataset(PAPER / "input_data_single_instr_no_instr.jsonl")
    assert stripped == read_dataset(PAPER / "input_data_single_instr.jsonl", "ifeval")
    assert [e.key for e in stripped] == ["1001", "1005", "1108"]
    assert stripped[0].prompt.endswith("You are not allowed to use any commas in your response.")
    assert stripped[0].prompt_without_instruction.endswith("in a Shakespearean style.")
    assert stripped[2].kwargs == [{"language": "kn"}]


def test_the_papers_keyword_splits_get_a_key_per_word():
    include = read_dataset(PAPER / "ifeval_single_keyword_include.jsonl")
    assert [e.key for e in include] == ["1069:correlated", "1069:experiencing", "1139:mom"]
    assert include[0].prompt_without_instruction == include[1].prompt_without_instruction
    casing = PAPER / "ifeval_multiple_instr_casing_exclude.jsonl"  # it scores only the first of two ids
    for reader in ("paper", "auto"):
        one_line_error(
            "line 1: instruction_id_list_for_eval scores change_case:english_lowercase of "
            "change_case:english_lowercase, keywords:forbidden_words",
            read_dataset,
            casing,
            reader,
        )
    path = PAPER / "ifeval_single_keyword_include.jsonl"
    one_line_error("line 2: key '1069' is already the key of line 1", read_dataset, path, "ifeval")


def test_the_papers_plain_files_are_ifeval_and_its_base_queries_are_refused():
    validation = read_dataset(PAPER / "inclusion_validation.jsonl")  # auto: ifeval; no key
    assert [e.key for e in validation] == ["1", "2"] and validation[0].kwargs == [{"keywords": ["barbarians"]}]
    assert len(read_dataset(PAPER / "ifeval_single_instr_format.jsonl")) == 2
    path = PAPER / "input_data_no_instr.jsonl"
    one_line_error(f"^{path} line 1: no kwargs: one of the paper's base-query files", read_dataset, path)


@pytest.mark.parametrize(
    "name, reader",
    [
        ("input_data_single_instr_no_instr.jsonl", "paper"),
        ("ifeval_single_keyword_include.jsonl", "paper"),
        ("ifeval_multiple_instr_casing_exclude.jsonl", "paper"),
        ("input_data_single_instr.jsonl", "ifeval"),
        ("inclusion_validation.jsonl", "ifeval"),
        ("ifeval_single_instr_format.jsonl", "ifeval"),
    ],
)
def test_auto_picks_the_one_format_that_recognises_a_papers_file(name, reader):
    from workbench.readers import auto_reader

    assert auto_reader(PAPER / name).name == reader


def test_auto_refuses_to_guess(tmp_path, pairs_file):
    from workbench.readers import auto_reader

    assert auto_reader(pairs_file).name == "pairs"
    both = write(tmp_path / "both.jsonl", {**IFEVAL[0], "instruction": "capitals"})
    one_line_error(
        rf"^{both} line 1: the record fits several formats \(ifeval, pairs;.*pass --format", auto_reader, both
    )
    none = write(tmp_path / "none.jsonl", "", {"question": "Why?", "words\nbroken": 1})
    message = one_line_error(rf"^{none} line 2: no dataset format recognises this record", read_dataset, none)
    assert "fields question, words broken" in message and "Pass --format NAME" in message
    one_line_error("no such file", read_dataset, tmp_path / "missing.jsonl")
    one_line_error("holds no examples", read_dataset, write(tmp_path / "empty.jsonl", ""))
    one_line_error(
        r"line 1: a list, where a record \(a JSON object\) belongs", read_dataset, write(tmp_path / "l", "[1]")
    )


def test_an_unknown_format_is_one_line_listing_the_formats(ifeval_file):
    one_line_error(
        "unknown dataset format 'nope': use one of auto, ifeval, pairs, paper, module:function",
        read_dataset,
        ifeval_file,
        "nope",
    )
    one_line_error("unknown dataset format 'nope'", EvaluateOptions, reader="nope")


def test_a_file_in_another_format_is_one_line_naming_file_and_line(ifeval_file, pairs_file):
    one_line_error(f"^{ifeval_file} line 1: instruction must be an IFEval id", read_dataset, ifeval_file, "pairs")
    one_line_error(f"^{pairs_file} line 1: instruction_id_list must be", read_dataset, pairs_file, "ifeval")
    one_line_error(f"^{ifeval_file} line 1: neither of the paper's layouts", read_dataset, ifeval_file, "paper")


GOOD_PAIR = PAIRS[1]


@pytest.mark.parametrize(
    "record, message",
    [
        ({**GOOD_PAIR, "prompt_without_instruction": None}, "prompt_without_instruction must be a non-empty string"),
        ({**GOOD_PAIR, "prompt": ""}, "prompt must be a non-empty string, not an empty string"),
        (
            {**GOOD_PAIR, "kwargs": [{"num_bullets": 3}]},
            "kwargs must be an object of the instruction's kwargs, not a list",
        ),
        (
            {**GOOD_PAIR, "kwargs": {"num_bullets": 0}},
            "kwargs of detectable_format:number_bullet_lists: num_bullets must",
        ),
        (
            {**GOOD_PAIR, "instruction": "french", "kwargs": {"language": "de"}},
            "instruction 'french' carries its kwargs already",
        ),
        ({**GOOD_PAIR, "instruction": "text:Be brief."}, "instruction 'text:Be brief.' is not an IFEval id"),
        ({**GOOD_PAIR, "instruction": "shout"}, "instruction 'shout' is not an IFEval id"),
        (
            {**GOOD_PAIR, "instruction": "include_word"},
            r"include_word takes a word from each query; .*keywords:existence",
        ),
        ({**GOOD_PAIR, "instruction": "language:response_language[de]"}, "bad kwarg 'de'"),
        ({**GOOD_PAIR, "instruction": 3}, "instruction must be an IFEval id .* not a number"),
        ({**GOOD_PAIR, "key": ["x"]}, "key must be a number or a non-empty string, not a list"),
    ],
)
def test_a_bad_pair_is_one_line_naming_file_and_line(tmp_path, record, message):
    path = write(tmp_path / "pairs.jsonl", PAIRS[0], record)
    one_line_error(f"^{path} line 2: {message}", read_dataset, path, "pairs")


def my_reader(path: Path) -> list[IFEvalExample]:
    """A format of one's own: a TSV of prompt, prompt without, IFEval id."""
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    return [IFEvalExample(str(i), p, [iid], [{}], w, i) for i, (p, w, iid) in enumerate(rows, 1)]


def test_your_own_reader_is_a_callable_or_an_object_and_its_records_are_checked(tmp_path):
    path = tmp_path / "data.tsv"
    path.write_text("Explain tides. No commas.\tExplain tides.\tpunctuation:no_comma\n")
    got = read_dataset(path, my_reader)
    assert got == [IFEvalExample("1", "Explain tides. No commas.", ["punctuation:no_comma"], [{}], "Explain tides.", 1)]

    class Format:
        name = "tsv"

        def read(self, p):
            return my_reader(p)

    assert read_dataset(path, Format()) == got
    assert plan_file(path, reader=my_reader).items[0][0].prompt == "Explain tides. No commas."
    one_line_error("reader .*<lambda> returned dict .*not a list of IFEvalExample", read_dataset, path, lambda p: {})
    one_line_error(r"reader .*<lambda> failed on .*data.tsv: KeyError: 'x'", read_dataset, path, lambda p: {}["x"])
    bad = [IFEvalExample("1", "", ["punctuation:no_comma"], [{}])]
    one_line_error(
        r"data.tsv record 1 \(from reader t\): prompt must be a non-empty string", checked_records, path, "t", bad
    )
    one_line_error("is already the key of record 1", checked_records, path, "t", got + got)


def test_a_module_function_reader_is_imported_and_a_bad_one_refused_in_one_line(tmp_path, monkeypatch):
    module = tmp_path / "my_format_xyz.py"
    module.write_text(
        "from workbench.instructions import IFEvalExample\n"
        "def read(path):\n"
        "    rows = [line.split('\\t') for line in path.read_text().splitlines()]\n"
        "    return [IFEvalExample(str(i), p, [iid], [{}], w, i) for i, (p, w, iid) in enumerate(rows, 1)]\n"
        "def broken(path):\n"
        "    raise RuntimeError('line one\\nline two')\n"
        "VALUE = 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "data.tsv"
    path.write_text("Explain tides. No commas.\tExplain tides.\tpunctuation:no_comma\n")
    assert read_dataset(path, "my_format_xyz:read") == read_dataset(path, f"{module}:read") == my_reader(path)
    one_line_error("cannot import no_such_module_xyz for --format", read_dataset, path, "no_such_module_xyz:read")
    one_line_error("my_format_xyz:nothing is nothing, not a callable", reader_named, "my_format_xyz:nothing")
    one_line_error("my_format_xyz:VALUE is int, not a callable", reader_named, "my_format_xyz:VALUE")
    one_line_error("RuntimeError: line one line two", read_dataset, path, "my_format_xyz:broken")
    one_line_error("no such file", reader_named, f"{tmp_path / 'missing.py'}:read")
    one_line_error("write module:function", reader_named, "my_format_xyz:")


def test_plan_file_and_evaluate_options_take_the_format(pairs_file):
    plan = plan_file(pairs_file, reader="pairs")
    assert len(plan.items) == 4 and set(plan.groups) >= {"change_case:english_capital"}
    assert EvaluateOptions(reader="pairs").plan_for(pairs_file).items == plan.items
    assert isinstance(EvaluateOptions(reader=my_reader).reader, Reader)  # resolved once, where it is built
    assert plan.reader == "pairs" and plan_file(pairs_file).reader == "pairs"  # auto, resolved
    one_line_error("line 1: instruction_id_list must be", plan_file, pairs_file, None, "queries", False, 0, "ifeval")


def test_evaluate_format_reaches_the_plan_and_a_bad_format_writes_nothing(tmp_path, pairs_file, monkeypatch, capsys):
    from workbench.apps.cli import commands
    from workbench.apps.cli.main import main
    from workbench.apps.file_evaluation import run

    seen = {}

    def evaluate_file(model, data, out, options, plan):
        seen.update(data=data, options=options, plan=plan)
        Path(out).mkdir(parents=True)
        (Path(out) / "report.md").write_text("report")

    monkeypatch.setattr(commands, "_load", lambda args: None)  # no model: the plan is what this test checks
    monkeypatch.setattr(run, "evaluate_file", evaluate_file)
    out = tmp_path / "out"
    assert main(["evaluate", "--data", str(pairs_file), "--format", "pairs", "--out", str(out)]) == 0
    assert seen["options"].reader == "pairs" and len(seen["plan"].items) == 4
    assert "4 records to evaluate" in capsys.readouterr().err
    for bad, message in [("nope", "unknown dataset format 'nope'"), ("no_such_module_xyz:f", "cannot import")]:
        fresh = tmp_path / f"fresh-{len(message)}"
        assert main(["evaluate", "--data", str(pairs_file), "--format", bad, "--out", str(fresh)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0] and not fresh.exists()
    assert main(["evaluate", "--data", str(pairs_file), "--format", "ifeval", "--out", str(tmp_path / "w")]) == 2
    assert "line 1: instruction_id_list must be" in capsys.readouterr().err and not (tmp_path / "w").exists()


def test_a_record_whose_twin_is_its_prompt_is_skipped_with_the_reason_and_trains_nothing(tmp_path):
    """Regression: the same text with and without the instruction (the paper's format file, key 1802)
    made its two conditions one, and with --pairs file put a zero difference into the vector."""
    same = {"prompt_without_instruction": "Explain tides. Wrap it in <<double angular brackets>>."}
    rows = [{"prompt": same["prompt_without_instruction"], **same, "instruction": "detectable_format:title"}]
    rows += [
        {
            "prompt": f"Explain item {k}. Add a title in <<brackets>>.",
            "prompt_without_instruction": f"Explain item {k}.",
            "instruction": "detectable_format:title",
        }
        for k in range(40)
    ]
    path = tmp_path / "p.jsonl"
    write_jsonl(path, rows)
    assert twin(read_dataset(path)[0]) is None and twin(read_dataset(path)[1]) == "Explain item 0."
    plan = plan_file(path)
    assert plan.skipped == {"1": SAME_TWIN} and len(plan.items) == 40
    own = file_pairs(read_dataset(path))["detectable_format:title"]
    assert sum(map(len, own.values())) == 40 and all(
        p.with_instruction != p.without_instruction for ps in own.values() for p in ps
    )


def test_ids_scored_as_the_file_says_or_refused(tmp_path):
    """The paper's instruction_id_list_for_eval: the same ids (a language id with its language appended
    counts as the id) read; fewer is refused, never scored otherwise than the file says."""
    base = {"key": 1, "prompt": "Explain tides in Kannada.", "prompt_without_instruction": "Explain tides."}
    fine, fewer = tmp_path / "fine.jsonl", tmp_path / "fewer.jsonl"
    lang = {"instruction_id_list": ["language:response_language"], "kwargs": [{"language": "kn"}]}
    write_jsonl(fine, [{**base, **lang, "instruction_id_list_for_eval": ["language:response_language_kn"]}])
    two = ["language:response_language", "punctuation:no_comma"]
    write_jsonl(
        fewer,
        [
            {
                **base,
                "instruction_id_list": two,
                "kwargs": [{"language": "kn"}, {}],
                **{"instruction_id_list_for_eval": ["punctuation:no_comma"]},
            }
        ],
    )
    assert read_dataset(fine, "ifeval")[0].instruction_id_list == ["language:response_language"]
    one_line_error("instruction_id_list_for_eval scores punctuation:no_comma of", read_dataset, fewer, "ifeval")


def test_a_file_with_nothing_to_evaluate_is_refused_before_any_model_loads(tmp_path, monkeypatch, capsys):
    """Regression: a file whose every record was skipped (here: no twin) loaded the model, wrote
    rows/scores/summary/report and then failed as "an unexpected error (a bug)"."""
    from workbench.apps.cli.main import main

    path, out = tmp_path / "no_twins.jsonl", tmp_path / "out"
    write_jsonl(
        path,
        [
            {
                "key": k,
                "prompt": f"Write {k}. No commas.",
                "instruction_id_list": ["punctuation:no_comma"],
                "kwargs": [{}],
            }
            for k in range(3)
        ],
    )
    one_line_error("no record can be evaluated; 3 skipped, 3 for no prompt_without_instruction", plan_file, path)
    monkeypatch.setattr("workbench.models.load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    assert main(["evaluate", "--data", str(path), "--model", "tiny-random", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no record can be evaluated" in err[0] and not out.exists()


def test_a_reader_module_runs_once_however_often_the_options_are_copied(tmp_path, monkeypatch):
    """Regression: a module:function reader was imported anew by each EvaluateOptions copy and plan
    (four times per evaluation), and the working folder stayed on sys.path."""
    import sys
    from dataclasses import replace

    runs = tmp_path / "runs.txt"
    (tmp_path / "counted_format_xyz.py").write_text(
        f"open({str(runs)!r}, 'a').write('x')\nfrom workbench.readers import READERS\nread = READERS['pairs'].read\n"
    )
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "pairs.jsonl"
    write_jsonl(
        path,
        [
            {
                "prompt": "Explain tides. No commas.",
                "prompt_without_instruction": "Explain tides.",
                "instruction": "punctuation:no_comma",
            }
        ],
    )
    module = tmp_path / "counted_format_xyz.py"
    options = replace(replace(EvaluateOptions(reader=f"{module}:read"), seed=1), n_train=4)
    assert len(options.plan_for(path).items) == 1 and runs.read_text() == "x"
    assert reader_named("counted_format_xyz:read").name == "counted_format_xyz:read"  # by module name, from here
    assert str(tmp_path) not in sys.path
