"""workbench: steer instruction following with activation vectors (Stolfo et al., ICLR 2025).

The pipeline, bottom up: ``models`` (load a hooked model) → ``instructions`` / ``readers`` (what to
steer for, and with/without pairs) → ``extract`` (an ``InstructionVector`` from pairs) → ``generation``
(steer and generate; ``engines.vllm`` for vLLM) → ``judging`` (check and judge replies) → ``sweep``
(choose layer and coefficient, with ``stats``) → ``analysis`` / ``plots``. The applications built on
them live in ``workbench.apps``: ``study`` (the demo), ``file_evaluation`` (a whole IFEval-format
file), ``explorer``, ``bench`` and ``cli``.
"""

import importlib
import importlib.abc
import importlib.util
import sys

from workbench.errors import WorkbenchError
from workbench.extract import compute_vector, compute_vectors
from workbench.generation.generate import Generation, generate
from workbench.generation.steering import Steer, steering
from workbench.instructions import Group, Instruction, catalog, get_instruction, make_pairs, queries
from workbench.models import DEFAULT_MODEL, EMBEDDED, Model, load_model, tiny_model
from workbench.vectors import InstructionVector

__version__ = "0.1.0"

_MODULES = ("sweep", "judging", "stats", "plots", "analysis", "interop", "compare", "apps")
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

_MOVED = {  # old homes: ``workbench.NAME`` and ``import workbench.NAME`` still give the module's new home
    "study": "apps.study",
    "report": "apps.study.report",
    "external": "apps.file_evaluation",
    "evaluate": "judging",
    "generate": "generation.generate",
    "decoding": "generation.decoding",
    "compiled": "generation.compiled",
    "batching": "generation.batching",
    "steering": "generation.steering",
    "detection": "generation.detection",
    "vllm_engine": "engines.vllm.engine",
    "vllm_options": "engines.vllm.options",
    "vllm_worker": "engines.vllm.worker",
    "sweep.significance": "stats",
}


class _OldHomes(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import workbench.vllm_engine`` (a module's home before 0.2) imports its new home, the same module
    object, so code and notebooks written against the old layout keep working. ``workbench.generate``
    and ``workbench.steering`` are functions too: importing them as modules would replace the function,
    so that is a one-line error naming the new home."""

    def find_spec(self, fullname, path, target=None):
        old = fullname.removeprefix("workbench.")
        if old == fullname or old not in _MOVED:
            return None
        if callable(globals().get(old)):
            raise ModuleNotFoundError(f"{fullname} moved to workbench.{_MOVED[old]}: import from there")
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return importlib.import_module(f"workbench.{_MOVED[spec.name.removeprefix('workbench.')]}")

    def exec_module(self, module):
        pass


sys.meta_path.append(_OldHomes())


def __getattr__(name: str):
    """``workbench.sweep``, ``workbench.plots``, ``workbench.side_by_side``, ``workbench.evaluate_file``, ...:
    imported on first use (plots pulls in Plotly, compare pandas and the checkers, apps all of these).
    ``workbench.study``, ``.report`` and ``.external``, public before the applications moved to
    ``workbench.apps``, still resolve there."""
    if name in _MODULES or name in _NAMES or name in _MOVED:
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
