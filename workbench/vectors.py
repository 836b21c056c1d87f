"""``InstructionVector``: an instruction's direction at every layer, with what steering and trust need
(mean projections with and without the instruction, provenance), saved as one .safetensors file."""

from __future__ import annotations

import html
import json
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from workbench.errors import WorkbenchError
from workbench.file_formats import FileFormat
from workbench.generation.steering import Condition, Mode, Positions, Steer, operator_named
from workbench.io import atomic_path
from workbench.models import HOOK_TEMPLATE, Model

VECTOR = FileFormat("an instruction vector", 1, unversioned=None)  # the file's metadata; numbered from the start
TINY_SHARE = 0.05  # an absolute coefficient below this share of the layer's norm is almost surely a mistake
# a coefficient beyond this many times the layer's norm only swamps the residual stream (overflow, empty replies)
MAX_MULTIPLE = 1000.0


def _warn_if_tiny(coefficient, norm: float, layer: int) -> None:
    c = coefficient.abs().nan_to_num(0).max() if torch.is_tensor(coefficient) else abs(coefficient)
    if 0 < float(c) < TINY_SHARE * norm:
        warnings.warn(
            f"an absolute coefficient of {float(c):.3g} is under {TINY_SHARE:.0%} of layer {layer}'s "
            "mean-difference norm "
            f"({norm:.3g}) and will barely change anything; drop absolute=True to give multiples of the norm",
            stacklevel=3,
        )


def check_multiples(coefficients, what: str = "coefficients") -> None:
    """Refuse coefficients (multiples of a layer's norm, e.g. a sweep's grid or an exported file's)
    that are not finite or beyond ``MAX_MULTIPLE``."""
    if any(not math.isfinite(c) or abs(c) > MAX_MULTIPLE for c in coefficients):
        raise WorkbenchError(
            f"{what} must be finite numbers of at most {MAX_MULTIPLE:g} (× the layer's mean-difference norm)"
        )


def _check_size(coefficient, unit: float, layer: int) -> None:
    """Refuse a coefficient that is not finite or beyond ``MAX_MULTIPLE`` norms (``unit``: one norm in its units)."""
    c = torch.as_tensor(coefficient, dtype=torch.float64)
    if c.ndim == 0 and torch.isnan(c) or torch.isinf(c).any():
        raise WorkbenchError(
            f"steering coefficient {coefficient if c.ndim == 0 else 'per row'} at layer {layer} is not a finite number"
        )
    if (largest := float(c.abs().nan_to_num(0).max())) > MAX_MULTIPLE * unit:
        raise WorkbenchError(
            f"steering coefficient {largest:.3g} at layer {layer} exceeds {MAX_MULTIPLE:g}× the layer's "
            "mean-difference norm: it would only swamp the residual stream"
        )


@dataclass(repr=False)
class InstructionVector:
    """Per-layer instruction vector with everything needed to steer with it and to trust it."""

    instruction_id: str
    model_name: str
    mean_diff: Float[Tensor, "n_layers d_model"]
    mean_with: Float[Tensor, "n_layers d_model"]
    mean_without: Float[Tensor, "n_layers d_model"]
    proj_with: Float[Tensor, n_layers]  # mean projection of with-instruction activations on u (z̄)
    proj_without: Float[Tensor, n_layers]
    n_pairs: int
    hook: str = HOOK_TEMPLATE
    position: str = "last prompt token"
    phrasings: list[str] = field(default_factory=list)
    instructions: list[dict] = field(default_factory=list)  # what each instruction was (source, IFEval id, kwargs)
    data_hash: str = ""
    aggregator: str = (
        "mean_difference"  # how the direction was formed from the paired activations (extract.AGGREGATORS)
    )
    versions: dict = field(default_factory=dict)
    proj_with_std: Float[Tensor, n_layers] | None = (
        None  # spread of the training projections (conditional steering's default layer)
    )
    proj_without_std: Float[Tensor, n_layers] | None = None

    @property
    def n_layers(self) -> int:
        return self.mean_diff.shape[0]

    @property
    def d_model(self) -> int:
        return self.mean_diff.shape[1]

    @property
    def norms(self) -> Float[Tensor, n_layers]:
        return self.mean_diff.norm(dim=-1)

    @property
    def directions(self) -> Float[Tensor, "n_layers d_model"]:
        return self.mean_diff / self.norms[:, None].clamp_min(1e-12)

    def separation(self) -> Float[Tensor, n_layers]:
        """Cohen's d per layer of the training projections on u, with vs without the instruction."""
        if self.proj_with_std is None or self.proj_without_std is None:
            raise WorkbenchError(
                f"vector {self.instruction_id} has no projection spreads (an older file): recompute it, or give "
                "the layer"
            )
        pooled = ((self.proj_with_std**2 + self.proj_without_std**2) / 2).sqrt().clamp_min(1e-12)
        return (self.proj_with - self.proj_without) / pooled

    def condition(self, layer: int | None = None, threshold: float | None = None) -> Condition:
        """Steer only prompts that do not already carry the instruction: their last token's projection
        on u at ``layer`` is below ``threshold``. Defaults: the layer where the training projections
        separate most (Cohen's d), and the midpoint of the mean projections with and without there."""
        if layer is None:
            layer = int(self.separation().argmax())
        if not 0 <= layer < self.n_layers:
            raise WorkbenchError(f"layer {layer} is out of range for this vector: use 0..{self.n_layers - 1}")
        if threshold is None:
            threshold = float((self.proj_with[layer] + self.proj_without[layer]) / 2)
        return Condition(self.directions[layer], layer, float(threshold))

    def steer(
        self,
        layer: int,
        coefficient: float | Tensor | None = None,
        mode: Mode = "add",
        positions: Positions = "all",
        absolute: bool = False,
        when: Condition | None = None,
    ) -> Steer:
        """A steering spec at ``layer``; what ``coefficient`` means is the operator's (``Operator.coefficient``).
        ``scale`` (``add``): x ← x + c·‖Δ_layer‖·u, i.e. in units of this layer's mean-difference norm,
        as on the CLI and in every sweep (``absolute=True``: c itself). ``target`` (``project``): the
        projection's value, default z̄ (``proj_with``). ``none`` (``ablate``): no coefficient.
        ``when``: a ``Condition`` (see ``condition``)."""
        if not 0 <= layer < self.n_layers:
            raise WorkbenchError(f"layer {layer} is out of range for this vector: use 0..{self.n_layers - 1}")
        meaning = operator_named(mode).coefficient
        if meaning == "target" and coefficient is None:
            coefficient = float(self.proj_with[layer])
        if meaning == "none":
            coefficient = 0.0 if coefficient is None else coefficient
        if coefficient is None:
            raise WorkbenchError(f"mode {mode!r} needs a coefficient (in units of the layer's mean-difference norm)")
        norm = float(self.norms[layer])
        _check_size(coefficient, norm if absolute or meaning == "target" else 1.0, layer)
        if meaning == "scale":
            if absolute:
                _warn_if_tiny(coefficient, norm, layer)
            else:
                coefficient = coefficient * norm
        return Steer(self.directions[layer], layer, coefficient, mode, positions, label=self.instruction_id, when=when)

    def __repr__(self) -> str:
        peak = int(self.norms.argmax())
        return (
            f"InstructionVector({self.instruction_id!r} on {self.model_name}: {self.n_layers} layers × {self.d_model}, "
            f"{self.n_pairs} pairs, ‖Δ‖ peaks at layer {peak} ({float(self.norms[peak]):.3g}))"
        )

    def _repr_html_(self) -> str:
        """A notebook card: provenance and the norm per layer as a sparkline. Every field is escaped:
        a vector file's metadata is anyone's text, and a notebook runs the HTML it is given."""
        norms = self.norms.tolist()
        top = max(norms) or 1.0
        w, h = 4 * len(norms), 28
        points = " ".join(f"{4 * i + 2},{h - 2 - (h - 4) * v / top:.1f}" for i, v in enumerate(norms))
        spark = (
            f"<svg width='{w}' height='{h}'><polyline fill='none' stroke='#3366cc' stroke-width='1.5' "
            f"points='{points}'/></svg>"
        )

        def esc(v) -> str:
            return html.escape(str(v))

        rows = {
            "model": esc(self.model_name),
            "pairs": esc(self.n_pairs),
            "hook": esc(self.hook),
            "position": esc(self.position),
            "‖Δ‖ per layer": spark + f" max {top:.3g} at layer {int(self.norms.argmax())}",
            "data hash": esc(self.data_hash),
            "phrasings": esc("; ".join(self.phrasings[:3]) + (" …" if len(self.phrasings) > 3 else "")),
        }
        body = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>{v}</td></tr>"
            for k, v in rows.items()
        )
        return f"<b>InstructionVector</b> <code>{html.escape(self.instruction_id)}</code><table>{body}</table>"

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
        tensors = {k: getattr(self, k).contiguous() for k in _TENSORS + _OPTIONAL if getattr(self, k) is not None}
        meta = {k: v for k, v in asdict(self).items() if k not in _TENSORS + _OPTIONAL}
        with atomic_path(path) as tmp:
            save_file(tensors, tmp, metadata={"workbench": json.dumps(VECTOR.stamp(meta))})
        return path

    @classmethod
    def load(cls, path: str | Path, model: Model | None = None, allow_other_model: bool = False) -> InstructionVector:
        """Read a vector file; with ``model``, refuse one of another width or model."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise WorkbenchError(f"no vector file at {path}: compute one with `workbench vectors`")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads((f.metadata() or {})["workbench"])
                tensors = {k: f.get_tensor(k) for k in _TENSORS + tuple(k for k in _OPTIONAL if k in f.keys())}
        except Exception as exc:  # safetensors raises several types for corrupt files
            raise WorkbenchError(
                f"{path} is not a workbench vector file ({type(exc).__name__}): recompute it with `workbench vectors`"
            ) from None
        meta = VECTOR.read(meta, path)  # a newer file: upgrade the workbench (recomputing would lose it)
        del meta[VECTOR.key]
        _check_file(path, meta, tensors)
        vec = cls(**tensors, **meta)
        if model is not None:
            vec.check_compatible(model, allow_other_model)
        return vec


_TENSORS = ("mean_diff", "mean_with", "mean_without", "proj_with", "proj_without")
_OPTIONAL = ("proj_with_std", "proj_without_std")
_META = {
    "instruction_id": str,
    "model_name": str,
    "n_pairs": int,
    "hook": str,
    "position": str,
    "phrasings": list,
    "instructions": list,
    "data_hash": str,
    "aggregator": str,
    "versions": dict,
}
_REQUIRED_META = ("instruction_id", "model_name", "n_pairs")


def _check_file(path: Path, meta: dict, tensors: dict) -> None:
    """A vector file's schema: known metadata of the right types, float tensors [n_layers, d_model]
    and [n_layers], all finite. Anything else is refused, naming the field."""
    bad = f"{path} is not a valid workbench vector file"
    if unknown := sorted(set(meta) - set(_META)):
        raise WorkbenchError(f"{bad}: unknown metadata {unknown}")
    if missing := [k for k in _REQUIRED_META if k not in meta]:
        raise WorkbenchError(f"{bad}: metadata {missing} missing")
    for key, kind in _META.items():
        if key in meta and (not isinstance(meta[key], kind) or isinstance(meta[key], bool)):
            raise WorkbenchError(f"{bad}: metadata {key!r} should be a {kind.__name__}, not {type(meta[key]).__name__}")
    if meta["n_pairs"] < 1 or not all(isinstance(p, str) for p in meta.get("phrasings", [])):
        raise WorkbenchError(f"{bad}: metadata n_pairs or phrasings out of shape")
    layers, width = tensors["mean_diff"].shape if tensors["mean_diff"].ndim == 2 else (0, 0)
    for name, t in tensors.items():
        want = (layers, width) if name in ("mean_diff", "mean_with", "mean_without") else (layers,)
        if not t.is_floating_point() or tuple(t.shape) != want or layers < 1 or width < 1:
            raise WorkbenchError(
                f"{bad}: tensor {name} is {t.dtype} {tuple(t.shape)}, "
                f"expected float {want if layers else '[n_layers, d_model]'}"
            )
        if not torch.isfinite(t).all():
            raise WorkbenchError(f"{path} holds NaN or infinite values in {name}: recompute the vector")
