"""Extraction: residual activations at each prompt's last token (every layer, one forward per batch),
and the instruction vector formed from paired activations by an aggregator (the paper's mean
difference by default; the first principal component of the differences as an alternative)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from workbench.errors import WorkbenchError
from workbench.generation.batching import auto_batch_size, left_pad, positions
from workbench.instructions import Group, Instruction, Pair, as_group, data_hash, make_pairs
from workbench.models import HOOK_TEMPLATE, Model
from workbench.vectors import InstructionVector

RECORD_ROWS = (
    64  # prompts a recording batch holds at most (unless told): a progress bar moves every batch, memory stays flat
)


@torch.inference_mode()
def record_last_token(
    model: Model, prompts: Sequence[str], chat: bool = True, batch_size: int | None = None, progress: bool = False
) -> Float[Tensor, "n n_layers d_model"]:
    """The residual stream after every block at each prompt's last token (left padding puts it last).
    ``progress``: a bar counting prompts, moving every batch (``RECORD_ROWS`` at most)."""
    if not prompts:
        raise WorkbenchError("no prompts to record: pass at least one prompt")
    seqs = [model.encode(model.chat(p) if chat else p) for p in prompts]
    longest = max(len(s) for s in seqs)
    if longest > model.n_ctx:
        raise WorkbenchError(
            f"a prompt of {longest} tokens exceeds {model.name}'s context of {model.n_ctx}: shorten it"
        )
    batch_size = batch_size or min(RECORD_ROWS, auto_batch_size(model, longest, rows=len(seqs)))
    out = torch.empty(len(seqs), model.n_layers, model.d_model)
    current: dict[int, Tensor] = {}

    def keep_last(x, hook):  # stays on the model's device: one copy per batch, not one per layer
        current[hook.layer()] = x[:, -1]  # TransformerLens reads the index from the hook name
        return x

    names = {HOOK_TEMPLATE.format(layer=l) for l in range(model.n_layers)}
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    bar = tqdm(total=len(seqs), desc="recording vectors", unit="prompt", disable=not progress, leave=False)
    with model.bridge.hooks(fwd_hooks=[(name, keep_last) for name in sorted(names)]), bar:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            ids, mask = left_pad([seqs[i] for i in chunk], model.pad_token_id, model.device)
            model.forward(ids, mask, positions(mask), keep=0)  # no logits needed: the hooks keep what we want
            out[chunk] = torch.stack([current[l] for l in range(model.n_layers)], dim=1).float().cpu()
            current.clear()
            bar.update(len(chunk))
    return out


Aggregator = Callable[
    [Float[Tensor, "n n_layers d_model"], Float[Tensor, "n n_layers d_model"]], Float[Tensor, "n_layers d_model"]
]
"""(with-instruction activations, paired without-instruction activations) -> one vector per layer."""


def mean_difference(
    with_acts: Float[Tensor, "n n_layers d_model"], without_acts: Float[Tensor, "n n_layers d_model"]
) -> Float[Tensor, "n_layers d_model"]:
    """The paper's instruction vector: the mean over pairs of (with − without)."""
    return with_acts.mean(0) - without_acts.mean(0)


def first_component(
    with_acts: Float[Tensor, "n n_layers d_model"], without_acts: Float[Tensor, "n n_layers d_model"]
) -> Float[Tensor, "n_layers d_model"]:
    """The first principal direction of the paired differences (as repeng does), signed and scaled
    so that it points like the mean difference and has its projection: comparable norms, so the
    same coefficients mean the same strength."""
    diffs = (with_acts - without_acts).double()
    mean = diffs.mean(0)
    centered = diffs - mean
    _, _, v = torch.linalg.svd(
        centered.transpose(0, 1), full_matrices=False
    )  # per layer: [n, d] -> right singular vectors
    u = v[:, 0]
    scale = (mean * u).sum(-1)
    return (u * scale[:, None]).to(with_acts.dtype)


AGGREGATORS: dict[str, Aggregator] = {"mean_difference": mean_difference, "first_component": first_component}


def aggregate(
    with_acts: Float[Tensor, "n n_layers d_model"],
    without_acts: Float[Tensor, "n n_layers d_model"],
    instruction_id: str,
    model_name: str,
    aggregator: Aggregator = mean_difference,
    **provenance,
) -> InstructionVector:
    """The vector per layer (``aggregator``, default the mean difference), and the mean projections
    of both conditions on its unit direction."""
    if with_acts.shape != without_acts.shape:
        raise WorkbenchError(
            f"paired activations differ in shape: {tuple(with_acts.shape)} vs {tuple(without_acts.shape)}"
        )
    mean_with, mean_without = with_acts.mean(0), without_acts.mean(0)
    diff = aggregator(with_acts, without_acts)
    u = diff / diff.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return InstructionVector(
        instruction_id=instruction_id,
        model_name=model_name,
        mean_diff=diff,
        mean_with=mean_with,
        mean_without=mean_without,
        proj_with=torch.einsum("nld,ld->l", with_acts, u) / len(with_acts),
        proj_without=torch.einsum("nld,ld->l", without_acts, u) / len(without_acts),
        proj_with_std=torch.einsum("nld,ld->nl", with_acts, u).std(0, unbiased=False),
        proj_without_std=torch.einsum("nld,ld->nl", without_acts, u).std(0, unbiased=False),
        n_pairs=len(with_acts),
        aggregator=getattr(aggregator, "__name__", "custom"),
        **provenance,
    )


def library_versions() -> dict:
    import importlib.metadata as md

    out = {}
    for pkg in ("workbench", "transformer-lens", "transformers", "torch"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def compute_vectors(
    model: Model,
    instructions: Sequence[str | Instruction | Group],
    pairs: Mapping[str, Sequence[Pair]] | None = None,
    n_pairs: int | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    aggregator: Aggregator = mean_difference,
) -> dict[str, tuple[InstructionVector, Tensor, Tensor]]:
    """Several instruction vectors from one recording pass: a prompt that several of them share (the
    instruction-free queries) is recorded once. Returns name -> (vector, with-acts, without-acts).
    ``pairs`` (by name) replace the project's training queries for those instructions."""
    groups = [as_group(i) for i in instructions]
    chosen = {}
    for g in groups:
        ps = list((pairs or {}).get(g.name) or make_pairs(g, "train", limit=n_pairs))
        if not ps:
            raise WorkbenchError(f"no pairs to compute the {g.name} vector from: give at least one")
        if len({p.with_instruction for p in ps}) != len(ps):
            raise WorkbenchError("duplicate pairs: each base query should appear once")
        chosen[g.name] = ps
    texts = list(
        dict.fromkeys(t for ps in chosen.values() for p in ps for t in (p.with_instruction, p.without_instruction))
    )
    acts = record_last_token(model, texts, batch_size=batch_size, progress=progress)
    row = {t: i for i, t in enumerate(texts)}
    versions = library_versions()
    out = {}
    for g in groups:
        ps = chosen[g.name]
        with_acts = acts[[row[p.with_instruction] for p in ps]]
        without_acts = acts[[row[p.without_instruction] for p in ps]]
        vec = aggregate(
            with_acts,
            without_acts,
            instruction_id=g.name,
            model_name=model.name,
            aggregator=aggregator,
            phrasings=sorted({p.phrasing for p in ps}),
            instructions=[m.spec() for m in g.members],
            data_hash=data_hash([p.with_instruction for p in ps] + [p.without_instruction for p in ps]),
            versions=versions,
        )
        out[g.name] = (vec, with_acts, without_acts)
    return out


def compute_vector(
    model: Model,
    instruction: str | Instruction | Group | None = None,
    pairs: Sequence[Pair] | None = None,
    n_pairs: int | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    return_activations: bool = False,
    aggregator: Aggregator = mean_difference,
):
    """The instruction vector from training pairs: the project's train queries with the instruction
    (a catalog name, IFEval spelling, Instruction or Group) appended, unless ``pairs`` are given.
    ``aggregator``: how pairs become a vector (``AGGREGATORS``; default the paper's mean difference)."""
    if pairs is not None and not list(pairs):
        raise WorkbenchError("no pairs to compute a vector from: give at least one")
    if instruction is None:
        if pairs is None:
            raise WorkbenchError("give an instruction id or a list of pairs")
        members = list({p.instruction.id: p.instruction for p in pairs}.values())
        instruction = Group(members[0].id if len(members) == 1 else "custom", tuple(members))
    group = as_group(instruction)
    vec, with_acts, without_acts = compute_vectors(
        model, [group], {group.name: pairs} if pairs else None, n_pairs, batch_size, progress, aggregator
    )[group.name]
    return (vec, with_acts, without_acts) if return_activations else vec
