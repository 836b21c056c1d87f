"""``ifeval``: IFEval's own JSONL (``key``, ``prompt``, ``instruction_id_list``, ``kwargs``) with the
workbench's ``prompt_without_instruction`` (records without it are skipped, with the reason). Extra
fields are ignored, so the paper's plain files (``instruction_id_list_for_eval``) read here too."""

from workbench.instructions import load_ifeval_jsonl
from workbench.readers.base import Reader

# Where a record has one of these, its ``prompt`` is not the instructed prompt (the paper's stripped
# files) or its keys repeat (the paper's keyword splits): format ``paper`` reads it, never this one.
PAPER_FIELDS = ("original_prompt", "old_prompt")


def recognizes(record: dict) -> bool:
    return "instruction_id_list" in record and not any(f in record for f in PAPER_FIELDS)


READER = Reader(
    "ifeval",
    "IFEval JSONL: key, prompt, instruction_id_list, kwargs, prompt_without_instruction",
    load_ifeval_jsonl,
    recognizes,
)
