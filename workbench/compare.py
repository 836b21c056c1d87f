"""Side by side: the same prompts answered unsteered and steered, each reply with IFEval's verdict, and
the steered reply's quality (log-prob under the unsteered model, repetition, degeneracy).

Compliance alone flatters steering: a vector that makes every reply a repeated ``<<Title>>`` "follows"
the title instruction. Reading the texts beside their verdict and quality is how one trusts a setting.
The explorer shows one prompt this way; ``side_by_side`` does it for many at once, as a table.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from workbench.generation.generate import Generation, generate
from workbench.generation.steering import Steer
from workbench.instructions import Instruction, get_instruction, instantiate
from workbench.judging.quality import quality
from workbench.models import Model

COLUMNS = [
    "prompt",
    "unsteered",
    "unsteered_follows",
    "steered",
    "steered_follows",
    "logprob",
    "repetition",
    "degenerate",
]


def follows(instruction: str | Instruction, text: str, prompt: str) -> bool | None:
    """IFEval's loose verdict on ``text`` as a reply to ``prompt`` (a per-query instruction is filled
    from the prompt), or None when the instruction has no checker. A checker that fails is an error,
    not "no checker"."""
    inst = instantiate(get_instruction(instruction), prompt)
    return inst.check(text, prompt).loose if inst.checkable else None


def verdict(follow: bool | None) -> str:
    return {True: "✓ follows", False: "✗ does not follow", None: "no checker"}[follow]


def reply_card(model: Model, instruction: str | Instruction, prompt: str, gen: Generation) -> str:
    """One reply as HTML: its text, the verdict, log-prob and repetition (the explorer's panes)."""
    q = quality(model, [prompt], [gen.text], [len(gen.token_ids)])[0]
    flag = " · <b style='color:#b2182b'>degenerate</b>" if q["degenerate"] else ""
    return (
        "<div style='white-space:pre-wrap;font-family:monospace;border:1px solid #ddd;padding:6px'>"
        f"{html.escape(gen.text)}</div><small>{verdict(follows(instruction, gen.text, prompt))} · "
        f"log-prob {q['logprob']:.2f} · repetition {q['repetition']:.2f}{flag}</small>"
    )


@dataclass(repr=False)
class SideBySide:
    """Unsteered and steered replies, one row per prompt (``COLUMNS``)."""

    instruction: str
    steer: str  # the steering, as ``Steer`` prints
    table: pd.DataFrame

    def count(self, column: str) -> int:
        """How many rows are true in ``column`` (a missing verdict counts as not following)."""
        return sum(_flag(v) is True for v in self.table[column])

    def __repr__(self) -> str:
        return (
            f"SideBySide({self.instruction!r}, {self.steer}: {len(self.table)} prompts, "
            f"follows {self.count('unsteered_follows')} unsteered → {self.count('steered_follows')} steered, "
            f"{self.count('degenerate')} degenerate)"
        )

    def _repr_html_(self) -> str:
        mark = {True: "<span style='color:#1a9850'>✓</span>", False: "<span style='color:#b2182b'>✗</span>", None: "–"}
        cell = (
            "style='white-space:pre-wrap;text-align:left;vertical-align:top;font-family:monospace;font-size:12px;"
            "max-width:420px'"
        )
        rows = "".join(
            f"<tr><td style='text-align:left;vertical-align:top'>{html.escape(r.prompt)}</td>"
            f"<td>{mark[_flag(r.unsteered_follows)]}</td><td {cell}>{html.escape(r.unsteered)}</td>"
            f"<td>{mark[_flag(r.steered_follows)]}</td><td {cell}>{html.escape(r.steered)}</td>"
            f"<td>{r.logprob:.2f}</td><td>{r.repetition:.2f}</td>"
            f"<td>{'<b style=color:#b2182b>yes</b>' if r.degenerate else 'no'}</td></tr>"
            for r in self.table.itertuples()
        )
        head = (
            "<tr><th>prompt</th><th></th><th>unsteered</th><th></th><th>steered</th>"
            "<th>log-prob</th><th>repetition</th><th>degenerate</th></tr>"
        )
        n = len(self.table)
        return (
            f"<b>SideBySide</b> <code>{html.escape(self.instruction)}</code>, {html.escape(self.steer)}: follows "
            f"{self.count('unsteered_follows')}/{n} unsteered → {self.count('steered_follows')}/{n} steered "
            "<small>(IFEval loose; quality of the steered reply under the unsteered model)</small>"
            f"<table>{head}{rows}</table>"
        )


def _flag(value) -> bool | None:
    return None if value is None or pd.isna(value) else bool(value)


def side_by_side(
    model: Model,
    prompts: Sequence[str],
    instruction: str | Instruction,
    steer: Steer | Sequence[Steer],
    max_new_tokens: int = 64,
) -> SideBySide:
    """Generate each prompt unsteered and with ``steer`` (several specs apply together), check both
    replies against ``instruction`` and score the steered one."""
    plain = generate(model, prompts, max_new_tokens=max_new_tokens)
    steered = generate(model, prompts, steer=steer, max_new_tokens=max_new_tokens)
    q = quality(model, prompts, [g.text for g in steered], [len(g.token_ids) for g in steered])
    rows = [
        (
            p,
            a.text,
            follows(instruction, a.text, p),
            b.text,
            follows(instruction, b.text, p),
            s["logprob"],
            s["repetition"],
            s["degenerate"],
        )
        for p, a, b, s in zip(prompts, plain, steered, q)
    ]
    specs = [steer] if isinstance(steer, Steer) else list(steer)
    return SideBySide(
        get_instruction(instruction).id, " + ".join(map(repr, specs)), pd.DataFrame(rows, columns=COLUMNS)
    )
