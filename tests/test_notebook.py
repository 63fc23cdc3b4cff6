"""The notebooks in docs/notebooks/ run from top to bottom without an error.

They are committed without outputs (the documentation build executes them
again); a cell that raises fails this test with the cell's traceback.  Needs
nbclient, nbformat and ipykernel: ``pip install ".[docs]"``.
"""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "docs" / "notebooks").glob("*.ipynb"))


def test_there_is_a_notebook():
    assert NOTEBOOKS, "no notebook in docs/notebooks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, \
                f"{path.name}: cell {i} has outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_without_error(path, tmp_path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    # The kernel imports the bpfast this test imports (an installed one, or src/
    # through PYTHONPATH), and runs in a scratch folder.
    import bpfast
    src = str(Path(bpfast.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()        # a cell that raises is a CellExecutionError with its traceback
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(o.output_type in ("execute_result", "display_data") for o in outputs)


# The tutorial pages are MyST markdown notebooks (docs/tutorial/*.md), executed by the
# documentation build; here they run through the same reader and kernel.
TUTORIALS = sorted((Path(__file__).resolve().parents[1] / "docs" / "tutorial").glob("*.md"))


def test_there_are_tutorials():
    assert [p.name for p in TUTORIALS] == ["backprop.md", "backprop.zh.md"]


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_tutorial_runs_and_shows_its_pictures(path, tmp_path, monkeypatch):
    read = pytest.importorskip("myst_nb.core.read")
    nb = read.read_myst_markdown_notebook(path.read_text(encoding="utf-8"), path=path)
    import bpfast
    src = str(Path(bpfast.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("BPFAST_MNIST_DIR", raising=False)
    # The English page runs where the build runs it (MNIST beside the repository, when
    # there); the Chinese one in a scratch folder, where MNIST is never found: the
    # fallback to scikit-learn's digits runs too.
    where = path.parent if path.name == "backprop.md" else tmp_path
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(where)}})
    client.execute()        # a failed check in a cell is a CellExecutionError
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    pictures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pictures) == 2, "tr.plot() and mnist_tr.plot() should each show a figure"
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert ("前向传播" in text) == path.name.endswith(".zh.md")
    if where == tmp_path:
        assert "MNIST not found" in text
