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
    req = lambda row, n: SimpleNamespace(sampling_params=SimpleNamespace(extra_args=None if row is None else {ROW_KEY: row}), num_prompt_tokens=n)  # noqa: E731
    model = SimpleNamespace(model=SimpleNamespace(layers=torch.nn.ModuleList([Layer(), Layer()])))
    model.parameters = lambda: iter([torch.zeros(1)])
    return SimpleNamespace(input_batch=SimpleNamespace(req_ids=["a", "b", "c"], num_reqs=3), requests={"a": req(1, 3), "b": req(0, 2), "c": req(None, 1)},
                           query_start_loc=SimpleNamespace(np=np.array([0, 3, 4, 5])), get_model=lambda: model)


@pytest.mark.parametrize("positions, steered", [("all", [7, 7, 7, 5, 0, 0]), ("prompt", [7, 7, 7, 0, 0, 0]), ("generated", [0, 0, 0, 5, 0, 0])])
def test_each_token_is_steered_by_its_request(positions, steered):
    runner = fake_runner()
    layers = runner.get_model().model.layers
    steering = WorkerSteering(runner)
    u = torch.nn.functional.one_hot(torch.tensor(3), D).float()
    steering.load([{"layer": 1, "unit": u.tolist(), "coefficients": [5.0, 7.0], "mode": "add", "positions": positions}], [], 2)
    pos, x = torch.tensor([0, 1, 2, 4, 0, 0]), torch.ones(6, D)
    hidden, residual = layers[1](pos, *layers[0](pos, x, None))
    stream = hidden + residual  # 2x + x after layer 0, doubled hidden again after layer 1: 4x + x
    assert torch.equal(stream - 5 * x, torch.tensor(steered, dtype=torch.float)[:, None] * u)


def test_a_nan_row_is_unsteered_and_the_last_prompt_token_is_probed():
    runner = fake_runner()
    layers = runner.get_model().model.layers
    steering = WorkerSteering(runner)
    u = torch.nn.functional.one_hot(torch.tensor(0), D).float()
    steering.load([{"layer": 0, "unit": u.tolist(), "coefficients": [5.0, float("nan")], "mode": "project", "positions": "all"}],
                  [{"layer": 0, "unit": u.tolist()}], 2)
    pos, x = torch.tensor([0, 1, 2, 4, 0, 0]), torch.arange(6.0)[:, None].repeat(1, D)
    hidden, residual = layers[0](pos, x, None)
    assert (hidden + residual)[:, 0].tolist() == [0, 3, 6, 5, 12, 15]  # only b's token (prompt 0) set to 5
    assert steering.probed[0][1] == 6 and steering.probed[0][0].isnan()  # a's last prompt token (position 2); b has none here


def test_without_vllm_the_error_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    for attempt in (import_vllm, lambda: VLLMEngine("smollm2-135m-instruct")):
        with pytest.raises(WorkbenchError, match="make vllm") as error:
            attempt()
        assert "\n" not in str(error.value)
