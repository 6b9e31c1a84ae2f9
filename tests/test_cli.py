"""The `entropy-mcmc` command: `sample` end to end, argument errors, the kernel registry, `bench` on tiny settings."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from entropy_mcmc import cli
from entropy_mcmc.benchmarks import peers
from entropy_mcmc.samplers import StepSizeAdaptation, StepSizeJitter, build_kernel, run_chains
from entropy_mcmc.targets import get_target

arviz = pytest.importorskip("arviz")


def _sample(tmp_path, *extra, name="draws.nc"):
    out = tmp_path / name
    code = cli.main(["sample", "--target", "german", "--kernel", "hmc", "--chains", "8", "--warmup", "30",
                     "--draws", "40", "--seed", "0", "--leapfrog-steps", "3", "--out", str(out), "--no-progress",
                     *extra])
    assert code == 0
    return out


def test_sample_writes_inference_data_with_sample_stats(tmp_path, capsys):
    out = _sample(tmp_path)
    text = capsys.readouterr().out
    assert "ess_bulk" in text and "r_hat" in text and "x[24]" in text  # the ArviZ summary
    assert "min ESS bulk" in text
    idata = arviz.from_netcdf(out)
    assert idata.posterior["x"].shape == (8, 40, 25)
    for stat in ("acceptance_rate", "step_size", "energy", "diverging"):
        assert idata.sample_stats[stat].shape == (8, 40), stat
    # the file holds exactly what the library run with the same settings gives
    lib = run_chains("german", "hmc", chains=8, num_warmup=30, num_draws=40, seed=0, num_steps=3, warn=False)
    assert np.array_equal(idata.posterior["x"].values, lib.draws.numpy())
    assert np.array_equal(idata.sample_stats["acceptance_rate"].values, lib.stats["acceptance_prob"].numpy())
    assert np.array_equal(idata.sample_stats["step_size"].values, lib.stats["step_size"].numpy())
    assert idata.sample_stats["diverging"].dtype == bool
    assert np.isfinite(idata.sample_stats["energy"].values).all()
    assert idata.posterior.attrs["kernel_name"] == "hmc" and idata.posterior.attrs["target"] == "german"


def test_sample_same_seed_same_draws(tmp_path, capsys):
    a = arviz.from_netcdf(_sample(tmp_path, "--no-summary", name="a.nc")).posterior["x"].values
    b = arviz.from_netcdf(_sample(tmp_path, "--no-summary", name="b.nc")).posterior["x"].values
    c = arviz.from_netcdf(_sample(tmp_path, "--no-summary", "--seed", "1", name="c.nc")).posterior["x"].values
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_sample_streams_past_its_memory_budget(tmp_path, capsys):
    """--max-memory below what the run records (42 KiB): the draws go to --out as they come, the file holds what
    the in-memory run writes, and the summary reads it within the budget (every 2nd draw); without --out, an
    error before sampling. --full-summary prints az.summary's HDIs."""
    mem = arviz.from_netcdf(_sample(tmp_path, "--full-summary", name="mem.nc"))
    assert "hdi_3%" in capsys.readouterr().out
    disk = arviz.from_netcdf(_sample(tmp_path, "--max-memory", "0.00003", name="disk.nc"))
    text = capsys.readouterr().out
    assert "as sampled (the draws exceed the memory budget)" in text and "summary of 1 draw in 2" in text
    assert "hdi_3%" not in text and "ess_bulk" in text
    for group in ("posterior", "sample_stats"):
        for name, v in mem[group].data_vars.items():
            assert disk[group][name].dtype == v.dtype and np.array_equal(disk[group][name].values, v.values), name
    assert disk.posterior.attrs["chains"] == 8 and "command" in disk.posterior.attrs
    with pytest.raises(SystemExit) as exc:
        cli.main(["sample", "--target", "german", "--kernel", "hmc", "--chains", "8", "--draws", "40",
                  "--max-memory", "0.00003", "--no-progress"])
    assert exc.value.code == 2
    assert "give a NetCDF file to stream them to" in capsys.readouterr().err


@pytest.mark.parametrize("kernel", ["rwm", "mala"])
def test_sample_other_kernels_float64(tmp_path, capsys, kernel):
    out = tmp_path / f"{kernel}.nc"
    assert cli.main(["sample", "--target", "scg2", "--kernel", kernel, "--chains", "4", "--warmup", "20",
                     "--draws", "10", "--dtype", "float64", "--target-accept", "0.5", "--step-size", "0.3",
                     "--out", str(out), "--no-progress", "--no-summary"]) == 0
    idata = arviz.from_netcdf(out)
    assert idata.posterior["x"].dtype == np.float64
    assert idata.posterior.attrs["target_accept"] == 0.5


def test_console_script_exact_form(tmp_path):
    """The installed `entropy-mcmc` entry point, in the form scripts outside the project use."""
    exe = Path(sys.executable).parent / "entropy-mcmc"
    if not exe.exists():
        pytest.skip("console script not installed next to this interpreter")
    proc = subprocess.run([str(exe), "sample", "--target", "heart", "--kernel", "hmc", "--chains", "4",
                           "--warmup", "20", "--draws", "20", "--seed", "0", "--out", str(tmp_path / "d.nc")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "min ESS bulk" in proc.stdout
    assert (tmp_path / "d.nc").exists()


@pytest.mark.parametrize("argv,message", [
    (["sample", "--target", "nope", "--kernel", "hmc"], "unknown target 'nope'"),
    (["sample", "--target", "german", "--kernel", "nutz"], "invalid choice: 'nutz'"),
    (["sample", "--target", "german", "--kernel", "hmc", "--target-accept", "1.5"], "(0, 1)"),
    (["sample", "--target", "german", "--kernel", "hmc", "--chains", "0"], "positive integer"),
    (["sample", "--target", "german", "--kernel", "hmc", "--dtype", "float16"], "invalid choice"),
    (["sample", "--target", "german", "--kernel", "rwm", "--adapt-mass"], "mass-matrix adaptation does not apply"),
    (["sample", "--target", "german", "--kernel", "hmc", "--out", "/proc/nope/x.nc"], "--out /proc/nope/x.nc"),
    (["sample", "--target", "german", "--kernel", "hmc", "--step-size-jitter", "1.5"], "[0, 1)"),
    (["sample", "--target", "german", "--kernel", "hmc", "--device", "nodevice"], "is not usable"),
    (["bench", "--tiny", "--targets", "nope"], "unknown target"),
    (["frobnicate"], "invalid choice"),
    *[([cmd, "--threads", "-1", *required], "--threads: expected a non-negative integer, got '-1'")
      for cmd, required in (("train-rbm", ["--out", "x"]), ("sample-rbm", ["--model", "m", "--out", "x"]),
                            ("cluster", ["--data", "digits", "--out", "x"]))],
    # 0 is refused where it means nothing, never silently replaced by a default
    (["train-rbm", "--out", "x", "--batch-size", "0"], "--batch-size: expected a positive integer, got '0'"),
    (["train-rbm", "--out", "x", "--lr", "0"], "--lr: expected a positive finite number, got '0'"),
    (["train-rbm", "--out", "x", "--hidden", "0"], "--hidden: expected a positive integer"),
    (["sample-rbm", "--model", "m", "--out", "x", "--chains", "0"], "--chains: expected a positive integer"),
    (["cluster", "--data", "digits", "--out", "x", "--lr", "nan"], "--lr: expected a positive finite number"),
    (["cluster", "--data", "digits", "--out", "x", "--z-dim", "0"], "--z-dim: expected a positive integer"),
])
def test_bad_arguments_are_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_kernel_defaults_follow_the_spec():
    german = get_target("german")
    for name, accept, mass in (("rwm", 0.234, None), ("mala", 0.574, "dense"), ("hmc", 0.8, "auto")):
        kernel = build_kernel(name, german, num_warmup=10)
        adapt = kernel.kernel if isinstance(kernel, StepSizeJitter) else kernel
        assert isinstance(adapt, StepSizeAdaptation)
        assert adapt.target_accept == accept
        assert adapt.adapt_mass_matrix == mass
        assert isinstance(kernel, StepSizeJitter) == (name == "hmc")
    assert build_kernel("hmc", german, num_warmup=0).base.num_steps == 4
    assert not isinstance(build_kernel("mala", german, num_warmup=0), StepSizeAdaptation)  # no warmup, nothing to adapt
    assert build_kernel("mala", german, num_warmup=10, adapt_mass="diag").adapt_mass_matrix == "diag"


def test_registered_kernel_is_selectable(monkeypatch):
    """A kernel registered with an option of its own is selectable by `sample --kernel` with its flag."""
    from entropy_mcmc.samplers import MALAKernel, KernelOption, KernelSpec, registry

    seen = {}

    def build(target, step_size, my_option):
        seen["option"], seen["step_size"] = my_option, step_size
        return MALAKernel(target, step_size=step_size)

    monkeypatch.setitem(registry._KERNELS, "mine", KernelSpec(build, "a test kernel", step_size=0.05,
                                                              target_accept=0.6,
                                                              options=(KernelOption("my_option", str, "x", "mine"),)))
    assert cli.main(["sample", "--target", "scg2", "--kernel", "mine", "--my-option", "y", "--chains", "2",
                     "--warmup", "5", "--draws", "5", "--no-progress", "--no-summary"]) == 0
    assert seen == {"option": "y", "step_size": 0.05}


def test_step_size_jitter_records_the_step_size_each_draw_used():
    from entropy_mcmc.samplers import HMCKernel, sample

    t = get_target("scg2")
    inner = HMCKernel(t, 0.1, 3)
    k = StepSizeJitter(StepSizeAdaptation(inner, 0.8), 0.5)
    res = sample(k, torch.zeros(16, 2), 50, num_warmup=20, progress=False, seed=0, warn=False)
    nominal = inner.step_size
    assert nominal.dim() == 0  # restored after every jittered step
    used = res.stats["step_size"]
    assert used.shape == (16, 50) and used.std() > 0.1 * nominal
    assert torch.all((used >= 0.5 * nominal) & (used <= 1.5 * nominal))
    # uniform on [0.5 s, 1.5 s]: mean s, sd s / sqrt(12); 800 draws
    assert abs(float(used.mean()) - float(nominal)) < 4 * float(nominal) / (12 * 800) ** 0.5


def test_peers_load_the_target_design_matrix_without_torch():
    code = ("import sys; from entropy_mcmc.benchmarks import peers; x, y = peers.load_dataset('german'); "
            "assert x.shape == (1000, 25) and y.shape == (1000,); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bench_tiny_writes_tables_and_plot(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(peers, "blackjax_available", lambda: False)
    out = tmp_path / "bench"
    assert cli.main(["bench", "--tiny", "--targets", "scg2,german", "--kernels", "mala,hmc", "--peers",
                     "pyro,blackjax", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "[4/4] german" in text  # progress lines
    assert "BlackJAX skipped" in text
    for f in ("bench.csv", "bench.md", "ratios.csv", "bench.json", "bench.png"):
        assert (out / f).stat().st_size > 0, f
    import pandas as pd

    table = pd.read_csv(out / "bench.csv")
    assert list(table["system"]) == ["entropy-mcmc"] * 4 + ["pyro"]
    assert {"ess_per_mh", "ess_per_grad", "ess_per_s", "ess_per_s_total", "max_rhat"} <= set(table.columns)
    assert (table["min_ess_bulk"] > 0).all()
    assert (table["peak_rss_mb"] > 50).all() and "peak RSS" in text  # the process, torch included
    ratios = pd.read_csv(out / "ratios.csv")
    assert list(ratios["ours"]) == ["MALA", "HMC L=4"] and set(ratios["peer"]) == {"pyro NUTS"}
    german_hmc = table[(table["target"] == "german") & (table["kernel"] == "HMC L=4")].iloc[0]
    pyro = table[table["system"] == "pyro"].iloc[0]
    assert ratios["ess_per_s_ratio"].iloc[1] == pytest.approx(german_hmc["ess_per_s"] / pyro["ess_per_s"])
    record = json.loads((out / "bench.json").read_text())
    assert record["mode"] == "tiny" and record["notes"]


def test_threads_option_leaves_the_callers_setting_alone():
    before = torch.get_num_threads()
    result = run_chains("scg2", "mala", chains=2, num_warmup=2, num_draws=2, threads=1, warn=False)
    assert torch.get_num_threads() == before
    assert result.attrs["threads"] == 1


def test_mala_on_german_with_the_defaults_converges(capsys):
    """The issue's report: `sample --target german --kernel mala --chains 64 --warmup 500 --draws 1000 --seed 1`
    ended at R-hat 1.05 and said nothing. With the adapted dense preconditioner it converges, and says nothing."""
    assert cli.main(["sample", "--target", "german", "--kernel", "mala", "--chains", "64", "--warmup", "500",
                     "--draws", "1000", "--seed", "1", "--no-progress", "--no-summary"]) == 0
    out = capsys.readouterr().out
    max_rhat = float(out.split("max R-hat ")[1].split(",")[0])
    assert max_rhat <= 1.01 and "warning:" not in out


def test_unconverged_sample_prints_warnings_with_the_numbers(capsys):
    assert cli.main(["sample", "--target", "german", "--kernel", "mala", "--chains", "4", "--warmup", "10",
                     "--draws", "20", "--seed", "1", "--no-progress", "--no-summary"]) == 0
    out = capsys.readouterr().out
    assert "warning: max R-hat is" in out and "warning: min bulk ESS is" in out


def test_cli_errors_are_one_line_without_a_traceback(tmp_path):
    exe = Path(sys.executable).parent / "entropy-mcmc"
    if not exe.exists():
        pytest.skip("console script not installed next to this interpreter")
    proc = subprocess.run([str(exe), "sample", "--target", "german", "--kernel", "learned", "--sampler",
                           str(tmp_path / "missing.pt"), "--draws", "5"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing.pt" in lines[0] and "Traceback" not in proc.stderr


def test_list_into_a_closed_pipe_stops_quietly():
    # `entropy-mcmc list | head -1`: the reader leaves after one line; without the BrokenPipeError branch main
    # printed "error: [Errno 32] Broken pipe" and exited 2
    proc = subprocess.run(f"'{sys.executable}' -m entropy_mcmc.cli list | head -1", shell=True, capture_output=True,
                          text=True, timeout=120)
    assert proc.stdout == "kernels:\n"
    assert proc.stderr == ""
