"""``workbench.engines.vllm.engine`` without vLLM: the package imports, a missing vLLM is a one-line error,
and the worker's steering (``workbench.engines.vllm.worker``: each token of a flattened batch → its request's
prompt index, prompt or generated from its position, a and b per slot) steers exactly the tokens the
workbench would, on a fake V1 runner, eagerly and compiled as vLLM compiles (no guards: the graph
must read new specs from the same tensors)."""

import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from workbench.engines.vllm.engine import VLLMEngine, VLLMOptions, import_vllm
from workbench.engines.vllm.worker import ROW_KEY, WorkerSteering
from workbench.errors import WorkbenchError

D = 8


class Layer(torch.nn.Module):
    """A decoder layer as vLLM's: (positions, hidden, residual) -> (hidden, residual), the stream their
    sum; this one doubles the stream."""

    def forward(self, positions, hidden, residual):
        stream = hidden if residual is None else hidden + residual
        return stream, stream


class Stack(torch.nn.Module):
    """vLLM's inner model: the decoder layers; returns the residual stream after the last one."""

    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList([Layer(), Layer()])
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, positions, x):
        hidden, residual = x * self.scale, None
        for layer in self.layers:
            hidden, residual = layer(positions, hidden, residual)
        return hidden + residual


def fake_runner(compiled=False):
    """Three requests in batch order a, b, c, then one padding token: a (prompt 1, prompt length 3)
    prefills positions 0-2, b (prompt 0, prompt length 2) decodes position 4, c is not ours. With
    ``compiled``, the stack runs as vLLM runs it: torch.compile, full graph, dynamic sizes, no guards."""

    def req(row, n):
        extra = None if row is None else {ROW_KEY: row}
        return SimpleNamespace(sampling_params=SimpleNamespace(extra_args=extra), num_prompt_tokens=n)

    stack = Stack()
    model = SimpleNamespace(model=stack, parameters=stack.parameters)
    run = stack
    if compiled:  # as vLLM: the token count marked dynamic, one full graph, every guard dropped
        skip = torch.compiler.skip_all_guards_unsafe
        graph = torch.compile(
            stack, fullgraph=True, dynamic=False, backend="aot_eager", options={"guard_filter_fn": skip}
        )

        def run(positions, x):
            torch._dynamo.mark_dynamic(positions, 0)
            torch._dynamo.mark_dynamic(x, 0)
            return graph(positions, x)

    return SimpleNamespace(
        input_batch=SimpleNamespace(req_ids=["a", "b", "c"], num_reqs=3),
        requests={"a": req(1, 3), "b": req(0, 2), "c": req(None, 1)},
        query_start_loc=SimpleNamespace(np=np.array([0, 3, 4, 5])),
        get_model=lambda: model,
        model_config=SimpleNamespace(get_hidden_size=lambda: D),
        max_num_tokens=9,  # as vLLM's first (compiling) step: the largest
        _model_forward=lambda positions, inputs_embeds: run(positions, inputs_embeds),
    )


def table(layer, unit, coefficients, mode="add", positions="all"):
    affine = {"add": (1.0, 0.0), "project": (1.0, 1.0), "ablate": (0.0, 1.0)}.get(mode)
    return dict(
        layer=layer, unit=unit.tolist(), coefficients=coefficients, positions=positions, mode=mode, affine=affine
    )


POS = torch.tensor([0, 1, 2, 4, 0, 0])
U3, U0 = (torch.nn.functional.one_hot(torch.tensor(i), D).float() for i in (3, 0))


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize(
    "positions, steered",
    [("all", [7, 7, 7, 5, 0, 0]), ("prompt", [7, 7, 7, 0, 0, 0]), ("generated", [0, 0, 0, 5, 0, 0])],
)
def test_each_token_is_steered_by_its_request(positions, steered, compiled):
    runner = fake_runner(compiled)
    steering = WorkerSteering(runner, compiled)
    steering.load([table(1, U3, [5.0, 7.0], positions=positions)], [], 2)
    x = torch.ones(6, D)
    stream = runner._model_forward(positions=POS, inputs_embeds=x)  # 2x after layer 0, 4x after layer 1
    assert torch.equal(stream - 4 * x, torch.tensor(steered, dtype=torch.float)[:, None] * U3)


@pytest.mark.parametrize("compiled", [False, True])
def test_a_nan_row_is_unsteered_and_the_last_prompt_token_is_probed(compiled):
    runner = fake_runner(compiled)
    steering = WorkerSteering(runner, compiled)
    steering.load([table(1, U0, [5.0, float("nan")], mode="project")], [{"layer": 0, "unit": U0.tolist()}], 2)
    x = torch.arange(6.0)[:, None].repeat(1, D)
    stream = runner._model_forward(positions=POS, inputs_embeds=x)
    assert stream[:, 0].tolist() == [0, 4, 8, 5, 16, 20]  # only b's token (prompt 0) set to 5
    assert steering.probed[0][1] == 4 and steering.probed[0][0].isnan()  # a's last prompt token; b has none here


def test_a_compiled_graph_reads_new_specs_from_the_same_tensors():
    """vLLM compiles once without guards, so Python values a hook read would be frozen at the first
    trace: new specs (another layer, operator, positions, rows), no specs, and another token count
    must still give what eager steering gives (here also through the eager path for an operator
    without an affine form)."""
    eager_runner, runner = fake_runner(), fake_runner(compiled=True)
    eager, compiled = WorkerSteering(eager_runner, False), WorkerSteering(runner, True)
    loads = [
        [table(1, U3, [5.0, 7.0])],
        [table(0, U0, [2.0, -1.0], mode="project", positions="prompt"), table(1, U3, [float("nan"), 3.0])],
        [table(0, U0, [0.0, 0.0], mode="ablate", positions="generated")],
        [],
    ]
    for n in (9, 6):  # first as many tokens as the buffers hold (as vLLM's compiling step), then fewer
        positions = torch.cat([POS, torch.zeros(n - 6, dtype=torch.long)])
        for tables in loads:
            x = torch.randn(n, D)
            eager.load([{**t, "affine": None} for t in tables], [], 2)  # eager: each operator's own function
            compiled.load(tables, [], 2)
            ours = runner._model_forward(positions=positions, inputs_embeds=x)
            assert torch.allclose(ours, eager_runner._model_forward(positions=positions, inputs_embeds=x))
            assert torch.equal(ours, 4 * x) is not bool(tables), tables  # each load steers, the empty one not


def test_steering_that_overflows_is_flagged_not_silent():
    """As the workbench's engine refuses NaN/inf logits: an output that steering makes non-finite (here
    the last layer doubles the steered stream past float32's range) sets the flag that
    ``VLLMEngine.generate`` reads after the batch; a finite one leaves it clear."""
    runner = fake_runner()
    steering = WorkerSteering(runner, False)
    for coefficient, broken in ((5.0, False), (3e38, True)):
        steering.load([table(0, U0, [coefficient, coefficient])], [], 2)
        runner._model_forward(positions=POS, inputs_embeds=torch.ones(6, D))
        assert bool(steering.broken) is broken


def test_an_eager_worker_grows_its_slots_a_compiled_one_refuses():
    tables = [table(1, U0, [1.0, 1.0]), table(1, U3, [2.0, 2.0]), table(1, U0, [1.0, 1.0], mode="ablate")]
    eager = WorkerSteering(fake_runner(), False, slots=2)
    eager.load(tables, [], 2)
    assert eager.u.shape[1] == 3
    with pytest.raises(RuntimeError, match="holds 2"):
        WorkerSteering(fake_runner(compiled=True), True, slots=2).load(tables, [], 2)


def test_a_compiled_engine_refuses_what_its_graph_cannot_hold_in_one_line(monkeypatch):
    """Checked before any work (here without vLLM: only the engine's facts are set)."""
    from workbench.generation.steering import Steer

    engine = VLLMEngine.__new__(VLLMEngine)
    engine.name, engine.n_layers, engine.d_model = "m", 4, D
    engine.options = VLLMOptions(enforce_eager=False, slots=1)
    monkeypatch.setattr("workbench.engines.vllm.engine.AFFINE", {"add": (1.0, 0.0)})  # as if ablate had no affine form
    for specs, match in [
        ([Steer(U0, 1, 1.0, mode="ablate")], "'ablate' has no affine form"),
        ([Steer(U0, 1, 1.0), Steer(U3, 1, 1.0)], "2 interventions at layer 1 exceed .* 1 slots"),
    ]:
        with pytest.raises(WorkbenchError, match=match) as error:
            engine._check(specs, 1)
        assert "\n" not in str(error.value)
    engine.options = VLLMOptions(slots=1)  # eager: both fine
    engine._check([Steer(U0, 1, 1.0, mode="ablate"), Steer(U3, 1, 1.0)], 1)
    with pytest.raises(WorkbenchError, match="slots must be"):
        VLLMOptions(slots=0)


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
        from workbench.generation.generate import Generation

        self.calls.append((list(prompts), steer, options))
        return [Generation(p, "from the backend", (1,), True) for p in prompts]


def test_generate_hands_a_model_with_a_backend_to_it(tiny, monkeypatch):
    """``--engine vllm`` attaches a backend; generate (and so sweeps, evaluate, the demo) then
    generates there with the same specs and options, and the progress bar gets the whole budget."""
    from workbench.generation.generate import generate
    from workbench.generation.steering import Steer

    backend, steps = FakeBackend(), []
    monkeypatch.setattr(tiny, "backend", backend)
    spec = Steer(torch.ones(tiny.d_model), 1, 2.0)
    gens = generate(tiny, ["a", "b"], steer=spec, max_new_tokens=5, on_step=steps.append)
    assert [g.text for g in gens] == ["from the backend"] * 2 and steps == [10]
    ((prompts, steer, options),) = backend.calls
    assert prompts == ["a", "b"] and steer is spec and options["max_new_tokens"] == 5 and options["do_sample"] is False
    assert "generation in" in repr(tiny)


def test_the_cli_refuses_engine_vllm_without_vllm_before_loading(monkeypatch, capsys):
    from workbench.apps.cli.main import main

    monkeypatch.setitem(sys.modules, "vllm", None)  # as if not installed
    monkeypatch.setattr("workbench.models.load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    assert main(["steer", "Hello", "--vector", "french@3:1", "--engine", "vllm"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "make vllm" in err[0]
    with pytest.raises(SystemExit) as stop:  # argparse's one-line error, exit 2
        main(["sweep", "french", "--engine", "vllm", "--compile"])
    assert stop.value.code == 2 and "drop --compile" in capsys.readouterr().err
