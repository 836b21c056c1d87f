"""A package whose modules are each one thing of a kind (a steering operator, a dataset reader): the
objects its modules define, found by listing the package, so adding one is adding a file."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Sequence


def discover(package: str, path: Iterable[str], attribute: str, first: Sequence[str] = ()) -> list[object]:
    """``module.ATTRIBUTE`` of every module of ``package`` (its ``__path__`` is ``path``) but ``base``:
    the modules named in ``first`` in that order, then the rest by name. A module without it is an error
    naming the module (a helper module belongs elsewhere: ``base``, or a module of the layer below)."""
    names = sorted(m.name for m in pkgutil.iter_modules(path) if m.name != "base")
    found = []
    for name in [n for n in first if n in names] + [n for n in names if n not in first]:
        module = importlib.import_module(f"{package}.{name}")
        if not hasattr(module, attribute):
            raise RuntimeError(f"{package}.{name} defines no {attribute}: each module of {package} is one")
        found.append(getattr(module, attribute))
    return found
