"""Statistics, in one home: intervals for a rate or a mean, paired exact tests (the sign test and the
maxT test selection uses), power and prompts needed, correlation."""

from workbench.stats.correlation import pearson
from workbench.stats.intervals import bootstrap_ci, upper_bound
from workbench.stats.paired import ALPHA, EXACT_UP_TO, binomial_tail, maxt_pvalues
from workbench.stats.power import prompts_needed, sign_test_power

__all__ = [
    "ALPHA",
    "EXACT_UP_TO",
    "binomial_tail",
    "bootstrap_ci",
    "maxt_pvalues",
    "pearson",
    "prompts_needed",
    "sign_test_power",
    "upper_bound",
]
