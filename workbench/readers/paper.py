"""``paper``: the derived data files of the paper's repository (github.com/microsoft/llm-steer-instruct,
``data/``) whose records are not plain IFEval. Two layouts:

* the instruction-stripped twin under another name (``data/input_data_single_instr_no_instr.jsonl``):
  ``original_prompt`` is the IFEval prompt, with its instruction, and ``prompt`` the same prompt with
  the instruction removed; ``instruction_id_list`` and ``kwargs`` as in IFEval.
* the keyword splits (``data/keywords/ifeval_single_keyword_include.jsonl`` and ``..._exclude.jsonl``,
  earlier ``data/ifeval_single_keyword_include.jsonl``, ``data/ifeval_multiple_instr_casing_exclude.jsonl``):
  IFEval records with ``prompt_without_instruction`` and ``old_prompt``, one record per word of an IFEval
  prompt that named several, so keys repeat; each key here gets its word (``1531:atlantis``). The casing
  file scores only the first of its two ids (``instruction_id_list_for_eval``): refused, as every record
  that scores fewer ids than it carries (``instructions.datasets.scored_as_given``).

The paper's other files are plain IFEval (``data/format/ifeval_single_instr_format.jsonl``,
``data/keywords/inclusion_validation.jsonl``, ...: format ``ifeval``, which ``auto`` picks). Its
base-query files (``data/input_data_no_instr.jsonl``, ``data/ifeval_wo_instructions.jsonl``) carry no
kwargs, so their replies cannot be checked: refused, naming the line."""

from __future__ import annotations

from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.instructions import IFEvalExample
from workbench.instructions.datasets import checked_text, json_object, read_records, record_from
from workbench.readers.base import Reader

STRIPPED, SPLIT = "original_prompt", "old_prompt"  # the field that tells each layout
WORD_KWARGS = ("keywords", "forbidden_words")  # what tells one split record of a prompt from another


def stripped(where: str, row: dict, n: int) -> IFEvalExample:
    """``original_prompt`` with the instruction, ``prompt`` without it."""
    if row.get("kwargs") is None:
        raise WorkbenchError(
            f"{where}: no kwargs: one of the paper's base-query files (IFEval prompts with every instruction "
            "removed), whose replies cannot be checked; use data/input_data_single_instr_no_instr.jsonl "
            "or data/format/ifeval_single_instr_format.jsonl"
        )
    if "prompt_without_instruction" in row:
        raise WorkbenchError(
            f"{where}: both original_prompt and prompt_without_instruction: not a layout of the paper's"
        )
    with_instruction = checked_text(where, STRIPPED, row.get(STRIPPED))
    without = checked_text(where, "prompt", row.get("prompt"))
    return record_from(where, {**row, "prompt": with_instruction, "prompt_without_instruction": without}, n)


def words(kwargs: object) -> list[str]:
    """The words a split record's kwargs name (none where they are malformed: ``record_from`` says so)."""
    entries = [kw for kw in kwargs if isinstance(kw, dict)] if isinstance(kwargs, list) else []
    lists = [kw.get(name) for kw in entries for name in WORD_KWARGS]
    return [w for ws in lists if isinstance(ws, list) for w in ws if isinstance(w, str)]


def split(where: str, row: dict, n: int) -> IFEvalExample:
    """An IFEval record with ``prompt_without_instruction``; its key made its own by its words."""
    key, named = row.get("key"), words(row.get("kwargs"))
    if key is not None and not isinstance(key, bool) and named:
        row = {**row, "key": f"{key}:{'+'.join(named)}"}
    return record_from(where, row, n)


def parse(where: str, line: str, n: int) -> IFEvalExample:
    row = json_object(where, line, "a record of the paper's files")
    if STRIPPED in row:
        return stripped(where, row, n)
    if SPLIT in row:
        return split(where, row, n)
    raise WorkbenchError(
        f"{where}: neither of the paper's layouts ({STRIPPED} with a stripped prompt, or {SPLIT} in a keyword "
        "split); a plain IFEval record reads with --format ifeval"
    )


def read(path: Path) -> list[IFEvalExample]:
    return read_records(path, parse, "one of the paper's data files (github.com/microsoft/llm-steer-instruct)")


READER = Reader(
    "paper",
    "the paper's derived files: original_prompt (with) + prompt (without), or keyword splits with old_prompt",
    read,
    lambda record: "instruction_id_list" in record and (STRIPPED in record or SPLIT in record),
)
