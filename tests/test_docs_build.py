"""The documentation builds without warnings (`sphinx-build -W`), its notebooks shown as stored rather than run
(`make docs` runs them): every docstring of the API reference parses, every page and cross-reference resolves,
the CLI reference is generated from the parsers. Skipped without the `docs` extra (which `dev` includes)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("myst_nb")
pytest.importorskip("sphinxarg")
pytest.importorskip("pydata_sphinx_theme")

ROOT = Path(__file__).resolve().parents[1]


def test_docs_build_without_warnings(tmp_path):
    """On a copy of docs/ (autosummary writes its pages into the source folder) beside the files it includes."""
    shutil.copytree(ROOT / "docs", tmp_path / "docs", symlinks=True, ignore=shutil.ignore_patterns("generated"))
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    shutil.copy(ROOT / "BENCHMARKS.md", tmp_path)
    env = {**os.environ, "EMCMC_DOCS_EXECUTE": "off"}
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "dummy",
                           "-d", str(tmp_path / "doctrees"), str(tmp_path / "docs"), str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-5000:]
