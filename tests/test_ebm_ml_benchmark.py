"""Smoke test of `benchmarks/ebm_ml.py images` and `plot` (the Figure 4.3b / C.3 analogue) at toy scale: both
kernels train, every evaluation row carries a finite proposal entropy and buffer Frechet distance, the learned
sampler keeps its fixed eps while MALA's step size adapts, and the figure is written."""
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
