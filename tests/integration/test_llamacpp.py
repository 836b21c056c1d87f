"""The llama.cpp round trip: a vector exported by the workbench, loaded by llama.cpp itself (through
llama-cpp-python) on the embedded model's own quantized GGUF, steers the way the workbench's steering
does. ``make llamacpp-check`` installs the extra (a source build, ~8 min on 2 cores) and runs this.

llama.cpp computes with the Q4_1 weights and its own kernels, the workbench with the same weights
dequantized to float32, so greedy texts may part after a few tokens. Two comparisons:
- exact: the change steering makes to every prompt position's logits, in llama.cpp against the
  workbench (correlation ≥ 0.98, slope 1 ± 0.1). A file one layer off, negated or mis-scaled fails
  it (checked below on such files);
- behaviour: greedy French replies; the checker agrees with the workbench's on nearly every prompt.
"""

import numpy as np
import pytest
import torch

llama_cpp = pytest.importorskip(
    "llama_cpp", reason="llama-cpp-python is not installed: `make llamacpp-check` builds it"
)

from workbench.checkers import check  # noqa: E402
from workbench.extract import compute_vector  # noqa: E402
from workbench.generation.generate import generate  # noqa: E402
from workbench.generation.steering import steering  # noqa: E402
from workbench.instructions import get_instruction, queries  # noqa: E402
from workbench.interop import apply_control_vector, export_control_vector  # noqa: E402
from workbench.models import embedded_gguf_path  # noqa: E402

pytestmark = pytest.mark.llamacpp

LAYER, COEFFICIENT, NEW_TOKENS = 15, 1.0, 32


@pytest.fixture(scope="module")
def setting(smol):
    vec = compute_vector(smol, "french", n_pairs=32)
    prompts = [q.text for q in queries("test", limit=8)]
    llm = llama_cpp.Llama(
        str(embedded_gguf_path(smol.name)), n_ctx=512, n_threads=2, seed=0, verbose=False, logits_all=True
    )
    yield vec, prompts, llm
    llm.close()


def _passes(texts) -> list[bool]:
    inst = get_instruction("french")
    return [check(t, [inst.ifeval_id], [inst.kwargs]).loose for t in texts]


def _llama_greedy(model, llm, prompts) -> list[tuple[int, ...]]:
    out = []
    for prompt in prompts:
        tokens: list[int] = []
        for token in llm.generate(model.encode(model.chat(prompt)), temp=0.0, repeat_penalty=1.0, reset=True):
            if token in model.stop_token_ids:
                break
            tokens.append(token)
            if len(tokens) == NEW_TOKENS:
                break
        out.append(tuple(tokens))
    return out


def _llama_texts(smol, llm, prompts, path, strength=1.0):
    apply_control_vector(llm, path, strength)
    try:
        return [smol.decode(list(ids)) for ids in _llama_greedy(smol, llm, prompts)]
    finally:
        apply_control_vector(llm, None)


def _common_start(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _ours_logits(smol, ids, spec=None) -> np.ndarray:
    t = torch.tensor([ids])
    with torch.no_grad(), steering(smol, [] if spec is None else spec):
        return smol.forward(t, torch.ones_like(t), torch.arange(len(ids))[None], keep=len(ids))[0].float().numpy()


def _their_logits(llm, ids, path=None, strength=1.0) -> np.ndarray:
    apply_control_vector(llm, path, strength)
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)])


def _logit_change_fit(smol, vec, llm, prompts, path, strength=1.0) -> list[tuple[float, float]]:
    """Per prompt: (correlation, slope) of llama.cpp's logit change on the workbench's, over every
    prompt position and vocabulary entry."""
    fits = []
    for prompt in prompts:
        ids = smol.encode(smol.chat(prompt))
        ours = _ours_logits(smol, ids, vec.steer(LAYER, COEFFICIENT)) - _ours_logits(smol, ids)
        theirs = _their_logits(llm, ids, path, strength) - _their_logits(llm, ids)
        fits.append(
            (float(np.corrcoef(ours.ravel(), theirs.ravel())[0, 1]), float((ours * theirs).sum() / (ours * ours).sum()))
        )
    return fits


def _exact(fits) -> bool:
    return all(r >= 0.98 and 0.9 <= slope <= 1.1 for r, slope in fits)


def test_llama_cpp_changes_the_logits_as_the_workbench_does(smol, setting, tmp_path):
    vec, prompts, llm = setting
    path = export_control_vector(vec, tmp_path / "french.gguf", COEFFICIENT, layers=[LAYER])
    fits = _logit_change_fit(smol, vec, llm, prompts[:4], path)
    print("logit change, llama.cpp on workbench (correlation, slope):", [(round(r, 3), round(b, 3)) for r, b in fits])
    assert _exact(fits)


@pytest.mark.parametrize(
    "layer, strength",
    [(LAYER - 1, 1.0), (LAYER + 1, 1.0), (LAYER, -1.0), (LAYER, 1.5)],
    ids=["layer-1", "layer+1", "sign", "scale"],
)
def test_a_layer_sign_or_scale_mistake_fails_the_comparison(smol, setting, tmp_path, layer, strength):
    vec, prompts, llm = setting
    wrong = export_control_vector(vec, tmp_path / "wrong.gguf", COEFFICIENT, layers=[layer])
    assert not _exact(_logit_change_fit(smol, vec, llm, prompts[:2], wrong, strength))


def test_a_second_vector_replaces_the_first_in_every_layer(smol, setting, tmp_path):
    """Regression: llama.cpp keeps the layers a shorter buffer does not reach, so a vector at layer
    16 used to stay in place under one at layer 15 applied after it."""
    vec, prompts, llm = setting
    ids = smol.encode(smol.chat(prompts[0]))
    alone = _their_logits(llm, ids, export_control_vector(vec, tmp_path / "a.gguf", COEFFICIENT, layers=[LAYER]))
    _their_logits(llm, ids, export_control_vector(vec, tmp_path / "b.gguf", COEFFICIENT, layers=[LAYER + 1]))
    assert np.array_equal(_their_logits(llm, ids, tmp_path / "a.gguf"), alone)


def test_exported_vector_steers_llama_cpp_as_the_workbench_does(smol, setting, tmp_path):
    vec, prompts, llm = setting
    ours = [g.text for g in generate(smol, prompts, steer=vec.steer(LAYER, COEFFICIENT), max_new_tokens=NEW_TOKENS)]
    path = export_control_vector(vec, tmp_path / "french.gguf", COEFFICIENT, layers=[LAYER])
    theirs = _llama_texts(smol, llm, prompts, path)
    plain = _llama_texts(smol, llm, prompts, None)
    agree = sum(a == b for a, b in zip(_passes(ours), _passes(theirs)))
    starts = [_common_start(a, b) for a, b in zip(ours, theirs)]
    print(
        f"llama.cpp vs workbench at layer {LAYER}: checker agrees on {agree}/{len(prompts)}; "
        f"passes {sum(_passes(theirs))} vs {sum(_passes(ours))} (unsteered llama.cpp {sum(_passes(plain))}); "
        f"common start {starts} chars"
    )
    assert sum(_passes(ours)) >= 2 and not any(_passes(plain))  # the model responds to this vector
    assert sum(_passes(theirs)) >= 1 and agree >= len(prompts) - 1


def test_zero_vector_changes_nothing(smol, setting, tmp_path):
    vec, prompts, llm = setting
    path = export_control_vector(vec, tmp_path / "zero.gguf", 0.0, layers=[LAYER])
    assert _llama_texts(smol, llm, prompts, path) == _llama_texts(smol, llm, prompts, None)
