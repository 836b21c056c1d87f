"""Instructions from IFEval's registry, the catalog and free text; grouping, budgets, file pairs."""

import json

import pytest

from workbench import WorkbenchError
from workbench.checkers import ifeval_registry
from workbench.instructions import (
    DEFAULT_BUDGET,
    EITHER,
    IFEVAL_IDS,
    PROHIBITION,
    REQUIREMENT,
    SPLITS,
    TRUNCATION,
    Group,
    IFEvalExample,
    Instruction,
    budget,
    catalog,
    describe,
    file_pairs,
    get_instruction,
    ifeval_records,
    instantiate,
    make_pairs,
    parse_group_by,
    parse_spelling,
    spelling,
    split_of,
    truncation,
    vector_groups,
)

QUERY = "Explain how volcanoes work."


def every_id() -> list[Instruction]:
    return [
        Instruction.ifeval(i, **({"language": "de"} if i == "language:response_language" else {})) for i in IFEVAL_IDS
    ]


def test_the_listed_ids_are_lm_evals():
    assert set(IFEVAL_IDS) == set(ifeval_registry()) and len(IFEVAL_IDS) == 25


def test_every_id_builds_with_the_registrys_own_text():
    for inst in every_id():
        filled = instantiate(inst, QUERY)
        assert not filled.per_query, inst.id
        assert filled.phrasing(0) == describe(filled.ifeval_id, filled.kwargs), (
            inst.id
        )  # placeholders filled = built from the values
        assert not any(p in json.dumps(filled.kwargs) for p in ("{keyword}", "{query}"))
        assert filled.check("", "").strict is False  # an empty reply follows nothing


def test_per_query_kwargs_come_from_the_query():
    inst = instantiate(Instruction.ifeval("keywords:existence"), QUERY)
    assert inst.kwargs == {"keywords": ["volcanoes"]} and "volcanoes" in inst.phrasing(0)
    repeat = instantiate(Instruction.ifeval("combination:repeat_prompt"), QUERY)
    assert repeat.kwargs == {"prompt_to_repeat": QUERY}
    assert Instruction.ifeval("keywords:existence", keywords=["ocean"]).kwargs == {"keywords": ["ocean"]}  # given: kept


def test_catalog_phrasings_join_the_matching_ifeval_instruction():
    fr = Instruction.ifeval("language:response_language", language="fr")
    assert fr.phrasings[0].startswith("Your ENTIRE response should be in French")
    assert set(catalog()["french"].phrasings) <= set(fr.phrasings)
    de = Instruction.ifeval("language:response_language", language="de")
    assert len(de.phrasings) == 1 and "German" in de.phrasings[0]
    assert de.id == "language:response_language[language=de]" and de.family == "language"


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"language": "de"}, {"keywords": ["ocean", "tide"]}, {"end_phrase": "Peace, friend!", "num_highlights": 3}],
)
def test_spelling_round_trips(kwargs):
    assert parse_spelling(spelling("x:y", kwargs)) == ("x:y", kwargs)


def test_get_instruction_takes_every_spelling():
    assert get_instruction("french") == catalog()["french"]
    assert get_instruction("detectable_format:number_highlighted_sections[num_highlights=3]").kwargs == {
        "num_highlights": 3
    }
    assert get_instruction("text:Answer like a pirate.").phrasings == ("Answer like a pirate.",)
    assert not get_instruction("text:Answer like a pirate.").checkable


@pytest.mark.parametrize(
    "spelling_, message",
    [
        ("detectable_format:tittle", "unknown instruction"),
        ("language:response_language", "needs language"),
        ("language:response_language[language=xx]", "unknown language 'xx'"),
        ("startend:end_checker[phrase=Bye]", "takes end_phrase, not phrase"),
        ("length_constraints:number_words[relation=about]", "bad kwargs"),
    ],
)
def test_bad_instructions_say_what_to_do(spelling_, message):
    with pytest.raises(WorkbenchError, match=message):
        get_instruction(spelling_)


def test_custom_instruction_with_a_python_checker_is_checked():
    pirate = Instruction.custom("Answer like a pirate.", check=lambda r: r.lower().startswith("arr"))
    assert pirate.checkable and pirate.source == "custom"
    assert pirate.check("Arr, the sea!").strict
    german = Instruction.custom("Antworte auf Deutsch.", check="language:response_language", language="de")
    assert german.ifeval_id == "language:response_language" and german.kwargs == {"language": "de"}
    with pytest.raises(WorkbenchError, match="no checker"):
        Instruction.custom("Answer like a pirate.").check("Arr")
    with pytest.raises(WorkbenchError, match="need an IFEval id"):
        Instruction.custom("Be brief.", language="de")


def _at_most_20_words(reply: str) -> bool:
    return len(reply.split()) <= 20


def test_a_custom_checker_is_strict_unless_it_opts_in_to_loose():
    """Issue 35: IFEval's loose rewrites passed an "at most 20 words" reply whose first line (not the
    rule) was dropped, so a custom checker's loose verdict is its strict one unless it opts in."""
    reply = " ".join(["word"] * 15) + "\n" + " ".join(["more"] * 10)  # 25 words; 10 without its first line
    brief = Instruction.custom("Answer in at most 20 words.", check=_at_most_20_words, id="brief")
    strict = brief.check(reply)
    assert not strict.strict and not strict.loose and strict.loose_each == (False,)
    opted = Instruction.custom("Answer in at most 20 words.", check=_at_most_20_words, id="brief", loose=True)
    lenient = opted.check(reply)
    assert not lenient.strict and lenient.loose and lenient.loose_each == (True,)
    assert opted.check("Short.").loose and brief.check("Short.").loose  # a strict pass passes loose too
    assert brief.spec()["checker"]["loose"] is False and opted.spec()["checker"]["loose"] is True
    assert brief != opted and "loose" in repr(opted)


def test_an_ifeval_id_keeps_its_loose_rewrite():
    reply = "Sure!\nThe sea is calm."  # one sentence once the first line is dropped
    for inst in (
        Instruction.ifeval("length_constraints:number_sentences", num_sentences=2, relation="less than"),
        Instruction.custom("One sentence.", check="length_constraints:number_sentences", num_sentences=2),
    ):
        verdict = inst.check(reply)
        assert not verdict.strict and verdict.loose, inst
    with pytest.raises(WorkbenchError, match="loose=True is for a Python checker"):
        Instruction.custom("One sentence.", check="length_constraints:number_sentences", loose=True)
    with pytest.raises(WorkbenchError, match="loose=True is for a Python checker"):
        Instruction.custom("Answer like a pirate.", loose=True)


@pytest.mark.parametrize(
    "ifeval_id, kwargs, kind",
    [
        ("punctuation:no_comma", {}, PROHIBITION),
        ("change_case:english_lowercase", {}, PROHIBITION),
        ("change_case:english_capital", {}, PROHIBITION),
        ("keywords:forbidden_words", {"forbidden_words": ["sea"]}, PROHIBITION),
        ("length_constraints:number_words", {"num_words": 40, "relation": "less than"}, PROHIBITION),
        ("length_constraints:number_words", {"num_words": 300, "relation": "at least"}, REQUIREMENT),
        ("length_constraints:number_sentences", {"num_sentences": 5, "relation": "at least"}, REQUIREMENT),
        ("keywords:frequency", {"keyword": "sea", "frequency": 2, "relation": "less than"}, PROHIBITION),
        ("keywords:letter_frequency", {"letter": "z", "let_frequency": 3, "let_relation": "at least"}, REQUIREMENT),
        ("change_case:capital_word_frequency", {"capital_frequency": 3, "capital_relation": "less than"}, PROHIBITION),
        ("keywords:existence", {"keywords": ["sea"]}, REQUIREMENT),
        ("detectable_content:postscript", {"postscript_marker": "P.S."}, REQUIREMENT),
        ("detectable_format:multiple_sections", {"num_sections": 3}, REQUIREMENT),
        ("startend:end_checker", {"end_phrase": "Bye."}, EITHER),  # the phrase may come; text may follow it
        ("detectable_format:json_format", {}, EITHER),
        ("length_constraints:number_paragraphs", {"num_paragraphs": 3}, EITHER),  # exactly 3
        ("length_constraints:number_words", {"num_words": 40}, EITHER),  # no relation: cannot tell
        ("custom:brief", {}, EITHER),  # a custom checker: cannot tell
    ],
)
def test_truncation_says_what_more_tokens_could_do(ifeval_id, kwargs, kind):
    assert truncation(ifeval_id, kwargs) == kind


def test_truncation_knows_every_ifeval_id():
    assert set(TRUNCATION) == set(IFEVAL_IDS)
    assert all(truncation(i, {}) in (REQUIREMENT, PROHIBITION, EITHER) for i in IFEVAL_IDS)


def _names(ifeval_id, group_by=None, **kwargs):
    return [name for name, _ in vector_groups(Instruction.ifeval(ifeval_id, **kwargs), group_by)]


def test_grouping_rule_and_override():
    assert _names("language:response_language", language="de") == ["language:response_language[language=de]"]
    assert _names("startend:end_checker", end_phrase="Peace!") == ["startend:end_checker"]
    by_phrase = parse_group_by(["startend:end_checker=end_phrase"])
    assert _names("startend:end_checker", by_phrase, end_phrase="Peace!") == ["startend:end_checker[end_phrase=Peace!]"]
    assert _names("language:response_language", parse_group_by(["language:response_language="]), language="de") == [
        "language:response_language"
    ]
    assert _names("keywords:frequency", {"keywords:frequency": ("*",)}, keyword="a", frequency=2) == [
        "keywords:frequency[frequency=2,keyword=a,relation=at least]"
    ]


def test_keywords_get_one_vector_per_word_by_default():
    """The paper's keyword vectors: a word list names one group per word, each member fixed to its word
    (not the query's topic word), and ``ID=`` restores one vector per id over the queries' own words."""
    groups = vector_groups(Instruction.ifeval("keywords:existence", keywords=["apple", "river", "apple"]))
    assert [n for n, _ in groups] == ["keywords:existence[keywords=apple]", "keywords:existence[keywords=river]"]
    member = groups[0][1]
    assert member.kwargs["keywords"] == ["apple"] and not member.per_query and "apple" in member.phrasing(0)
    assert member.check("I like apple pie.").strict and not member.check("I like pears.").strict
    (forbidden,) = vector_groups(Instruction.ifeval("keywords:forbidden_words", forbidden_words=["cake"]))
    assert (
        forbidden[0] == "keywords:forbidden_words[forbidden_words=cake]"
        and forbidden[1].check("no sweets").strict
        and not forbidden[1].check("cake!").strict
    )
    (frequency,) = vector_groups(
        Instruction.ifeval("keywords:frequency", keyword="sun", frequency=2, relation="at least")
    )
    assert frequency[0] == "keywords:frequency[keyword=sun]" and frequency[1].kwargs["frequency"] == 2
    ((name, generic_member),) = vector_groups(
        Instruction.ifeval("keywords:existence", keywords=["apple"]), parse_group_by(["keywords:existence="])
    )
    assert name == "keywords:existence" and generic_member.per_query

    with pytest.raises(WorkbenchError, match="bad --group-by"):
        parse_group_by(["end_phrase"])


def test_group_pairs_rotate_over_members():
    a = Instruction.ifeval("startend:end_checker", end_phrase="Peace!")
    b = Instruction.ifeval("startend:end_checker", end_phrase="Bye now.")
    pairs = make_pairs(Group("startend:end_checker", (a, b)), "train", limit=6)
    assert [p.instruction.kwargs["end_phrase"] for p in pairs] == ["Peace!", "Bye now."] * 3


def test_budgets():
    assert budget("punctuation:no_comma") == DEFAULT_BUDGET
    assert budget("detectable_format:multiple_sections") > budget("detectable_format:json_format") > DEFAULT_BUDGET
    assert budget("length_constraints:number_words", {"num_words": 300, "relation": "at least"}) >= 480
    assert budget("length_constraints:number_words", {"num_words": 300, "relation": "less than"}) == DEFAULT_BUDGET
    group = Group("g", (get_instruction("json"), get_instruction("no_commas")))
    assert group.budget == budget("detectable_format:json_format")


def _examples(n: int, start: int = 0) -> list[IFEvalExample]:
    out = []
    for i in range(start, start + n):
        base = f"Tell me about topic number {i}."
        for lang in ("de", "fr"):
            out.append(
                IFEvalExample(
                    f"{i}-{lang}",
                    f"{base} Answer in {lang}.",
                    ["language:response_language"],
                    [{"language": lang}],
                    base,
                )
            )
    return out


def test_file_pairs_never_put_a_query_in_two_splits():
    pairs = file_pairs(_examples(60))
    assert set(pairs) == {"language:response_language[language=de]", "language:response_language[language=fr]"}
    where: dict[str, set] = {}
    for splits in pairs.values():
        for split, ps in splits.items():
            for p in ps:
                where.setdefault(p.query, set()).add(split)
    assert all(len(s) == 1 for s in where.values())
    sizes = {s: len(pairs["language:response_language[language=de]"][s]) for s in SPLITS}
    assert all(sizes[s] > 5 for s in SPLITS), sizes


def test_file_pairs_are_stable_when_records_are_added():
    before = file_pairs(_examples(40))
    after = file_pairs(_examples(40) + _examples(30, start=40))
    for group, splits in before.items():
        for split, ps in splits.items():
            kept = {p.query_id for p in after[group][split]}
            assert {p.query_id for p in ps} <= kept
    assert split_of("x", seed=0) == split_of("x", seed=0)


def test_synthetic_records_cover_every_id():
    records = ifeval_records(
        every_id() + [[get_instruction("no_commas"), get_instruction("lowercase")]], per_instruction=1
    )
    assert {i for r in records for i in r["instruction_id_list"]} == set(IFEVAL_IDS)
    assert records[-1]["instruction_id_list"] == ["punctuation:no_comma", "change_case:english_lowercase"]
    for r in records:
        assert (
            r["prompt"].startswith(r["prompt_without_instruction"]) and r["prompt"] != r["prompt_without_instruction"]
        )


@pytest.mark.parametrize("name, n_records, n_ids", [("format13", 156, 13), ("all_ids", 116, 25)])
def test_the_committed_data_files_are_what_their_scripts_build(name, n_records, n_ids):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).parent.parent / "data" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = [json.loads(line) for line in script.with_suffix(".jsonl").read_text().splitlines()]
    assert committed == module.records()
    assert len(committed) == n_records and len({i for r in committed for i in r["instruction_id_list"]}) == n_ids


def test_the_demo_screens_the_catalog_or_every_id():
    from workbench.apps.study.run import screen_instructions

    assert screen_instructions(("catalog",)) == tuple(catalog())
    every = screen_instructions(())
    assert screen_instructions(("all",)) == every
    assert {get_instruction(n).ifeval_id for n in every} == set(IFEVAL_IDS) and len(every) == 26
    assert screen_instructions(("json", "french")) == ("json", "french")
