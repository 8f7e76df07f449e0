"""Every notebook in notebooks/ runs top to bottom in the quick setting, and is committed without outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_the_molecule_notebooks_are_there():
    names = {p.name for p in NOTEBOOKS}
    assert {"molecule_caption_unlearning.ipynb", "cheminformatics.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cell"
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, (f"{path.name}: cells {dirty} carry outputs or execution counts; "
                       "clear them before committing")


@pytest.mark.slow  # about a minute per notebook on a 2-core machine
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_the_quick_setting(path, tmp_path, tmp_path_factory, monkeypatch):
    # The kernel inherits this environment. The run cache is shared by the notebooks of the session, so
    # the notebooks that train the same quick original reuse it.
    monkeypatch.setenv("GRAPHDEL_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("GRAPHDEL_NOTEBOOK_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("GRAPHDEL_CACHE", str(tmp_path_factory.getbasetemp() / "notebook-cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=900, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, naming the cell, on the first error
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert (tmp_path / "out").is_dir() and any((tmp_path / "out").iterdir())
