"""A sweep on Ray workers that generate in vLLM: each worker loads its own vLLM engine, and the rows
equal a local run's (greedy float32), as Ray runs on the workbench's engine do."""

from dataclasses import replace

import pytest

from workbench.errors import WorkbenchError

try:
    from workbench.engines.vllm.engine import import_vllm

    import_vllm()
    import ray
except (WorkbenchError, ImportError) as exc:
    pytest.skip(str(exc), allow_module_level=True)

from workbench.sweep import SweepConfig, run_sweep  # noqa: E402
from workbench.sweep.cluster import RayExecutor  # noqa: E402


def test_a_sweep_on_a_ray_worker_in_vllm_equals_a_local_one(engine, smol, tmp_path):
    model = replace(smol, backend=engine)
    config = SweepConfig(
        model=smol.name,
        instructions=("french",),
        layers=(12, 15),
        coefficients=(1.0,),
        n_train=16,
        n_prompts=3,
        max_new_tokens=12,
        conditions=(False,),
    )
    local = run_sweep(model, config, tmp_path / "local", progress=False).table
    executor = RayExecutor(workers=1)
    try:
        remote = run_sweep(model, config, tmp_path / "ray", progress=False, executor=executor).table
    finally:
        ray.shutdown()
    assert len(remote) == len(local) == 3 * (1 + 2 * 2)
    assert remote["text"].tolist() == local["text"].tolist() and remote["loose"].tolist() == local["loose"].tolist()
    (replica,) = executor.stats["replicas"]
    assert "VLLMEngine" in replica  # the worker generated in its own vLLM engine
    added, plain = (
        local[(local["layer"] == layer) & (local["mode"] == mode)]["text"].tolist()
        for layer, mode in ((15, "add"), (-1, "none"))
    )
    assert (
        len(added) == len(plain) == 3 and added != plain
    )  # steering changed the replies, so the comparison could fail
