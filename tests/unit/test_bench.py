"""`workbench bench --quick` produces every figure (speed targets live in the bench, not in tests)."""

import json

import pytest

from workbench.apps.cli.main import main


@pytest.mark.slow  # the whole bench: a fresh process for memory, Ray clusters of 1 and 2 workers (minutes)
def test_bench_quick_produces_every_figure(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--model", "tiny-random", "--json", str(path)]) == 0
    result = json.loads(path.read_text())
    for key in (
        "steer_overhead_ratio",
        "tl_vs_hf_ratio",
        "sweep_speedup",
        "extraction_ratio",
        "sampled_vs_greedy_ratio",
        "roofline_share_b1",
        "sweep_auto_vs_cap64_ratio",
    ):
        assert isinstance(result[key], float) and result[key] > 0, key
    assert set(result["extraction_peak_mb"]) == {"8", "32"}
    assert result["machine"]["cpus"] >= 1 and result["raw"]["sweep_generations"] > 0
    assert result["ray_speedup_2v1"] > 0 and result["raw"]["ray_dispatch_ms_w1"] > 0  # Ray comes with the test extra
    out = capsys.readouterr().out
    assert "steered / unsteered" in out and "Ray, 2 workers / 1" in out
    assert (
        result["vllm_vs_workbench_steered"] is None and "vLLM rows left out" in out
    )  # vLLM cannot load the tiny random model (tests/steering_in_vllm bench it)
