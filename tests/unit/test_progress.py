"""Runs you can watch and trust: broken steering raises instead of an empty reply, every long stage
shows a bar that moves per decode step (or per recording batch) in units that make its ETA honest,
and torch's CPU thread count has a sane default that the user can override."""

import pytest
import torch
from tqdm.auto import tqdm

from workbench import generate
from workbench.errors import WorkbenchError
from workbench.generation.steering import Steer
from workbench.models import TINY_MODEL, load_model
from workbench.sweep import SweepConfig, catalog_examples, four_conditions, load_table, run_halving, run_sweep

PROMPTS = ["Describe tides.", "Name a colour.", "Say hello to the reader in a short sentence.", "Why is the sky blue?"]


class Recorder(tqdm):
    """A silent bar that keeps every update."""

    def __init__(self, *args, **kwargs):
        kwargs.pop("disable", None)
        super().__init__(*args, disable=True, **kwargs)
        self.updates: list[float] = []
        Recorder.last = self

    def update(self, n=1):
        self.updates.append(n)
        self.n += n


# --- non-finite steering ------------------------------------------------------------------------


@pytest.mark.parametrize("compile", [False, True])
def test_a_huge_coefficient_raises_instead_of_an_empty_reply(tiny, compile):
    direction = torch.randn(tiny.d_model, generator=torch.Generator().manual_seed(0))
    with pytest.raises(
        WorkbenchError, match=r"non-finite logits at new token 1 \(prompts 0, 1\).*coefficient too large"
    ):
        generate(tiny, PROMPTS[:2], steer=Steer(direction, 2, 1e30), max_new_tokens=4, compile=compile)


def test_only_the_broken_prompts_are_named(tiny):
    direction = torch.randn(tiny.d_model, generator=torch.Generator().manual_seed(0))
    per_row = torch.tensor([1.0, 1e30, float("nan")])  # NaN: unsteered
    with pytest.raises(WorkbenchError, match=r"\(prompts 1\)"):
        generate(tiny, PROMPTS[:3], steer=Steer(direction, 2, per_row), max_new_tokens=4)


def test_nan_in_the_residual_stream_raises(tiny):
    def poison(x, hook):
        return x * float("nan")

    with (
        tiny.bridge.hooks(fwd_hooks=[(tiny.hook_name(1), poison)]),
        pytest.raises(WorkbenchError, match="non-finite logits"),
    ):
        generate(tiny, PROMPTS[:1], max_new_tokens=3)


# --- per-step progress ----------------------------------------------------------------------------


@pytest.mark.parametrize("compile", [False, True])
def test_on_step_counts_the_token_budget_with_rows_ending_early(tiny, monkeypatch, compile):
    plain = generate(tiny, PROMPTS, max_new_tokens=8)
    stop = plain[0].token_ids[1]  # prompt 0 ends at its second new token
    assert all(stop not in g.token_ids for g in plain[1:]) and stop != plain[0].token_ids[0], "pick another stop token"
    monkeypatch.setattr(tiny, "stop_token_ids", [stop])
    steps: list[int] = []
    got = generate(tiny, PROMPTS, max_new_tokens=8, on_step=steps.append, compile=compile)
    assert got[0].stopped and len(got[0].token_ids) == 1
    assert steps == [
        4,
        4 + 6,
        3,
        3,
        3,
        3,
        3,
        3,
    ]  # a token a row; at its end, prompt 0 hands back the 6 steps it will not take
    assert sum(steps) == len(PROMPTS) * 8


def test_on_step_takes_back_a_batch_that_ran_out_of_memory(tiny, monkeypatch):
    forward, calls = type(tiny).forward, []

    def tight(self, ids, *args, **kwargs):
        calls.append(ids.shape[0])
        if ids.shape[0] > 2 and len(calls) > 2:  # the big batch fails after two steps were reported
            raise torch.OutOfMemoryError("injected")
        return forward(self, ids, *args, **kwargs)

    monkeypatch.setattr(type(tiny), "forward", tight)
    steps: list[int] = []
    with pytest.warns(UserWarning, match="out of memory"):
        generate(tiny, PROMPTS, max_new_tokens=5, batch_size=4, on_step=steps.append)
    assert any(n < 0 for n in steps) and sum(steps) == len(PROMPTS) * 5


SWEEP = dict(
    model=TINY_MODEL,
    instructions=("one_sentence",),
    layers=(1, 2),
    coefficients=(1.0,),
    n_train=8,
    n_prompts=3,
    max_new_tokens=5,
    conditions=(False,),
)


def test_the_sweep_bar_moves_every_decode_step_in_token_budget(tiny, tmp_path):
    bar = Recorder(total=0)
    table = run_sweep(tiny, SweepConfig(**SWEEP), tmp_path, bar=bar, rows_per_batch=64).table
    assert sum(bar.updates) == len(table) * 5  # rows × max_new_tokens: where the ETA comes from
    assert len([n for n in bar.updates if n]) >= 5  # one batch of 5 steps moved it 5 times, not once


def test_the_halving_bar_ends_at_the_budget_it_ran(tiny, tmp_path, monkeypatch):
    import workbench.sweep.search as search

    monkeypatch.setattr(search, "tqdm", Recorder)
    run_halving(
        tiny, SweepConfig(**{**SWEEP, "n_prompts": 4}), tmp_path, first=2, keep=1, stop_early=False
    )  # the random model beats nothing: both rounds only without the early stop
    bar = Recorder.last
    generated = len(load_table(tmp_path / "round1")) + len(load_table(tmp_path / "round2"))
    assert bar.n == bar.total == generated * 5 and len(bar.updates) > 2 * 5


def test_the_four_conditions_show_a_bar(tiny, tiny_vector, capsys):
    examples = catalog_examples("one_sentence", "test", limit=2)
    steer = [tiny_vector.steer(2, 1.0)]
    four_conditions(tiny, examples, steer, steer, "watched label", max_new_tokens=3)
    err = capsys.readouterr().err
    assert "watched label" in err and "tok" in err


# --- vector recording ------------------------------------------------------------------------------


def test_recording_vectors_for_a_sweep_shows_a_bar(tiny, tmp_path, capsys):
    from workbench.store import vectors_for

    vectors_for(tiny, ["one_sentence"], tmp_path, 6)
    assert "recording vectors" in capsys.readouterr().err
    vectors_for(tiny, ["one_sentence"], tmp_path, 6)  # cached: nothing recorded, no bar
    assert "recording vectors" not in capsys.readouterr().err


def test_cached_vector_shows_a_bar_when_asked(tiny, tmp_path, capsys):
    from workbench.store import cached_vector

    cached_vector(tiny, "lowercase", n_pairs=6, root=tmp_path, progress=True)
    assert "recording vectors" in capsys.readouterr().err


def test_recording_moves_in_batches_of_at_most_record_rows(tiny, monkeypatch):
    import workbench.extract as extract

    whole = extract.record_last_token(tiny, PROMPTS * 2)
    monkeypatch.setattr(extract, "RECORD_ROWS", 3)
    forward, calls = type(tiny).forward, []
    monkeypatch.setattr(
        type(tiny), "forward", lambda self, ids, *a, **k: calls.append(ids.shape[0]) or forward(self, ids, *a, **k)
    )
    torch.testing.assert_close(extract.record_last_token(tiny, PROMPTS * 2, progress=True), whole, atol=1e-4, rtol=1e-4)
    assert calls == [3, 3, 2]


# --- CPU threads -------------------------------------------------------------------------------------


@pytest.fixture
def threads(monkeypatch):
    """torch's thread count, restored after the test; neither variable set unless the test sets it."""
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("WORKBENCH_THREADS", raising=False)
    yield monkeypatch
    torch.set_num_threads(before)


def test_workbench_threads_sets_torchs_thread_count(threads):
    from workbench.threads import set_cpu_threads

    threads.setenv("WORKBENCH_THREADS", "1")
    torch.set_num_threads(2)
    assert set_cpu_threads() == 1 and torch.get_num_threads() == 1


def test_the_users_omp_num_threads_is_respected(threads):
    from workbench.threads import set_cpu_threads

    threads.setenv("OMP_NUM_THREADS", "2")
    torch.set_num_threads(3)
    assert set_cpu_threads() is None and torch.get_num_threads() == 3


def test_the_default_is_half_the_cores_between_one_and_eight(threads):
    from workbench.threads import default_threads, set_cpu_threads, usable_cpus

    assert [default_threads(n) for n in (1, 2, 4, 16, 32, 128)] == [1, 1, 2, 8, 8, 8]
    assert set_cpu_threads() == default_threads(usable_cpus()) == torch.get_num_threads()
    torch.set_num_threads(3)
    assert set_cpu_threads("cuda") is None and torch.get_num_threads() == 3  # a GPU's CPU threads are left alone


def test_a_bad_workbench_threads_is_one_line(threads):
    from workbench.threads import set_cpu_threads

    threads.setenv("WORKBENCH_THREADS", "many")
    with pytest.raises(WorkbenchError, match="WORKBENCH_THREADS must be a positive whole number"):
        set_cpu_threads()


def test_load_model_applies_the_thread_setting(threads):
    threads.setenv("WORKBENCH_THREADS", "1")
    torch.set_num_threads(2)
    load_model(TINY_MODEL)
    assert torch.get_num_threads() == 1
