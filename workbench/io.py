"""Files and folders: crash-safe writes (a temp file and a rename), JSONL, the cache folder, result
folders that refuse to mix configurations, and the timestamped progress log."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.file_formats import FileFormat


@contextmanager
def atomic_path(path: str | Path) -> Iterator[str]:
    """Yield a temp path beside ``path``; on success rename it onto ``path``, on error remove it.

    Readers never see half a file. A process killed mid-write leaves only a hidden ``.*.tmp``. A write
    that fails for want of room or rights (an ``OSError`` naming no file, or the temp file) names ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno is None or exc.filename not in (None, tmp):
            raise
        raise OSError(exc.errno, os.strerror(exc.errno), str(path)) from exc
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def write_jsonl(path: str | Path, rows: Iterable[Mapping]) -> None:
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))


def read_jsonl(path: str | Path) -> list[dict]:
    """The objects of a JSONL file; a damaged line is refused with its file and line number."""
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise WorkbenchError(
                f"{path} line {n} is not JSON (a damaged or truncated file?): delete it to recompute it"
            ) from None
        if not isinstance(row, dict):
            raise WorkbenchError(f"{path} line {n} is not a JSON object: delete the file to recompute it")
        rows.append(row)
    return rows


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_can_create_in(folder: Path, what: str) -> None:
    if not folder.is_dir():
        raise WorkbenchError(f"{what}: {folder} is a file, not a folder")
    try:  # the one reliable test (permissions, read-only mounts, /proc): create and remove a folder
        os.rmdir(tempfile.mkdtemp(dir=folder, prefix=".workbench-probe-"))
    except OSError as exc:
        raise WorkbenchError(f"{what}: cannot write in {folder} ({exc.strerror or exc})") from None


def check_writable_dir(out: str | Path) -> None:
    """Refuse an output folder that cannot be written, before any work: a file, read-only, /proc."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise WorkbenchError(f"--out {out} is a file: give a folder")
    _check_can_create_in(_nearest_existing(out), f"--out {out}")


def check_writable_file(path: str | Path) -> None:
    """Refuse an output file that cannot be written, before any work: a folder, read-only parent."""
    path = Path(path)
    if path.is_dir():
        raise WorkbenchError(f"--out {path} is a folder: give a file name")
    _check_can_create_in(_nearest_existing(path.parent), f"--out {path}")


@contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the block: one process at a time
    builds a shared cache entry. The OS releases it if the process dies."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def file_hash(path: str | Path | None) -> str | None:
    """SHA-256 of a file's bytes (None when there is no such file): what a result was made from."""
    if path is None or not Path(path).is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def cache_dir() -> Path:
    """Where assembled weights, vectors and NLTK data live: $WORKBENCH_CACHE, else ~/.cache/workbench."""
    root = os.environ.get("WORKBENCH_CACHE") or Path.home() / ".cache" / "workbench"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _differences(old, new, at: str = "") -> list[str]:
    """Where two JSON values differ, as paths (``instructions[0].checker``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            d
            for k in sorted(set(old) | set(new), key=str)
            for d in _differences(old.get(k), new.get(k), f"{at}.{k}" if at else str(k))
        ]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in _differences(a, b, f"{at}[{i}]")]
    return [] if old == new else [at or "(the whole configuration)"]


def claim_dir(out: Path, config: dict, kind: str, fmt: FileFormat | None = None, name: str = "config.json") -> None:
    """Mark ``out`` as holding results of this configuration; refuse a folder that holds another's,
    naming the fields that differ. The first claim is create-exclusive, so two processes starting
    on one folder at once cannot both take it. ``fmt``: the folder's format, stamped in the claim;
    an older folder's is brought up before comparing, a newer one is refused. ``name``: the claim's
    file (one folder may carry several claims: a sweep's ``config.json``, an evaluation's search kind)."""
    path = Path(out) / name
    mine = json.loads(json.dumps({"kind": kind, **config}))
    mine = fmt.stamp(mine) if fmt else mine
    text = json.dumps(mine, indent=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:  # nobody else could have created it: ours from here
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        return
    for _ in range(50):  # another process may be writing it this very moment
        try:
            old = json.loads(path.read_text())
            break
        except json.JSONDecodeError:
            time.sleep(0.1)
    else:
        raise WorkbenchError(f"{path} is damaged (not JSON): delete {out} or use a new output folder")
    old = fmt.read(old, out) if fmt else old
    if old != mine:
        diff = _differences(old, mine)
        shown = ", ".join(diff[:6]) + (f" and {len(diff) - 6} more" if len(diff) > 6 else "")
        raise WorkbenchError(
            f"{out} holds results of another configuration (differs in {shown}): use a new output folder or delete it"
        )


def log(msg: str) -> None:
    """One timestamped progress line on stdout."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)
