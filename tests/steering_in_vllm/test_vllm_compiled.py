"""Steering survives vLLM's torch.compile: with ``enforce_eager=False`` (vLLM's default; on this CPU
its inductor graph, compiled once at load, with dynamo's guards dropped), greedy replies still equal
``workbench.generation.generate.generate``'s for every operator, position rule, a packed batch whose rows differ
(a NaN row unsteered) and conditional steering, call after call on the same engine: the graph reads
each call's steering from the same tensors instead of values frozen at its trace."""

import pytest
import torch
from parity import NEW, ONE_VECTOR_CASES, PROMPTS, replies

from workbench.errors import WorkbenchError
from workbench.generation.generate import generate
from workbench.generation.steering import pack


@pytest.fixture(scope="module")
def unsteered(compiled, smol):
    ours = replies(compiled.generate(PROMPTS, max_new_tokens=NEW))
    assert ours == replies(generate(smol, PROMPTS, max_new_tokens=NEW))
    return ours


def test_the_engine_is_compiled(compiled):
    config = compiled.llm.llm_engine.vllm_config.compilation_config
    assert int(config.mode) != 0 and "compiled" in repr(compiled)


@pytest.mark.parametrize("case", ONE_VECTOR_CASES)
def test_compiled_steered_replies_equal_the_workbench(compiled, smol, french, unsteered, case):
    """Each case is a new generate() on the same compiled engine: other layers, operators, positions."""
    specs = ONE_VECTOR_CASES[case](french)
    ours = replies(compiled.generate(PROMPTS, steer=specs, max_new_tokens=NEW))
    assert ours != unsteered, "this steering changes nothing: the parity below could not fail"
    assert ours == replies(generate(smol, PROMPTS, steer=specs, max_new_tokens=NEW))


def test_a_packed_batch_then_other_specs_on_the_same_compiled_graph(compiled, smol, french, unsteered):
    """One call with per-row settings (a NaN row unsteered), then a second call with different specs
    and rows, then none: each equals the workbench, so nothing of the first call stayed in the graph."""
    prompts = [PROMPTS[0], PROMPTS[0], PROMPTS[1], PROMPTS[0], PROMPTS[2]]
    first = pack(
        [
            [french.steer(15, 0.6)],
            [],
            [french.steer(15, 1.0)],
            [french.steer(12, mode="project"), french.steer(15, 0.3)],
            [french.steer(6, mode="ablate")],
        ]
    )
    second = pack([[], [french.steer(8, 1.0, positions="generated")], [], [french.steer(15, 0.6)], []])
    assert any(torch.isnan(s.coefficient).any() for s in first)
    for specs in (first, second, []):
        ours = replies(compiled.generate(prompts, steer=specs, max_new_tokens=NEW))
        assert ours == replies(generate(smol, prompts, steer=specs, max_new_tokens=NEW))
    first_ours = replies(compiled.generate(prompts, steer=first, max_new_tokens=NEW))
    assert first_ours[1] == unsteered[0] and first_ours[0] != unsteered[0] and first_ours[3] != unsteered[0]
    assert ours == [unsteered[0], unsteered[0], unsteered[1], unsteered[0], unsteered[2]]  # the last call: none


def test_conditional_steering_compiled_equals_the_workbench(compiled, smol, french):
    """The detection pass's projections are written by the compiled graph into a buffer."""
    spec = french.steer(15, 1.0, when=french.condition())
    ours = replies(compiled.generate(PROMPTS, steer=spec, max_new_tokens=NEW))
    assert ours == replies(generate(smol, PROMPTS, steer=spec, max_new_tokens=NEW))


def test_what_the_graph_cannot_hold_is_refused_in_one_line(compiled, french, monkeypatch):
    monkeypatch.setattr("workbench.engines.vllm.engine.AFFINE", {"add": (1.0, 0.0)})  # as if ablate had no affine form
    with pytest.raises(WorkbenchError, match="'ablate' has no affine form") as error:
        compiled.generate(PROMPTS, steer=french.steer(6, mode="ablate"), max_new_tokens=2)
    assert "\n" not in str(error.value)
    with pytest.raises(WorkbenchError, match="5 interventions at layer 15 exceed"):
        compiled.generate(PROMPTS, steer=[french.steer(15, 0.1 * k) for k in range(5)], max_new_tokens=2)
