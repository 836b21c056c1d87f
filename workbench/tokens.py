"""Token view: every token of a text (prompt and reply) coloured by its residual stream's projection
onto an instruction's direction, at each layer.

Colours diverge around the vector's mean projection *without* the instruction (white): red is toward
the instruction, blue away, one full shade = the gap between the with- and without-instruction means
at that layer. The HTML carries every layer and a slider of its own (a few lines of inline script), so
it also works in an exported notebook; ``heatmap()`` shows tokens × layers at once.
"""

from __future__ import annotations

import html
import uuid
from dataclasses import dataclass

import plotly.graph_objects as go
import torch
from jaxtyping import Float
from torch import Tensor

from workbench.errors import WorkbenchError
from workbench.models import HOOK_TEMPLATE, Model
from workbench.plots import DIVERGING, style
from workbench.vectors import InstructionVector

_POS, _NEG = (178, 24, 43), (33, 102, 172)  # the ends of RdBu


@dataclass(repr=False)
class TokenProjections:
    """Projections of one text's tokens on an instruction's unit direction, at every layer."""

    instruction_id: str
    tokens: list[str]
    n_prompt: int  # the first n_prompt tokens are the (templated) prompt, the rest the reply
    values: Float[Tensor, "pos n_layers"]
    center: Float[Tensor, " n_layers"]  # mean projection without the instruction (white)
    unit: Float[Tensor, " n_layers"]  # |with − without| mean projections: one full shade
    layer: int  # the layer shown first

    def __repr__(self) -> str:
        return (
            f"TokenProjections({self.instruction_id!r}: {len(self.tokens)} tokens ({self.n_prompt} prompt) × "
            f"{self.values.shape[1]} layers, showing layer {self.layer})"
        )

    def scaled(self, layer: int) -> Float[Tensor, " pos"]:
        """Projections at ``layer`` in shades: 0 = the without-instruction mean, 1 = the with-instruction one."""
        return (self.values[:, layer] - self.center[layer]) / self.unit[layer].clamp_min(1e-6)

    def html(self, layer: int | None = None) -> str:
        """The text at one layer, as coloured spans (the value on hover)."""
        layer = self.layer if layer is None else layer
        spans = []
        for i, (token, shade, raw) in enumerate(
            zip(self.tokens, self.scaled(layer).tolist(), self.values[:, layer].tolist())
        ):
            rgb = _NEG if shade < 0 else _POS
            alpha = min(abs(shade), 1.0)
            border = "border-left:2px solid #888;" if i == self.n_prompt else ""
            text = html.escape(token).replace("\n", "↵<br>")
            style = f"background:rgba({rgb[0]},{rgb[1]},{rgb[2]},{alpha:.2f});{border}"
            spans.append(f"<span title='{raw:.3g} ({shade:+.2f})' style='{style}'>{text}</span>")
        return f"<div style='font-family:monospace;white-space:pre-wrap;line-height:1.6'>{''.join(spans)}</div>"

    def _repr_html_(self) -> str:
        """Every layer, one shown at a time, with a slider that works without a kernel."""
        key = f"wb-{uuid.uuid4().hex[:8]}"
        layers = "".join(
            f"<div class='{key}' data-layer='{l}' style='display:{'block' if l == self.layer else 'none'}'>"
            f"{self.html(l)}</div>"
            for l in range(self.values.shape[1])
        )
        script = (
            f"document.querySelectorAll('.{key}').forEach(d=>d.style.display=d.dataset.layer==this.value?'block':'none');"
            f"this.nextElementSibling.textContent='layer '+this.value"
        )
        head = (
            f"<b>{html.escape(self.instruction_id)}</b>: projection on the instruction direction "
            f"(<span style='color:rgb{_NEG}'>away</span> · without-instruction mean · "
            f"<span style='color:rgb{_POS}'>toward</span>); the bar marks where the reply starts<br>"
            f"<input type='range' min='0' max='{self.values.shape[1] - 1}' value='{self.layer}' "
            f'oninput="{script}"> <span>layer {self.layer}</span>'
        )
        return f"<div>{head}{layers}</div>"

    def heatmap(self) -> go.Figure:
        """Tokens × layers, in shades (0 = the without-instruction mean, ±1 = the gap to the with-instruction mean)."""
        shades = torch.stack([self.scaled(l) for l in range(self.values.shape[1])], dim=0)
        labels = [f"{i}:{t!r}"[:24] for i, t in enumerate(self.tokens)]
        fig = go.Figure(
            go.Heatmap(
                z=shades.tolist(),
                x=labels,
                y=list(range(shades.shape[0])),
                zmid=0,
                zmin=-1.5,
                zmax=1.5,
                colorscale=DIVERGING,
                reversescale=True,
                colorbar=dict(title="shade"),
            )
        )
        fig.add_vline(x=self.n_prompt - 0.5, line=dict(color="#444", dash="dot"))
        fig.update_xaxes(title="token (prompt | reply)", tickangle=-60)
        fig.update_yaxes(title="layer")
        return style(
            fig,
            f"Projection on the {self.instruction_id} direction, token by layer",
            "0 = mean without the instruction; +1 = mean with it",
            width=max(600, 14 * len(self.tokens)),
            height=520,
        )


@torch.inference_mode()
def token_projections(
    model: Model, vec: InstructionVector, prompt: str, reply: str = "", chat: bool = True, layer: int | None = None
) -> TokenProjections:
    """Project every token of ``prompt`` (in the chat template when ``chat``) followed by ``reply`` onto
    ``vec``'s direction at every layer, in one forward. ``layer``: the one shown first (default: where
    the training projections separate best, else the largest mean difference)."""
    vec.check_compatible(model, allow_other_model=True)
    prompt_ids = model.encode(model.chat(prompt) if chat else prompt)
    ids = prompt_ids + (model.encode(reply) if reply else [])
    if not ids:
        raise WorkbenchError("nothing to show: give a prompt or a reply")
    if len(ids) > model.n_ctx:
        raise WorkbenchError(f"{len(ids)} tokens exceed {model.name}'s context of {model.n_ctx}: shorten the text")
    directions = vec.directions.to(model.device, torch.float32)
    values = torch.empty(len(ids), model.n_layers, device=model.device)  # copied to the host once, at the end

    def project(x, hook):
        layer = hook.layer()
        values[:, layer] = x[0].float() @ directions[layer]
        return x

    t = torch.tensor([ids], device=model.device)
    with model.bridge.hooks(fwd_hooks=[(HOOK_TEMPLATE.format(layer=l), project) for l in range(model.n_layers)]):
        model.forward(t, torch.ones_like(t), torch.arange(len(ids), device=model.device)[None], keep=0)
    if layer is None:
        layer = int(vec.separation().argmax()) if vec.proj_with_std is not None else int(vec.norms.argmax())
    if not 0 <= layer < model.n_layers:
        raise WorkbenchError(f"layer {layer} is out of range: use 0..{model.n_layers - 1}")
    return TokenProjections(
        vec.instruction_id,
        [model.decode([i]) for i in ids],
        len(prompt_ids),
        values.cpu(),
        vec.proj_without.float(),
        (vec.proj_with - vec.proj_without).abs().float(),
        layer,
    )
