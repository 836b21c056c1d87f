"""Selection's quality guard: may a steering cell be chosen, given how often its replies are
degenerate? One guard per rule, each a small function of the cell's ``CellQuality``.

``maxT-v2`` bounded the steered share alone (its 80 % upper bound ≤ 0.2), a bar the model itself may
not pass: Qwen loops now and then unsteered, so a cell with 1 degenerate reply in 10 was refused even
where the unsteered replies to the same prompts had 1 too. ``maxT-v3`` judges the cell against the
unsteered replies to the same prompts, paired: a cell passes where its replies are degenerate on no
more of them than the unsteered replies (no worse than the model itself), or where the excess rate's
80 % upper bound (``workbench.stats.excess_bound``) stays within ``MAX_EXCESS_DEGENERATE``. One
degenerate reply more in 10 passes (bound 0.10); two more (0.20, as title's projection on SmolLM2,
whose steered test replies were then 42 % degenerate) or three more (0.30) fail."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from workbench.judging.quality import MAX_DEGENERATE
from workbench.stats.excess import excess_bound
from workbench.stats.intervals import upper_bound
from workbench.sweep.grid import NO_STEERING

DEGENERATE_CONFIDENCE = 0.8  # one-sided confidence of both guards' bounds
MAX_EXCESS_DEGENERATE = 0.15  # v3: the excess degenerate rate's bound, where steered replies loop more often
CELL = ["layer", "mode", "coefficient"]


@dataclass(frozen=True)
class CellQuality:
    """A cell's degenerate replies on its tested prompts, beside the unsteered replies to the same ones."""

    degenerate: int  # steered replies judged degenerate
    unsteered: int  # unsteered replies to the same prompts judged degenerate
    worse: int  # prompts where only the steered reply is degenerate
    better: int  # prompts where only the unsteered reply is
    n: int  # prompts answered both ways

    @property
    def excess(self) -> float:
        """Upper bound on how much more often the steered replies are degenerate (``DEGENERATE_CONFIDENCE``)."""
        return excess_bound(self.worse, self.better, self.n, DEGENERATE_CONFIDENCE) if self.n else 1.0

    def describe(self) -> str:
        return f"degenerate {self.degenerate}/{self.n} vs {self.unsteered}/{self.n} unsteered"


Guard = Callable[[CellQuality], bool]


def steered_share_guard(q: CellQuality, cut: float = MAX_DEGENERATE) -> bool:
    """maxT-v2: the steered degenerate share's upper bound is within ``cut``, whatever the model does unsteered."""
    return upper_bound(q.degenerate, q.n, DEGENERATE_CONFIDENCE) <= cut


def relative_guard(q: CellQuality, margin: float = MAX_EXCESS_DEGENERATE) -> bool:
    """maxT-v3: degenerate on no more prompts than unsteered, or the excess rate's bound within ``margin``."""
    return q.n > 0 and (q.worse <= q.better or q.excess <= margin + 1e-12)


def point_guard(q: CellQuality, cut: float = MAX_DEGENERATE) -> bool:
    """best-v1: the steered degenerate share itself is within ``cut``."""
    return q.n > 0 and q.degenerate / q.n <= cut


def cell_qualities(rows: pd.DataFrame) -> dict[tuple, CellQuality]:
    """Per steered cell of one group's tested rows, its ``CellQuality``: paired with the unsteered
    reply to the same prompt (prompts answered only one way are left out)."""
    rows = rows.assign(coefficient=rows["coefficient"].fillna(0.0), degenerate=rows["degenerate"].astype(bool))
    flags = rows.pivot_table(index="prompt_id", columns=CELL, values="degenerate", aggfunc="max")
    base = [c for c in flags.columns if c[0] == NO_STEERING]
    if not base:
        return {}
    out = {}
    for cell in (c for c in flags.columns if c[0] != NO_STEERING):
        both = flags[[cell, base[0]]].dropna().astype(bool)
        s, u = both[cell], both[base[0]]
        out[cell] = CellQuality(int(s.sum()), int(u.sum()), int((s & ~u).sum()), int((u & ~s).sum()), len(both))
    return out
