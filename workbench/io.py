"""Files and folders: crash-safe writes (a temp file and a rename), JSONL, the cache folder, result
folders that refuse to mix configurations, and the timestamped progress log."""

from __future__ import annotations

import json
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from workbench.errors import WorkbenchError


@contextmanager
def atomic_path(path: str | Path) -> Iterator[str]:
    """Yield a temp path beside ``path``; on success rename it onto ``path``, on error remove it.

    Readers never see half a file. A process killed mid-write leaves only a hidden ``.*.tmp``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))


def read_jsonl(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line]


def cache_dir() -> Path:
    """Where assembled weights, vectors and NLTK data live: $WORKBENCH_CACHE, else ~/.cache/workbench."""
    root = os.environ.get("WORKBENCH_CACHE") or Path.home() / ".cache" / "workbench"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def claim_dir(out: Path, config: dict, kind: str) -> None:
    """Mark ``out`` as holding results of this configuration; refuse a folder that holds another's."""
    path = Path(out) / "config.json"
    if path.exists():
        old = json.loads(path.read_text())
        if old != {"kind": kind, **config}:
            raise WorkbenchError(f"{out} holds results of another configuration: use a new output folder or delete it")
    else:
        write_atomic(path, json.dumps({"kind": kind, **config}, indent=2))


def log(msg: str) -> None:
    """One timestamped progress line on stdout."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)
