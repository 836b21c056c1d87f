"""The folders an evaluation reads and writes, checked before any work so that none mixes two runs:
``--out`` is claimed for one data file (its SHA-256), a sweep folder holds one search kind (claimed in
its ``search.json``; an older folder's read from what it holds), and a sweep given to reuse must come
from this model (name and fingerprint) and have chosen its settings for this run's groups. Each
refusal is one line naming both values; nothing is written until every check has passed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from workbench.apps.file_evaluation.plan import EvaluateOptions, Plan, sweep_config
from workbench.apps.file_evaluation.results import read_summary
from workbench.errors import WorkbenchError
from workbench.instructions import Group, as_group, data_hash
from workbench.io import claim_dir, file_hash
from workbench.models import Model

SEARCH_FILE = "search.json"  # a sweep folder's search kind, beside its sweep's own config.json


def check_evaluation(out: Path, plan: Plan, options: EvaluateOptions, model: Model | None = None) -> str:
    """Refuse, in one line, an evaluation that would mix two runs: ``out`` holding another data's, its
    own sweep folder another search kind, or a given sweep made for other groups or (``model``, once
    loaded) by another model. Returns the search kind of the sweep selection reads."""
    _check_data(Path(out), plan)
    if options.sweep_dir is None:
        held = sweep_search(Path(out) / "sweep")
        if held not in (None, options.search):
            raise WorkbenchError(
                f"{Path(out) / 'sweep'} holds a {held} sweep; --search {options.search} would add a second one "
                f"there: use --search {held}, another --out, or delete {Path(out) / 'sweep'}"
            )
        return options.search
    folder = Path(options.sweep_dir)
    _check_groups(folder, _to_select(plan, options))
    if model is not None:
        _check_model(folder, model)
    return sweep_search(folder) or options.search


def claim_evaluation(out: Path, plan: Plan, options: EvaluateOptions, model: Model) -> str:
    """``check_evaluation``, then claim ``out`` for this data and, where the sweep runs here, its sweep
    folder for this search kind (which it returns)."""
    search = check_evaluation(out, plan, options, model)
    claim_dir(Path(out), {"data_sha256": data_sha256(plan)}, "evaluation")
    if options.sweep_dir is None and _to_select(plan, options):
        claim_dir(Path(out) / "sweep", {"search": search}, "search", name=SEARCH_FILE)
    return search


def data_sha256(plan: Plan) -> str:
    """What ``--out`` is claimed for: the data file's SHA-256 (``io.file_hash``); for your own
    instructions (no file), a hash of their groups."""
    return file_hash(plan.data) or data_hash([json.dumps([g.spec() for g in plan.groups.values()], sort_keys=True)])


def sweep_search(folder: Path) -> str | None:
    """The search kind a sweep folder holds: as claimed (``SEARCH_FILE``), else as an older folder shows
    it (``round1/``: halving; a sweep of both prompt conditions: exhaustive; of one: reuse); None where
    it holds no sweep. An older folder holding two (halving's rounds and another) is refused."""
    claimed = _json(folder / SEARCH_FILE).get("search")
    if isinstance(claimed, str):
        return claimed
    halving, grid = (folder / "round1").is_dir(), (folder / "units").is_dir()
    if halving and grid:
        raise WorkbenchError(
            f"{folder} holds two sweeps, a halving one (round1/, round2/) and another (units/), written before a "
            "sweep folder kept to one search: move one away, or select anew in a new folder"
        )
    if halving:
        return "halving"
    return ("exhaustive" if True in sweep_config(folder).get("conditions", ()) else "reuse") if grid else None


def _to_select(plan: Plan, options: EvaluateOptions) -> list[Group]:
    return [g for g in plan.groups.values() if g.name not in (options.settings or {})]


def _json(path: Path) -> dict:
    try:
        held = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return held if isinstance(held, dict) else {}


def _check_data(out: Path, plan: Plan) -> None:
    """``out`` claimed for other data (its ``config.json``; a folder from before the claim: its summary's hash)."""
    claim = _json(out / "config.json")
    held = claim.get("data_sha256") if claim else (read_summary(out) or {}).get("data_sha256")
    mine = data_sha256(plan)
    if isinstance(held, str) and held != mine:
        raise WorkbenchError(
            f"{out} holds an evaluation of other data (sha256 {held[:16]}), not of {plan.data} (sha256 "
            f"{mine[:16]}): use another --out, or delete {out}"
        )


def _plain(spec: object) -> object:
    return json.loads(json.dumps(spec))


def _recorded_groups(folder: Path) -> dict[str, object]:
    """The groups a sweep chose settings for, by name, as its config records them (a catalog name as its
    group's spec; None where that name is no longer known)."""
    out: dict[str, object] = {}
    for entry in sweep_config(folder).get("instructions") or []:
        if isinstance(entry, dict):
            out[str(entry.get("name"))] = entry
            continue
        try:
            group = as_group(entry)
        except WorkbenchError:
            out[str(entry)] = None
        else:
            out[group.name] = _plain(group.spec())
    return out


def _check_groups(folder: Path, groups: Sequence[Group]) -> None:
    """A given sweep must have chosen settings for some of this run's groups (the others' records are
    skipped, each with its reason), and for the same group under each shared name."""
    theirs, mine = _recorded_groups(folder), {g.name: _plain(g.spec()) for g in groups}
    if not theirs or not mine:
        return
    shared = [name for name in mine if name in theirs]
    if not shared:
        raise WorkbenchError(
            f"the sweep in {folder} chose settings for {_listed(theirs)}, none of this run's groups "
            f"({_listed(mine)}): give this data's sweep, or none to select here"
        )
    for name in shared:
        if theirs[name] is not None and theirs[name] != mine[name]:
            raise WorkbenchError(
                f"the sweep in {folder} chose settings for another {name}: {_difference(theirs[name], mine[name])}: "
                "give this data's sweep, or none to select here"
            )


def _listed(names: dict, shown: int = 4) -> str:
    first = list(names)[:shown]
    return ", ".join(first) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _difference(theirs: object, mine: object) -> str:
    """Where two group specs first differ, with both values."""
    a = theirs.get("members", []) if isinstance(theirs, dict) else []
    b = mine.get("members", []) if isinstance(mine, dict) else []
    if len(a) != len(b):
        return f"{len(a)} members there, {len(b)} here"
    for i, (x, y) in enumerate(zip(a, b)):
        for key in sorted(set(x) | set(y)):
            if x.get(key) != y.get(key):
                return f"members[{i}].{key} {json.dumps(x.get(key))} there, {json.dumps(y.get(key))} here"
    return "its definition differs"


def _check_model(folder: Path, model: Model) -> None:
    """A given sweep must come from this model: its name, then its fingerprint (weights, precision, template)."""
    config = sweep_config(folder)
    made, printed = config.get("model"), config.get("model_fingerprint")
    if made is not None and made != model.name:
        raise WorkbenchError(
            f"the sweep in {folder} was made with model {made}, not {model.name}: its settings are that model's; "
            "give this model's sweep, or none to select here"
        )
    if printed is not None and printed != (mine := model.fingerprint()):
        raise WorkbenchError(
            f"the sweep in {folder} was made with another {model.name} (fingerprint {printed}, this one's {mine}: "
            "other weights or precision): give this model's sweep, or none to select here"
        )
