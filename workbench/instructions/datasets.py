"""IFEval-format JSONL files: reading records, their instructions, a file's own with/without pairs
(records with ``prompt_without_instruction``), and writing such records from the project's queries.
The reading steps (``jsonl_lines``, ``json_object``, ``record_from``, ``read_records``) are public:
``workbench.readers`` builds its other formats from them, with the same checks and messages."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.instructions.groups import vector_groups
from workbench.instructions.ifeval import checked_kwargs
from workbench.instructions.instruction import Instruction
from workbench.instructions.pairs import SPLITS, Pair, instantiate, queries, split_of

# A prompt longer than this (about 5,000 tokens) is a pasted document or a broken line, not an
# instruction-following item (IFEval's longest is a few thousand characters). Refusing it when the
# file is read costs nothing; refusing it at generation costs the whole selection sweep run before.
MAX_PROMPT_CHARS = 20_000


@dataclass(frozen=True)
class IFEvalExample:
    key: str
    prompt: str
    instruction_id_list: list[str]
    kwargs: list[dict]
    prompt_without_instruction: str | None = None
    line: int = 0  # where it is in its file, for error messages


def json_kind(value: object) -> str:
    """A JSON value's kind, as an error message names it."""
    if value is None:
        return "null"
    if isinstance(value, str) and not value.strip():
        return "an empty string"
    names = {bool: "a boolean", str: "a string", list: "a list", dict: "an object"}
    return next((name for t, name in names.items() if isinstance(value, t)), "a number")


def _not_list_of(value: object, ok: Callable[[object], bool]) -> str:
    """What a value is instead of a non-empty list of ``ok`` items, for an error message."""
    if not isinstance(value, list):
        return json_kind(value)
    return (
        "a list holding " + ", ".join(sorted({json_kind(v) for v in value if not ok(v)})) if value else "an empty list"
    )


def jsonl_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their numbers. Split on newline bytes only: a U+2028 inside a JSON string
    is part of its record, not a line break."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WorkbenchError(f"cannot read {path}: {exc.strerror}") from None
    for n, raw in enumerate(data.split(b"\n"), 1):
        try:
            line = raw.decode("utf-8").removeprefix("\ufeff" if n == 1 else "")
        except UnicodeDecodeError as exc:
            raise WorkbenchError(
                f"{path} line {n}: not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                "save the file as UTF-8"
            ) from None
        if line.strip():
            yield n, line


def checked_text(where: str, name: str, value: object) -> str:
    """A non-empty string under ``MAX_PROMPT_CHARS``; ``where`` starts the error."""
    if not isinstance(value, str) or not value.strip():
        raise WorkbenchError(f"{where}: {name} must be a non-empty string, not {json_kind(value)}")
    if len(value) > MAX_PROMPT_CHARS:
        raise WorkbenchError(
            f"{where}: {name} has {len(value):,} characters, more than MAX_PROMPT_CHARS = {MAX_PROMPT_CHARS:,}; "
            "shorten it"
        )
    return value


def _is_id(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_kwargs(value: object) -> bool:
    return value is None or isinstance(value, dict)


class _DuplicateKey(ValueError):
    """A key given twice in one JSON object (``json`` would keep the last, silently)."""


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def json_object(where: str, line: str, record: str = "an IFEval record") -> dict:
    """One JSONL line as a JSON object; ``record`` names what belongs there in the error. A key given
    twice in one object (the record's, or its kwargs') is refused: JSON would keep the last silently."""
    try:
        row = json.loads(line, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        shown = repr(exc.args[0]) if len(exc.args[0]) <= 40 else repr(exc.args[0][:37] + "...")
        raise WorkbenchError(f"{where}: key {shown} is given twice in one object; keep one") from None
    except json.JSONDecodeError as exc:
        raise WorkbenchError(f"{where}: not JSON ({exc.msg} at column {exc.colno})") from None
    except (ValueError, RecursionError):
        raise WorkbenchError(f"{where}: not JSON this reader takes (nested too deeply or a number too long)") from None
    if not isinstance(row, dict):
        raise WorkbenchError(f"{where}: {json_kind(row)}, where {record} (a JSON object) belongs")
    return row


def record_from(where: str, row: Mapping, n: int = 0) -> IFEvalExample:
    """An IFEval record's fields (key, prompt, instruction_id_list, kwargs, prompt_without_instruction),
    every one checked; ``where`` starts each error message, ``n`` is the line (the key if none is given)."""
    ids = row.get("instruction_id_list")
    if not isinstance(ids, list) or not ids or not all(map(_is_id, ids)):
        raise WorkbenchError(
            f"{where}: instruction_id_list must be a non-empty list of id strings, not {_not_list_of(ids, _is_id)}"
        )
    kwargs = row.get("kwargs")
    kwargs = [{}] * len(ids) if kwargs is None else kwargs  # no kwargs at all: none for any instruction
    if not isinstance(kwargs, list) or not all(map(_is_kwargs, kwargs)):
        raise WorkbenchError(
            f"{where}: kwargs must be a list of objects, one per instruction id, not {_not_list_of(kwargs, _is_kwargs)}"
        )
    if len(kwargs) != len(ids):
        raise WorkbenchError(
            f"{where}: kwargs has {len(kwargs)} entr{'y' if len(kwargs) == 1 else 'ies'} for {len(ids)} instruction ids"
        )
    key = row.get("key")
    key = n if key is None else key
    if isinstance(key, bool) or not isinstance(key, (int, str)) or not str(key).strip():
        raise WorkbenchError(f"{where}: key must be a number or a non-empty string, not {json_kind(key)}")
    kwargs = [checked_kwargs(iid, kw or {}, where) for iid, kw in zip(ids, kwargs)]
    prompt = checked_text(where, "prompt", row.get("prompt"))
    without = row.get("prompt_without_instruction")  # optional: a record without it is skipped, with the reason
    without = None if without is None else checked_text(where, "prompt_without_instruction", without)
    scored_as_given(where, ids, row.get("instruction_id_list_for_eval"))
    return IFEvalExample(str(key), prompt, list(ids), kwargs, without, n)


def scored_as_given(where: str, ids: list[str], for_eval: object) -> None:
    """The paper's files name the ids they score (``instruction_id_list_for_eval``; a language id with its
    language appended, ``language:response_language_kn``). The workbench scores every id of a record, so a
    record that scores fewer is refused rather than scored differently from what its file says."""
    if for_eval is None:
        return
    if not isinstance(for_eval, list) or not all(map(_is_id, for_eval)):
        raise WorkbenchError(
            f"{where}: instruction_id_list_for_eval must be a list of id strings, not {json_kind(for_eval)}"
        )
    language = "language:response_language"
    named = {language if str(i).startswith(language + "_") else i for i in for_eval}
    if named != set(ids):
        raise WorkbenchError(
            f"{where}: instruction_id_list_for_eval scores {', '.join(for_eval)} of {', '.join(ids)}, and the "
            "workbench scores every instruction of a record: drop the others from instruction_id_list and the "
            "prompt, or drop instruction_id_list_for_eval to score them all"
        )


def parse_record(where: str, line: str, n: int = 0) -> IFEvalExample:
    """One JSONL line as an IFEval record, every field checked; ``where`` starts each error message."""
    return record_from(where, json_object(where, line), n)


def read_records(
    path: str | Path, parse: Callable[[str, str, int], IFEvalExample], file: str = "an IFEval-format JSONL file"
) -> list[IFEvalExample]:
    """Every non-blank line of a JSONL file through ``parse(where, line, n)``, checked here, before any
    model loads: one ``WorkbenchError`` naming the file and line otherwise; keys must be unique."""
    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(f"no such file: {path}; give {file}")
    out = each_key_once((f"{path} line {n}", n, parse(f"{path} line {n}", line, n)) for n, line in jsonl_lines(path))
    if not out:
        raise WorkbenchError(f"{path} holds no examples; give {file} with at least one record")
    return out


def each_key_once(records: Iterable[tuple[str, int, IFEvalExample]], unit: str = "line") -> list[IFEvalExample]:
    """``(where, number, record)`` in order, as records; a key already taken is one line naming both
    places (``unit``: what the numbers count, a file's lines or a reader's records)."""
    out: list[IFEvalExample] = []
    seen: dict[str, int] = {}
    for where, n, ex in records:
        if ex.key in seen:
            raise WorkbenchError(
                f"{where}: key {ex.key!r} is already the key of {unit} {seen[ex.key]}; each record needs its own key"
            )
        seen[ex.key] = n
        out.append(ex)
    return out


def load_ifeval_jsonl(path: str | Path) -> list[IFEvalExample]:
    """Read an IFEval-format JSONL file (key, prompt, instruction_id_list, kwargs, ...), every record
    checked here, before any model loads: one ``WorkbenchError`` naming the file and line otherwise."""
    return read_records(path, parse_record)


def record_instructions(example: IFEvalExample) -> list[Instruction]:
    """A record's instructions as IFEval instructions with the record's own kwargs (names and values
    checked by the registry: ``ifeval_id`` is positional-only, so a kwarg named like it is refused too)."""
    return [Instruction.ifeval(iid, **kw) for iid, kw in zip(example.instruction_id_list, example.kwargs)]


SAME_TWIN = "prompt_without_instruction equals the prompt: the instruction is part of the base query"


NO_TWIN = "no prompt_without_instruction: the conditions without the instruction need it"


def twin(example: IFEvalExample) -> str | None:
    """A record's instruction-free twin, or None where it has none or one equal to its prompt. The paper's
    format file has such a record (key 1802: its base query already asks for the answer in double angular
    brackets, the title instruction): with and without would be one condition, a pair a zero difference."""
    without = example.prompt_without_instruction
    return without if without and without.strip() != example.prompt.strip() else None


def file_pairs(
    examples: Sequence[IFEvalExample], group_by: Mapping[str, Sequence[str]] | None = None, seed: int = 0
) -> dict[str, dict[str, list[Pair]]]:
    """A file's own with/without pairs: group -> split -> pairs, from its single-instruction records
    with ``prompt_without_instruction`` (one vector group: one word, for a per-word id). The split hashes
    that base query (seeded), so one query never sits in two splits, whatever instruction it carries."""
    out: dict[str, dict[str, list[Pair]]] = defaultdict(lambda: {s: [] for s in SPLITS})
    for ex in examples:
        if len(ex.instruction_id_list) != 1 or (without := twin(ex)) is None:
            continue
        (inst,) = record_instructions(ex)
        groups = vector_groups(inst, group_by)
        if len(groups) != 1:
            continue  # a record naming two words trains neither word's vector
        name = groups[0][0]
        split = split_of(without, seed)
        out[name][split].append(Pair(ex.key, without, inst, "", ex.prompt, without))
    return dict(out)


def ifeval_records(
    instructions: Sequence[Instruction | Sequence[Instruction]],
    split: str | None = "test",
    per_instruction: int = 2,
    seed: int = 0,
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
            records.append(
                {
                    "key": f"{k}-{j}",
                    "prompt": " ".join([q.text, *(i.phrasing(j) for i in filled)]),
                    "instruction_id_list": [i.ifeval_id for i in filled],
                    "kwargs": [i.kwargs for i in filled],
                    "prompt_without_instruction": q.text,
                }
            )
    return records
