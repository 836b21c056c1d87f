"""The Markdown report of ``workbench evaluate``: IFEval's accuracies per condition, the gap steering
closes, and for every group its chosen setting with validation beside test (selection's drift)."""

from __future__ import annotations

import pandas as pd

from workbench.sweep import CONDITIONS


def _cell(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "–"
    r = frame.iloc[0]
    return f"{r['accuracy']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"


FOLLOW_GAP = 0.25  # "followed when told": the instruction lifts accuracy by at least this much


def gap_closed(scores: pd.DataFrame) -> str:
    """(steering − no instruction) / (instruction − no instruction), where the model follows when told."""
    acc = dict(zip(scores["condition"], scores["accuracy"]))
    if not {"no_instruction", "steer", "instruction"} <= set(acc) or acc["instruction"] - acc["no_instruction"] < FOLLOW_GAP:
        return "–"
    return f"{(acc['steer'] - acc['no_instruction']) / (acc['instruction'] - acc['no_instruction']):.2f}"


def report_markdown(result: dict, scores: pd.DataFrame, rows: pd.DataFrame) -> str:
    """The paper's table: loose accuracy per condition, overall then per id, and the chosen settings."""
    conds = [c for c in CONDITIONS if c in set(scores["condition"])] if len(scores) else []
    head = "| | " + " | ".join(conds) + " | n | gap closed by steering |\n|---|" + "---|" * (len(conds) + 2)
    lines = [f"# IFEval with steering: {result['model']}", f"Data: `{result['data']}`; {result['n_evaluated']} of {result['n_examples']} records evaluated "
             f"(vectors from {result['pairs']}, {result['search']} search). Loose accuracy, 95 % bootstrap CI.", head]
    for scope, level in [("all", "prompt"), ("all", "instruction")] + [(s, "instruction") for s in sorted(set(scores.get("scope", [])) - {"all"})]:
        sel = scores[(scores["scope"] == scope) & (scores["level"] == level) & (scores["metric"] == "loose")] if len(scores) else scores
        if sel.empty:
            continue
        name = f"**{level}-level, all**" if scope == "all" else scope
        lines.append(f"| {name} | " + " | ".join(_cell(sel[sel["condition"] == c]) for c in conds) + f" | {int(sel['n'].iloc[0])} | {gap_closed(sel)} |")
    lines += cut_lines(rows)
    lines += ["", f"Gap closed: the share of the instruction's gain that steering alone reaches, where the instruction lifts accuracy by ≥ {FOLLOW_GAP}. "
              "Strict accuracy and every value: `scores.csv`.", "", *drift_lines(result, scores, rows)]
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
    return ["", f"Cut at the token budget before their check could pass (no end of turn, check failed): {shown}. "
                "Those conditions' accuracies are lower bounds; a larger `--max-new-tokens` may raise them."]


def _fmt(value, spec: str = ".2f") -> str:
    return "–" if value is None or value != value else format(value, spec)


def drift_lines(result: dict, scores: pd.DataFrame, rows: pd.DataFrame) -> list[str]:
    """Validation beside test for every group's chosen setting (without the instruction): what
    selection saw (steered vs no steering, the maxT p-value, degenerate share) and what held out
    (steering vs no instruction on the test records, degenerate share). A gain that shrinks from
    validation to test is the winner's curse."""
    lines = [f"Selection: {result.get('selection_rule', 'best-v1')}. Validation beside test, without the instruction:", "",
             "| group | setting | validation: steered vs none | p (prompts) | test: steering vs none | gain val → test | degenerate val / test | steered log-prob |",
             "|---|---|---|---|---|---|---|---|"]
    for name, g in result["groups"].items():
        s = g["without_instruction"]
        none = "none (stopped after round 1)" if name in result.get("stopped_early", ()) else "none selected"
        setting = none if s["layer"] is None else f"layer {s['layer']}, " + ("projection z̄" if s["mode"] == "project" else f"add {s['coefficient']:g}×")
        acc = {c: scores[(scores["scope"] == name) & (scores["level"] == "instruction") & (scores["metric"] == "loose") & (scores["condition"] == c)]["accuracy"]
               for c in ("no_instruction", "steer")} if len(scores) else {}
        test = {c: float(v.iloc[0]) for c, v in acc.items() if len(v)}
        q = rows[(rows["condition"] == "steer") & rows["groups"].apply(lambda each: any(name in gs for gs in each))] if len(rows) else rows
        val_gain = None if s["layer"] is None else s["validation"] - s["validation_baseline"]
        test_gain = test["steer"] - test["no_instruction"] if len(test) == 2 else None
        validation = "–" if s["layer"] is None else f"{_fmt(s['validation'])} vs {_fmt(s['validation_baseline'])}"
        p = "–" if s.get("p_value") is None else f"{s['p_value']:.3g} ({s.get('n_tested', 0)})"
        tested = f"{_fmt(test.get('steer'))} vs {_fmt(test.get('no_instruction'))}" if test else "–"
        gains = "–" if val_gain is None else f"{val_gain:+.2f} → {_fmt(test_gain, '+.2f')}"
        degenerate = f"{_fmt(s.get('validation_degenerate'))} / {_fmt(q['degenerate'].mean() if len(q) else None)}"
        lines.append(f"| {name} | {setting} | {validation} | {p} | {tested} | {gains} | {degenerate} | {_fmt(q['logprob'].mean() if len(q) else None)} |")
    return lines
