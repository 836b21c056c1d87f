"""The notebooks' code on a tiny random model: each cell runs, in order, without error.

tests/integration/test_notebooks.py checks every notebook's stored outputs and executes the quickstart
end to end on the embedded model; here the other notebooks' code is executed with ``load_model``
answering a 30-layer, 64-wide random Llama (the notebooks name layers up to 29), so a cell broken by a
change in the library fails without the 7 minutes the embedded model takes. Marked slow all the same:
each notebook starts a kernel and generates 48-token replies through 30 layers (15-30 s of CPU each)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))

TINY = """\
import workbench, workbench.models
from workbench.models import tiny_model
from workbench.threads import set_cpu_threads

set_cpu_threads()  # as load_model does, which this stub replaces: torch's default takes every core
_tiny = tiny_model(n_layers=30)
workbench.load_model = workbench.models.load_model = lambda *args, **kwargs: _tiny
"""


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS[1:], ids=[p.stem for p in NOTEBOOKS[1:]])
def test_notebook_cells_run_on_a_tiny_model(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(TINY))
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, naming the cell, on the first error
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
