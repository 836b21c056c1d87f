"""``add``: x ← x + c·u (the paper's fixed-coefficient steering)."""

from workbench.operators.base import Operator


def change(x, u, c):
    return (c[:, None, None] * u).expand_as(x)


OPERATOR = Operator("add", change, coefficient="scale", affine=(1.0, 0.0), lm_eval="add")
