"""Where vectors are kept, so nothing is computed twice: a results folder's ``vectors/`` (with the
training activations behind each, for separability), and the user cache that ``workbench steer``
reads, keyed by model, precision, instruction and the pairs' text."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from workbench.extract import compute_vector, compute_vectors
from workbench.instructions import Group, Instruction, Pair, as_group, data_hash, make_pairs
from workbench.io import atomic_path, cache_dir
from workbench.models import Model, dtype_name
from workbench.vectors import InstructionVector


def vectors_for(
    model: Model,
    instructions: Sequence[str | Instruction | Group],
    out: Path | None,
    n_train: int,
    pairs: Mapping[str, Sequence[Pair]] | None = None,
    return_activations: bool = False,
    progress: bool = True,
) -> dict:
    """Instruction vectors by name, cached in ``out/vectors`` so reruns reuse them; the missing ones
    are computed together (``compute_vectors``: shared prompts recorded once, with a bar unless
    ``progress`` is False: the pipelines that call this run for minutes).

    The training activations behind each ([n, n_layers, d_model] with and without the instruction)
    are cached beside it, so separability needs no second pass over the training prompts.
    """
    groups = [as_group(i) for i in instructions]
    files = {g.name: out / "vectors" / f"{g.slug}.safetensors" for g in groups} if out else {}
    found: dict[str, InstructionVector | tuple[InstructionVector, Tensor, Tensor]] = {}
    for name, file in files.items():
        acts_file = file.with_suffix(".activations.pt")
        if file.exists() and (not return_activations or acts_file.exists()):
            vec = InstructionVector.load(file, model)
            if vec.proj_with_std is None:  # written before projection spreads were kept: recomputed below
                continue
            if return_activations:
                acts = torch.load(acts_file, weights_only=True)
                found[name] = (vec, acts["with"], acts["without"])
            else:
                found[name] = vec
    missing = [g for g in groups if g.name not in found]
    if missing:
        given = {g.name: list(pairs[g.name])[:n_train] for g in missing if pairs and pairs.get(g.name)}
        for name, (vec, w, wo) in compute_vectors(model, missing, given, n_pairs=n_train, progress=progress).items():
            if name in files:
                vec.save(files[name])
                with atomic_path(files[name].with_suffix(".activations.pt")) as tmp:
                    torch.save({"with": w, "without": wo}, tmp)
            found[name] = (vec, w, wo) if return_activations else vec
    return found


def vector_for(
    model: Model,
    instruction: str | Instruction | Group,
    out: Path | None,
    n_train: int,
    return_activations: bool = False,
    pairs: Sequence[Pair] | None = None,
    progress: bool = True,
):
    """One instruction's vector (``vectors_for`` for one)."""
    group = as_group(instruction)
    return vectors_for(
        model, [group], out, n_train, {group.name: pairs} if pairs else None, return_activations, progress
    )[group.name]


def cached_vector(
    model: Model,
    instruction: str | Instruction | Group,
    n_pairs: int = 64,
    root: str | Path | None = None,
    progress: bool | None = None,
) -> InstructionVector:
    """``compute_vector`` on the training queries, cached on disk (``$WORKBENCH_CACHE/vectors``) under
    a key of the model, its precision, the instruction's definition and the pairs' text. ``progress``:
    a recording bar; by default where stderr is a terminal (``workbench steer``), not in a notebook,
    where the explorer records from a background thread."""
    group = as_group(instruction)
    pairs = make_pairs(group, "train", limit=n_pairs)
    key = data_hash(
        [model.name, dtype_name(model.dtype), json.dumps(group.spec(), sort_keys=True)]
        + [p.with_instruction + "\0" + p.without_instruction for p in pairs]
    )
    path = Path(root or cache_dir() / "vectors") / model.name.replace("/", "--") / f"{group.slug}-{key}.safetensors"
    if path.exists():
        vec = InstructionVector.load(path, model)
        if vec.proj_with_std is not None:  # files from before projection spreads were kept are recomputed
            return vec
    vec = compute_vector(model, group, pairs=pairs, progress=sys.stderr.isatty() if progress is None else progress)
    vec.save(path)
    return vec
