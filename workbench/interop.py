"""Vectors leaving and entering the workbench: lm-eval's ``steered`` model, llama.cpp control vectors,
and model-to-model transfer.

lm-eval (``lm_eval --model steered --model_args pretrained=DIR,steer_path=FILE.pt``) reads a ``.pt``
dict {module name: {"steering_vector", "steering_coefficient", "action", "bias", "head_index"}} and
hooks the module's output, resolving names on ``model.base_model`` (``layers.15`` for a
Llama-family model). ``add`` adds coefficient × vector (our ``add``, in absolute units); ``clamp``
sets the projection on the unit vector to the coefficient (our ``project``, with z̄).

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
from typing import Any

import numpy as np
import torch

from workbench.errors import WorkbenchError
from workbench.io import atomic_path
from workbench.models import Model
from workbench.steering import OPERATORS, Steer
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


def lm_eval_module(model: Model | None, layer: int) -> str:
    """The name, under the plain HF model's ``base_model``, of the decoder layer whose output is
    ``blocks.{layer}.hook_resid_post`` (``layers.N`` for Llama, Qwen and Gemma)."""
    if model is None or model.twin is None:
        return f"layers.{layer}"
    base: Any = model.twin.base_model
    target = base.layers[layer]
    return next(name for name, module in base.named_modules() if module is target)


def export_lm_eval(specs: Steer | list[Steer], path: str | Path, model: Model | None = None) -> Path:
    """Write steering specs as the ``.pt`` file lm-eval's ``steered`` model reads (atomically).

    Each operator's ``lm_eval`` names its action: ``add`` specs become ``add`` entries (two at one
    layer are summed), ``project`` becomes ``clamp`` at z̄; lm-eval steers every position with one coefficient, so
    specs must too. With ``model`` the
    module names are read from its own module tree.
    """
    specs = [specs] if isinstance(specs, Steer) else list(specs)
    if not specs:
        raise WorkbenchError("nothing to export: give at least one steering spec")
    entries: dict[str, dict] = {}
    for spec in specs:
        if spec.positions != "all" or (torch.is_tensor(spec.coefficient) and spec.coefficient.ndim > 0):
            raise WorkbenchError(
                "lm-eval steers every position with one coefficient: export specs with positions='all' and a "
                "single coefficient"
            )
        action = spec.operator.lm_eval
        if action is None:
            exportable = [n for n, op in OPERATORS.items() if op.lm_eval]
            raise WorkbenchError(f"lm-eval has no {spec.mode!r} action: export {' or '.join(exportable)} specs")
        name = lm_eval_module(model, spec.layer)
        u = (spec.direction / spec.direction.norm()).float().cpu()
        if action == "clamp":
            if name in entries:
                raise WorkbenchError(
                    f"layer {spec.layer} holds two specs and one is a projection: lm-eval takes one clamp per module"
                )
            entries[name] = {
                "steering_vector": u,
                "steering_coefficient": float(spec.coefficient),
                "action": "clamp",
                "bias": None,
                "head_index": None,
            }
            continue
        added = float(spec.coefficient) * u
        if name in entries:
            if entries[name]["action"] != "add":
                raise WorkbenchError(
                    f"layer {spec.layer} holds two specs and one is a projection: lm-eval takes one clamp per module"
                )
            added = added + entries[name]["steering_vector"]
        entries[name] = {
            "steering_vector": added,
            "steering_coefficient": 1.0,
            "action": "add",
            "bias": None,
            "head_index": None,
        }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(entries, tmp)
    return path


_IFEVAL_TASK = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    train: {data}
output_type: generate_until
test_split: train
num_fewshot: 0
doc_to_text: prompt
doc_to_target: 0
generation_kwargs:
  until: []
  do_sample: false
  temperature: 0.0
  max_gen_toks: {max_gen_toks}
process_results: !function utils.process_results
metric_list:
  - metric: prompt_level_strict_acc
    aggregation: mean
    higher_is_better: true
  - metric: inst_level_strict_acc
    aggregation: !function utils.agg_inst_level_acc
    higher_is_better: true
  - metric: prompt_level_loose_acc
    aggregation: mean
    higher_is_better: true
  - metric: inst_level_loose_acc
    aggregation: !function utils.agg_inst_level_acc
    higher_is_better: true
metadata:
  version: 4.0
"""


def write_ifeval_task(
    folder: str | Path, data: str | Path, name: str = "ifeval_offline", max_gen_toks: int = 1280
) -> Path:
    """An lm-eval task folder (``--include_path FOLDER --tasks NAME``) that runs lm-eval's own IFEval
    on a local IFEval-format JSONL instead of the hub's ``google/IFEval``: same prompts field, same
    scoring functions, same four metrics; ``max_gen_toks`` as given (IFEval's is 1280)."""
    data = Path(data).resolve()
    if not data.is_file():
        raise WorkbenchError(f"no IFEval JSONL at {data}: give the path of the prompts file")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "utils.py") as tmp:
        Path(tmp).write_text(
            "from lm_eval.tasks.ifeval.utils import agg_inst_level_acc, process_results  # noqa: F401\n"
        )
    with atomic_path(folder / f"{name}.yaml") as tmp:
        Path(tmp).write_text(_IFEVAL_TASK.format(name=name, data=data, max_gen_toks=max_gen_toks))
    return folder / f"{name}.yaml"


def export_model(name: str, out: str | Path) -> Path:
    """An embedded model as a plain Hugging Face folder (float32, dequantized from its GGUF) that any
    tool loads offline, e.g. ``lm_eval --model steered --model_args pretrained=OUT,...``."""
    import shutil

    from workbench.models import EMBEDDED, dequantized_folder

    if name not in EMBEDDED:
        raise WorkbenchError(f"{name!r} is not an embedded model: use one of {', '.join(EMBEDDED)}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise WorkbenchError(f"{out} exists and is not empty: give a new folder")
    source = dequantized_folder(name)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return out


def _compat(model: Model) -> bool:
    return bool(getattr(model.bridge, "compatibility_mode", False))
