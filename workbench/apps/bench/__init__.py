"""``workbench bench``: speed and memory of the engine, as ratios measured side by side in one run."""

from workbench.apps.bench.baselines import paper_style_generate
from workbench.apps.bench.run import run_bench
from workbench.apps.bench.subject import BenchConfig

__all__ = ["BenchConfig", "paper_style_generate", "run_bench"]
