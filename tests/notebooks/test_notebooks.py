"""The notebooks run top to bottom in a kernel of this environment, and are stored stripped."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
STRIP = ROOT / "scripts" / "strip_notebooks.py"


def test_the_three_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == ["01_quickstart.ipynb", "02_exploring_allocations.ipynb", "03_erf.ipynb"]


def test_notebooks_in_git_are_stripped():
    check = subprocess.run([sys.executable, str(STRIP), "--check", *map(str, NOTEBOOKS)], capture_output=True, text=True)
    assert check.returncode == 0, f"run `python scripts/strip_notebooks.py notebooks/*.ipynb`:\n{check.stdout}"


def test_strip_removes_outputs_and_is_idempotent(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1"), nbformat.v4.new_markdown_cell("text")])
    nb.cells[0].execution_count = 3
    nb.cells[0].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=3)]
    nb.cells[0].metadata["execution"] = {"iopub.status.busy": "2020-01-01"}
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.7"}
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    assert subprocess.run([sys.executable, str(STRIP), "--check", str(path)], capture_output=True).returncode == 1
    assert subprocess.run([sys.executable, str(STRIP), str(path)], capture_output=True).returncode == 0
    stripped = json.loads(path.read_text())
    assert stripped["cells"][0]["outputs"] == [] and stripped["cells"][0]["execution_count"] is None
    assert stripped["cells"][0]["metadata"] == {} and stripped["metadata"]["language_info"] == {"name": "python"}
    assert subprocess.run([sys.executable, str(STRIP), "--check", str(path)], capture_output=True).returncode == 0
    nbformat.validate(nbformat.read(path, as_version=4))


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, monkeypatch):
    """Executes the notebook with nbclient's ``python3`` kernel, checked to run this interpreter.

    One torch thread in the kernel: the test process waits meanwhile, but other jobs on a small
    machine would make OpenMP's spin-waiting threads crawl.
    """
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(f"import sys\nassert sys.prefix == {sys.prefix!r}, sys.prefix"))
    started = time.time()
    NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(path.parent)}}).execute()
    elapsed = time.time() - started
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "expected inline figures"
    print(f"{path.name}: {elapsed:.1f} s")
