"""Instruction vectors: mean over pairs of (resid with instruction − resid without) at the last prompt token.

Extraction is two composable steps: ``record_last_token`` (one batched forward per batch, a hook on
every ``blocks.L.hook_resid_post`` keeps only the last position) then ``aggregate``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from workbench.errors import WorkbenchError
from workbench.io import atomic_path
from workbench.generate import _left_pad, _positions, auto_batch_size
from workbench.models import HOOK_TEMPLATE, Model, cache_dir, dtype_name
from workbench.instructions import Group, Instruction, as_group
from workbench.prompts import Pair, data_hash, make_pairs
from workbench.steering import Mode, Positions, Steer

FORMAT_VERSION = 1


@torch.inference_mode()
def record_last_token(
    model: Model, prompts: Sequence[str], chat: bool = True, batch_size: int | None = None, progress: bool = False
) -> Float[Tensor, "n n_layers d_model"]:
    """The residual stream after every block at each prompt's last token (left padding puts it last)."""
    if not prompts:
        raise WorkbenchError("no prompts to record: pass at least one prompt")
    seqs = [model.encode(model.chat(p) if chat else p) for p in prompts]
    longest = max(len(s) for s in seqs)
    if longest > model.n_ctx:
        raise WorkbenchError(f"a prompt of {longest} tokens exceeds {model.name}'s context of {model.n_ctx}: shorten it")
    batch_size = batch_size or auto_batch_size(model, longest)
    out = torch.empty(len(seqs), model.n_layers, model.d_model)
    current: dict[int, Tensor] = {}

    def keep_last(x, hook):
        current[int(hook.name.split(".")[1])] = x[:, -1].float().cpu()
        return x

    names = {HOOK_TEMPLATE.format(layer=l) for l in range(model.n_layers)}
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    with model.bridge.hooks(fwd_hooks=[(name, keep_last) for name in sorted(names)]):
        body = model.runner.base_model  # the transformer without the unembedding: no logits needed
        for start in tqdm(range(0, len(order), batch_size), desc="record", disable=not progress, leave=False):
            chunk = order[start : start + batch_size]
            ids, mask = _left_pad([seqs[i] for i in chunk], model.pad_token_id)
            body(input_ids=ids.to(model.device), attention_mask=mask.to(model.device), position_ids=_positions(mask).to(model.device), use_cache=False)
            out[chunk] = torch.stack([current[l] for l in range(model.n_layers)], dim=1)
            current.clear()
    return out


@dataclass
class InstructionVector:
    """Per-layer instruction vector with everything needed to steer with it and to trust it."""

    instruction_id: str
    model_name: str
    mean_diff: Float[Tensor, "n_layers d_model"]
    mean_with: Float[Tensor, "n_layers d_model"]
    mean_without: Float[Tensor, "n_layers d_model"]
    proj_with: Float[Tensor, "n_layers"]  # mean projection of with-instruction activations on u (z̄)
    proj_without: Float[Tensor, "n_layers"]
    n_pairs: int
    hook: str = HOOK_TEMPLATE
    position: str = "last prompt token"
    phrasings: list[str] = field(default_factory=list)
    instructions: list[dict] = field(default_factory=list)  # what each instruction was (source, IFEval id, kwargs)
    data_hash: str = ""
    versions: dict = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        return self.mean_diff.shape[0]

    @property
    def d_model(self) -> int:
        return self.mean_diff.shape[1]

    @property
    def norms(self) -> Float[Tensor, "n_layers"]:
        return self.mean_diff.norm(dim=-1)

    @property
    def directions(self) -> Float[Tensor, "n_layers d_model"]:
        return self.mean_diff / self.norms[:, None].clamp_min(1e-12)

    def steer(self, layer: int, coefficient: float | Tensor | None = None, mode: Mode = "add", positions: Positions = "all", relative: bool = False) -> Steer:
        """A steering spec at ``layer``. ``add``: coefficient c (``relative``: c × this layer's
        mean-difference norm). ``project``: coefficient is the target projection, default z̄."""
        if not 0 <= layer < self.n_layers:
            raise WorkbenchError(f"layer {layer} is out of range for this vector: use 0..{self.n_layers - 1}")
        if mode == "project" and coefficient is None:
            coefficient = float(self.proj_with[layer])
        if coefficient is None:
            raise WorkbenchError("mode 'add' needs a coefficient")
        if relative and mode == "add":
            coefficient = coefficient * float(self.norms[layer])
        return Steer(self.directions[layer], layer, coefficient, mode, positions, label=self.instruction_id)

    def check_compatible(self, model: Model, allow_other_model: bool = False) -> None:
        if self.d_model != model.d_model or self.n_layers != model.n_layers:
            raise WorkbenchError(
                f"vector {self.instruction_id} is for a model with {self.n_layers} layers × d_model {self.d_model}, "
                f"but {model.name} has {model.n_layers} × {model.d_model}: compute the vector on this model"
            )
        if self.model_name != model.name and not allow_other_model:
            raise WorkbenchError(
                f"vector {self.instruction_id} was computed on {self.model_name}, not {model.name}: "
                "recompute it, or pass allow_other_model=True (transfer)"
            )

    def save(self, path: str | Path) -> Path:
        """Write one .safetensors file (tensors + JSON metadata), atomically."""
        from safetensors.torch import save_file

        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_suffix(".safetensors")
        tensors = {k: getattr(self, k).contiguous() for k in _TENSORS}
        meta = {k: v for k, v in asdict(self).items() if k not in _TENSORS}
        with atomic_path(path) as tmp:
            save_file(tensors, tmp, metadata={"workbench": json.dumps({"format": FORMAT_VERSION, **meta})})
        return path

    @classmethod
    def load(cls, path: str | Path, model: Model | None = None, allow_other_model: bool = False) -> "InstructionVector":
        """Read a vector file; with ``model``, refuse one of another width or model."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise WorkbenchError(f"no vector file at {path}: compute one with `workbench vectors`")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads((f.metadata() or {})["workbench"])
                tensors = {k: f.get_tensor(k) for k in _TENSORS}
        except Exception as exc:  # safetensors raises several types for corrupt files
            raise WorkbenchError(f"{path} is not a workbench vector file ({type(exc).__name__}): recompute it with `workbench vectors`") from None
        if meta.pop("format", None) != FORMAT_VERSION:
            raise WorkbenchError(f"{path} has an unknown format version: recompute it with this workbench")
        vec = cls(**tensors, **meta)
        if not all(torch.isfinite(t).all() for t in tensors.values()):
            raise WorkbenchError(f"{path} holds NaN or infinite values: recompute the vector")
        if model is not None:
            vec.check_compatible(model, allow_other_model)
        return vec


_TENSORS = ("mean_diff", "mean_with", "mean_without", "proj_with", "proj_without")


def aggregate(
    with_acts: Float[Tensor, "n n_layers d_model"],
    without_acts: Float[Tensor, "n n_layers d_model"],
    instruction_id: str,
    model_name: str,
    **provenance,
) -> InstructionVector:
    """Mean difference per layer, and the mean projections on its unit direction."""
    if with_acts.shape != without_acts.shape:
        raise WorkbenchError(f"paired activations differ in shape: {tuple(with_acts.shape)} vs {tuple(without_acts.shape)}")
    mean_with, mean_without = with_acts.mean(0), without_acts.mean(0)
    diff = mean_with - mean_without
    u = diff / diff.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return InstructionVector(
        instruction_id=instruction_id,
        model_name=model_name,
        mean_diff=diff,
        mean_with=mean_with,
        mean_without=mean_without,
        proj_with=torch.einsum("nld,ld->l", with_acts, u) / len(with_acts),
        proj_without=torch.einsum("nld,ld->l", without_acts, u) / len(without_acts),
        n_pairs=len(with_acts),
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
    texts = list(dict.fromkeys(t for ps in chosen.values() for p in ps for t in (p.with_instruction, p.without_instruction)))
    acts = record_last_token(model, texts, batch_size=batch_size, progress=progress)
    row = {t: i for i, t in enumerate(texts)}
    versions = library_versions()
    out = {}
    for g in groups:
        ps = chosen[g.name]
        with_acts = acts[[row[p.with_instruction] for p in ps]]
        without_acts = acts[[row[p.without_instruction] for p in ps]]
        vec = aggregate(
            with_acts, without_acts, instruction_id=g.name, model_name=model.name,
            phrasings=sorted({p.phrasing for p in ps}), instructions=[m.spec() for m in g.members],
            data_hash=data_hash([p.with_instruction for p in ps] + [p.without_instruction for p in ps]), versions=versions,
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
):
    """The instruction vector from training pairs: the project's train queries with the instruction
    (a catalog name, IFEval spelling, Instruction or Group) appended, unless ``pairs`` are given."""
    if pairs is not None and not list(pairs):
        raise WorkbenchError("no pairs to compute a vector from: give at least one")
    if instruction is None:
        if pairs is None:
            raise WorkbenchError("give an instruction id or a list of pairs")
        members = list({p.instruction.id: p.instruction for p in pairs}.values())
        instruction = Group(members[0].id if len(members) == 1 else "custom", tuple(members))
    group = as_group(instruction)
    vec, with_acts, without_acts = compute_vectors(model, [group], {group.name: pairs} if pairs else None, n_pairs, batch_size, progress)[group.name]
    return (vec, with_acts, without_acts) if return_activations else vec


def cached_vector(model: Model, instruction: str | Instruction | Group, n_pairs: int = 64, root: str | Path | None = None) -> InstructionVector:
    """``compute_vector`` on the training queries, cached on disk (``$WORKBENCH_CACHE/vectors``) under
    a key of the model, its precision, the instruction's definition and the pairs' text."""
    group = as_group(instruction)
    pairs = make_pairs(group, "train", limit=n_pairs)
    key = data_hash([model.name, dtype_name(model), json.dumps(group.spec(), sort_keys=True)] + [p.with_instruction + "\0" + p.without_instruction for p in pairs])
    path = Path(root or cache_dir() / "vectors") / model.name.replace("/", "--") / f"{group.slug}-{key}.safetensors"
    if path.exists():
        return InstructionVector.load(path, model)
    vec = compute_vector(model, group, pairs=pairs)
    vec.save(path)
    return vec
