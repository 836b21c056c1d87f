"""``discover``: a package's modules of one kind, the named ones first, and a module that is not one
refused by name."""

import pytest

from workbench.discovery import discover


@pytest.fixture
def package(tmp_path, monkeypatch, request):
    folder = tmp_path / f"kinds_{request.node.name}"  # a new package per test: sys.modules keeps the last one
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "base.py").write_text("")  # not one of the kind: skipped
    for name in ("alpha", "beta", "gamma"):
        (folder / f"{name}.py").write_text(f"THING = {name!r}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return folder


def test_the_named_ones_come_first_then_the_rest_by_name(package):
    found = discover(package.name, [str(package)], "THING", first=("gamma", "missing"))
    assert found == ["gamma", "alpha", "beta"]


def test_a_module_without_the_attribute_is_named(package):
    (package / "helper.py").write_text("X = 1\n")
    with pytest.raises(RuntimeError, match=f"{package.name}.helper defines no THING"):
        discover(package.name, [str(package)], "THING")
