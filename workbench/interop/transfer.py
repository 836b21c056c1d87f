"""Model-to-model transfer: a vector computed on one model, used on another of the same shape."""

from __future__ import annotations

import warnings
from dataclasses import replace

from workbench.errors import WorkbenchError
from workbench.models import Model
from workbench.vectors import InstructionVector


def transfer(vec: InstructionVector, target: Model, source: Model | None = None) -> InstructionVector:
    """Use a vector computed on one model on another of the same shape (e.g. instruct → base).

    Refuses another width or depth. Warns when the residual bases may differ: one model processed
    with TransformerLens compatibility mode (centred writing weights) and the other not.
    """
    if vec.d_model != target.d_model or vec.n_layers != target.n_layers:
        raise WorkbenchError(
            f"cannot transfer: the vector is {vec.n_layers} layers × {vec.d_model} wide, {target.name} is "
            f"{target.n_layers} × {target.d_model}"
        )
    if source is not None:
        a, b = _compat(source), _compat(target)
        if a != b:
            warnings.warn(
                f"residual bases differ: {source.name} compatibility mode={a}, {target.name}={b}; "
                "process both models the same way before transferring vectors",
                stacklevel=2,
            )
    return replace(vec, model_name=target.name, versions={**vec.versions, "transferred_from": vec.model_name})


def _compat(model: Model) -> bool:
    return bool(getattr(model.bridge, "compatibility_mode", False))
