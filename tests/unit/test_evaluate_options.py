"""``EvaluateOptions``: one typed object for an evaluation's choices, checked where it is built; the
old keyword spelling still works and overrides it."""

from dataclasses import FrozenInstanceError

import pytest

from workbench import WorkbenchError
from workbench.apps.file_evaluation.plan import EvaluateOptions
from workbench.apps.file_evaluation.run import _options, evaluate_file


def test_defaults_are_the_old_keyword_defaults():
    """All as the keywords had them, but 18 validation prompts (12 before 0.2): a screen of 5 and 13 for
    the finalists, 80 % power at a gain of half the failing prompts."""
    o = EvaluateOptions()
    assert (o.n_train, o.sweep_prompts, o.pairs, o.search, o.seed, o.max_new_tokens) == (
        64,
        18,
        "queries",
        "halving",
        0,
        None,
    )
    with pytest.raises(FrozenInstanceError):
        o.n_train = 3


@pytest.mark.parametrize(
    "bad, message", [({"search": "grid"}, "unknown search 'grid'"), ({"pairs": "web"}, "unknown pair source 'web'")]
)
def test_a_bad_option_fails_where_it_is_built(bad, message, tiny):
    with pytest.raises(WorkbenchError, match=message):
        EvaluateOptions(**bad)
    with pytest.raises(WorkbenchError, match=message):  # before the file is read or a model is needed
        evaluate_file(tiny, "/nonexistent.jsonl", "/nonexistent", **bad)


def test_keywords_override_a_given_options_object():
    base = EvaluateOptions(layers=(1, 2), n_train=4)
    merged = _options(base, {"n_train": 8, "conditional": True})
    assert merged == EvaluateOptions(layers=(1, 2), n_train=8, conditional=True) and base.n_train == 4
    with pytest.raises(TypeError, match="sweep_promps"):
        _options(None, {"sweep_promps": 3})
