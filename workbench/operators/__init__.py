"""Steering operators, one per module: each defines ``OPERATOR``, an ``Operator``; ``OPERATORS`` finds
them all. Adding one is one file here (and its test): the registry, ``Steer``, the CLI's names, the
compiled step (when it is affine) and the exports read what the object says."""

from __future__ import annotations

import importlib
import pkgutil

from workbench.operators.base import Change, Coefficient, Operator

PAPER = ("add", "project", "ablate")  # listed first, in this order, in messages and menus


def _discover() -> dict[str, Operator]:
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "base")
    found: dict[str, Operator] = {}
    for name in [n for n in PAPER if n in names] + [n for n in names if n not in PAPER]:
        operator = importlib.import_module(f"{__name__}.{name}").OPERATOR
        if operator.name in found:
            raise RuntimeError(f"two steering operators are named {operator.name!r}")
        found[operator.name] = operator
    return found


OPERATORS: dict[str, Operator] = _discover()
"""Name → operator, every module of this package."""

__all__ = ["OPERATORS", "Change", "Coefficient", "Operator"]
