"""Smoke tests of the Table 4.1 benchmark script: it runs end to end and writes its tables and figures."""
import subprocess
import sys
from pathlib import Path

import pandas as pd

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "learned_sampler.py"


def _run(tmp_path, *args):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out), *args], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out, pd.read_csv(out / "table.csv")


def test_learned_benchmark_quick_writes_every_row_and_figure(tmp_path):
    out, table = _run(tmp_path, "--targets", "scg2")
    assert list(table["sampler"]) == ["learned", "learned, user's way", "MALA", "HMC-40", "HMC-40+jitter"]
    assert (table["ess_per_mh"] > 0).all() and (table["grads_per_step"][[0, 2, 3, 4]] == [4, 1, 40, 40]).all()
    # the user's way: 0.95 learned steps (4 evaluations) and 0.05 MALA steps (1, or 2 with a gradient refresh)
    assert 3.7 < table["grads_per_step"][1] < 4.0 and table["stuck_chains"][1] == 0
    for f in ("fig41_scg2.png", "entropy_scg2.png", "scg2.pt", "scg2_l2.pt", "table.md", "results.json"):
        assert (out / f).stat().st_size > 0, f


def test_learned_benchmark_learned_only_skips_baselines_and_figures(tmp_path):
    out, table = _run(tmp_path, "--targets", "german", "--learned-only")
    assert list(table["sampler"]) == ["learned (dense precond.)", "learned, user's way"]
    assert table["precondition"][0] == "dense" and table["ess_per_5k"][0] > 0
    assert not (out / "entropy_german.png").exists()
