"""A file format with a version and one migration per version: what a workbench writes is stamped
with the version it writes; what it reads is brought up from an older version one migration at a
time, and a file written by a newer workbench is refused in one line (its fields may mean something
this one cannot know)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from workbench.errors import WorkbenchError

Migration = Callable[[dict], dict]  # one version's dict -> the next version's (``FileFormat.read`` sets the number)


@dataclass(frozen=True)
class FileFormat:
    """``name``: what such a file holds, with its article ("a study"), for messages. ``version``: the
    one this workbench writes. ``migrations[v]``: version v's dict brought to v + 1, one for each
    version before ``version`` and no other (a format at version 1 has none). ``unversioned``: the
    version of a dict without ``key``, a file from before its format was numbered (None: refused)."""

    name: str
    version: int
    migrations: Mapping[int, Migration] = field(default_factory=dict)
    unversioned: int | None = 1
    key: str = "format"

    def __post_init__(self) -> None:
        if set(self.migrations) != set(range(1, self.version)):
            raise ValueError(
                f"format of {self.name} at version {self.version} needs one migration from each of "
                f"{list(range(1, self.version))}, not {sorted(self.migrations)}"
            )

    def stamp(self, meta: Mapping) -> dict:
        """``meta`` with this workbench's version under ``key`` (first)."""
        return {self.key: self.version, **{k: v for k, v in meta.items() if k != self.key}}

    def read(self, meta: object, where: object) -> dict:
        """``meta`` (read from ``where``, named in errors) at this workbench's version: an older one
        migrated step by step, a newer one, a number that is not a version, or no number where the
        format was always numbered refused in one line."""
        if not isinstance(meta, Mapping):
            raise WorkbenchError(f"{where} does not hold {self.name} (not a JSON object)")
        version = meta.get(self.key, self.unversioned)
        if version is None:
            raise WorkbenchError(f"{where} does not hold {self.name}: it has no format number")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise WorkbenchError(
                f"{where} has format {version!r}, not a version number: it is damaged or does not hold {self.name}"
            )
        if version > self.version:
            raise WorkbenchError(
                f"{where} holds {self.name} of format {version}; this workbench reads formats up to "
                f"{self.version}: upgrade the workbench to read it"
            )
        out = {**meta, self.key: version}
        for v in range(version, self.version):
            out = {**self.migrations[v](out), self.key: v + 1}
        return out
