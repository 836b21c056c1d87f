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

_MODULES = ("sweep", "evaluate", "external", "plots", "analysis", "report", "study", "interop")


def __getattr__(name: str):
    """``workbench.sweep``, ``workbench.plots``, ...: imported on first use (plots pulls in Plotly)."""
    if name in _MODULES:
        import importlib

        return importlib.import_module(f"workbench.{name}")
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


__all__ = [
    "DEFAULT_MODEL", "EMBEDDED", "Generation", "Group", "Instruction", "InstructionVector", "Model", "Steer", "WorkbenchError",
    "catalog", "compute_vector", "compute_vectors", "generate", "get_instruction", "load_model", "make_pairs", "queries", "steering",
    "tiny_model", *_MODULES,
]
