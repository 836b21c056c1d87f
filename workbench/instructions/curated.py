"""The curated catalog (``data/instructions.json``): named instructions, each an IFEval id with fixed
kwargs and several hand-written phrasings (pairs rotate over them)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources


@lru_cache
def catalog_entries() -> tuple[dict, ...]:
    """The catalog's raw entries: id, family, ifeval_id, kwargs, phrasings."""
    return tuple(json.loads(resources.files("workbench.data").joinpath("instructions.json").read_text()))


def catalog_phrasings(ifeval_id: str, kwargs: Mapping) -> tuple[str, ...]:
    """The catalog's phrasings of this IFEval instruction (same id, same kwargs), if any."""
    return tuple(
        p
        for e in catalog_entries()
        if e["ifeval_id"] == ifeval_id and e["kwargs"] == dict(kwargs)
        for p in e["phrasings"]
    )
