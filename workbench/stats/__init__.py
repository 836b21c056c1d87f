"""Statistics, in one home: intervals for a rate (Clopper-Pearson) or a mean (bootstrap), paired exact
tests (the sign test, McNemar's exact test and the maxT test selection uses), power and prompts
needed, correlation."""

from workbench.stats.correlation import pearson
from workbench.stats.intervals import bootstrap_ci, clopper_pearson, upper_bound
from workbench.stats.paired import ALPHA, EXACT_UP_TO, binomial_tail, maxt_pvalues, mcnemar_exact
from workbench.stats.power import prompts_needed, sign_test_power

__all__ = [
    "ALPHA",
    "EXACT_UP_TO",
    "binomial_tail",
    "bootstrap_ci",
    "clopper_pearson",
    "maxt_pvalues",
    "mcnemar_exact",
    "pearson",
    "prompts_needed",
    "sign_test_power",
    "upper_bound",
]
