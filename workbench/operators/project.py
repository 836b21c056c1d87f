"""``project``: x ← x + (c − x·u)·u, the projection on u becomes c (the paper's projection matching, c = z̄)."""

from workbench.operators.base import Operator


def change(x, u, c):
    return (c[:, None] - x @ u)[..., None] * u


OPERATOR = Operator("project", change, coefficient="target", affine=(1.0, 1.0), lm_eval="clamp")
