"""The paper's four conditions on held-out prompts: no instruction, steering only, instruction only,
instruction + steering, generated as one packed batch, scored, and summarised with exact
(Clopper-Pearson) CIs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from tqdm.auto import tqdm

from workbench.checkers import Check
from workbench.generation.generate import generate
from workbench.generation.steering import Steer, pack
from workbench.instructions import Group, Instruction, Pair, make_pairs
from workbench.judging.quality import Judge
from workbench.judging.scoring import score_rows
from workbench.models import Model
from workbench.rows import ConditionRow, ScoredConditionRow
from workbench.stats import clopper_pearson
from workbench.sweep.grid import NO_STEERING
from workbench.sweep.selection import Choice

CONDITIONS = ("no_instruction", "steer", "instruction", "instruction_steer", "conditional", "instruction_conditional")


def summarize(table: pd.DataFrame, metric: str = "loose") -> pd.DataFrame:
    """Compliance with 95% Clopper-Pearson intervals and mean quality per instruction and condition."""
    out = []
    for (name, cond), g in table.groupby(["instruction", "condition"], sort=False):
        mean, lo, hi = clopper_pearson(int(g[metric].astype(bool).sum()), len(g))
        out.append(
            {
                "instruction": name,
                "condition": cond,
                "compliance": mean,
                "ci_low": lo,
                "ci_high": hi,
                "strict": float(g["strict"].mean()),
                "loose": float(g["loose"].mean()),
                "n": len(g),
                "layer": int(g["layer"].iloc[0]),
                "mode": g["mode"].iloc[0],
                "coefficient": g["coefficient"].iloc[0],
                "logprob": float(g["logprob"].mean()),
                "degenerate": float(g["degenerate"].mean()),
            }
        )
    frame = pd.DataFrame(out)
    if len(frame):
        frame["condition"] = pd.Categorical(frame["condition"], CONDITIONS, ordered=True)
        frame = frame.sort_values(["instruction", "condition"]).reset_index(drop=True)
        frame["condition"] = frame["condition"].astype(str)
    return frame


@dataclass
class Example:
    """One test item: the prompt with and without its instructions, and the instructions (filled for
    this prompt) that check a reply."""

    key: str
    query: str  # the prompt without instructions
    prompt: str  # the prompt with them
    instructions: list[Instruction]

    @property
    def instruction_ids(self) -> list[str]:
        return [i.ifeval_id or f"custom:{i.id}" for i in self.instructions]

    @property
    def kwargs(self) -> list[dict]:
        return [i.kwargs for i in self.instructions]

    def check(self, response: str, prompt: str) -> Check:
        """Every instruction at once, as IFEval scores a record: prompt level and per instruction."""
        each = [i.check(response, prompt) for i in self.instructions]
        return Check(
            all(c.strict for c in each),
            all(c.loose for c in each),
            tuple(c.strict for c in each),
            tuple(c.loose for c in each),
        )


Plan = Sequence[
    tuple[str, bool, Sequence[Steer], "Choice | None"]
]  # (condition, instruction in the prompt?, steering, its setting)


def run_conditions(
    model: Model,
    examples: Sequence[Example],
    plan: Plan,
    label: str,
    max_new_tokens: int = 64,
    judge: Judge | None = None,
    progress: bool = True,
) -> list[ScoredConditionRow]:
    """Generate and score each planned condition on every example, all in one packed batch; rows.
    Unsteered conditions on the same prompts (no instruction, and steering where none was selected)
    are generated and scored once and share their rows (greedy: they are the same replies).
    ``progress``: a bar in token budget (rows × max_new_tokens) that moves every decode step."""
    n = len(examples)
    firsts: dict[tuple, int] = {}
    source = [
        firsts.setdefault((with_inst,) if not steer else (with_inst, b), b)
        for b, (_, with_inst, steer, _) in enumerate(plan)
    ]
    unique = sorted(set(source))
    prompts = [e.prompt if plan[b][1] else e.query for b in unique for e in examples]
    # each condition's specs act on its own rows only
    specs = pack([list(plan[b][2]) for b in unique for _ in examples])
    with tqdm(
        total=len(prompts) * max_new_tokens, desc=label, unit="tok", unit_scale=True, disable=not progress, leave=False
    ) as bar:
        gens = generate(model, prompts, steer=specs, max_new_tokens=max_new_tokens, on_step=bar.update)
    rows, checks = [], []
    for k, b in enumerate(unique):
        cond, with_inst, steer, choice = plan[b]
        for e, p, g in zip(examples, prompts[k * n : (k + 1) * n], gens[k * n : (k + 1) * n]):
            rows.append(
                ConditionRow(
                    instruction=label,
                    condition=cond,
                    with_instruction=with_inst,
                    prompt_id=e.key,
                    layer=choice.layer if choice and steer else NO_STEERING,
                    mode=choice.mode if choice and steer else "none",
                    coefficient=choice.coefficient if choice and steer else None,
                    query=e.query,
                    prompt=p,
                    instruction_ids=e.instruction_ids,
                    kwargs=e.kwargs,
                    text=g.text,
                    stopped=g.stopped,
                    n_tokens=len(g.token_ids),
                )
            )
            checks.append(e.check(g.text, p))
    scored = score_rows(model, rows, judge, checks)
    at = {b: k for k, b in enumerate(unique)}
    return [{**scored[at[src] * n + i], "condition": plan[b][0]} for b, src in enumerate(source) for i in range(n)]


def four_conditions(
    model: Model,
    examples: Sequence[Example],
    steer_without: Sequence[Steer],
    steer_with: Sequence[Steer],
    label: str,
    choices: tuple[Choice | None, Choice | None] = (None, None),
    max_new_tokens: int = 64,
    judge: Judge | None = None,
) -> list[ScoredConditionRow]:
    """The paper's four conditions on the examples (one packed batch); rows."""
    plan = [
        ("no_instruction", False, (), None),
        ("steer", False, list(steer_without), choices[0]),
        ("instruction", True, (), None),
        ("instruction_steer", True, list(steer_with), choices[1]),
    ]
    return run_conditions(model, examples, plan, label, max_new_tokens, judge)


def conditional_conditions(
    model: Model,
    examples: Sequence[Example],
    steer: Sequence[Steer],
    label: str,
    choice: Choice | None = None,
    max_new_tokens: int = 64,
    judge: Judge | None = None,
) -> list[ScoredConditionRow]:
    """Conditional steering (specs with a ``Condition``) applied the same way to prompts without and
    with the instruction: the deployment case, where nobody knows whether the user asked."""
    plan = [("conditional", False, list(steer), choice), ("instruction_conditional", True, list(steer), choice)]
    return run_conditions(model, examples, plan, label, max_new_tokens, judge)


def catalog_examples(
    instruction: str | Instruction | Group, split: str = "test", limit: int | None = None, seed: int = 0
) -> list[Example]:
    """Test items from the project's queries with the instruction appended."""
    return [pair_example(p) for p in make_pairs(instruction, split, limit=limit, seed=seed)]


def pair_example(pair: Pair) -> Example:
    return Example(pair.query_id, pair.without_instruction, pair.with_instruction, [pair.instruction])
