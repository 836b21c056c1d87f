"""Names to instructions: a catalog name, an IFEval spelling (``id`` or ``id[key=value,...]``) or
``text:SENTENCE`` becomes an ``Instruction``; ``catalog()`` lists the named ones."""

from __future__ import annotations

from workbench.checkers import ifeval_registry
from workbench.errors import WorkbenchError
from workbench.instructions.curated import catalog_entries
from workbench.instructions.ifeval import parse_spelling
from workbench.instructions.instruction import Instruction


def catalog() -> dict[str, Instruction]:
    """The curated instructions (several phrasings each), by name."""
    return {
        raw["id"]: Instruction(
            raw["id"], tuple(raw["phrasings"]), raw["ifeval_id"], raw["kwargs"], raw["family"], "catalog"
        )
        for raw in catalog_entries()
    }


def get_instruction(instruction: str | Instruction) -> Instruction:
    """A catalog name, an IFEval spelling (``id`` or ``id[key=value,...]``), ``text:SENTENCE`` or an Instruction."""
    if isinstance(instruction, Instruction):
        return instruction
    if not isinstance(instruction, str) or not instruction.strip():
        raise WorkbenchError(f"an instruction is a catalog name, an IFEval id or text:SENTENCE, not {instruction!r}")
    known = catalog()
    if instruction in known:
        return known[instruction]
    if instruction.startswith("text:"):
        return Instruction.custom(instruction[len("text:") :].strip())
    ifeval_id, kwargs = parse_spelling(instruction) if ":" in instruction else (instruction, {})
    if ifeval_id not in ifeval_registry():
        raise WorkbenchError(
            f"unknown instruction {instruction!r}: use a catalog name ({', '.join(known)}), an IFEval id "
            "(`workbench vectors --help` lists them), or text:SENTENCE"
        )
    return Instruction.ifeval(ifeval_id, **kwargs)
