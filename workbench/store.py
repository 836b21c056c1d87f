"""Where vectors are kept, so nothing is computed twice: a results folder's ``vectors/`` (with the
training activations behind each, for separability), and the user cache that ``workbench steer``
reads, keyed by model, precision, instruction, the pairs' text and the aggregator. A vector made by one
aggregator is never served for another: in a results folder the default's vectors keep their old place
(``vectors/SLUG.safetensors``) and another aggregator's live in ``vectors/AGGREGATOR/``, so folders
written before aggregators could be chosen still read, and two aggregators can share one folder."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from workbench.errors import WorkbenchError
from workbench.extract import AGGREGATORS, Aggregator, compute_vector, compute_vectors
from workbench.instructions import Group, Instruction, Pair, as_group, data_hash, make_pairs
from workbench.io import atomic_path, cache_dir
from workbench.models import Model, dtype_name
from workbench.vectors import InstructionVector

DEFAULT_AGGREGATOR = "mean_difference"  # the paper's; what every vector made before the choice existed used


def aggregator_named(name: str) -> Aggregator:
    """The aggregator ``name`` spells in ``extract.AGGREGATORS``; anything else is one line naming them."""
    if not isinstance(name, str) or name not in AGGREGATORS:
        raise WorkbenchError(f"unknown aggregator {name!r}: use one of {', '.join(AGGREGATORS)}")
    return AGGREGATORS[name]


def folder_file(out: Path, group: Group, aggregator: str = DEFAULT_AGGREGATOR) -> Path:
    """Where a results folder keeps a group's vector: ``vectors/SLUG.safetensors`` for the default
    aggregator (as before the choice existed), ``vectors/AGGREGATOR/SLUG.safetensors`` for another."""
    folder = out / "vectors" if aggregator == DEFAULT_AGGREGATOR else out / "vectors" / aggregator
    return folder / f"{group.slug}.safetensors"


def _reusable(vec: InstructionVector, aggregator: str) -> bool:
    """A saved vector serves only its own aggregator, and only if it has the projection spreads
    (files from before they were kept are recomputed)."""
    return vec.aggregator == aggregator and vec.proj_with_std is not None


def vectors_for(
    model: Model,
    instructions: Sequence[str | Instruction | Group],
    out: Path | None,
    n_train: int,
    pairs: Mapping[str, Sequence[Pair]] | None = None,
    return_activations: bool = False,
    progress: bool = True,
    aggregator: str = DEFAULT_AGGREGATOR,
) -> dict:
    """Instruction vectors by name, cached in ``out/vectors`` (``folder_file``) so reruns reuse them;
    the missing ones are computed together (``compute_vectors``: shared prompts recorded once, with a
    bar unless ``progress`` is False: the pipelines that call this run for minutes). ``aggregator``: a
    name in ``extract.AGGREGATORS``; a saved vector made by another is never reused for it.

    The training activations behind each ([n, n_layers, d_model] with and without the instruction)
    are cached beside it, so separability needs no second pass over the training prompts.
    """
    aggregate = aggregator_named(aggregator)
    groups = [as_group(i) for i in instructions]
    files = {g.name: folder_file(out, g, aggregator) for g in groups} if out else {}
    found: dict[str, InstructionVector | tuple[InstructionVector, Tensor, Tensor]] = {}
    for name, file in files.items():
        acts_file = file.with_suffix(".activations.pt")
        if file.exists() and (not return_activations or acts_file.exists()):
            vec = InstructionVector.load(file, model)
            if not _reusable(vec, aggregator):  # recomputed below, and the file replaced
                continue
            if return_activations:
                acts = torch.load(acts_file, weights_only=True)
                found[name] = (vec, acts["with"], acts["without"])
            else:
                found[name] = vec
    missing = [g for g in groups if g.name not in found]
    if missing:
        given = {g.name: list(pairs[g.name])[:n_train] for g in missing if pairs and pairs.get(g.name)}
        made = compute_vectors(model, missing, given, n_pairs=n_train, progress=progress, aggregator=aggregate)
        for name, (vec, w, wo) in made.items():
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
    aggregator: str = DEFAULT_AGGREGATOR,
):
    """One instruction's vector (``vectors_for`` for one)."""
    group = as_group(instruction)
    given = {group.name: pairs} if pairs else None
    return vectors_for(model, [group], out, n_train, given, return_activations, progress, aggregator)[group.name]


def cached_vector(
    model: Model,
    instruction: str | Instruction | Group,
    n_pairs: int = 64,
    root: str | Path | None = None,
    progress: bool | None = None,
    aggregator: str = DEFAULT_AGGREGATOR,
) -> InstructionVector:
    """``compute_vector`` on the training queries, cached on disk (``$WORKBENCH_CACHE/vectors``) under
    a key of the model, its precision, the instruction's definition, the pairs' text and the aggregator
    (a name in ``extract.AGGREGATORS``; the default's key is the one from before the choice existed, so
    those cached vectors still serve). ``progress``: a recording bar; by default where stderr is a
    terminal (``workbench steer``), not in a notebook, where the explorer records from a background thread."""
    aggregate = aggregator_named(aggregator)
    group = as_group(instruction)
    pairs = make_pairs(group, "train", limit=n_pairs)
    path = (
        Path(root or cache_dir() / "vectors")
        / model.name.replace("/", "--")
        / cache_name(model, group, pairs, aggregator)
    )
    if path.exists():
        vec = InstructionVector.load(path, model)
        if _reusable(vec, aggregator):
            return vec
    shown = sys.stderr.isatty() if progress is None else progress
    vec = compute_vector(model, group, pairs=pairs, progress=shown, aggregator=aggregate)
    vec.save(path)
    return vec


def cache_name(model: Model, group: Group, pairs: Sequence[Pair], aggregator: str = DEFAULT_AGGREGATOR) -> str:
    """The user cache's file name for a vector: the group's slug and a hash of what made it (the
    aggregator's name joins the hash unless it is the default, whose files predate the choice)."""
    parts = [model.name, dtype_name(model.dtype), json.dumps(group.spec(), sort_keys=True)]
    parts += [p.with_instruction + "\0" + p.without_instruction for p in pairs]
    key = data_hash(parts + ([] if aggregator == DEFAULT_AGGREGATOR else [f"aggregator={aggregator}"]))
    return f"{group.slug}-{key}.safetensors"
