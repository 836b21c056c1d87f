"""The explorer's controls, driven directly: a moved slider generates with the new setting and puts
its text on screen; in the background, a burst of moves ends on the last setting's text."""

import html
import time

import pytest

pytest.importorskip("ipywidgets", reason="the explorer needs ipywidgets: pip install 'workbench[notebook]'")

from workbench import generate  # noqa: E402
from workbench.apps.explorer import Explorer, Setting  # noqa: E402
from workbench.store import cached_vector  # noqa: E402


@pytest.fixture(autouse=True)
def cache(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))


def _steered(tiny, setting: Setting, max_new_tokens: int = 6) -> str:
    """The same reply computed without the explorer."""
    vec = cached_vector(tiny, setting.instruction, n_pairs=4)
    spec = (
        vec.steer(setting.layer, mode="project", positions=setting.positions)
        if setting.mode == "project"
        else vec.steer(setting.layer, setting.coefficient, positions=setting.positions)
    )
    return generate(tiny, [setting.prompt], steer=spec, max_new_tokens=max_new_tokens)[0].text


def test_moving_a_slider_generates_with_the_new_setting(tiny, monkeypatch):
    ex = Explorer(
        tiny, instruction="one_sentence", prompt="Describe tides.", max_new_tokens=6, n_pairs=4, background=False
    )
    calls = []
    real = generate

    def spy(model, prompts, steer=(), **kw):
        calls.append(getattr(steer, "layer", None))
        return real(model, prompts, steer=steer, **kw)

    monkeypatch.setattr("workbench.apps.explorer.generate", spy)
    ex.layer.value = 3
    assert calls == [3]  # the unsteered reply is cached per prompt
    expected = _steered(tiny, ex.setting())
    assert html.escape(expected) in ex.steered_out.value
    ex.mode.value = "project"
    assert calls == [3, 3] and "project" in ex.status.value and len(ex.timings) == 3
    assert "follows" in ex.plain_out.value and "log-prob" in ex.steered_out.value


def test_a_burst_of_moves_in_the_background_ends_on_the_last_setting(tiny):
    ex = Explorer(
        tiny, instruction="one_sentence", prompt="Describe tides.", max_new_tokens=6, n_pairs=4, debounce_s=0.05
    )
    for layer in (0, 1, 2, 3, 1):
        ex.layer.value = layer
    deadline = time.time() + 60
    while (not ex.timings or ex.setting().layer != 1 or "layer 1" not in ex.status.value) and time.time() < deadline:
        time.sleep(0.05)
    assert "layer 1," in ex.status.value
    expected = _steered(tiny, ex.setting())
    assert html.escape(expected) in ex.steered_out.value


def test_a_bad_instruction_is_shown_not_raised(tiny):
    ex = Explorer(tiny, instruction="one_sentence", max_new_tokens=4, n_pairs=4, background=False)
    ex.instruction.value = "yell loudly"
    assert "error" in ex.status.value.lower() or "unknown" in ex.status.value.lower()
