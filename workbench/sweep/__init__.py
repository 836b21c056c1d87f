"""Layer × coefficient sweeps: the grid (``grid``), where its batches run (``executors``; ``cluster`` for Ray),
running it resumably (``run``), choosing a setting on validation (``selection``, ``search`` for successive
halving) and the four-condition report (``conditions``)."""

from workbench.stats import ALPHA, maxt_pvalues, prompts_needed
from workbench.sweep.choice import Candidate, Choice
from workbench.sweep.conditions import (
    CONDITIONS,
    Example,
    catalog_examples,
    conditional_conditions,
    four_conditions,
    pair_example,
    run_conditions,
    summarize,
)
from workbench.sweep.executors import Executor, Local, run_units
from workbench.sweep.grid import NO_STEERING, SweepConfig, Unit
from workbench.sweep.guards import MAX_EXCESS_DEGENERATE, CellQuality
from workbench.sweep.result import SweepResult
from workbench.sweep.run import load_table, run_sweep
from workbench.sweep.search import REFINE, SCREEN_PROMPTS, best_cells, load_halving, refined, run_halving
from workbench.sweep.selection import (
    MAX_DEGENERATE,
    RULE,
    RULES,
    cell_summary,
    evidence,
    fewest_prompts,
    select,
    selection_rule,
)

__all__ = [
    "ALPHA",
    "CONDITIONS",
    "MAX_DEGENERATE",
    "MAX_EXCESS_DEGENERATE",
    "RULE",
    "RULES",
    "SCREEN_PROMPTS",
    "Candidate",
    "CellQuality",
    "NO_STEERING",
    "REFINE",
    "evidence",
    "fewest_prompts",
    "refined",
    "maxt_pvalues",
    "prompts_needed",
    "selection_rule",
    "Choice",
    "Example",
    "Executor",
    "Local",
    "SweepResult",
    "SweepConfig",
    "Unit",
    "best_cells",
    "catalog_examples",
    "cell_summary",
    "conditional_conditions",
    "run_conditions",
    "four_conditions",
    "load_halving",
    "load_table",
    "pair_example",
    "run_halving",
    "run_sweep",
    "run_units",
    "select",
    "summarize",
]
