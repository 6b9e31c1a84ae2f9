"""Execute every notebook in notebooks/ with nbclient, in small mode (EMCMC_NB_SMALL=1).

The kernel is a temporary kernelspec that runs this interpreter (`sys.executable`), so the
notebooks see the same environment as the tests (the venv that `make test` built) whatever
kernels are installed elsewhere on the machine.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL_NAME = "entropy-mcmc-test"
SMALL_ENV = {"EMCMC_NB_SMALL": "1", "MPLBACKEND": "Agg", "TQDM_DISABLE": "1"}


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory):
    """A JUPYTER_PATH entry holding a kernelspec that launches ipykernel on `sys.executable`."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "entropy-mcmc tests", "language": "python",
    }))
    return root


def test_notebooks_found():
    assert any(p.name == "quickstart.ipynb" for p in NOTEBOOKS), f"no quickstart.ipynb in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, kernel_dir, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(filter(None, [str(kernel_dir),
                                                                        os.environ.get("JUPYTER_PATH")])))
    for k, v in SMALL_ENV.items():
        monkeypatch.setenv(k, v)
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    client = nbclient.NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=300, allow_errors=False,
                                     resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:  # keep the traceback short and readable
        pytest.fail(f"{path.name} failed:\n{str(err)[-3000:]}", pytrace=False)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert code_cells and all(c.get("execution_count") for c in code_cells), f"{path.name}: cells not run"
