"""The twin's tie to the bridge: forward hooks that fire the bridge's resid_post HookPoints.

The twin is the plain Hugging Face module tree sharing every weight with the bridge; its decoder
layers pass their output through the bridge's ``blocks.L.hook_resid_post`` HookPoints, so TL hooks
set there steer the twin too. The hooks are registered once, with their handles kept by one owner
(``TwinLink``), which alone removes them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch.utils.hooks import RemovableHandle


@dataclass
class TwinLink:
    """The twin's forward hooks (their handles) and the bridge's other HookPoints: a hook on any of
    those means the twin would not see it, so ``Model.forward`` goes through the bridge."""

    handles: list[RemovableHandle] = field(default_factory=list)
    other_hook_points: list = field(default_factory=list)

    def others_hooked(self) -> bool:
        """Whether a TL hook is set on a HookPoint the twin does not fire."""
        return any(hp.has_hooks() for hp in self.other_hook_points)

    def remove(self) -> None:
        """Remove the twin's hooks (the twin then no longer fires the bridge's HookPoints)."""
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


def attach_twin(twin: torch.nn.Module, bridge, hook_names: Sequence[str]) -> TwinLink | None:
    """Make the twin's decoder layers fire the bridge's HookPoints named ``hook_names`` (one per
    layer, in order); None, with nothing registered, if the twin cannot stand in for the bridge."""
    layers = getattr(twin.base_model, "layers", None)
    hook_dict = bridge.hook_dict
    if layers is None or len(layers) != len(hook_names) or not all(n in hook_dict for n in hook_names):
        return None
    twin_ptrs = {p.data_ptr() for p in twin.parameters()}
    if twin_ptrs != {p.data_ptr() for p in bridge.original_model.parameters()}:
        return None  # the bridge re-made some weights: the twin would compute something else
    resid = [hook_dict[n] for n in hook_names]
    twin.eval()
    handles = [layer.register_forward_hook(_fire(point)) for layer, point in zip(layers, resid)]
    resid_ids = {id(p) for p in resid}
    others = {id(hp): hp for hp in hook_dict.values() if id(hp) not in resid_ids}
    return TwinLink(handles, list(others.values()))


def _fire(point) -> Callable:
    """A forward hook that passes a decoder layer's output through a TL HookPoint when it has hooks."""

    def hook(module, args, output):
        if not point.has_hooks("fwd"):
            return None
        if isinstance(output, tuple):
            return (point(output[0]),) + output[1:]
        return point(output)

    return hook
