"""workbench: steer instruction following with activation vectors (Stolfo et al., ICLR 2025).

The pipeline, bottom up: ``models`` (load a hooked model) → ``instructions`` (what to steer for, and
with/without pairs) → ``extract`` (an ``InstructionVector`` from pairs) → ``steering`` / ``generate``
(apply it) → ``evaluate`` (check and judge replies) → ``sweep`` (choose layer and coefficient) →
``external`` (a whole IFEval-format file), ``analysis`` / ``plots`` / ``report`` / ``study``.
"""

from workbench.errors import WorkbenchError
from workbench.extract import compute_vector, compute_vectors
from workbench.generate import Generation, generate
from workbench.instructions import Group, Instruction, catalog, get_instruction, make_pairs, queries
from workbench.models import DEFAULT_MODEL, EMBEDDED, Model, load_model, tiny_model
from workbench.steering import Steer, steering
from workbench.vectors import InstructionVector

__version__ = "0.1.0"

_MODULES = ("sweep", "evaluate", "external", "plots", "analysis", "report", "study", "interop", "compare")
_NAMES = {"side_by_side": "compare", "SideBySide": "compare"}  # public names that live in a lazily imported module


def __getattr__(name: str):
    """``workbench.sweep``, ``workbench.plots``, ``workbench.side_by_side``, ...: imported on first use
    (plots pulls in Plotly, compare pandas and the checkers)."""
    if name in _MODULES or name in _NAMES:
        import importlib

        module = importlib.import_module(f"workbench.{_NAMES.get(name, name)}")
        return getattr(module, name) if name in _NAMES else module
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


__all__ = [
    "DEFAULT_MODEL",
    "EMBEDDED",
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
    "generate",
    "get_instruction",
    "load_model",
    "make_pairs",
    "queries",
    "side_by_side",
    "steering",
    "tiny_model",
    *_MODULES,
]
