"""The compiled decode step equals the eager engine token for token (float32, greedy): unsteered and
steered by every operator and position set, per-row and conditional coefficients, batch and single;
new steering reuses the compiled step. On CPU here, and on CUDA (CUDA graphs) where there is one."""

import pytest
import torch

from workbench import generate
from workbench.generation.compiled import AFFINE, supported
from workbench.generation.steering import OPERATORS, Condition, Steer
from workbench.models import tiny_model

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
PROMPTS = ["Describe tides.", "Name a colour.", "Say hello to the reader in a short sentence.", "Why is the sky blue?"]
N = 10


@pytest.fixture(scope="module", params=DEVICES)
def model(request):
    m = tiny_model(n_layers=2)
    if request.param != "cpu":
        m.bridge.to(request.param)
    return m


def _specs(model, seed: int = 0) -> list[list[Steer]]:
    g = torch.Generator().manual_seed(seed)
    d = lambda: torch.randn(model.d_model, generator=g)  # noqa: E731
    per_row = torch.tensor([2.0, float("nan"), -1.5, 4.0])
    return [
        [],
        [Steer(d(), 0, 3.0)],
        [Steer(d(), 1, 2.0, mode="project"), Steer(d(), 1, -2.5, positions="generated")],
        [Steer(d(), 0, 5.0, positions="prompt"), Steer(d(), 1, 0.0, mode="ablate")],
        [Steer(d(), 1, per_row)],
        [Steer(d(), 0, 4.0, when=Condition(d(), 1, 0.0))],
    ]


def _tokens(model, prompts, steer, **kw):
    return [g.token_ids for g in generate(model, prompts, steer=steer, max_new_tokens=N, **kw)]


def test_each_affine_form_matches_its_operator():
    assert set(AFFINE) == {name for name, op in OPERATORS.items() if op.affine is not None}
    x, u, c = torch.randn(2, 3, 8), torch.nn.functional.normalize(torch.randn(8), dim=0), torch.tensor([1.5, -2.0])
    for name, (alpha, beta) in AFFINE.items():
        a, b = alpha * c[:, None, None], beta
        assert torch.allclose(OPERATORS[name](x, u, c), (a - b * (x @ u)[..., None]) * u, atol=1e-6), name


def test_compiled_equals_eager_steered_and_unsteered(model):
    for steer in _specs(model):
        assert supported(model, steer) is None
        eager = _tokens(model, PROMPTS, steer)
        assert _tokens(model, PROMPTS, steer, compile=True) == eager, steer
    assert _tokens(model, PROMPTS, _specs(model)[1]) != _tokens(model, PROMPTS, []), (
        "the steering changed nothing: the test could not fail"
    )


def test_compiled_batch_equals_single(model):
    steer = [Steer(torch.ones(model.d_model), 1, 2.0)]
    batch = _tokens(model, PROMPTS, steer, compile=True)
    single = [_tokens(model, [p], steer, compile=True)[0] for p in PROMPTS[:2]]
    assert single == batch[:2]


def test_new_steering_reuses_the_compiled_step(model):
    from torch._dynamo.utils import counters

    _tokens(model, PROMPTS, _specs(model)[1], compile=True)
    before = counters["stats"]["unique_graphs"]
    for steer in _specs(model, seed=1):
        moved = [
            s.scaled(s.coefficient * 0.5) if s.mode == "add" and not torch.is_tensor(s.coefficient) else s
            for s in steer
        ]
        _tokens(model, PROMPTS, moved, compile=True)
    assert counters["stats"]["unique_graphs"] == before


def test_falls_back_to_eager_where_it_cannot_compile(model):
    steer = _specs(model)[1]
    with model.bridge.hooks(fwd_hooks=[("blocks.0.hook_resid_post", lambda x, hook: x)]):
        assert supported(model, steer) is not None
        with pytest.warns(UserWarning, match="generating eagerly"):
            tokens = _tokens(model, PROMPTS, steer, compile=True)
    assert tokens == _tokens(model, PROMPTS, steer)


def test_compiled_kernels_are_kept_in_the_workbench_cache(model, tmp_path, monkeypatch):
    # regression: torch writes its /tmp default into TORCHINDUCTOR_CACHE_DIR when a model loads, so a
    # setdefault never took effect and the kernels were lost with /tmp
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    from workbench.generation.compiled import kernel_cache

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())
    assert kernel_cache() == str(tmp_path / "inductor")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert kernel_cache() == str(tmp_path / "mine")  # a folder the user chose is kept


def test_compiled_equals_eager_when_rows_stop_at_different_steps(model, monkeypatch):
    # rows that finish stay in the compiled batch (fixed shapes) and leave the eager one: same replies
    steer = _specs(model)[1]
    free = [g.token_ids for g in generate(model, PROMPTS, steer=steer, max_new_tokens=N)]
    monkeypatch.setattr(model, "stop_token_ids", [free[0][2], free[2][5]])
    eager = generate(model, PROMPTS, steer=steer, max_new_tokens=N)
    assert any(g.stopped for g in eager) and not all(g.stopped for g in eager), (
        "no row stopped early: the test could not fail"
    )
    got = generate(model, PROMPTS, steer=steer, max_new_tokens=N, compile=True)
    assert [(g.token_ids, g.stopped) for g in got] == [(g.token_ids, g.stopped) for g in eager]
