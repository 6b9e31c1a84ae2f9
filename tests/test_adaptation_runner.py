"""Step-size adaptation, mass matrix, gradient counts, seeds, dtypes and the runner's outputs."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from entropy_mcmc.samplers import HMCKernel, MALAKernel, RandomWalkMetropolis, StepSizeAdaptation, sample
from entropy_mcmc.samplers.adaptation import mass_matrix_windows
from entropy_mcmc.targets import Gaussian, ill_conditioned_gaussian


def icg10():
    return ill_conditioned_gaussian(10, 1e-1, 1e1)


def spread_gaussian():
    """Variances in [0.5, 2]: HMC's acceptance is monotone in the step size here (on icg10 it is not,
    fixed-length leapfrog resonates with some of its scales)."""
    return Gaussian(torch.zeros(10), torch.diag(torch.linspace(0.5, 2, 10)))


@pytest.mark.parametrize("make,target_accept,per_chain,make_target", [
    (lambda t: RandomWalkMetropolis(t, 1.0), 0.3, False, icg10),
    (lambda t: MALAKernel(t, 1.0), 0.574, False, icg10),
    (lambda t: MALAKernel(t, 0.01), 0.7, True, icg10),
    (lambda t: HMCKernel(t, 0.05, 5), 0.8, False, spread_gaussian),
    (lambda t: HMCKernel(t, 0.05, 5), 0.65, True, spread_gaussian),
])
def test_adaptation_reaches_target_acceptance(make, target_accept, per_chain, make_target):
    t = make_target()
    k = StepSizeAdaptation(make(t), target_accept=target_accept, per_chain=per_chain)
    res = sample(k, t.sample(128, torch.Generator().manual_seed(0)), 400, num_warmup=600, progress=False, seed=0,
                 collect_warmup=True, warn=False)
    assert abs(res.acceptance_rate - target_accept) < 0.05
    s = k.step_size
    assert s.shape == ((128,) if per_chain else ())
    # adapted during warmup, then frozen at the final value: every draw used exactly the kernel's step size
    assert res.warmup_stats["step_size"].std(1).max() > 0
    assert torch.all(res.stats["step_size"] == s.expand(128)[:, None])
    if per_chain:
        per = res.stats["acceptance_prob"].mean(1)
        assert per.std() < 0.1


def test_mass_matrix_adaptation_learns_variances():
    t = ill_conditioned_gaussian(6, 1e-2, 1e2)
    k = StepSizeAdaptation(HMCKernel(t, 0.01, 10), target_accept=0.8, adapt_mass_matrix=True)
    sample(k, t.sample(64, torch.Generator().manual_seed(1)), 50, num_warmup=500, progress=False, seed=1)
    ratio = k.kernel.inv_mass / t.std.pow(2)
    assert torch.all((ratio > 0.7) & (ratio < 1.4)), ratio
    # with a good mass matrix a much larger step size is found
    assert float(k.step_size) > 0.5


def test_mass_matrix_windows_follow_stan_schedule():
    assert mass_matrix_windows(1000) == [(75, 100), (100, 150), (150, 250), (250, 450), (450, 950)]
    w = mass_matrix_windows(100)
    assert w[0][0] == 15 and w[-1][1] == 90
    assert mass_matrix_windows(10) == []


class CountingGaussian(Gaussian):
    def __init__(self, *a):
        super().__init__(*a)
        self.grad_calls = 0
        self.energy_calls = 0

    def energy_and_grad(self, x):
        self.grad_calls += 1
        return super().energy_and_grad(x)

    def energy(self, x):
        self.energy_calls += 1
        return super().energy_and_grad(x)[0]


@pytest.mark.parametrize("make,per_step", [(lambda t: RandomWalkMetropolis(t, 0.5), 0),
                                          (lambda t: MALAKernel(t, 0.5), 1), (lambda t: HMCKernel(t, 0.3, 7), 7)])
def test_gradient_counts_are_exact(make, per_step):
    t = CountingGaussian(torch.zeros(2), torch.eye(2))
    res = sample(make(t), torch.zeros(5, 2), 30, num_warmup=20, thin=2, progress=False)
    assert res.num_grad_evals == per_step * 60 and res.num_grad_evals_warmup == per_step * 20
    assert t.grad_calls == (per_step * 80 + 1 if per_step else 0)
    if per_step == 0:
        assert t.energy_calls == 81


@pytest.mark.parametrize("make", [lambda t: RandomWalkMetropolis(t, 0.5), lambda t: MALAKernel(t, 0.5),
                                  lambda t: StepSizeAdaptation(HMCKernel(t, 0.3, 3), adapt_mass_matrix=True)])
def test_same_seed_same_draws_bitwise(make):
    t = icg10()
    x = torch.zeros(16, 10)
    a = sample(make(t), x, 40, num_warmup=30, progress=False, seed=123)
    b = sample(make(t), x, 40, num_warmup=30, progress=False, seed=123)
    c = sample(make(t), x, 40, num_warmup=30, progress=False, seed=124)
    assert torch.equal(a.draws, b.draws)
    assert not torch.equal(a.draws, c.draws)


def test_generator_and_seed_in_constructor():
    t = icg10()
    x = torch.zeros(4, 10)
    a = sample(MALAKernel(t, 0.3, seed=7), x, 20, progress=False)
    b = sample(MALAKernel(t, 0.3, seed=torch.Generator().manual_seed(7)), x, 20, progress=False)
    assert torch.equal(a.draws, b.draws)


def test_float64_end_to_end_and_result_shapes():
    t = icg10()
    res = sample(StepSizeAdaptation(MALAKernel(t, 0.5)), torch.zeros(6, 10, dtype=torch.float64), 25, num_warmup=10,
                 thin=3, progress=False, seed=0)
    assert res.draws.dtype == torch.float64 and res.draws.shape == (6, 25, 10)
    for name in ("acceptance_prob", "accepted", "diverging", "energy", "step_size"):
        assert res.stats[name].shape == (6, 25)
    assert res.num_steps == 75 and res.warmup_time > 0 and res.sampling_time > 0
    assert res.kernel_name == "StepSizeAdaptation(MALAKernel)"


def test_to_arviz_and_summary():
    t = icg10()
    res = sample(HMCKernel(t, 0.2, 5), t.sample(4, torch.Generator().manual_seed(0)), 50, progress=False, seed=0)
    idata = res.to_arviz()
    assert idata.posterior["x"].shape == (4, 50, 10)
    for name in ("acceptance_rate", "step_size", "energy", "diverging", "lp"):
        assert name in idata.sample_stats
    # HMC reports the Hamiltonian as energy, lp is minus the potential
    np.testing.assert_allclose(idata.sample_stats["lp"].values, -res.stats["potential_energy"].numpy())
    table = res.summary()
    assert list(table.index[:2]) == ["x[0]", "x[1]"] and "ess_bulk" in table and "r_hat" in table


def test_streamed_run_equals_in_memory_run(tmp_path):
    """Over its memory budget a run writes its draws to NetCDF as they come, 3 or 15 draws at a time (thinned, with
    the warmup): the same draws, stats, file contents and dtypes as in memory, and with every draw read, the same
    summary and warnings."""
    from entropy_mcmc.samplers import run_chains

    kw = dict(chains=8, num_warmup=30, num_draws=40, thin=2, seed=0, num_steps=3, collect_warmup=True, warn=False)
    mem = run_chains("german", "hmc", **kw)
    ref = mem.to_arviz()
    assert mem.path is None
    for budget in (16_000, 70_000):  # 1120 bytes a draw: 78400, and 30720 for the summary
        path = str(tmp_path / f"{budget}.nc")
        disk = run_chains("german", "hmc", max_memory=budget, stream_to=path, **kw)
        assert disk.path == path and (disk.num_chains, disk.num_draws) == (8, 40)
        for a, b in ((mem.samples, disk.samples), (mem.stats, disk.stats), (mem.warmup_samples, disk.warmup_samples),
                     (mem.warmup_stats, disk.warmup_stats)):
            assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)
        assert disk.acceptance_rate == pytest.approx(mem.acceptance_rate, rel=1e-12)
        idata = disk.to_arviz()
        assert idata.groups() == ref.groups()
        for group in ref.groups():
            for name, v in ref[group].data_vars.items():
                assert idata[group][name].dtype == v.dtype and np.array_equal(idata[group][name].values, v.values)
        assert idata.posterior.attrs["target"] == "german" and idata.posterior.attrs["thin"] == 2
    assert disk.summary().equals(mem.summary())
    assert disk.convergence_warnings() == mem.convergence_warnings()
    assert disk.to_arviz("theta").posterior["theta"].dims == mem.to_arviz("theta").posterior["theta"].dims


def test_run_over_its_budget_without_a_file_fails_before_sampling():
    from entropy_mcmc.samplers import run_chains

    with pytest.raises(ValueError, match=r"over its memory budget of .* GiB: give a NetCDF file"):
        run_chains("german", "hmc", chains=8, num_warmup=10 ** 9, num_draws=40, max_memory=1000, warn=False)


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB is Linux's")
def test_streamed_run_holds_bounded_memory(tmp_path):
    """64 chains x 2000 draws x 1000 dims, 512 MB of float32 draws, under a 32 MB budget: the process's peak
    resident memory grows by less than 64 MB over a small streamed run's (which imports h5py and ArviZ)."""
    code = textwrap.dedent("""
        import resource, sys
        from entropy_mcmc.samplers import run_chains
        def run(draws, name):
            return run_chains("funnel1-1000", "rwm", chains=64, num_warmup=0, num_draws=draws, warn=False,
                              max_memory=32 * 2 ** 20, stream_to=sys.argv[1] + name)
        run(200, "/warm.nc")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result = run(2000, "/draws.nc")
        print(result.path, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
    """)
    path, grew = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                                check=True, timeout=600).stdout.split()
    import h5py

    with h5py.File(path) as f:
        assert f["posterior/x"].shape == (64, 2000, 1000) and f["posterior/x"].dtype == np.float32
        assert (f["posterior/x"][:, -1] != 0).all()  # written, not the fill value
    assert int(grew) < 64 * 2 ** 20, f"peak RSS grew {int(grew) / 2 ** 20:.0f} MB"


def test_bad_inputs_raise_clear_errors():
    t = icg10()
    with pytest.raises(ValueError, match=r"expected shape \[chains, 10\]"):
        MALAKernel(t, 0.1).init(torch.zeros(4, 3))
    with pytest.raises(TypeError, match="float32 or float64"):
        MALAKernel(t, 0.1).init(torch.zeros(4, 10, dtype=torch.int64))
    with pytest.raises(ValueError, match="non-finite"):
        MALAKernel(t, 0.1).init(torch.full((4, 10), float("nan")))
    with pytest.raises(ValueError, match="step_size"):
        MALAKernel(t, -1.0)
    with pytest.raises(ValueError, match="per-chain step size"):
        MALAKernel(t, torch.ones(3)).step(MALAKernel(t, 0.1).init(torch.zeros(4, 10)))
    with pytest.raises(ValueError, match="num_steps"):
        HMCKernel(t, 0.1, 0)
    with pytest.raises(ValueError, match="inv_mass"):
        HMCKernel(t, 0.1, 3, inv_mass=torch.ones(3))
    with pytest.raises(ValueError, match="target_accept"):
        StepSizeAdaptation(MALAKernel(t, 0.1), target_accept=1.5)
    with pytest.raises(ValueError, match="statistic"):
        StepSizeAdaptation(MALAKernel(t, 0.1), statistic="median")
    with pytest.raises(ValueError, match="num_draws"):
        sample(MALAKernel(t, 0.1), torch.zeros(2, 10), -1)
    with pytest.raises(TypeError, match="Target"):
        MALAKernel(lambda x: x, 0.1)
