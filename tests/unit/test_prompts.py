"""Catalog, queries, splits, pairs and the IFEval JSONL loader."""

import json

import pytest

from workbench import WorkbenchError, catalog
from workbench.instructions import SPLITS, get_instruction, load_ifeval_jsonl, make_pairs, queries
from workbench.models import tiny_model

FAMILIES = {"format", "length", "keyword", "language"}


def test_catalog_covers_the_papers_families():
    cat = catalog()
    assert {i.family for i in cat.values()} == FAMILIES
    for needed in (
        "lowercase",
        "capitals",
        "json",
        "no_commas",
        "quotation",
        "end_phrase",
        "one_sentence",
        "include_word",
        "french",
    ):
        assert needed in cat
    assert all(len(i.phrasings) >= 3 for i in cat.values())


def test_catalog_ids_are_real_ifeval_checkers():
    from workbench.checkers import ifeval_registry

    registry = ifeval_registry()
    for inst in catalog().values():
        assert inst.ifeval_id in registry
        checker = registry[inst.ifeval_id](inst.ifeval_id)
        checker.build_description(**inst.kwargs)  # raises on kwargs the checker does not take


def test_queries_are_many_neutral_and_split_disjointly():
    all_q = queries()
    assert len(all_q) >= 300 and len({q.text for q in all_q}) == len(all_q)
    splits = {s: {q.text for q in queries(s)} for s in SPLITS}
    assert sum(map(len, splits.values())) == len(all_q)
    assert not (splits["train"] & splits["test"]) and not (splits["validation"] & splits["test"])
    words = ("lowercase", "json", "sentence", "french", "comma", "quotation")
    assert not any(w in q.text.lower() for q in all_q for w in words)


def test_splits_are_deterministic_and_seeded():
    assert [q.id for q in queries("test")] == [q.id for q in queries("test")]
    assert {q.id for q in queries("test", seed=1)} != {q.id for q in queries("test")}


def test_pairs_differ_only_by_the_instruction():
    for pair in make_pairs("no_commas", "validation", limit=5):
        assert pair.with_instruction == f"{pair.without_instruction} {pair.phrasing}"


def test_pairs_use_the_models_chat_template():
    model = tiny_model()
    pair = make_pairs("json", limit=1)[0]
    text = model.chat(pair.with_instruction)
    assert text.startswith("<|im_start|>user\n") and text.endswith("<|im_start|>assistant\n")


def test_parameterised_instruction():
    inst = get_instruction("include_word").with_params(keyword="ocean")
    assert inst.kwargs == {"keywords": ["ocean"]} and "ocean" in inst.phrasing(0)
    with pytest.raises(WorkbenchError, match="parameters"):
        inst.with_params(colour="red")


def test_unknown_instruction_and_split():
    with pytest.raises(WorkbenchError, match="unknown instruction 'shout'"):
        get_instruction("shout")
    with pytest.raises(WorkbenchError, match="unknown split"):
        queries("dev")


def test_ifeval_jsonl_loader(tmp_path):
    path = tmp_path / "set.jsonl"
    rows = [
        {
            "key": 1,
            "prompt": "Write about dogs. Answer in French only.",
            "instruction_id_list": ["language:response_language"],
            "kwargs": [{"language": "fr", "num_words": None}],
            "prompt_without_instruction": "Write about dogs.",
        },
        {"key": 2, "prompt": "Write about cats.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    got = load_ifeval_jsonl(path)
    assert got[0].kwargs == [{"language": "fr"}] and got[0].prompt_without_instruction == "Write about dogs."
    assert got[1].prompt_without_instruction is None
    (tmp_path / "bad.jsonl").write_text('{"prompt": "x"}\n')
    with pytest.raises(WorkbenchError, match="bad.jsonl line 1"):
        load_ifeval_jsonl(tmp_path / "bad.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(WorkbenchError, match="no examples"):
        load_ifeval_jsonl(tmp_path / "empty.jsonl")
