"""Dataset readers, one per module: each defines ``READER``, a ``Reader``; ``READERS`` finds them all.
Adding a format is one file here (and its test): ``--format``, ``plan_file(reader=...)`` and ``auto``
read what the object says. Your own format needs no file here: ``read_dataset(path, reader=callable)``
or ``--format module:function``.

``read_dataset(path)`` (``reader="auto"``) reads the first record and takes the one format that
recognises it; none or several is an error that says to name the format. It never guesses."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from workbench.discovery import discover
from workbench.errors import InterruptedBeforeWork, WorkbenchError
from workbench.instructions import IFEvalExample
from workbench.instructions.datasets import json_object, jsonl_lines
from workbench.readers.base import HasRead, Read, Reader, ReaderSpec, checked_records, raised

AUTO = "auto"  # the default: the one format that recognises the file's first record
BUILT_IN = ("ifeval", "pairs", "paper")  # listed first, in this order, in messages and help


def _discover() -> dict[str, Reader]:
    found: dict[str, Reader] = {}
    for reader in discover(__name__, __path__, "READER", BUILT_IN):
        assert isinstance(reader, Reader)
        if reader.name in found or reader.name == AUTO or ":" in reader.name:
            raise RuntimeError(f"a dataset reader may not be named {reader.name!r} (taken, or auto, or with a colon)")
        found[reader.name] = reader
    return found


READERS: dict[str, Reader] = _discover()
"""Name -> reader, every module of this package."""


def reader_names() -> str:
    """The formats as help and errors list them."""
    return ", ".join([AUTO, *READERS, "module:function"])


def reader_named(spec: ReaderSpec) -> Reader:
    """A reader from a format's name, ``module:function`` / ``file.py:function`` (imported here: a
    failure is one line), a ``Reader``, or a callable ``Path -> list[IFEvalExample]`` (its records checked)."""
    if isinstance(spec, Reader):
        return spec
    if isinstance(spec, str):
        if spec in READERS:
            return READERS[spec]
        if ":" not in spec:
            raise WorkbenchError(f"unknown dataset format {spec!r}: use one of {reader_names()}")
        return _imported(spec)
    read = getattr(spec, "read", None)
    if callable(read) and not isinstance(spec, type):  # an object with the protocol's read(path)
        return Reader.custom(read, str(getattr(spec, "name", type(spec).__name__)))
    if callable(spec):
        return Reader.custom(spec, getattr(spec, "__qualname__", repr(spec)))
    raise WorkbenchError(f"a dataset reader is a format's name ({reader_names()}) or a callable, not {spec!r}")


def _imported(spec: str) -> Reader:
    """``module:function``: the working folder is searched too (a console script's path lacks it)."""
    module, _, attr = spec.rpartition(":")
    if not module.strip() or not attr.isidentifier():
        raise WorkbenchError(f"dataset format {spec!r}: write module:function (or file.py:function)")
    try:
        loaded = _load_file(Path(module)) if module.endswith(".py") else _load_module(module)
    except WorkbenchError:
        raise
    except KeyboardInterrupt:
        raise InterruptedBeforeWork(f"while importing {module} (the reader of --format {spec})") from None
    except (Exception, SystemExit) as exc:  # ImportError, SyntaxError, whatever the module raises, sys.exit too
        raise WorkbenchError(f"cannot import {module} for --format {spec}: {raised(exc)}") from exc
    found = getattr(loaded, attr, None)
    if isinstance(found, Reader):
        return found
    if found is None or not callable(found):
        what = "nothing" if found is None else type(found).__name__
        raise WorkbenchError(f"{spec} is {what}, not a callable Path -> list[IFEvalExample]")
    return Reader.custom(found, spec)


def _load_module(name: str) -> ModuleType:
    added = os.getcwd() not in sys.path
    if added:
        sys.path.append(os.getcwd())
    try:
        return importlib.import_module(name)
    finally:
        if added:
            sys.path.remove(os.getcwd())


def _load_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise WorkbenchError(f"no such file: {path} (the reader module of --format {path}:...)")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise WorkbenchError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def auto_reader(path: str | Path) -> Reader:
    """The one built-in format that recognises the file's first record; none or several: one line
    naming the file and line, and saying to pass the format."""
    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(f"no such file: {path}; give a JSONL dataset ({', '.join(READERS)} format)")
    try:
        first = next(jsonl_lines(path), None)
    except KeyboardInterrupt:
        raise InterruptedBeforeWork(f"while reading {path}") from None
    if first is None:
        raise WorkbenchError(f"{path} holds no examples; give a JSONL dataset with at least one record")
    where = f"{path} line {first[0]}"
    record = json_object(where, first[1], "a record")
    fits = [r for r in READERS.values() if r.recognizes is not None and r.recognizes(record)]
    if len(fits) == 1:
        return fits[0]
    fields = ", ".join(sorted(" ".join(str(k).split()) or repr(k) for k in record)[:8]) or "none"
    if not fits:
        described = "; ".join(f"{r.name}: {r.description}" for r in READERS.values())
        raise WorkbenchError(
            f"{where}: no dataset format recognises this record (fields {fields}); formats are {described}. "
            "Pass --format NAME (reader=NAME), or module:function for your own"
        )
    raise WorkbenchError(
        f"{where}: the record fits several formats ({', '.join(r.name for r in fits)}; fields {fields}); "
        "pass --format NAME (reader=NAME) to say which"
    )


def reader_for(path: str | Path, reader: ReaderSpec = AUTO) -> Reader:
    """The reader of ``path``: ``auto`` resolved on its first record, anything else by ``reader_named``."""
    return auto_reader(path) if isinstance(reader, str) and reader == AUTO else reader_named(reader)


def read_dataset(path: str | Path, reader: ReaderSpec = AUTO) -> list[IFEvalExample]:
    """A dataset's records, every field checked before any model loads: ``reader`` is ``auto`` (the one
    format that recognises the first record), a format's name (``READERS``), ``module:function``, a
    ``Reader`` or a callable ``Path -> list[IFEvalExample]``."""
    return reader_for(path, reader)(path)


__all__ = [
    "AUTO",
    "READERS",
    "HasRead",
    "Read",
    "Reader",
    "ReaderSpec",
    "checked_records",
    "reader_names",
    "read_dataset",
    "reader_for",
    "reader_named",
    "auto_reader",
]
