"""examples/fit_in_a_notebook.ipynb run by a real Jupyter kernel (nbclient): it trains with
fit, displays the figures and predicts; the README's notebook example is its code."""

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "fit_in_a_notebook.ipynb"


def execute(notebook):
    """Run every cell in a fresh kernel started in the project folder; skip when no kernel
    can start here (no kernel spec, sockets refused)."""
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    try:
        client.create_kernel_manager()
        client.start_new_kernel()
        client.start_new_kernel_client()
    except Exception as exc:  # any reason a kernel cannot start is a reason to skip
        pytest.skip(f"no Jupyter kernel could start here ({type(exc).__name__}: {exc})")
    client.execute()


def test_the_notebook_trains_shows_figures_and_predicts():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    execute(notebook)  # a failing cell raises CellExecutionError with its traceback
    outputs = [o for cell in notebook.cells for o in cell.outputs]
    images = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.data]
    assert len(images) == 3  # loss history, fit against the target, network diagram
    fitted = notebook.cells[1].outputs[-1].data["text/plain"]
    assert fitted.startswith("('completed'")
    printed = "".join(o.get("text", "") for o in notebook.cells[3].outputs)
    prediction, truth = map(float, re.search(r"= (\S+) \(truth (\S+)\)", printed).groups())
    assert abs(prediction - truth) < 0.01 * truth


def test_the_readme_notebook_example_is_the_notebook_code():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = "\n\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert f"```python\n{code}\n```" in (ROOT / "README.md").read_text()
