"""What a dataset reader is: one object that names a file format, reads such a file into
``IFEvalExample`` records (every field checked, errors naming file and line) and says whether a first
record is in its format, so ``read_dataset(path)`` can pick it without guessing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from workbench.errors import InterruptedBeforeWork, WorkbenchError
from workbench.instructions import IFEvalExample
from workbench.instructions.datasets import each_key_once, record_from

Read = Callable[[Path], list[IFEvalExample]]
"""A reader's function: a file's path -> its records."""


@dataclass(frozen=True)
class Reader:
    """A dataset format. ``name`` is its spelling everywhere (``--format``, ``reader=``); ``description``
    one line for help and errors (its fields); ``read`` the file's records; ``recognizes`` whether a
    first record (a JSON object) is in this format, or None: ``auto`` never picks it (your own readers)."""

    name: str
    description: str
    read: Read
    recognizes: Callable[[dict], bool] | None = None

    def __call__(self, path: str | Path) -> list[IFEvalExample]:
        """The file's records. Ctrl-C here is before any work (``InterruptedBeforeWork``); a reader that
        calls ``sys.exit`` would end the program with no word (exit 0): an error naming the reader."""
        try:
            return self.read(Path(path))
        except KeyboardInterrupt:
            raise InterruptedBeforeWork(f"while reading {path}") from None
        except SystemExit as exc:
            raise WorkbenchError(
                f"reader {self.name} called sys.exit({exc.code!r}) while reading {path}: a reader returns its "
                "records or raises an error"
            ) from None

    def __repr__(self) -> str:
        return f"Reader({self.name}: {self.description})"

    @classmethod
    def custom(cls, read: Read, name: str) -> Reader:
        """Your own ``read``, its records checked as a built-in reader's are (a bad one: one line naming
        the file and the record), any other exception it raises made one line too."""

        def checked(path: Path) -> list[IFEvalExample]:
            try:
                got = read(path)
            except WorkbenchError:
                raise
            except Exception as exc:  # the user's code: whatever it raises is bad input to us
                raise WorkbenchError(f"reader {name} failed on {path}: {raised(exc)}") from exc
            return checked_records(path, name, got)

        return cls(name, f"your reader {name}", checked)


@runtime_checkable
class HasRead(Protocol):
    """Any object with the protocol's ``read(path)`` (and, if it likes, a ``name``)."""

    def read(self, path: Path) -> list[IFEvalExample]: ...


ReaderSpec = str | Reader | Read | HasRead
"""What ``read_dataset`` and ``EvaluateOptions.reader`` take: ``auto``, a format's name, ``module:function``
(or ``file.py:function``), a ``Reader``, any callable ``Path -> list[IFEvalExample]`` or an object
with such a ``read``."""


def checked_records(path: Path, name: str, got: object) -> list[IFEvalExample]:
    """A custom reader's result: a non-empty list of ``IFEvalExample`` with unique keys, each record's
    fields checked like a file's (``record_from``)."""
    if not isinstance(got, list) or not all(isinstance(ex, IFEvalExample) for ex in got):
        shown = type(got).__name__ if not isinstance(got, list) else "a list holding other things"
        raise WorkbenchError(f"reader {name} returned {shown} for {path}, not a list of IFEvalExample")
    if not got:
        raise WorkbenchError(f"reader {name} found no examples in {path}")
    return each_key_once(
        (_rechecked(f"{path} record {i} (from reader {name})", ex, i) for i, ex in enumerate(got, 1)), "record"
    )


def _rechecked(where: str, ex: IFEvalExample, i: int) -> tuple[str, int, IFEvalExample]:
    """A record a reader made, its fields checked as a file's are (``record_from``), with where it stands."""
    fields = {
        "key": ex.key,
        "prompt": ex.prompt,
        "instruction_id_list": ex.instruction_id_list,
        "kwargs": ex.kwargs,
        "prompt_without_instruction": ex.prompt_without_instruction,
    }
    return where, i, record_from(where, fields, ex.line or i)


def raised(exc: BaseException) -> str:
    """What the user's code raised, on one line: its type and message."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())
