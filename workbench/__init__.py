"""workbench: steer instruction following with activation vectors (Stolfo et al., ICLR 2025).

The pipeline, bottom up: ``models`` (load a hooked model) → ``instructions`` (what to steer for, and
with/without pairs) → ``extract`` (an ``InstructionVector`` from pairs) → ``steering`` / ``generate``
(apply it) → ``evaluate`` (check and judge replies) → ``sweep`` (choose layer and coefficient) →
``analysis`` / ``plots``. The applications built on them live in ``workbench.apps``: ``study`` (the
demo), ``file_evaluation`` (a whole IFEval-format file), ``explorer``, ``bench`` and ``cli``.
"""

from workbench.errors import WorkbenchError
from workbench.extract import compute_vector, compute_vectors
from workbench.generate import Generation, generate
from workbench.instructions import Group, Instruction, catalog, get_instruction, make_pairs, queries
from workbench.models import DEFAULT_MODEL, EMBEDDED, Model, load_model, tiny_model
from workbench.steering import Steer, steering
from workbench.vectors import InstructionVector

__version__ = "0.1.0"

_MODULES = ("sweep", "evaluate", "plots", "analysis", "interop", "compare", "apps")
_NAMES = {  # public names that live in a lazily imported module
    "side_by_side": "compare",
    "SideBySide": "compare",
    "run_study": "apps.study",
    "evaluate_file": "apps.file_evaluation",
    "evaluate_instructions": "apps.file_evaluation",
    "EvaluateOptions": "apps.file_evaluation",
    "Explorer": "apps.explorer",
    "read_dataset": "readers",
}

_MOVED = {"study": "apps.study", "report": "apps.study.report", "external": "apps.file_evaluation"}  # old homes


def __getattr__(name: str):
    """``workbench.sweep``, ``workbench.plots``, ``workbench.side_by_side``, ``workbench.evaluate_file``, ...:
    imported on first use (plots pulls in Plotly, compare pandas and the checkers, apps all of these).
    ``workbench.study``, ``.report`` and ``.external``, public before the applications moved to
    ``workbench.apps``, still resolve there."""
    if name in _MODULES or name in _NAMES or name in _MOVED:
        import importlib

        module = importlib.import_module(f"workbench.{_NAMES.get(name) or _MOVED.get(name) or name}")
        return getattr(module, name) if name in _NAMES else module
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


__all__ = [
    "DEFAULT_MODEL",
    "EMBEDDED",
    "EvaluateOptions",
    "Explorer",
    "Generation",
    "Group",
    "Instruction",
    "InstructionVector",
    "Model",
    "SideBySide",
    "Steer",
    "WorkbenchError",
    "catalog",
    "compute_vector",
    "compute_vectors",
    "evaluate_file",
    "evaluate_instructions",
    "generate",
    "get_instruction",
    "load_model",
    "make_pairs",
    "queries",
    "read_dataset",
    "run_study",
    "side_by_side",
    "steering",
    "tiny_model",
    *_MODULES,
]
