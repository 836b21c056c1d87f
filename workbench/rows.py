"""The rows generation writes, as types: one reply with the setting that produced it (a sweep's row, a
condition's row) and what scoring adds. At run time a row is a plain dict (a JSONL line, a table's row);
these ``TypedDict``s are where its keys are named, once: mypy checks the code that builds and reads
rows against them, and ``tests/unit/test_rows.py`` checks real rows."""

import sys

if sys.version_info >= (3, 11):
    from typing import NotRequired, TypedDict
else:  # NotRequired is new in 3.11; typing_extensions (a dependency of torch) has both
    from typing_extensions import NotRequired, TypedDict


class GeneratedRow(TypedDict):
    """One reply to one prompt, and the steering that produced it: what a sweep and the four conditions share."""

    instruction: str  # the instruction's (or group's) name; for the conditions, the label they were given
    with_instruction: bool  # the instruction was in the prompt
    prompt_id: str  # the base query's id: the same prompt across settings and conditions
    layer: int  # the steered layer; NO_STEERING (-1) for an unsteered row
    mode: str  # the steering operator's name ("add", "project", ...); "none" for an unsteered row
    coefficient: float | None  # in units of the layer's mean-difference norm; None for a target operator (see
    # ``target``) and an unsteered condition row; 0.0 for a sweep's unsteered baseline
    query: str  # the base query without the instruction: quality's log-prob is conditioned on it
    prompt: str  # the user message as sent: the query, with the instruction when ``with_instruction``
    instruction_ids: list[str]  # the IFEval ids that check the reply, "custom:<id>" for another checker
    kwargs: list[dict]  # each id's arguments, filled for this prompt (IFEval's kwargs)
    text: str  # the reply
    stopped: bool  # ended with an end-of-turn token (False: it used up max_new_tokens)
    n_tokens: int  # tokens generated


class SweepRow(GeneratedRow):
    """A sweep's row: one (setting, prompt) of a unit (``grid.Unit``)."""

    target: float | None  # the projection a target operator steers to (z̄ at the layer); None for other modes


class ConditionRow(GeneratedRow):
    """A row of the four conditions (or conditional steering's two) on held-out prompts."""

    condition: str  # one of ``conditions.CONDITIONS``


class Scores(TypedDict):
    """What scoring (``judging.scoring.score_rows``) adds to a generated row."""

    strict: bool  # IFEval's strict verdict, prompt level: every instruction followed
    loose: bool  # the same, loose: a rewrite of the reply may pass (first/last line dropped, asterisks removed);
    # a custom checker's loose verdict is its strict one unless its instruction opted in (``Instruction.loose``)
    strict_each: list[bool]  # strict, per instruction id (in ``instruction_ids`` order)
    loose_each: list[bool]  # loose, per instruction id
    logprob: float  # mean token log-prob (nats) under the unsteered model given ``query``; NaN for an empty reply
    logprob_prompt: float  # the same given ``prompt``; = ``logprob`` where the prompt is the query
    repetition: float  # share of word 4-grams that repeat an earlier one, 0 to 1
    compression: float  # deflated / raw size of the reply's last TAIL_BYTES bytes; low: collapsed
    degenerate: bool  # empty, not fluent, looping or collapsed, under ``evaluate.DEGENERACY_RULE``
    judge: NotRequired[float]  # the judge's score (``evaluate.Judge``); only when a judge scored the rows


class ScoredSweepRow(SweepRow, Scores):
    """A sweep's row as ``run_units`` returns it and its unit's JSONL keeps it."""


class ScoredConditionRow(ConditionRow, Scores):
    """A condition's row as ``run_conditions`` returns it."""


class EvaluationRow(ScoredConditionRow):
    """A row of ``workbench evaluate``'s ``rows.jsonl``: a scored condition row and its record's groups."""

    groups: list[list[str]]  # per instruction of the record, the vector groups that steer it
