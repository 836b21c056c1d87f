"""The package's shape: imports run downward only (no circle), no private name crosses a module
border, each module stays small, and the README's ARCHITECTURE section lists exactly the modules."""

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "workbench"
MAX_LINES = 300  # physical lines, as ruff formats them
MAX_FUNCTION_LINES = 60
MAX_PUBLIC_PARAMETERS = 8  # more: a typed options object (GenerationOptions, EvaluateOptions, SweepOptions, ...)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def reexports(package: str) -> dict[str, str]:
    """name -> the submodule a package's __init__ takes it from (``from pkg.sub import name``)."""
    out = {}
    for node in ast.parse(MODULES[package].read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(package + "."):
            out.update({a.asname or a.name: node.module for a in node.names})
    return out


def imports(name: str) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every workbench import, at any depth. A
    name a package re-exports counts as an import of the submodule that defines it."""
    out = []
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names if a.name.startswith("workbench")]
        elif (
            isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("workbench") and node.level == 0
        ):
            exported = reexports(node.module) if MODULES.get(node.module, Path()).name == "__init__.py" else {}
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if alias.name in exported:
                    out.append((exported[alias.name], alias.name, node.lineno))
                elif sub in MODULES:
                    out.append((sub, None, node.lineno))
                else:
                    out.append((node.module, alias.name, node.lineno))
    return out


def graph() -> dict[str, set[str]]:
    """module -> modules it imports; a package's __init__ re-exporting its own submodules is not an edge."""
    edges = {}
    for name in MODULES:
        targets = {m for m, _, _ in imports(name) if m in MODULES and m != name}
        is_package = MODULES[name].name == "__init__.py"
        edges[name] = {t for t in targets if not (is_package and t.startswith(name + "."))}
    return edges


def floors(edges: dict[str, set[str]]) -> dict[str, int]:
    """0 for a module that imports no other; else one above the highest module it imports."""
    level: dict[str, int] = {}

    def visit(name, path=()):
        if name in path:
            raise AssertionError("import circle: " + " -> ".join(path[path.index(name) :] + (name,)))
        if name not in level:
            level[name] = 1 + max((visit(t, path + (name,)) for t in edges[name]), default=-1)
        return level[name]

    for name in edges:
        visit(name)
    return level


def test_imports_have_no_circle():
    floors(graph())


def test_the_circle_finder_finds_a_circle():
    with pytest.raises(AssertionError, match="import circle: a -> b -> a"):
        floors({"a": {"b"}, "b": {"a"}})


def test_no_private_name_crosses_a_module_border():
    crossing = [
        f"{MODULES[n].relative_to(ROOT)}:{line} imports {m}.{what}"
        for n in MODULES
        for m, what, line in imports(n)
        if what and what.startswith("_") and m != n
    ]
    assert not crossing, "\n".join(crossing)


def test_modules_stay_small():
    big = {n: len(p.read_text().splitlines()) for n, p in MODULES.items()}
    assert not {n: k for n, k in big.items() if k > MAX_LINES}


def functions():
    """(module, function name, lines, parameters other than self/cls) for every function in the package."""
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                params = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
                yield name, node.name, node.end_lineno - node.lineno + 1, params


def test_functions_stay_short():
    long = {f"{m}.{f}": n for m, f, n, _ in functions() if n > MAX_FUNCTION_LINES}
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_public_functions_take_few_parameters():
    wide = {
        f"{m}.{f}": len(p) for m, f, _, p in functions() if not f.startswith("_") and len(p) > MAX_PUBLIC_PARAMETERS
    }
    assert not wide, f"public functions with over {MAX_PUBLIC_PARAMETERS} parameters: {wide}"


def test_readme_architecture_lists_every_module():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Architecture") :]
    section = section[: section.index("\n## ", 1)] if "\n## " in section[1:] else section
    listed = set(re.findall(r"^\| `(workbench[\w./*]*)`", section, flags=re.M))
    files = {str(p.relative_to(ROOT).with_suffix("")).removesuffix("/__init__") for p in MODULES.values()}
    listed = {f for f in files if covered(f, listed)} | {n for n in listed if "*" not in n}
    assert listed == files, f"missing from README: {sorted(files - listed)}; not in the tree: {sorted(listed - files)}"


def covered(path: str, listed: set[str]) -> bool:
    """Whether a module is listed by name, or by a ``folder/*`` row (modules of one kind, such as the
    steering operators, each its own file: adding one needs no new row)."""
    return path in listed or (f"{path.rsplit('/', 1)[0]}/*" in listed and path.rsplit("/", 1)[0] + "/__init__" != path)


def may_import() -> dict[str, str]:
    """module -> the README's "may import" cell for it (a ``folder/*`` row's for each module it covers)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Architecture") :]
    rows = dict(re.findall(r"^\| `(workbench[\w./*]*)` \|.*\| ([^|]*) \|$", section, flags=re.M))
    files = {str(p.relative_to(ROOT).with_suffix("")).removesuffix("/__init__") for p in MODULES.values()}
    for path in files - set(rows):
        if covered(path, set(rows)):
            rows[path] = rows[path.rsplit("/", 1)[0] + "/*"]
    return {path.replace("/", "."): cell.strip() for path, cell in rows.items() if "*" not in path}


def allowed(module: str, cell: str) -> set[str] | None:
    """The modules a "may import" cell names (None: any module). Names resolve to the module of that
    name, nearest the importing module's package first; a package's name covers its submodules."""
    if cell.startswith("everything"):
        return None
    if cell.startswith("nothing"):
        return set()
    if cell == "the modules below":
        return {m for m in MODULES if m.startswith(module + ".")}
    out = set()
    for name in (n.strip() for n in cell.split(",")):
        dotted = name.replace("/", ".")
        here = module.rsplit(".", 1)[0] if "." in module else module
        candidates = [m for m in MODULES if m == f"workbench.{dotted}" or m.endswith("." + dotted)]
        near = [m for m in candidates if m.startswith(here + ".")] or candidates
        assert near, f"README: {module} may import {name!r}, which names no module"
        target = min(near, key=len)
        out |= {m for m in MODULES if m == target or m.startswith(target + ".")}
    return out


def reach(rules: dict[str, str]) -> dict[str, set[str] | None]:
    """What each module may import: the modules its cell names and, downward, what those may
    import (None: any)."""
    direct = {m: allowed(m, cell) for m, cell in rules.items()}
    out: dict[str, set[str] | None] = {}

    def visit(m: str) -> set[str] | None:
        if m not in out:
            out[m] = set()  # a circle in the README's rules adds nothing
            names = direct.get(m, set())
            if names is None:
                out[m] = None
            else:
                below = [visit(n) for n in names if n != m]
                out[m] = None if any(b is None for b in below) else names.union(*below)
        return out[m]

    for m in rules:
        visit(m)
    return out


def test_readme_may_import_column_matches_the_imports():
    """The README's "may import" column, read downward (a module may import what it names and what
    those may import), covers every import in the tree."""
    edges, rules = graph(), may_import()
    may = reach(rules)
    wrong = [
        f"{m} imports {t}"
        for m, targets in sorted(edges.items())
        if may[m] is not None
        for t in sorted(targets - may[m])
    ]
    assert not wrong, "the README's may-import column omits: " + "; ".join(wrong)


def test_the_may_import_check_sees_an_import_the_readme_does_not_allow():
    rules = may_import() | {"workbench.models.engine": "nothing"}
    may = reach(rules)
    assert (
        "workbench.models.dtypes" in graph()["workbench.models.engine"]
        and "workbench.models.dtypes" not in may["workbench.models.engine"]
    )
    assert (
        may["workbench.apps.cli.main"] is None and "workbench.errors" in may["workbench.generation.steering"]
    )  # "everything below it"; errors via models


def library_imports_of_apps(edges: dict[str, set[str]]) -> list[str]:
    """Imports of ``workbench.apps`` from outside it: the library must not know its applications."""
    return [
        f"{m} imports {t}"
        for m, targets in sorted(edges.items())
        if not m.startswith("workbench.apps")
        for t in sorted(targets)
        if t.startswith("workbench.apps")
    ]


def test_the_library_never_imports_its_applications():
    assert not library_imports_of_apps(graph())


def test_the_apps_check_sees_a_library_module_importing_an_app():
    edges = graph() | {"workbench.generation.steering": {"workbench.apps.study.files"}}
    assert library_imports_of_apps(edges) == ["workbench.generation.steering imports workbench.apps.study.files"]


def test_every_public_name_of_the_package_resolves():
    """``from workbench import X`` for each name in ``__all__``, the lazily imported ones (the
    applications' entry points among them) included."""
    import workbench

    missing = [name for name in workbench.__all__ if getattr(workbench, name, None) is None]
    assert not missing
    assert workbench.run_study is importlib.import_module("workbench.apps.study").run_study
    assert workbench.external.evaluate_file is workbench.evaluate_file  # public before the move to workbench.apps
    assert workbench.study.run_study is workbench.run_study and workbench.report.write_report
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        workbench.nope  # noqa: B018


def test_modules_moved_in_0_2_still_import_from_their_old_homes():
    """``workbench.vllm_engine``, ``workbench.evaluate``, ``workbench.sweep.significance``, ...: the
    module's new home, the same object; ``workbench.steering`` and ``workbench.generate`` stay the
    functions, and importing them as modules is a one-line error naming the new home."""
    import workbench
    from workbench.generation import steering as steering_module

    assert importlib.import_module("workbench.vllm_engine") is importlib.import_module("workbench.engines.vllm.engine")
    assert importlib.import_module("workbench.batching") is importlib.import_module("workbench.generation.batching")
    assert importlib.import_module("workbench.sweep.significance") is importlib.import_module("workbench.stats")
    from workbench.evaluate import quality

    assert quality is importlib.import_module("workbench.judging.quality").quality
    with pytest.raises(ModuleNotFoundError, match="moved to workbench.generation.steering"):
        importlib.import_module("workbench.steering")
    assert workbench.steering is steering_module.steering and callable(workbench.generate)
