"""``floor``: x ← x + max(c − x·u, 0)·u, the projection on u raised to at least c, left alone where it
already reaches c (a clamp from below; c = z̄ by default). Not affine: the compiled step and vLLM's
compiled graphs refuse it, and lm-eval has no such action."""

import torch

from workbench.operators.base import Operator


def change(x, u, c):
    return torch.clamp(c[:, None] - x @ u, min=0.0)[..., None] * u


OPERATOR = Operator("floor", change, coefficient="target")
