"""``ablate``: x ← x − (x·u)·u, the direction removed (the coefficient is ignored)."""

from workbench.operators.base import Operator


def change(x, u, c):
    return -(x @ u)[..., None] * u


OPERATOR = Operator("ablate", change, coefficient="none", affine=(0.0, 1.0))
