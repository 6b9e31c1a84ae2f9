"""Smoke tests of the RBM benchmark scripts: each runs end to end in --quick mode and writes its outputs."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_script(name, out, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), "--quick", "--out", str(out), *args],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_caprbm_bars_script(tmp_path):
    out = run_script("caprbm_bars.py", tmp_path)
    assert "| with J | 10 |" in out
    for f in ("metrics.csv", "metrics.md", "bars_grid.png", "bars_J.pt", "bars_noJ.pt", "train_J.csv"):
        assert (tmp_path / f).is_file(), f


def test_rbm_digits_script(tmp_path):
    pytest.importorskip("sklearn")
    out = run_script("rbm_digits.py", tmp_path)
    assert "scikit-learn BernoulliRBM" in out and (tmp_path / "results.md").is_file()


def test_caprbm_mnist_script(tmp_path):
    pytest.importorskip("pywt")
    mnist = ROOT.parent / "shared" / "data" / "mnist"
    if not mnist.is_dir():
        pytest.skip("no MNIST in ../shared/data/mnist")
    out = run_script("caprbm_mnist.py", tmp_path, "--mnist-dir", str(mnist))
    assert "CD-1 then PCD" in out
    for f in ("reconstructions.png", "free_samples.png", "reconstruction_error.png", "reconstruction_error.csv"):
        assert (tmp_path / f).is_file(), f
