"""Vectors leaving and entering the workbench: llama.cpp control vectors, and model-to-model transfer.

llama.cpp control-vector GGUF: architecture ``controlvector``, one F32 tensor ``direction.N`` per
layer, added (times the ``--control-vector-scaled`` strength) to the output of block N — our
``blocks.N.hook_resid_post``. llama.cpp has no ``direction.0`` (it rejects layer index 0), so block
0 is never exported. Convention here: ``direction.N = coefficient × mean_diff[N]``, so strength 1.0
in llama.cpp equals ``vec.steer(N, coefficient)`` here.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from workbench.errors import WorkbenchError
from workbench.io import atomic_path
from workbench.models import Model
from workbench.steering import Steer
from workbench.vectors import InstructionVector

ARCH = "controlvector"


def export_control_vector(vec: InstructionVector, path: str | Path, coefficient: float = 1.0, layers=None, model_hint: str = "llama") -> Path:
    """Write ``vec`` as a llama.cpp control vector (atomically)."""
    import gguf

    path = Path(path)
    layers = sorted(layers) if layers else list(range(1, vec.n_layers))
    if any(not 1 <= l < vec.n_layers for l in layers):
        raise WorkbenchError(f"control vectors cover layers 1..{vec.n_layers - 1} (llama.cpp has no direction.0)")
    with atomic_path(path) as tmp:
        writer = gguf.GGUFWriter(tmp, ARCH)
        writer.add_string(f"{ARCH}.model_hint", model_hint)
        writer.add_uint32(f"{ARCH}.layer_count", len(layers))
        for layer in layers:
            writer.add_tensor(f"direction.{layer}", (coefficient * vec.mean_diff[layer]).numpy().astype(np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return path


def import_control_vector(path: str | Path) -> dict[int, torch.Tensor]:
    """Read a llama.cpp control vector: {layer: direction} (unnormalised, as stored)."""
    import gguf

    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(f"no control-vector file at {path}")
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as exc:
        raise WorkbenchError(f"{path} is not a GGUF file ({type(exc).__name__})") from None
    out = {}
    for tensor in reader.tensors:
        if not tensor.name.startswith("direction."):
            continue
        out[int(tensor.name.split(".")[1])] = torch.tensor(np.array(tensor.data, dtype=np.float32)).flatten()
    if not out:
        raise WorkbenchError(f"{path} holds no direction.N tensors: not a control vector")
    return out


def control_vector_specs(path: str | Path, strength: float = 1.0, layers=None) -> list[Steer]:
    """Steering specs equivalent to llama.cpp applying the file with this strength."""
    specs = []
    for layer, v in sorted(import_control_vector(path).items()):
        if layers is not None and layer not in layers:
            continue
        norm = float(v.norm())
        if norm > 0:
            specs.append(Steer(v / norm, layer, strength * norm, label=f"{Path(path).stem}@{layer}"))
    return specs


def transfer(vec: InstructionVector, target: Model, source: Model | None = None) -> InstructionVector:
    """Use a vector computed on one model on another of the same shape (e.g. instruct → base).

    Refuses another width or depth. Warns when the residual bases may differ: one model processed
    with TransformerLens compatibility mode (centred writing weights) and the other not.
    """
    if vec.d_model != target.d_model or vec.n_layers != target.n_layers:
        raise WorkbenchError(
            f"cannot transfer: the vector is {vec.n_layers} layers × {vec.d_model} wide, {target.name} is {target.n_layers} × {target.d_model}"
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
