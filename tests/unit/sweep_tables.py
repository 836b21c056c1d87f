"""Synthetic sweep tables for selection's tests: per prompt, 0/1 compliance and degenerate flags."""

import pandas as pd

from workbench.sweep import NO_STEERING


def sweep_table(base, steered, degenerate=None, base_degenerate=None, rounds=None):
    """base: [prompts] 0/1; steered: {cell: [prompts] 0/1}; degenerate: {cell: [prompts] 0/1} -> a sweep table."""
    rows = []
    flags = {(NO_STEERING, "none", 0.0): base_degenerate, **(degenerate or {})}
    for cell, values in [((NO_STEERING, "none", 0.0), base), *steered.items()]:
        for i, v in enumerate(values):
            mark = flags.get(cell)
            rows.append(
                dict(
                    instruction="x",
                    with_instruction=False,
                    layer=cell[0],
                    mode=cell[1],
                    coefficient=cell[2],
                    prompt_id=f"q{i}",
                    loose=bool(v),
                    strict=bool(v),
                    logprob=-1.0,
                    text="t",
                    degenerate=bool(mark[i]) if mark else False,
                    **({"round": rounds[i]} if rounds else {}),
                )
            )
    return pd.DataFrame(rows)
