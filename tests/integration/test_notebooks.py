"""The notebooks are stored executed (``make notebooks``), so GitHub shows their tables and figures:
every cell that displays something holds its output, no error, a PNG beside every Plotly figure, no
machine's absolute path, small files. And each still executes without error (slow)."""

import ast
import json
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))
PLOTLY = "application/vnd.plotly.v1+json"
ABSOLUTE = re.compile(r"(?<![\w.])/(tmp|work|home|root|Users|var/folders)/")
MAX_BYTES = 600_000


def displays(source: str) -> bool:
    """Does a cell show something: a last bare expression (no trailing ``;``), a print or a display?"""
    tree = ast.parse(source)
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    last = tree.body[-1] if tree.body else None
    return bool(calls & {"print", "display"}) or (isinstance(last, ast.Expr) and not source.rstrip().endswith(";"))


def test_the_five_notebooks_are_stored_executed():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05"]
    for path in NOTEBOOKS:
        assert path.stat().st_size < MAX_BYTES, (
            f"{path.name}: {path.stat().st_size} bytes (embedded plotly.js? PNG at scale 2?)"
        )
        nb = nbformat.read(path, as_version=4)
        for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
            where = f"{path.name}, code cell {i + 1}"
            outputs = cell.get("outputs", [])
            if displays(cell.source):
                assert outputs, f"{where} shows something but is stored without output: run `make notebooks`"
            assert not [o for o in outputs if o.get("output_type") == "error"], where
            for o in outputs:
                if PLOTLY in o.get("data", {}):
                    assert "image/png" in o["data"], (
                        f"{where}: a Plotly figure without its PNG (plots.notebook_renderer())"
                    )
            text = json.dumps(outputs)
            assert not ABSOLUTE.search(text), (
                f"{where}: an absolute path in the output: {ABSOLUTE.search(text).group(0)}"
            )


END_TO_END = NOTEBOOKS[:1]  # the quickstart, on the embedded model; the others' code runs on a tiny model
# (tests/unit/test_notebook_cells.py) and their stored outputs are checked above


@pytest.mark.slow
@pytest.mark.parametrize("path", END_TO_END, ids=[p.name for p in END_TO_END])
def test_notebook_runs(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert not errors
