"""Build all_ids.jsonl: every IFEval id lm-eval knows (language as French and German), 4
single-instruction records each, plus 4 two-instruction records of each of 3 pairs (120 records), from
the project's test queries and the registry's own descriptions. `python tests/data/all_ids.py` rewrites it."""

from pathlib import Path

from workbench.instructions import IFEVAL_IDS, Instruction, ifeval_records
from workbench.io import write_jsonl

PER_ID = 4


def entries() -> list:
    I = Instruction.ifeval
    single = [I(i) for i in IFEVAL_IDS if i != "language:response_language"]
    single += [I("language:response_language", language=l) for l in ("fr", "de")]
    pairs = [
        [I("punctuation:no_comma"), I("change_case:english_lowercase")],
        [I("detectable_format:title"), I("language:response_language", language="fr")],
        [I("length_constraints:number_sentences"), I("startend:quotation")],
    ]
    return single + pairs


def records() -> list[dict]:
    return [
        {**r, "key": f"{i:03d}"} for i, r in enumerate(ifeval_records(entries(), split="test", per_instruction=PER_ID))
    ]


if __name__ == "__main__":
    write_jsonl(Path(__file__).with_suffix(".jsonl"), records())
