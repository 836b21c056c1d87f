"""vLLM steers like the workbench: on the embedded SmolLM2 in float32, greedy, vLLM's replies
(token ids, text, stop) equal ``workbench.generation.generate.generate``'s for every operator, position rule,
two vectors at two layers, a packed batch with its own settings per row, and conditional steering.
Each steered case also differs from the unsteered replies, so its parity could fail.
``make vllm-check`` installs vLLM and runs this."""

import pytest
import torch
from parity import NEW, ONE_VECTOR_CASES, PROMPTS, replies

from workbench.errors import WorkbenchError
from workbench.generation.detection import detect
from workbench.generation.generate import generate
from workbench.generation.steering import Steer, pack


@pytest.fixture(scope="module")
def unsteered(engine):
    return replies(engine.generate(PROMPTS, max_new_tokens=NEW))


def test_unsteered_replies_equal_the_workbench(engine, smol, unsteered):
    assert unsteered == replies(generate(smol, PROMPTS, max_new_tokens=NEW))


def test_steering_changes_the_replies(engine, french, unsteered):
    """The guard: steering changes every reply in vLLM, so the parity tests below can fail."""
    steered = replies(engine.generate(PROMPTS, steer=french.steer(15, 1.0), max_new_tokens=NEW))
    assert all(s[0] != u[0] for s, u in zip(steered, unsteered))


def two_vectors(f, o):
    return [f.steer(15, 0.5), o.steer(8, 1.0)]


@pytest.mark.parametrize("case", [*ONE_VECTOR_CASES, "two_vectors_two_layers"])
def test_steered_replies_equal_the_workbench(engine, smol, french, one_sentence, unsteered, case):
    specs = two_vectors(french, one_sentence) if case == "two_vectors_two_layers" else ONE_VECTOR_CASES[case](french)
    ours = replies(engine.generate(PROMPTS, steer=specs, max_new_tokens=NEW))
    assert ours != unsteered, "this steering changes nothing: the parity below could not fail"
    assert ours == replies(generate(smol, PROMPTS, steer=specs, max_new_tokens=NEW))


def test_a_packed_batch_steers_each_row_its_own_way(engine, smol, french, unsteered):
    """One vLLM call, the same prompt on several rows with different settings; a NaN row is unsteered."""
    prompts = [PROMPTS[0], PROMPTS[0], PROMPTS[1], PROMPTS[0], PROMPTS[2]]
    rows = [
        [french.steer(15, 0.6)],
        [],
        [french.steer(15, 1.0)],
        [french.steer(12, mode="project"), french.steer(15, 0.3)],
        [french.steer(6, mode="ablate")],
    ]
    specs = pack(rows)
    assert any(torch.isnan(s.coefficient).any() for s in specs)
    ours = replies(engine.generate(prompts, steer=specs, max_new_tokens=NEW))
    assert ours == replies(generate(smol, prompts, steer=specs, max_new_tokens=NEW))
    assert ours[1] == unsteered[0] and ours[0] != unsteered[0] and ours[3] != unsteered[0]
    for row, prompt in enumerate(prompts):  # each row as it is alone
        alone = replies(engine.generate([prompt], steer=rows[row], max_new_tokens=NEW))
        assert alone == [ours[row]], row


def test_conditional_steering_equals_the_workbench(engine, smol, french, unsteered):
    """Steer only the prompts the condition selects (the default one selects some, not all): the
    others are left unsteered, as in the workbench."""
    condition = french.condition()
    gate = detect(smol, [smol.encode(smol.chat(p)) for p in PROMPTS], [condition], len(PROMPTS))[
        condition.key()
    ].tolist()
    assert any(gate) and not all(gate)
    spec = french.steer(15, 1.0, when=condition)
    ours = replies(engine.generate(PROMPTS, steer=spec, max_new_tokens=NEW))
    assert ours == replies(generate(smol, PROMPTS, steer=spec, max_new_tokens=NEW))
    assert [o != u for o, u in zip(ours, unsteered)] == gate


def test_bad_input_is_one_line(engine, french):
    u = french.directions[15]
    for steer, match in [
        (Steer(u, 30, 1.0), "out of range"),
        (Steer(u[:64], 3, 1.0), "d_model=576"),
        (Steer(u, 3, torch.tensor([1.0, float("nan")])), "2 values for 3 prompts"),
    ]:
        with pytest.raises(WorkbenchError, match=match):
            engine.generate(PROMPTS, steer=steer, max_new_tokens=2)
    with pytest.raises(WorkbenchError, match="no prompts"):
        engine.generate([], max_new_tokens=2)
    with pytest.raises(WorkbenchError, match="context") as error:
        engine.generate(PROMPTS, max_new_tokens=engine.n_ctx)
    assert "\n" not in str(error.value)
    with pytest.raises(WorkbenchError, match="prefix cache"):
        type(engine)("smollm2-135m-instruct", enable_prefix_caching=True)
