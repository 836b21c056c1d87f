"""Generation and sweep options as typed objects: an options object and keywords give the same run,
keywords override the object's fields, bad input is refused where the options are built."""

import dataclasses

import pytest

from workbench import WorkbenchError, generate
from workbench.generation.generate import GenerationOptions
from workbench.sweep import SweepConfig, run_halving
from workbench.sweep.run import SweepOptions, run_sweep
from workbench.sweep.search import HalvingOptions

PROMPTS = ["Describe tides.", "Name a colour.", "Why is the sky blue?"]


def test_an_options_object_and_keywords_generate_the_same_tokens(tiny):
    options = GenerationOptions(max_new_tokens=4, do_sample=True, seed=5, batch_size=2)
    by_object = generate(tiny, PROMPTS, options=options)
    by_keywords = generate(tiny, PROMPTS, max_new_tokens=4, do_sample=True, seed=5, batch_size=2)
    assert by_object == by_keywords and all(len(g.token_ids) <= 4 for g in by_object)
    longer = generate(tiny, PROMPTS, options=options, max_new_tokens=6, stop_at_eos=False)  # keywords win
    assert all(len(g.token_ids) == 6 for g in longer)


def test_generation_options_are_frozen_and_checked_where_built(tiny):
    with pytest.raises(WorkbenchError, match="max_new_tokens must be ≥ 1"):
        GenerationOptions(max_new_tokens=0)
    with pytest.raises(WorkbenchError, match="max_new_tokens must be ≥ 1"):
        generate(tiny, PROMPTS, max_new_tokens=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        GenerationOptions().max_new_tokens = 3
    with pytest.raises(TypeError, match="max_tokens"):
        generate(tiny, PROMPTS, max_tokens=3)  # a misspelled option is not silently ignored
    with pytest.raises(TypeError):
        generate(tiny, PROMPTS, (), 3)  # options are keywords: an old positional max_new_tokens fails loudly


def test_sweep_options_and_keywords_run_the_same_sweep(tiny, tmp_path):
    config = SweepConfig(
        model="tiny-random",
        instructions=("one_sentence",),
        layers=(1,),
        coefficients=(1.0,),
        n_train=6,
        n_prompts=3,
        max_new_tokens=3,
        conditions=(False,),
    )
    by_object = run_sweep(tiny, config, tmp_path / "a", options=SweepOptions(progress=False, rows_per_batch=2)).table
    by_keywords = run_sweep(tiny, config, tmp_path / "b", progress=False, rows_per_batch=2).table
    assert by_object.equals(by_keywords)
    assert issubclass(HalvingOptions, SweepOptions) and HalvingOptions().first == 5  # the screen (SCREEN_PROMPTS)
    with pytest.raises(WorkbenchError, match="first"):
        run_halving(tiny, config, tmp_path / "c", options=HalvingOptions(first=3, progress=False))
