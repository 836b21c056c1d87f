"""``workbench bench``: speed and memory of the engine, as ratios measured side by side in one run."""

from workbench.bench.run import paper_style_generate, run_bench

__all__ = ["paper_style_generate", "run_bench"]
