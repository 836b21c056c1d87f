"""Build format13.jsonl: 13 IFEval ids of the paper's format families (format, case, punctuation,
start/end, language), 12 single-instruction records each (156), from the project's test queries and
the registry's own descriptions. `python tests/data/format13.py` rewrites it; a test keeps it current."""

from pathlib import Path

from workbench.instructions import Instruction, ifeval_records
from workbench.io import write_jsonl

PER_ID = 12


def variants() -> list[list[Instruction]]:
    """Per id, the kwarg variants its records rotate over (IFEval's files vary them too)."""
    I = Instruction.ifeval
    return [
        [I("detectable_format:json_format")],
        [I("detectable_format:title")],
        [I("detectable_format:number_bullet_lists", num_bullets=n) for n in (2, 3, 4)],
        [I("detectable_format:number_highlighted_sections", num_highlights=n) for n in (1, 2, 3)],
        [
            I("detectable_format:multiple_sections", section_spliter=s, num_sections=n)
            for s, n in (("Section", 2), ("SECTION", 3))
        ],
        [I("detectable_format:constrained_response")],
        [I("change_case:english_lowercase")],
        [I("change_case:english_capital")],
        [
            I("change_case:capital_word_frequency", capital_frequency=n, capital_relation=r)
            for n, r in ((3, "at least"), (5, "less than"))
        ],
        [I("punctuation:no_comma")],
        [
            I("startend:end_checker", end_phrase=p)
            for p in ("Is there anything else I can help with?", "Any other questions?", "Peace!")
        ],
        [I("startend:quotation")],
        [I("language:response_language", language=l) for l in ("de", "fr", "es")],
    ]


def records() -> list[dict]:
    out = []
    for k, group in enumerate(variants()):
        rows = ifeval_records(group, split="test", per_instruction=PER_ID // len(group), seed=k)
        out += [{**r, "key": f"{k:02d}-{i:02d}"} for i, r in enumerate(rows)]
    return out


if __name__ == "__main__":
    write_jsonl(Path(__file__).with_suffix(".jsonl"), records())
