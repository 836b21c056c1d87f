"""``workbench bench``: speed and memory of the engine, as ratios measured side by side in one run."""

from workbench.bench.baselines import paper_style_generate
from workbench.bench.run import run_bench
from workbench.bench.subject import BenchConfig

__all__ = ["BenchConfig", "paper_style_generate", "run_bench"]
