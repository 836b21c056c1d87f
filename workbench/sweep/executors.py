"""Where a sweep's work runs: the unit of work (``run_units``, one packed batch of units generated and
scored) and the strategies that run many of them. ``Local`` runs them in this process, in order;
``workbench.sweep.cluster.RayExecutor`` runs them on Ray actors. Both yield each job's rows as it
finishes; the driver alone writes them, so where the work ran changes nothing on disk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from workbench.generation.generate import generate
from workbench.generation.steering import OPERATORS
from workbench.judging.quality import Judge
from workbench.judging.scoring import score_rows
from workbench.models import Model
from workbench.rows import ScoredSweepRow, SweepRow
from workbench.sweep.grid import Unit, unit_specs

Job = tuple[list[Unit], int]  # units packed into one batch, and their token budget
OnStep = Callable[[int], None]  # told the token budget each decode step used up (``generate``'s ``on_step``)
UnitRows = list[list[ScoredSweepRow]]  # a job's rows, unit by unit


def job_budget(job: Job) -> int:
    """A job's token budget: its rows × its max_new_tokens, what its decode steps report in all."""
    units, budget = job
    return sum(len(u.rows()) for u in units) * budget


def run_units(
    model: Model, units: Sequence[Unit], max_new_tokens: int, judge: Judge | None = None, on_step: OnStep | None = None
) -> UnitRows:
    """Generate several units in one batch (per-row coefficients), then score; rows per unit."""
    plan = [(u, r) for u in units for r in u.rows()]
    prompts = [r[3] for _, r in plan]
    gens = generate(model, prompts, steer=unit_specs(units), max_new_tokens=max_new_tokens, on_step=on_step)
    rows, checks = [], []
    for (unit, (mode, coef, pair, prompt)), gen in zip(plan, gens):
        checked = pair.instruction  # filled for this query
        checks.append(checked.check(gen.text, prompt))
        rows.append(
            SweepRow(
                instruction=unit.group.name,
                layer=unit.layer,
                mode=mode,
                coefficient=coef,
                target=_target(unit, mode),
                prompt_id=pair.query_id,
                with_instruction=unit.with_instruction,
                query=pair.query,
                prompt=prompt,
                instruction_ids=[checked.ifeval_id or f"custom:{checked.id}"],
                kwargs=[checked.kwargs],
                text=gen.text,
                stopped=gen.stopped,
                n_tokens=len(gen.token_ids),
            )
        )
    scored = score_rows(model, rows, judge, checks)
    out, start = [], 0
    for unit in units:
        n = len(unit.rows())
        out.append(scored[start : start + n])
        start += n
    return out


@runtime_checkable
class Executor(Protocol):
    """Runs jobs; yields ``(job index, rows per unit)`` as each finishes, in any order, each once.
    ``on_step``, where the executor can, hears each decode step of the job running (progress)."""

    def map(
        self, model: Model, jobs: Sequence[Job], judge: Judge | None = None, on_step: OnStep | None = None
    ) -> Iterator[tuple[int, UnitRows]]: ...

    def summary(self) -> str: ...


@dataclass
class Local:
    """Every job in this process, in order, on ``model``; ``on_step`` hears every decode step."""

    jobs_done: int = field(default=0, init=False)

    def map(
        self, model: Model, jobs: Sequence[Job], judge: Judge | None = None, on_step: OnStep | None = None
    ) -> Iterator[tuple[int, UnitRows]]:
        for i, (units, budget) in enumerate(jobs):
            yield i, run_units(model, units, budget, judge, on_step)
            self.jobs_done += 1

    def summary(self) -> str:
        return f"{self.jobs_done} batches in this process"


def _target(unit: Unit, mode: str) -> float | None:
    """The projection a target operator (``project``) steers to: z̄ at the unit's layer."""
    if unit.vec is None or mode not in OPERATORS or OPERATORS[mode].coefficient != "target":
        return None
    return float(unit.vec.proj_with[unit.layer])
