"""The Markdown report of ``workbench evaluate``: IFEval's accuracies per condition, the gap steering
closes, and for every group its chosen setting with validation beside test (selection's drift)."""

from __future__ import annotations

import pandas as pd

from workbench.generation.steering import OPERATORS
from workbench.sweep import CONDITIONS
from workbench.sweep.selection import scaled


def _cell(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "–"
    r = frame.iloc[0]
    return f"{r['accuracy']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"


FOLLOW_GAP = 0.25  # "followed when told": the instruction lifts accuracy by at least this much


def gap_closed(scores: pd.DataFrame) -> str:
    """(steering − no instruction) / (instruction − no instruction), where the model follows when told."""
    acc = dict(zip(scores["condition"], scores["accuracy"]))
    if (
        not {"no_instruction", "steer", "instruction"} <= set(acc)
        or acc["instruction"] - acc["no_instruction"] < FOLLOW_GAP
    ):
        return "–"
    return f"{(acc['steer'] - acc['no_instruction']) / (acc['instruction'] - acc['no_instruction']):.2f}"


def report_markdown(result: dict, scores: pd.DataFrame, rows: pd.DataFrame) -> str:
    """The paper's table: loose accuracy per condition, overall then per id, and the chosen settings."""
    conds = [c for c in CONDITIONS if c in set(scores["condition"])] if len(scores) else []
    head = "| | " + " | ".join(conds) + " | n | gap closed by steering |\n|---|" + "---|" * (len(conds) + 2)
    lines = [
        f"# IFEval with steering: {result['model']}",
        f"Data: `{result['data']}`; {result['n_evaluated']} of {result['n_examples']} records evaluated "
        f"(vectors from {result['pairs']}, {result['search']} search). Loose accuracy, 95 % bootstrap CI.",
        head,
    ]
    for scope, level in [("all", "prompt"), ("all", "instruction")] + [
        (s, "instruction") for s in sorted(set(scores.get("scope", [])) - {"all"})
    ]:
        sel = (
            scores[(scores["scope"] == scope) & (scores["level"] == level) & (scores["metric"] == "loose")]
            if len(scores)
            else scores
        )
        if sel.empty:
            continue
        name = f"**{level}-level, all**" if scope == "all" else scope
        lines.append(
            f"| {name} | "
            + " | ".join(_cell(sel[sel["condition"] == c]) for c in conds)
            + f" | {int(sel['n'].iloc[0])} | {gap_closed(sel)} |"
        )
    lines += cut_lines(rows)
    lines += [
        "",
        "Gap closed: the share of the instruction's gain that steering alone reaches, where the instruction "
        f"lifts accuracy by ≥ {FOLLOW_GAP}. Strict accuracy and every value: `scores.csv`.",
        "",
        *drift_lines(result, scores, rows),
    ]
    if result["skipped"]:
        lines += ["", f"Skipped records: {len(result['skipped'])} (see summary.json)."]
    return "\n".join(lines) + "\n"


def cut_lines(rows: pd.DataFrame) -> list[str]:
    """Replies that ran out of tokens (no end of turn) and failed their check: with a larger budget
    some might have passed, so their condition's accuracy is a lower bound."""
    if not len(rows) or "stopped" not in rows:
        return []
    cut = rows[~rows["stopped"].astype(bool) & ~rows["loose"].astype(bool)].groupby("condition").size()
    if cut.empty:
        return []
    total = rows.groupby("condition").size()
    shown = ", ".join(f"{c} {int(cut.get(c, 0))}/{int(total[c])}" for c in CONDITIONS if c in total)
    return [
        "",
        f"Cut at the token budget before their check could pass (no end of turn, check failed): {shown}. "
        "Those conditions' accuracies are lower bounds; a larger `--max-new-tokens` may raise them.",
    ]


def _fmt(value, spec: str = ".2f") -> str:
    return "–" if value is None or value != value else format(value, spec)


DRIFT_COLUMNS = [
    "instruction",
    "layer",
    "mode",
    "coefficient",
    "stopped_early",
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
]


def drift_frame(result: dict, scores: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """One row per vector group, without the instruction: the chosen setting (none: layer missing),
    what selection saw (validation compliance, its baseline, the maxT p-value and prompts tested, the
    degenerate share) and what held out (steering and no instruction on the test records, the steered
    replies' degenerate share and log-prob); ``val_gain`` and ``test_gain`` are steered − unsteered."""
    out = []
    for name, g in result["groups"].items():
        s = g["without_instruction"]
        chosen = s["layer"] is not None
        out.append(
            {
                "instruction": name,
                "layer": s["layer"],
                "mode": s["mode"],
                "coefficient": s["coefficient"],
                "stopped_early": name in result.get("stopped_early", ()),
                "validation": s.get("validation"),
                "val_baseline": s.get("validation_baseline"),
                "p": s.get("p_value"),
                "n_val": s.get("n_tested"),
                "val_gain": s["validation"] - s["validation_baseline"] if chosen else None,
                "val_degenerate": s.get("validation_degenerate"),
                **_held_out(name, scores, rows),
            }
        )
    return pd.DataFrame(out, columns=DRIFT_COLUMNS).astype({"val_gain": float, "test_gain": float})


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


def drift_lines(result: dict, scores: pd.DataFrame, rows: pd.DataFrame) -> list[str]:
    """Validation beside test for every group's chosen setting (``drift_frame``) as a Markdown table.
    A gain that shrinks from validation to test is the winner's curse."""
    lines = [
        f"Selection: {result.get('selection_rule', 'best-v1')}. Validation beside test, without the instruction "
        "(as a figure: `drift.html`):",
        "",
        "| group | setting | validation: steered vs none | p (prompts) | test: steering vs none | gain val → test "
        "| degenerate val / test | steered log-prob |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in drift_frame(result, scores, rows).to_dict("records"):
        none = "none (stopped after round 1)" if d["stopped_early"] else "none selected"
        chosen = d["layer"] is not None and d["layer"] == d["layer"]
        setting = (
            none
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
            f"| {d['instruction']} | {setting} | {validation} | {p} | {tested} | {gains} | {degenerate} "
            f"| {_fmt(d['test_logprob'])} |"
        )
    return lines
