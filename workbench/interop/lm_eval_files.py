"""lm-eval: steering specs as the ``.pt`` file its ``steered`` model reads, and an IFEval task on your file.

lm-eval (``lm_eval --model steered --model_args pretrained=DIR,steer_path=FILE.pt``) reads a ``.pt``
dict {module name: {"steering_vector", "steering_coefficient", "action", "bias", "head_index"}} and
hooks the module's output, resolving names on ``model.base_model`` (``layers.15`` for a
Llama-family model). ``add`` adds coefficient × vector (our ``add``, in absolute units); ``clamp``
sets the projection on the unit vector to the coefficient (our ``project``, with z̄). Each operator
names its action (``Operator.lm_eval``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from workbench.errors import WorkbenchError
from workbench.generation.steering import OPERATORS, Steer
from workbench.io import atomic_path
from workbench.models import Model


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
