"""llama.cpp control vectors: the GGUF file it reads, and applying one to a llama-cpp-python model.

A control-vector GGUF has architecture ``controlvector``, one F32 tensor ``direction.N`` per layer,
added (times the ``--control-vector-scaled`` strength) to the output of block N — our
``blocks.N.hook_resid_post``. llama.cpp has no ``direction.0`` (it rejects layer index 0), so block
0 is never exported. Convention here: ``direction.N = coefficient × mean_diff[N]``, so strength 1.0
in llama.cpp equals ``vec.steer(N, coefficient)`` here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from workbench.errors import WorkbenchError
from workbench.generation.steering import Steer
from workbench.io import atomic_path
from workbench.vectors import InstructionVector, check_multiples

ARCH = "controlvector"


def export_control_vector(
    vec: InstructionVector, path: str | Path, coefficient: float = 1.0, layers=None, model_hint: str = "llama"
) -> Path:
    """Write ``vec`` as a llama.cpp control vector (atomically)."""
    import gguf

    path = Path(path)
    check_multiples([coefficient], f"coefficient {coefficient}")
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


def control_vector_data(path: str | Path, strength: float = 1.0, n_layers: int | None = None) -> tuple[np.ndarray, int]:
    """The flat float32 buffer llama.cpp's loader (``common_control_vector_load``) builds from one file,
    and its width: ``strength × direction.N`` at offset ``(N − 1) · n_embd`` (layer 1 first), zeros
    where the file has no direction; with ``n_layers``, zeros up to the model's last layer."""
    directions = import_control_vector(path)
    n_embd = len(next(iter(directions.values())))
    if n_layers is not None and max(directions) >= n_layers:
        raise WorkbenchError(f"{path} steers layer {max(directions)}, but the model has {n_layers} layers")
    data = np.zeros(n_embd * max(max(directions), (n_layers or 1) - 1), dtype=np.float32)
    for layer, v in directions.items():
        if layer == 0:
            raise WorkbenchError(f"{path} holds direction.0: llama.cpp rejects layer 0")
        data[n_embd * (layer - 1) : n_embd * layer] += strength * v.numpy()
    return data, n_embd


def apply_control_vector(
    llm, path: str | Path | None, strength: float = 1.0, layer_range: tuple[int, int] | None = None
) -> None:
    """Steer a llama-cpp-python ``Llama`` with a control-vector file, as llama.cpp's
    ``--control-vector-scaled PATH STRENGTH [--control-vector-layer-range A B]`` does; ``path=None``
    removes it. Resets the ``Llama``'s token cache, whose keys and values were computed unsteered.

    The buffer covers every layer: llama.cpp overwrites only the layers a buffer reaches, so a
    shorter one would leave an earlier vector's deeper layers in place."""
    import ctypes

    import llama_cpp

    llm.reset()
    if path is None:
        llama_cpp.llama_set_adapter_cvec(llm.ctx, None, 0, 0, -1, -1)
        return
    n_layer = llama_cpp.llama_model_n_layer(llm.model)
    data, n_embd = control_vector_data(path, strength, n_layer)
    start, end = layer_range or (1, n_layer)
    buffer = data.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    if llama_cpp.llama_set_adapter_cvec(llm.ctx, buffer, len(data), n_embd, start, end):
        raise WorkbenchError(
            f"llama.cpp refused the control vector {path} (width {n_embd}, model "
            f"{llama_cpp.llama_model_n_embd(llm.model)})"
        )
