"""``workbench bench``'s vLLM rows: both engines timed on the same generations, steered and not."""

from workbench.apps.bench.engines import LARGE, vllm_rows, vllm_vs_workbench


def test_the_bench_times_both_engines_steered_and_unsteered(engine, smol, french):
    raw = vllm_vs_workbench(
        smol,
        french.steer(15, 1.0),
        ["What is the capital of France?", "Name a fruit."],
        new=4,
        repeats=1,
        engine=engine,
    )
    for engine in ("wb", "vllm"):
        for kind in ("unsteered", "steered"):
            assert all(raw[f"{engine}_{kind}_tok_s_b{bs}"] > 0 for bs in (1, LARGE))
    rows = vllm_rows(raw)
    assert len(rows) == 6 and all(ratio > 0 for _, ratio, _, _ in rows) and raw["vllm_load_s"] >= 0
