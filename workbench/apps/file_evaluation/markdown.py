"""The Markdown report of ``workbench evaluate``: IFEval's accuracies per condition, the gap steering
closes, and for every group its chosen setting with validation beside test (selection's drift)."""

from __future__ import annotations

import pandas as pd

from workbench.apps.file_evaluation.drift import drift_lines
from workbench.instructions import EITHER, PROHIBITION, REQUIREMENT, TRUNCATION, truncation
from workbench.markup import md_cell
from workbench.sweep import CONDITIONS


def _cell(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "–"
    r = frame.iloc[0]
    return f"{r['accuracy']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"


COMPARISONS = {  # (steered condition, its reference) -> the report's column, for McNemar's test on the same records
    ("steer", "no_instruction"): "steer vs none",
    ("instruction_steer", "instruction"): "inst+steer vs inst",
}


def comparison_name(steered: str, reference: str) -> str:
    """A paired test's ``comparison`` in ``paired.csv``: ``steer vs no_instruction``."""
    return f"{steered} vs {reference}"


def _paired_cell(tests: dict, scope: str, level: str, comparison: str) -> str:
    """A paired test's change in accuracy and its exact p-value: ``+0.42 (0.00781)``; – where untested."""
    t = tests.get((scope, level, comparison))
    if t is None or t["p_value"] is None or t["p_value"] != t["p_value"]:
        return "–"
    return f"{t['delta']:+.2f} ({t['p_value']:.3g})"


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
    tests = {
        (t["scope"], t["level"], t["comparison"]): t for t in result.get("paired_tests", ()) if t["metric"] == "loose"
    }
    paired_heads = " | ".join(f"{h}: Δ (p)" for h in COMPARISONS.values())
    head = (
        "| | "
        + " | ".join(conds)
        + f" | n | gap closed by steering | {paired_heads} |\n|---|"
        + "---|" * (len(conds) + 2 + len(COMPARISONS))
    )
    lines = [
        f"# IFEval with steering: {result['model']}",
        f"Data: `{result['data']}`; {result['n_evaluated']} of {result['n_examples']} records evaluated "
        f"(vectors from {result['pairs']}, {result['search']} search). Loose accuracy, 95 % Clopper-Pearson CI "
        "(exact). Δ (p): the paired change in accuracy on the same records and McNemar's exact two-sided "
        "p-value (each row's own test, not corrected for the number of rows).",
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
        name = f"**{level}-level, all**" if scope == "all" else md_cell(scope)  # a group's name: the file's text
        lines.append(
            f"| {name} | "
            + " | ".join(_cell(sel[sel["condition"] == c]) for c in conds)
            + f" | {int(sel['n'].iloc[0])} | {gap_closed(sel)} | "
            + " | ".join(_paired_cell(tests, scope, level, comparison_name(*c)) for c in COMPARISONS)
            + " |"
        )
    lines += cut_lines(rows)
    lines += loose_lines(result)
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
    """Replies that ran out of tokens (no end of turn), by what more tokens could do to each verdict
    (``instructions.truncation``): a failed requirement (at least N words, an end phrase) might still
    pass, so its condition's accuracy is a lower bound; a failed prohibition (no comma) stays failed;
    a prohibition kept so far might still be broken, so that accuracy is an upper bound."""
    if not len(rows) or "stopped" not in rows:
        return []
    cut = rows[~rows["stopped"].astype(bool)]
    open_ = [_open_verdicts(r) for r in cut.to_dict("records")]
    rescuable = [(c, up) for c, (up, _) in zip(cut["condition"], open_) if up]
    breakable = [(c, down) for c, (_, down) in zip(cut["condition"], open_) if down]
    total = rows.groupby("condition").size()
    lines = []
    if rescuable:
        lines += [
            "",
            f"Cut at the token budget (no end of turn) with a failed check that more tokens could still pass: "
            f"{_per_condition(rescuable, total)}{_ids(rescuable)}. Those conditions' accuracies are lower bounds; "
            "a larger `--max-new-tokens` may raise them (a broken prohibition stays broken: not counted).",
        ]
    if breakable:
        lines += [
            "",
            f"Cut replies that passed a check more tokens could still break (a prohibition or limit kept so far): "
            f"{_per_condition(breakable, total)}{_ids(breakable)}; for those ids the accuracies are upper bounds.",
        ]
    return lines


def loose_lines(result: dict) -> list[str]:
    """How a Python checker's loose verdict was made (``summary.json``'s ``custom_checkers``): IFEval's
    loose rewrites are for its own ids, so a custom checker is strict unless its instruction opted in."""
    custom = result.get("custom_checkers") or {}
    if not custom:  # IFEval's ids only, or a summary from before the rule
        return []
    opted = ", ".join(sorted(k for k, v in custom.items() if v == "loose")) or "none"
    return ["", f"Custom checkers are scored strictly (loose = strict) unless opted in with `loose=True`: {opted}."]


def _open_verdicts(row: dict) -> tuple[list[str], list[str]]:
    """A cut reply's instructions whose loose verdict more tokens could change: (failed, could still
    pass; passed, could still fail). Without ids or per-instruction verdicts (older rows) the reply's
    own verdict stands for every instruction, and what cannot be told counts as either."""
    ids = row.get("instruction_ids")
    ids = list(ids) if isinstance(ids, (list, tuple)) and len(ids) else [None]
    kwargs = row.get("kwargs")
    kwargs = list(kwargs) if isinstance(kwargs, (list, tuple)) and len(kwargs) == len(ids) else [{}] * len(ids)
    each = row.get("loose_each")
    if not isinstance(each, (list, tuple)) or len(each) != len(ids):
        each = [bool(row["loose"])] * len(ids)
    kinds = [truncation(i, kw) if i is not None else EITHER for i, kw in zip(ids, kwargs)]
    up = [_named(i, kw) for i, kw, ok, k in zip(ids, kwargs, each, kinds) if not ok and k != PROHIBITION]
    down = [_named(i, kw) for i, kw, ok, k in zip(ids, kwargs, each, kinds) if ok and k != REQUIREMENT]
    return up, down


def _named(ifeval_id: str | None, kwargs: dict) -> str:
    """An id as the cut lines name it: with its relation where that decides (``... (at least)``)."""
    if ifeval_id is None:
        return ""
    key = TRUNCATION.get(ifeval_id, EITHER)
    if key in (REQUIREMENT, PROHIBITION, EITHER):
        return ifeval_id
    return f"{ifeval_id} ({(kwargs.get(key) if isinstance(kwargs, dict) else None) or 'relation not given'})"


def _per_condition(flagged: list[tuple[str, list[str]]], total: pd.Series) -> str:
    counts = pd.Series([c for c, _ in flagged]).value_counts()
    return ", ".join(f"{c} {int(counts.get(c, 0))}/{int(total[c])}" for c in CONDITIONS if c in total)


def _ids(flagged: list[tuple[str, list[str]]]) -> str:
    """The ids behind the flagged replies, in brackets; custom checkers are said to be counted blind."""
    names = sorted({n for _, each in flagged for n in each if n})
    if not names:
        return ""
    blind = "; a custom checker cannot be told, so it counts" if any(n.startswith("custom:") for n in names) else ""
    return f" ({', '.join(names)}{blind})"
