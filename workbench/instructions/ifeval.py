"""What the workbench knows of lm-eval's IFEval registry: its 25 ids, default and per-query kwargs,
the one-line spelling ``id[key=value,...]``, the registry's own descriptions, token budgets, and what
more tokens could do to a cut reply's verdict (``truncation``)."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Mapping

from workbench.checkers import ifeval_registry
from workbench.errors import WorkbenchError

# lm-eval's IFEval ids, listed here so `--help` needs no import of lm-eval (a test keeps them equal).
IFEVAL_IDS = (
    "change_case:capital_word_frequency",
    "change_case:english_capital",
    "change_case:english_lowercase",
    "combination:repeat_prompt",
    "combination:two_responses",
    "detectable_content:number_placeholders",
    "detectable_content:postscript",
    "detectable_format:constrained_response",
    "detectable_format:json_format",
    "detectable_format:multiple_sections",
    "detectable_format:number_bullet_lists",
    "detectable_format:number_highlighted_sections",
    "detectable_format:title",
    "keywords:existence",
    "keywords:forbidden_words",
    "keywords:frequency",
    "keywords:letter_frequency",
    "language:response_language",
    "length_constraints:nth_paragraph_first_word",
    "length_constraints:number_paragraphs",
    "length_constraints:number_sentences",
    "length_constraints:number_words",
    "punctuation:no_comma",
    "startend:end_checker",
    "startend:quotation",
)

# Values for kwargs a spelling leaves out. lm-eval would draw them at random; we fix them, so a
# vector's provenance says what it was built from. Placeholders are filled per query.
IFEVAL_DEFAULTS: dict[str, dict] = {
    "keywords:existence": {"keywords": ["{keyword}"]},
    "keywords:frequency": {"keyword": "{keyword}", "frequency": 3, "relation": "at least"},
    "keywords:forbidden_words": {"forbidden_words": ["{keyword}"]},
    "keywords:letter_frequency": {"letter": "z", "let_frequency": 3, "let_relation": "at least"},
    "length_constraints:number_sentences": {"num_sentences": 2, "relation": "less than"},
    "length_constraints:number_paragraphs": {"num_paragraphs": 3},
    "length_constraints:number_words": {"num_words": 40, "relation": "less than"},
    "length_constraints:nth_paragraph_first_word": {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "however"},
    "detectable_content:number_placeholders": {"num_placeholders": 2},
    "detectable_content:postscript": {"postscript_marker": "P.S."},
    "detectable_format:number_bullet_lists": {"num_bullets": 3},
    "detectable_format:number_highlighted_sections": {"num_highlights": 2},
    "detectable_format:multiple_sections": {"section_spliter": "Section", "num_sections": 3},
    "combination:repeat_prompt": {"prompt_to_repeat": "{query}"},
    "startend:end_checker": {"end_phrase": "Is there anything else I can help with?"},
    "change_case:capital_word_frequency": {"capital_frequency": 3, "capital_relation": "at least"},
}
REQUIRED: dict[str, tuple[str, ...]] = {"language:response_language": ("language",)}
PER_QUERY: dict[str, str] = {
    "keywords": "{keyword}",
    "keyword": "{keyword}",
    "forbidden_words": "{keyword}",
    "prompt_to_repeat": "{query}",
}
LIST_KWARGS = ("keywords", "forbidden_words")


# New tokens a reply needs before its check can pass: a cut-off answer is not a failure of steering.
DEFAULT_BUDGET = 64
BUDGETS: dict[str, int] = {
    "detectable_format:json_format": 128,
    "detectable_format:number_bullet_lists": 128,
    "detectable_format:number_highlighted_sections": 160,
    "detectable_format:multiple_sections": 256,
    "detectable_content:number_placeholders": 128,
    "detectable_content:postscript": 192,
    "length_constraints:number_paragraphs": 256,
    "length_constraints:nth_paragraph_first_word": 256,
    "combination:two_responses": 192,
    "combination:repeat_prompt": 128,
    "startend:end_checker": 160,
    "keywords:frequency": 128,
    "keywords:letter_frequency": 128,
    "change_case:capital_word_frequency": 128,
}
MAX_BUDGET = 512

FAMILIES = {
    "keywords": "keywords",
    "language": "language",
    "length_constraints": "length",
    "detectable_content": "content",
    "detectable_format": "format",
    "combination": "combination",
    "startend": "startend",
    "change_case": "case",
    "punctuation": "punctuation",
}


def budget(ifeval_id: str | None, kwargs: Mapping | None = None) -> int:
    """Default new-token budget for one instruction; "at least N words/sentences" scale with N."""
    kwargs = kwargs or {}
    base = BUDGETS.get(ifeval_id or "", DEFAULT_BUDGET)
    if ifeval_id == "length_constraints:number_words" and kwargs.get("relation") == "at least":
        base = max(base, int(kwargs.get("num_words", 0) * 1.6) + 32)
    if ifeval_id == "length_constraints:number_sentences" and kwargs.get("relation") == "at least":
        base = max(base, 32 * int(kwargs.get("num_sentences", 0)) + 32)
    return min(base, MAX_BUDGET)


# What more tokens could do to a reply cut at the budget. A REQUIREMENT not met yet may still be met (a cut
# failure is not final: accuracy is a lower bound); a PROHIBITION kept may still be broken, and one broken
# stays broken (a cut pass is not final: an upper bound); EITHER both (exactly N, text after a closing mark,
# a whole-reply property). Counting ids name their relation kwarg: "at least" a requirement, "less than" a
# prohibition. An id or relation not here (a custom checker) cannot be told: EITHER. (The case checks also
# ask langdetect for English, which more text could change: rare, left out.)
REQUIREMENT, PROHIBITION, EITHER = "requirement", "prohibition", "either"
TRUNCATION: dict[str, str] = {
    "change_case:capital_word_frequency": "capital_relation",
    "change_case:english_capital": PROHIBITION,
    "change_case:english_lowercase": PROHIBITION,
    "combination:repeat_prompt": REQUIREMENT,
    "combination:two_responses": EITHER,
    "detectable_content:number_placeholders": REQUIREMENT,
    "detectable_content:postscript": REQUIREMENT,
    "detectable_format:constrained_response": REQUIREMENT,
    "detectable_format:json_format": EITHER,  # not closed yet, or text after the closing brace
    "detectable_format:multiple_sections": REQUIREMENT,
    "detectable_format:number_bullet_lists": EITHER,
    "detectable_format:number_highlighted_sections": REQUIREMENT,
    "detectable_format:title": REQUIREMENT,
    "keywords:existence": REQUIREMENT,
    "keywords:forbidden_words": PROHIBITION,
    "keywords:frequency": "relation",
    "keywords:letter_frequency": "let_relation",
    "language:response_language": EITHER,
    "length_constraints:nth_paragraph_first_word": EITHER,
    "length_constraints:number_paragraphs": EITHER,
    "length_constraints:number_sentences": "relation",
    "length_constraints:number_words": "relation",
    "punctuation:no_comma": PROHIBITION,
    "startend:end_checker": EITHER,  # the phrase may come; text may follow it
    "startend:quotation": EITHER,
}
RELATIONS = {"at least": REQUIREMENT, "less than": PROHIBITION}


def truncation(ifeval_id: str, kwargs: Mapping | None = None) -> str:
    """What more tokens could do to a cut reply's verdict on one instruction (``TRUNCATION``):
    ``REQUIREMENT`` (a failure may still pass), ``PROHIBITION`` (a pass may still fail) or ``EITHER``."""
    kind = TRUNCATION.get(ifeval_id, EITHER)
    if kind in (REQUIREMENT, PROHIBITION, EITHER):
        return kind
    return RELATIONS.get(str((kwargs or {}).get(kind)), EITHER)


def _value_text(value) -> str:
    return "|".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def spelling(ifeval_id: str, kwargs: Mapping | None = None) -> str:
    """The one-line name of an IFEval instruction: ``id`` or ``id[key=value,...]`` (lists joined by ``|``)."""
    kwargs = {k: v for k, v in (kwargs or {}).items() if v is not None}
    if not kwargs:
        return ifeval_id
    return f"{ifeval_id}[{','.join(f'{k}={_value_text(kwargs[k])}' for k in sorted(kwargs))}]"


def _parse_value(key: str, text: str):
    text = text.strip()
    if key in LIST_KWARGS:
        return [w.strip() for w in text.split("|") if w.strip()]
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def parse_spelling(text: str) -> tuple[str, dict]:
    """``id[key=value,...]`` -> (id, kwargs); the inverse of ``spelling``."""
    m = re.fullmatch(r"\s*([\w:]+)\s*(?:\[(.*)\])?\s*", text, flags=re.S)
    if not m:
        raise WorkbenchError(
            f"bad instruction {text!r}: write ID or ID[key=value,...], e.g. language:response_language[language=de]"
        )
    ifeval_id, body = m.group(1), m.group(2)
    kwargs = {}
    for item in re.split(r",(?=\s*\w+\s*=)", body or ""):
        if not item.strip():
            continue
        key, eq, value = item.partition("=")
        if not eq:
            raise WorkbenchError(f"bad kwarg {item!r} in {text!r}: write key=value")
        kwargs[key.strip()] = _parse_value(key.strip(), value)
    return ifeval_id, kwargs


# What lm-eval's IFEval takes for each kwarg (a test keeps these equal to its registry). Anything else
# fails deep inside lm-eval or, worse, passes: a string of keywords is sorted into its letters.
COUNT_KWARGS = (
    "capital_frequency",
    "frequency",
    "let_frequency",
    "nth_paragraph",
    "num_bullets",
    "num_highlights",
    "num_paragraphs",
    "num_placeholders",
    "num_sections",
    "num_sentences",
    "num_words",
)
WORD_LIST_KWARGS = ("keywords", "forbidden_words")
STRING_KWARGS = (
    "capital_relation",
    "end_phrase",
    "first_word",
    "keyword",
    "language",
    "let_relation",
    "letter",
    "postscript_marker",
    "prompt_to_repeat",
    "relation",
    "section_spliter",
)


def _count(value: object) -> object:
    """A count as an int: 5.0 (how pandas writes an integer column with nulls) is 5."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def checked_kwargs(ifeval_id: str, given: Mapping, where: str = "") -> dict:
    """Kwargs for one id, nulls dropped, values checked. lm-eval replaces some bad values by random
    ones (a count of 0 or below, a letter "zz", a paragraph past the last): refused here, for file
    records and command-line spellings alike. ``where`` starts the error (a file and line)."""
    where = f"{where}: " if where else ""
    kwargs = {k: (_count(v) if k in COUNT_KWARGS else v) for k, v in given.items() if v is not None}
    for name, value in kwargs.items():
        if name in COUNT_KWARGS:
            ok, want = isinstance(value, int) and not isinstance(value, bool) and value >= 1, "a whole number from 1"
        elif name in WORD_LIST_KWARGS:
            ok, want = (
                isinstance(value, list) and bool(value) and all(isinstance(w, str) and w.strip() for w in value),
                "a non-empty list of words",
            )
        elif name == "letter":
            ok, want = isinstance(value, str) and len(value) == 1 and "a" <= value.lower() <= "z", "one letter a-z"
        elif name in STRING_KWARGS:
            ok, want = isinstance(value, str) and bool(value.strip()), "a non-empty string"
        else:
            continue  # an unknown name is the registry's to refuse
        if not ok:
            shown = json.dumps(value, ensure_ascii=False)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise WorkbenchError(f"{where}kwargs of {ifeval_id}: {name} must be {want}, not {shown}")
    paragraphs = {**IFEVAL_DEFAULTS.get(ifeval_id, {}), **kwargs}.get("num_paragraphs")
    nth = kwargs.get("nth_paragraph")  # a count: checked above to be a whole number
    if isinstance(nth, int) and isinstance(paragraphs, int) and nth > paragraphs:
        raise WorkbenchError(f"{where}kwargs of {ifeval_id}: nth_paragraph {nth} is past num_paragraphs {paragraphs}")
    return kwargs


def full_kwargs(ifeval_id: str, kwargs: Mapping) -> tuple[dict, str]:
    """The full kwargs (defaults filled, values validated by the registry) and IFEval's text for them."""
    registry = ifeval_registry()
    if ifeval_id not in registry:
        raise WorkbenchError(
            f"unknown IFEval instruction id {ifeval_id!r}: known ids are {', '.join(sorted(registry))}"
        )
    allowed = [p for p in inspect.signature(registry[ifeval_id].build_description).parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise WorkbenchError(f"{ifeval_id} takes {', '.join(allowed) or 'no kwargs'}, not {', '.join(unknown)}")
    full = {**IFEVAL_DEFAULTS.get(ifeval_id, {}), **checked_kwargs(ifeval_id, kwargs)}
    missing = [k for k in REQUIRED.get(ifeval_id, ()) if k not in full]
    if missing:
        raise WorkbenchError(f"{ifeval_id} needs {', '.join(missing)}: e.g. {spelling(ifeval_id, {missing[0]: 'de'})}")
    return full, describe(ifeval_id, full)  # the registry validates the values


def describe(ifeval_id: str, kwargs: Mapping) -> str:
    """IFEval's own instruction sentence for these kwargs."""
    try:
        return ifeval_registry()[ifeval_id](ifeval_id).build_description(**kwargs)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        if ifeval_id == "language:response_language":
            from lm_eval.tasks.ifeval.instructions_util import LANGUAGE_CODES

            raise WorkbenchError(
                f"unknown language {kwargs.get('language')!r}: use one of {', '.join(sorted(LANGUAGE_CODES))}"
            ) from None
        raise WorkbenchError(f"bad kwargs for {ifeval_id}: {exc}") from None
