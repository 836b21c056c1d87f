"""The package's shape: imports run downward only (no circle), no private name crosses a module
border, each module stays small, and the README's ARCHITECTURE section lists exactly the modules."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "workbench"
MAX_LINES = 320


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
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("workbench") and node.level == 0:
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
            raise AssertionError("import circle: " + " -> ".join(path[path.index(name):] + (name,)))
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
    crossing = [f"{MODULES[n].relative_to(ROOT)}:{line} imports {m}.{what}"
                for n in MODULES for m, what, line in imports(n) if what and what.startswith("_") and m != n]
    assert not crossing, "\n".join(crossing)


def test_modules_stay_small():
    big = {n: len(p.read_text().splitlines()) for n, p in MODULES.items()}
    assert not {n: k for n, k in big.items() if k > MAX_LINES}


def test_readme_architecture_lists_every_module():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Architecture"):]
    section = section[: section.index("\n## ", 1)] if "\n## " in section[1:] else section
    listed = set(re.findall(r"^\| `(workbench[\w./]*)`", section, flags=re.M))
    files = {str(p.relative_to(ROOT).with_suffix("")).removesuffix("/__init__") for p in MODULES.values()}
    assert listed == files, f"missing from README: {sorted(files - listed)}; not in the tree: {sorted(listed - files)}"
