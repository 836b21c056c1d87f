"""Steering operators, one per module: each defines ``OPERATOR``, an ``Operator``; ``OPERATORS`` finds
them all. Adding one is one file here (and its test): the registry, ``Steer``, the CLI's names, the
compiled step (when it is affine) and the exports read what the object says."""

from __future__ import annotations

from workbench.discovery import discover
from workbench.operators.base import Change, Coefficient, Operator

PAPER = ("add", "project", "ablate")  # listed first, in this order, in messages and menus


def _discover() -> dict[str, Operator]:
    found: dict[str, Operator] = {}
    for operator in discover(__name__, __path__, "OPERATOR", PAPER):
        assert isinstance(operator, Operator)
        if operator.name in found:
            raise RuntimeError(f"two steering operators are named {operator.name!r}")
        found[operator.name] = operator
    return found


OPERATORS: dict[str, Operator] = _discover()
"""Name → operator, every module of this package."""

__all__ = ["OPERATORS", "Change", "Coefficient", "Operator"]
