"""Smoke tests of `benchmarks/ebm_ml.py` at toy scale. `images` and `plot` (the Figure 4.3b / C.3 analogue): both
kernels train, every evaluation row carries a finite proposal entropy and buffer Frechet distance, the learned
sampler keeps its fixed eps while MALA's step size adapts, and the figure is written. `toys` and `cost`: every
method and floor row is scored on the requested number of points, and every trainer is timed."""
import json
import math
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "ebm_ml.py"


def test_images_then_plot(tmp_path):
    common = ["--out", str(tmp_path)]
    args = ["images", "--steps", "4", "--every", "2", "--batch", "16", "--k-steps", "2", "--filters", "8",
            "--buffer-size", "64", *common]
    for cmd in (args, ["plot", *common]):
        proc = subprocess.run([sys.executable, str(SCRIPT), *cmd], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads((tmp_path / "images.json").read_text())
    runs = {k: [r for r in rows if r.get("kernel") == k] for k in ("mala", "learned")}
    for kernel, mine in runs.items():
        assert [r["step"] for r in mine] == [2, 4], kernel
        for r in mine:
            assert math.isfinite(r["proposal_entropy"]) and r["frechet_buffer"] > 0 and r["ebm_updates"] <= r["step"]
    assert runs["learned"][0]["step_size"] == runs["learned"][1]["step_size"]
    assert runs["mala"][0]["step_size"] != runs["mala"][1]["step_size"]
    assert (tmp_path / "digits_entropy_frechet.png").stat().st_size > 0


def test_toys_and_cost_at_tiny_settings(tmp_path):
    """`toys` scores every method and both floor rows on --eval-size points, HMC's and MALA's step sizes adapted;
    `cost` times every trainer. TorchEBM's row is expected only where it is installed."""
    import importlib.util

    common = ["--out", str(tmp_path), "--batch", "16", "--k-steps", "2"]
    toys = ["toys", "--toys", "two-moons", "--seconds", "0.5", "--eval-size", "100", "--buffer-size", "120"]
    for cmd in (toys, ["cost", "--reps", "1"]):
        proc = subprocess.run([sys.executable, str(SCRIPT), *cmd, *common], capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads((tmp_path / "toys.json").read_text())
    methods = [r["method"] for r in rows]
    torchebm = importlib.util.find_spec("torchebm") is not None
    assert len(methods) == 5 + torchebm and sum(m.startswith("floor") for m in methods) == 2
    for r in rows:
        assert math.isfinite(r["mmd"]) and r["covered"] <= 16
        if not r["method"].startswith("floor"):
            assert r["samples"] == 100 and r["updates"] >= 1
    ours = {r["method"]: r for r in rows if r["method"].startswith("entropy-mcmc")}
    assert math.isclose(ours["entropy-mcmc PCD, ula"]["step_size"], 0.1, rel_tol=1e-6)  # float32
    assert not any(math.isclose(ours[f"entropy-mcmc PCD, {k}"]["step_size"], 0.1, rel_tol=1e-3)
                   for k in ("mala", "hmc"))
    cost = json.loads((tmp_path / "cost.json").read_text())
    assert len(cost) == 2 and all(r[f"ml_{k}_k2_s"] > 0 and r["mdsm_s"] > 0 for r in cost for k in ("ula", "mala",
                                                                                                    "learned"))
