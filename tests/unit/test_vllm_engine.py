"""``workbench.vllm_engine`` without vLLM: the package imports, a missing vLLM is a one-line error,
and the worker-side token map (each token of a flattened batch → its request's prompt index, prompt
or generated from its position) steers exactly the tokens the workbench would, on a fake V1 runner."""

import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from workbench.errors import WorkbenchError
from workbench.vllm_engine import ROW_KEY, VLLMEngine, WorkerSteering, import_vllm

D = 8


class Layer(torch.nn.Module):
    """A decoder layer as vLLM's: (positions, hidden, residual) -> (hidden, residual)."""

    def forward(self, positions, hidden, residual):
        return hidden * 2, hidden if residual is None else residual


def fake_runner():
    """Three requests in batch order a, b, c, then one padding token: a (prompt 1, prompt length 3)
    prefills positions 0-2, b (prompt 0, prompt length 2) decodes position 4, c is not ours."""
    req = lambda row, n: SimpleNamespace(
        sampling_params=SimpleNamespace(extra_args=None if row is None else {ROW_KEY: row}), num_prompt_tokens=n
    )  # noqa: E731
    model = SimpleNamespace(model=SimpleNamespace(layers=torch.nn.ModuleList([Layer(), Layer()])))
    model.parameters = lambda: iter([torch.zeros(1)])
    return SimpleNamespace(
        input_batch=SimpleNamespace(req_ids=["a", "b", "c"], num_reqs=3),
        requests={"a": req(1, 3), "b": req(0, 2), "c": req(None, 1)},
        query_start_loc=SimpleNamespace(np=np.array([0, 3, 4, 5])),
        get_model=lambda: model,
    )


@pytest.mark.parametrize(
    "positions, steered",
    [("all", [7, 7, 7, 5, 0, 0]), ("prompt", [7, 7, 7, 0, 0, 0]), ("generated", [0, 0, 0, 5, 0, 0])],
)
def test_each_token_is_steered_by_its_request(positions, steered):
    runner = fake_runner()
    layers = runner.get_model().model.layers
    steering = WorkerSteering(runner)
    u = torch.nn.functional.one_hot(torch.tensor(3), D).float()
    steering.load(
        [{"layer": 1, "unit": u.tolist(), "coefficients": [5.0, 7.0], "mode": "add", "positions": positions}], [], 2
    )
    pos, x = torch.tensor([0, 1, 2, 4, 0, 0]), torch.ones(6, D)
    hidden, residual = layers[1](pos, *layers[0](pos, x, None))
    stream = hidden + residual  # 2x + x after layer 0, doubled hidden again after layer 1: 4x + x
    assert torch.equal(stream - 5 * x, torch.tensor(steered, dtype=torch.float)[:, None] * u)


def test_a_nan_row_is_unsteered_and_the_last_prompt_token_is_probed():
    runner = fake_runner()
    layers = runner.get_model().model.layers
    steering = WorkerSteering(runner)
    u = torch.nn.functional.one_hot(torch.tensor(0), D).float()
    steering.load(
        [{"layer": 0, "unit": u.tolist(), "coefficients": [5.0, float("nan")], "mode": "project", "positions": "all"}],
        [{"layer": 0, "unit": u.tolist()}],
        2,
    )
    pos, x = torch.tensor([0, 1, 2, 4, 0, 0]), torch.arange(6.0)[:, None].repeat(1, D)
    hidden, residual = layers[0](pos, x, None)
    assert (hidden + residual)[:, 0].tolist() == [0, 3, 6, 5, 12, 15]  # only b's token (prompt 0) set to 5
    assert (
        steering.probed[0][1] == 6 and steering.probed[0][0].isnan()
    )  # a's last prompt token (position 2); b has none here


def test_steering_that_overflows_is_flagged_not_silent():
    """As the workbench's engine refuses NaN/inf logits: a stream that steering makes non-finite, at
    the steered layer or later (here the last layer doubles it past float32's range), sets the flag
    that ``VLLMEngine.generate`` reads after the batch; a finite one leaves it clear."""
    runner = fake_runner()
    layers = runner.get_model().model.layers
    steering = WorkerSteering(runner)
    u = torch.nn.functional.one_hot(torch.tensor(0), D).float()
    pos, x = torch.tensor([0, 1, 2, 4, 0, 0]), torch.ones(6, D)
    for coefficient, broken in ((5.0, False), (3e38, True)):
        steering.load(
            [
                {
                    "layer": 0,
                    "unit": u.tolist(),
                    "coefficients": [coefficient, coefficient],
                    "mode": "add",
                    "positions": "all",
                }
            ],
            [],
            2,
        )
        layers[1](pos, *layers[0](pos, x, None))
        assert bool(steering.broken) is broken


def test_without_vllm_the_error_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    for attempt in (import_vllm, lambda: VLLMEngine("smollm2-135m-instruct")):
        with pytest.raises(WorkbenchError, match="make vllm") as error:
            attempt()
        assert "\n" not in str(error.value)


class FakeBackend:
    """Stands in for a VLLMEngine: records what generate hands it."""

    def __init__(self):
        self.calls = []

    def generate(self, prompts, steer=(), **options):
        from workbench.generate import Generation

        self.calls.append((list(prompts), steer, options))
        return [Generation(p, "from the backend", (1,), True) for p in prompts]


def test_generate_hands_a_model_with_a_backend_to_it(tiny, monkeypatch):
    """``--engine vllm`` attaches a backend; generate (and so sweeps, evaluate, the demo) then
    generates there with the same specs and options, and the progress bar gets the whole budget."""
    from workbench.generate import generate
    from workbench.steering import Steer

    backend, steps = FakeBackend(), []
    monkeypatch.setattr(tiny, "backend", backend)
    spec = Steer(torch.ones(tiny.d_model), 1, 2.0)
    gens = generate(tiny, ["a", "b"], steer=spec, max_new_tokens=5, on_step=steps.append)
    assert [g.text for g in gens] == ["from the backend"] * 2 and steps == [10]
    ((prompts, steer, options),) = backend.calls
    assert prompts == ["a", "b"] and steer is spec and options["max_new_tokens"] == 5 and options["do_sample"] is False
    assert "generation in" in repr(tiny)


def test_the_cli_refuses_engine_vllm_without_vllm_before_loading(monkeypatch, capsys):
    from workbench.cli import main

    monkeypatch.setitem(sys.modules, "vllm", None)  # as if not installed
    monkeypatch.setattr("workbench.models.load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    assert main(["steer", "Hello", "--vector", "french@3:1", "--engine", "vllm"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "make vllm" in err[0]
    with pytest.raises(SystemExit) as stop:  # argparse's one-line error, exit 2
        main(["sweep", "french", "--engine", "vllm", "--compile"])
    assert stop.value.code == 2 and "drop --compile" in capsys.readouterr().err
