"""The steering explorer: a notebook widget (ipywidgets) to pick an instruction, a layer, a coefficient
or projection, the steered positions and a prompt, and read the unsteered and steered replies side by
side with IFEval's verdict and the quality check of each.

Moving a control asks for a new steered reply. Requests are debounced and run one at a time on a
background thread; a newer request cancels an older one at its next forward pass (a hook raises in the
superseded generation), so the text shown is always the latest setting's. Vectors are computed on
first use and cached on disk (``store.cached_vector``).
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from workbench.compare import reply_card
from workbench.errors import WorkbenchError
from workbench.generation.generate import Generation, generate
from workbench.generation.steering import OPERATORS
from workbench.instructions import IFEVAL_IDS, catalog
from workbench.models import HOOK_TEMPLATE, Model
from workbench.store import cached_vector


@dataclass(frozen=True)
class Setting:
    """What the controls say."""

    instruction: str
    layer: int
    coefficient: float
    mode: str  # a name in OPERATORS
    positions: Literal["all", "prompt", "generated"]
    prompt: str

    @property
    def multiple(self) -> float | None:
        """The slider's coefficient where the operator scales by it; None (its default: z̄, or none) otherwise."""
        return self.coefficient if OPERATORS[self.mode].coefficient == "scale" else None


class _Superseded(Exception):
    """Raised inside a generation that a newer request has replaced."""


def widgets():
    """The ``ipywidgets`` module, or a one-line error naming the extra."""
    try:
        import ipywidgets
    except ImportError:
        raise WorkbenchError("the explorer needs ipywidgets: pip install 'workbench[notebook]'") from None
    return ipywidgets


class Explorer:
    """``Explorer(model)`` in a notebook cell shows the controls and both replies.

    ``background=False`` runs each request at once on the calling thread (tests, scripts);
    ``timings`` holds the seconds from each request to its text on screen.
    """

    def __init__(
        self,
        model: Model,
        instruction: str = "french",
        prompt: str = "Explain how tides work.",
        layer: int | None = None,
        coefficient: float = 1.0,
        max_new_tokens: int = 48,
        n_pairs: int = 32,
        debounce_s: float = 0.3,
        background: bool = True,
    ):
        w = widgets()
        self.model, self.max_new_tokens, self.n_pairs, self.debounce_s, self.background = (
            model,
            max_new_tokens,
            n_pairs,
            debounce_s,
            background,
        )
        self.instruction = w.Combobox(
            value=instruction,
            options=sorted(catalog()) + list(IFEVAL_IDS),
            description="instruction",
            ensure_option=False,
        )
        self.layer = w.IntSlider(
            value=model.n_layers // 2 if layer is None else layer, min=0, max=model.n_layers - 1, description="layer"
        )
        self.coefficient = w.FloatSlider(value=coefficient, min=-4.0, max=4.0, step=0.25, description="× ‖Δ‖")
        self.mode = w.ToggleButtons(options=list(OPERATORS), value="add", description="mode")
        self.positions = w.ToggleButtons(options=["all", "prompt", "generated"], value="all", description="positions")
        self.prompt = w.Textarea(value=prompt, description="prompt", layout=w.Layout(width="100%"))
        self.plain_out, self.steered_out, self.status = w.HTML(), w.HTML(), w.HTML()
        for control in (self.instruction, self.layer, self.coefficient, self.mode, self.positions, self.prompt):
            control.observe(lambda change: self.request(), names="value")
        panes = w.HBox(
            [
                w.VBox([w.HTML("<b>unsteered</b>"), self.plain_out], layout=w.Layout(width="50%")),
                w.VBox([w.HTML("<b>steered</b>"), self.steered_out], layout=w.Layout(width="50%")),
            ]
        )
        self.widget = w.VBox(
            [
                w.HBox([self.instruction, self.mode, self.positions]),
                w.HBox([self.layer, self.coefficient]),
                self.prompt,
                self.status,
                panes,
            ]
        )
        self.timings: list[float] = []
        self._plain: dict[str, Generation] = {}
        self._plain_cards: dict[
            tuple[str, str], str
        ] = {}  # (prompt, instruction): the unsteered card, checked and scored once
        self._latest, self._wake = 0, threading.Condition()
        if background:
            threading.Thread(target=self._worker, daemon=True).start()
        self.request()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def setting(self) -> Setting:
        return Setting(
            self.instruction.value.strip(),
            self.layer.value,
            self.coefficient.value,
            self.mode.value,
            self.positions.value,
            self.prompt.value,
        )

    def request(self) -> None:
        """Ask for the current setting's replies (what every control does when it moves)."""
        with self._wake:
            self._latest += 1
            self._asked = time.perf_counter()
            self._wake.notify()
        if not self.background:
            self._run(self._latest)

    def _newer_than(self, seen: int) -> Callable[[], bool]:
        return lambda: self._latest != seen

    def _worker(self) -> None:
        seen = 0
        while True:
            with self._wake:
                self._wake.wait_for(self._newer_than(seen))
                ticket = self._latest
            time.sleep(self.debounce_s)  # let the slider settle: a newer ticket makes this one moot
            if ticket == self._latest:
                self._run(ticket)
            seen = ticket

    def _run(self, ticket: int) -> None:
        setting, asked = self.setting(), self._asked
        self.status.value = "<i>generating…</i>"
        key = (setting.prompt, setting.instruction)
        try:
            plain, steered = self.replies(setting, ticket)
            if ticket != self._latest:
                return
            if key not in self._plain_cards:
                self._plain_cards[key] = self._card(setting, plain)
            cards = (
                self._plain_cards[key],
                self._card(setting, steered),
            )  # a failing checker is shown, not a dead thread
        except _Superseded:
            return
        except WorkbenchError as exc:
            self.status.value = f"<span style='color:#b2182b'>{html.escape(str(exc))}</span>"
            return
        self.plain_out.value, self.steered_out.value = cards
        self.timings.append(time.perf_counter() - asked)
        shown = OPERATORS[setting.mode].describe(setting.multiple)
        self.status.value = f"layer {setting.layer}, {shown}: {self.timings[-1]:.1f} s"

    def replies(self, setting: Setting, ticket: int | None = None) -> tuple[Generation, Generation]:
        """The unsteered reply (cached per prompt) and the steered one for ``setting``."""
        if not setting.prompt.strip():
            raise WorkbenchError("type a prompt")
        vec = cached_vector(self.model, setting.instruction, n_pairs=self.n_pairs)
        spec = vec.steer(setting.layer, setting.multiple, mode=setting.mode, positions=setting.positions)
        if setting.prompt not in self._plain:
            self._plain[setting.prompt] = generate(self.model, [setting.prompt], max_new_tokens=self.max_new_tokens)[0]
        watch = [] if ticket is None else [(HOOK_TEMPLATE.format(layer=0), self._watch(ticket))]
        with self.model.bridge.hooks(fwd_hooks=watch):
            steered = generate(self.model, [setting.prompt], steer=spec, max_new_tokens=self.max_new_tokens)[0]
        return self._plain[setting.prompt], steered

    def _watch(self, ticket: int):
        def hook(x, hook):
            if ticket != self._latest:
                raise _Superseded
            return x

        return hook

    def _card(self, setting: Setting, gen: Generation) -> str:
        return reply_card(self.model, setting.instruction, setting.prompt, gen)
