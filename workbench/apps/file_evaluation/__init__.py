"""``workbench evaluate``: a whole IFEval-format file (or your own instructions) in the paper's four
conditions. ``plan`` reads and checks the input before any model loads, ``run`` selects and generates,
``results`` is the ``Evaluation`` it returns and writes, ``markdown`` its report."""

from workbench.apps.file_evaluation.plan import EvaluateOptions, Plan, plan_file, plan_instructions
from workbench.apps.file_evaluation.results import Evaluation, ifeval_scores
from workbench.apps.file_evaluation.run import evaluate_file, evaluate_instructions, evaluate_plan

__all__ = [
    "EvaluateOptions",
    "Evaluation",
    "Plan",
    "evaluate_file",
    "evaluate_instructions",
    "evaluate_plan",
    "ifeval_scores",
    "plan_file",
    "plan_instructions",
]
