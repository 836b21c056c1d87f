"""Selection's drift, per vector group: the chosen setting's validation gain beside its test gain, or,
where nothing was chosen, the decision and the best cell selection weighed (``Choice.summary`` in
``summary.json``). A gain that shrinks from validation to test is the winner's curse."""

from __future__ import annotations

import pandas as pd

from workbench.generation.steering import OPERATORS
from workbench.markup import md_cell
from workbench.sweep.selection import scaled


def _fmt(value, spec: str = ".2f") -> str:
    return "–" if value is None or value != value else format(value, spec)


DRIFT_COLUMNS = [
    "instruction",
    "layer",
    "mode",
    "coefficient",
    "stopped_early",
    "decided_by",
    "reason",
    "validation",
    "val_baseline",
    "p",
    "n_val",
    "val_gain",
    "test_steer",
    "test_none",
    "test_gain",
    "val_degenerate",
    "test_degenerate",
    "test_logprob",
    "best_layer",
    "best_mode",
    "best_coefficient",
    "best_validation",
    "best_gain",
]


def drift_frame(result: dict, scores: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """One row per vector group, without the instruction: the chosen setting (none: layer missing),
    what selection saw (validation compliance, its baseline, the maxT p-value and prompts tested, the
    degenerate share), the decision (``decided_by``, ``reason``; empty in summaries before 0.2), the
    best cell weighed (``best_*``: the chosen one, or the one that failed a stage) and what held out
    (steering and no instruction on the test records, the steered replies' degenerate share and
    log-prob); ``val_gain``, ``best_gain`` and ``test_gain`` are steered − unsteered."""
    out = []
    for name, g in result["groups"].items():
        s = g["without_instruction"]
        chosen = s["layer"] is not None
        best = s.get("candidate") or {}
        out.append(
            {
                "instruction": name,
                "layer": s["layer"],
                "mode": s["mode"],
                "coefficient": s["coefficient"],
                "stopped_early": name in result.get("stopped_early", ()),
                "decided_by": s.get("decided_by", ""),
                "reason": s.get("reason", ""),
                "validation": s.get("validation"),
                "val_baseline": s.get("validation_baseline"),
                "p": s.get("p_value"),
                "n_val": s.get("n_tested"),
                "val_gain": s["validation"] - s["validation_baseline"] if chosen else None,
                "val_degenerate": s.get("validation_degenerate"),
                **_held_out(name, scores, rows),
                "best_layer": best.get("layer"),
                "best_mode": best.get("mode"),
                "best_coefficient": best.get("coefficient"),
                "best_validation": best.get("score"),
                "best_gain": best["score"] - best["baseline"] if best else None,
            }
        )
    return pd.DataFrame(out, columns=DRIFT_COLUMNS).astype({"val_gain": float, "test_gain": float, "best_gain": float})


def _held_out(name: str, scores: pd.DataFrame, rows: pd.DataFrame) -> dict:
    """One group on the test records: loose accuracy steered and with no instruction, their gain, and
    the steered replies' degenerate share and log-prob."""
    test = {}
    if len(scores):
        mine = scores[(scores["scope"] == name) & (scores["level"] == "instruction") & (scores["metric"] == "loose")]
        for c in ("no_instruction", "steer"):
            acc = mine[mine["condition"] == c]["accuracy"]
            if len(acc):
                test[c] = float(acc.iloc[0])
    q = rows
    if len(rows):
        q = rows[(rows["condition"] == "steer") & rows["groups"].apply(lambda each: any(name in gs for gs in each))]
    return {
        "test_steer": test.get("steer"),
        "test_none": test.get("no_instruction"),
        "test_gain": test["steer"] - test["no_instruction"] if len(test) == 2 else None,
        "test_degenerate": q["degenerate"].mean() if len(q) else None,
        "test_logprob": q["logprob"].mean() if len(q) else None,
    }


def _unselected(d: dict) -> str:
    """A group that steers nothing: the stage that decided (older summaries: whether halving stopped it)."""
    if d["decided_by"]:
        return f"none ({d['decided_by']})"
    return "none (stopped after round 1)" if d["stopped_early"] else "none selected"


def drift_lines(result: dict, scores: pd.DataFrame, rows: pd.DataFrame) -> list[str]:
    """Validation beside test for every group's chosen setting (``drift_frame``) as a Markdown table,
    and the decision behind every group's choice in one line each."""
    lines = [
        f"Selection: {result.get('selection_rule', 'best-v1')}. Validation beside test, without the instruction "
        "(as a figure: `drift.html`):",
        "",
        "| group | setting | validation: steered vs none | p (prompts) | test: steering vs none | gain val → test "
        "| degenerate val / test | steered log-prob |",
        "|---|---|---|---|---|---|---|---|",
    ]
    frame = drift_frame(result, scores, rows).to_dict("records")
    for d in frame:
        chosen = d["layer"] is not None and d["layer"] == d["layer"]
        setting = (
            _unselected(d)
            if not chosen
            else f"layer {int(d['layer'])}, "
            + OPERATORS[d["mode"]].describe(d["coefficient"] if scaled(d["mode"]) else None)
        )
        validation = "–" if not chosen else f"{_fmt(d['validation'])} vs {_fmt(d['val_baseline'])}"
        p = "–" if d["p"] is None or d["p"] != d["p"] else f"{d['p']:.3g} ({int(d['n_val'] or 0)})"
        tested = "–" if d["test_steer"] is None else f"{_fmt(d['test_steer'])} vs {_fmt(d['test_none'])}"
        gains = "–" if not chosen else f"{d['val_gain']:+.2f} → {_fmt(d['test_gain'], '+.2f')}"
        degenerate = f"{_fmt(d['val_degenerate'])} / {_fmt(d['test_degenerate'])}"
        lines.append(
            f"| {md_cell(d['instruction'])} | {setting} | {validation} | {p} | {tested} | {gains} | {degenerate} "
            f"| {_fmt(d['test_logprob'])} |"
        )
    decisions = [
        f"- **{md_cell(d['instruction'])}** ({d['decided_by']}): {md_cell(d['reason'])}" for d in frame if d["reason"]
    ]
    if decisions:
        lines += [
            "",
            "Why each group steers or not (the best cell selection weighed, and what decided):",
            "",
            *decisions,
        ]
    return lines
