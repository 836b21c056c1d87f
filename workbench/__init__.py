"""workbench: steer instruction following with activation vectors (Stolfo et al., ICLR 2025)."""

from workbench.errors import WorkbenchError
from workbench.generate import Generation, generate
from workbench.models import DEFAULT_MODEL, EMBEDDED, Model, load_model, tiny_model
from workbench.instructions import Group, Instruction, catalog, get_instruction
from workbench.prompts import make_pairs, queries
from workbench.steering import Steer, steering

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL", "EMBEDDED", "Generation", "Group", "Instruction", "Model", "Steer", "WorkbenchError", "catalog", "generate",
    "get_instruction", "load_model", "make_pairs", "queries", "steering", "tiny_model",
]
