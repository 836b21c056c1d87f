"""IFEval-format JSONL files: reading records, their instructions, a file's own with/without pairs
(records with ``prompt_without_instruction``), and writing such records from the project's queries."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from workbench.errors import WorkbenchError
from workbench.instructions.groups import group_name
from workbench.instructions.instruction import Instruction
from workbench.instructions.pairs import SPLITS, Pair, instantiate, queries, split_of

@dataclass(frozen=True)
class IFEvalExample:
    key: str
    prompt: str
    instruction_id_list: list[str]
    kwargs: list[dict]
    prompt_without_instruction: str | None = None


def load_ifeval_jsonl(path: str | Path) -> list[IFEvalExample]:
    """Read an IFEval-format JSONL file (key, prompt, instruction_id_list, kwargs, ...)."""
    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(f"no such file: {path}; give an IFEval-format JSONL file")
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            ids = list(row["instruction_id_list"])
            kwargs = [{k: v for k, v in (kw or {}).items() if v is not None} for kw in row.get("kwargs", [{}] * len(ids))]
            out.append(IFEvalExample(str(row.get("key", n)), row["prompt"], ids, kwargs, row.get("prompt_without_instruction")))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise WorkbenchError(f"{path}:{n} is not an IFEval record ({exc}); each line needs prompt and instruction_id_list") from None
    if not out:
        raise WorkbenchError(f"{path} holds no examples; give a non-empty IFEval-format JSONL file")
    return out


def record_instructions(example: IFEvalExample) -> list[Instruction]:
    """A record's instructions as IFEval instructions with the record's own kwargs."""
    return [Instruction.ifeval(iid, **kw) for iid, kw in zip(example.instruction_id_list, example.kwargs)]


def file_pairs(
    examples: Sequence[IFEvalExample], group_by: Mapping[str, Sequence[str]] | None = None, seed: int = 0
) -> dict[str, dict[str, list[Pair]]]:
    """A file's own with/without pairs: group -> split -> pairs, from its single-instruction records
    with ``prompt_without_instruction``. The split hashes that base query (seeded), so one query never
    sits in two splits, whatever instruction it carries."""
    out: dict[str, dict[str, list[Pair]]] = defaultdict(lambda: {s: [] for s in SPLITS})
    for ex in examples:
        if len(ex.instruction_id_list) != 1 or not ex.prompt_without_instruction:
            continue
        (inst,) = record_instructions(ex)
        name = group_name(inst.ifeval_id, inst.kwargs, group_by)
        split = split_of(ex.prompt_without_instruction, seed)
        out[name][split].append(Pair(ex.key, ex.prompt_without_instruction, inst, "", ex.prompt, ex.prompt_without_instruction))
    return dict(out)


def ifeval_records(
    instructions: Sequence[Instruction | Sequence[Instruction]], split: str | None = "test", per_instruction: int = 2, seed: int = 0
) -> list[dict]:
    """IFEval-format records (with ``prompt_without_instruction``) from the project's queries: each
    entry (an instruction, or several for one multi-instruction record) on ``per_instruction`` queries.
    Write them with ``io.write_jsonl`` to get a file ``workbench evaluate --data`` reads."""
    pool = queries(split, seed=seed)
    records = []
    for k, entry in enumerate(instructions):
        insts = [entry] if isinstance(entry, Instruction) else list(entry)
        for j in range(per_instruction):
            q = pool[(k * per_instruction + j) % len(pool)]
            filled = [instantiate(i, q.text) for i in insts]
            if any(i.ifeval_id is None or i.source == "custom" for i in filled):
                raise WorkbenchError("IFEval records need IFEval instructions (Instruction.ifeval or catalog names)")
            records.append({
                "key": f"{k}-{j}", "prompt": " ".join([q.text, *(i.phrasing(j) for i in filled)]),
                "instruction_id_list": [i.ifeval_id for i in filled], "kwargs": [i.kwargs for i in filled],
                "prompt_without_instruction": q.text,
            })
    return records
