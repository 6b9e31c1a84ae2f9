"""Diagnostics against closed forms: ESS of AR(1) chains, R-hat, ESJD, autocorrelation, proposal entropy, plots."""
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from entropy_mcmc.diagnostics import (acceptance_rate, autocorrelation, efficiency, energy_grid, ess,
                                      expected_squared_jump, mcse, plot_autocorr, plot_pair, plot_trace,
                                      proposal_entropy, rhat)
from entropy_mcmc.samplers import HMCKernel, MALAKernel, RandomWalkMetropolis, SampleResult, StepSizeAdaptation, sample
from entropy_mcmc.targets import Funnel, Gaussian, get_target


def ar1(rho, chains=4, n=5000, dim=8, seed=0):
    """Stationary Gaussian AR(1) x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t, unit marginal variance."""
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((chains, n, dim))
    x = np.empty_like(e)
    x[:, 0] = e[:, 0]
    c = math.sqrt(1 - rho * rho)
    for t in range(1, n):
        x[:, t] = rho * x[:, t - 1] + c * e[:, t]
    return x


# ---------------------------------------------------------------- ESS, R-hat, MCSE, ESJD


def test_ess_of_iid_draws_is_the_number_of_draws():
    x = ar1(0.0, seed=1)
    n = x.shape[0] * x.shape[1]
    for method in ("bulk", "mean"):
        rel = ess(x, method) / n
        assert rel.shape == (8,)
        assert np.all(np.abs(rel - 1) < 0.06), (method, rel)
    assert np.all(np.abs(ess(x, "tail") / n - 1) < 0.12)


@pytest.mark.parametrize("rho", [0.5, 0.9, -0.5])
def test_ess_of_ar1_matches_analytic(rho):
    """ESS / N of an AR(1) chain is (1 - rho) / (1 + rho) (integrated autocorrelation time (1+rho)/(1-rho))."""
    x = ar1(rho, seed=2)
    n = x.shape[0] * x.shape[1]
    expected = (1 - rho) / (1 + rho)
    rel = ess(x, "bulk") / n
    assert abs(rel.mean() / expected - 1) < 0.08, (rho, rel)
    assert np.all(np.abs(rel / expected - 1) < 0.25), (rho, rel)


def test_rhat_flags_chains_with_different_means():
    x = ar1(0.0, chains=4, n=500, dim=3, seed=3)
    assert np.all(rhat(x) < 1.01)
    shifted = x.copy()
    shifted[0] += 2.0
    r = rhat(shifted)
    assert np.all(r > 1.1), r
    # a shift in one dimension only flags that dimension
    one = x.copy()
    one[1, :, 2] += 2.0
    r = rhat(one)
    assert r[2] > 1.1 and np.all(r[:2] < 1.01), r


def test_mcse_of_iid_mean_is_sd_over_sqrt_n():
    x = ar1(0.0, chains=4, n=2500, dim=4, seed=4) * 3.0
    assert np.allclose(mcse(x), 3.0 / math.sqrt(10000), rtol=0.1)


def test_expected_squared_jump_exact():
    # chain 0 jumps (1, 0) then (2, 2): 1 and 8; chain 1 stays then jumps (0, 3): 0 and 9
    x = np.array([[[0.0, 0.0], [1.0, 0.0], [3.0, 2.0]],
                  [[1.0, 1.0], [1.0, 1.0], [1.0, 4.0]]])
    assert expected_squared_jump(x) == pytest.approx((1 + 8 + 0 + 9) / 4)
    assert expected_squared_jump(torch.tensor(x)) == pytest.approx(4.5)
    # a 1-d event given as [chains, draws]
    assert expected_squared_jump(np.array([[0.0, 2.0, 2.0]])) == pytest.approx(2.0)


def test_efficiency_divides_by_the_run_counters():
    x = torch.tensor(ar1(0.5, chains=4, n=1000, dim=3, seed=5))
    acc = torch.full((4, 1000), 0.25)
    res = SampleResult(samples={"x": x}, stats={"acceptance_prob": acc,
                                                "diverging": torch.zeros(4, 1000, dtype=torch.bool)},
                       warmup_time=3.0, sampling_time=2.0, num_grad_evals_warmup=500, num_grad_evals=10000,
                       num_steps=1000)
    e = res.efficiency()
    assert e == efficiency(x, steps=4000, grad_evals=40000, warmup_time=3.0, sampling_time=2.0, acceptance=0.25,
                           divergences=0)
    min_bulk = ess(x, "bulk").min()
    assert e["min_ess_bulk"] == pytest.approx(min_bulk)
    assert e["ess_per_mh"] == pytest.approx(min_bulk / 4000)
    assert e["ess_per_grad"] == pytest.approx(min_bulk / 40000)
    assert e["ess_per_s"] == pytest.approx(min_bulk / 2.0)
    assert e["ess_per_s_total"] == pytest.approx(min_bulk / 5.0)
    assert e["acceptance"] == pytest.approx(0.25)
    assert acceptance_rate(res) == pytest.approx(0.25)
    assert acceptance_rate(res, per_chain=True).shape == (4,)


# ---------------------------------------------------------------- the lean summary


def test_average_ranks_are_scipys_with_ties():
    from scipy.stats import rankdata

    from entropy_mcmc.diagnostics.summary import average_ranks

    x = np.random.default_rng(7).integers(0, 50, size=(30, 40)).astype(np.float32)  # many ties
    assert np.array_equal(average_ranks(x).ravel(), rankdata(x, method="average"))


def test_lean_summary_equals_az_summary():
    """The lean table holds az.summary's numbers for a float32 HMC run (ranks with ties from rejections) and for
    float64 draws of a 2-d and a scalar variable: MCSE, ESS and R-hat to rounding, mean and sd to float32's."""
    import arviz as az

    from entropy_mcmc.diagnostics import lean_summary

    t = get_target("icg50")
    run = sample(HMCKernel(t, 0.5, 3), t.sample(6, torch.Generator().manual_seed(0)), 150, progress=False, seed=0)
    rng = np.random.default_rng(8)
    extra = az.from_dict(posterior={"w": rng.standard_normal((3, 80, 2, 3)), "s": ar1(0.6, 3, 80, 1)[..., 0]})
    for idata in (run.to_arviz(), extra):
        lean, full = lean_summary(idata), az.summary(idata, round_to="none")
        assert list(lean.index) == list(full.index) and lean.attrs["thin"] == 1
        for col in ("mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat"):
            np.testing.assert_allclose(lean[col], full[col], rtol=1e-10, err_msg=col)
        np.testing.assert_allclose(lean["mean"], full["mean"], rtol=1e-5, atol=1e-6 * full["sd"].max())
        np.testing.assert_allclose(lean["sd"], full["sd"], rtol=1e-5)
    assert list(lean.index[:4]) == ["w[0, 0]", "w[0, 1]", "w[0, 2]", "w[1, 0]"] and lean.index[-1] == "s"
    assert run.summary().equals(lean_summary(run.to_arviz()))
    assert "hdi_3%" in run.summary(full=True)


def test_lean_summary_of_a_file_stays_within_max_bytes(tmp_path):
    """Read lazily from NetCDF, the summary holds at most `max_bytes` of numpy arrays (a block of scalars and one
    scalar's work), and gives the in-memory numbers; below one scalar's work it uses every k-th draw."""
    import tracemalloc

    import arviz as az
    import xarray as xr

    from entropy_mcmc.diagnostics import lean_summary

    x = np.random.default_rng(9).standard_normal((8, 2000, 40)).astype(np.float32)  # 2.6 MB
    az.from_dict(posterior={"x": x}).to_netcdf(str(tmp_path / "x.nc"), compress=False)
    expected = lean_summary(az.from_dict(posterior={"x": x}))
    with xr.open_dataset(tmp_path / "x.nc", group="posterior", engine="h5netcdf") as lazy:
        for max_bytes, thin in ((4e6, 1), (1e6, 4)):
            tracemalloc.start()
            table = lean_summary(lazy, max_bytes=max_bytes)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert peak < max_bytes and table.attrs["thin"] == thin, (peak, table.attrs)
        assert lean_summary(lazy, max_bytes=4e6).equals(expected)


# ---------------------------------------------------------------- autocorrelation


def test_autocorrelation_of_ar1_is_rho_to_the_lag():
    rho = 0.7
    x = ar1(rho, chains=2, n=20000, dim=2, seed=6)
    r = autocorrelation(x, max_lag=6)
    assert r.shape == (2, 7, 2)
    assert np.allclose(r[:, 0], 1.0)
    assert np.allclose(r.mean((0, 2)), rho ** np.arange(7), atol=0.02)


# ---------------------------------------------------------------- proposal entropy and acceptance


def _gaussian_entropy(d, s):
    return float(torch.distributions.MultivariateNormal(torch.zeros(d, dtype=torch.float64),
                                                        s * s * torch.eye(d, dtype=torch.float64)).entropy())


def test_proposal_entropy_rwm_matches_closed_form_per_chain():
    target = get_target("icg50")
    steps = torch.tensor([0.05, 0.3, 1.7])
    kernel = RandomWalkMetropolis(target, step_size=steps, seed=0)
    state = kernel.init(torch.zeros(3, 50))
    h = proposal_entropy(kernel, state)
    assert h.shape == (3,)
    for hi, s in zip(h, steps):
        assert float(hi) == pytest.approx(_gaussian_entropy(50, float(s)), rel=1e-5)
    # the kernel really proposes with that scale: sd of x' - x equals the step size
    kernel = RandomWalkMetropolis(target, step_size=0.3, seed=1)
    state = kernel.init(torch.zeros(400, 50, dtype=torch.float64))
    jumps = kernel.propose(state).state.position - state.position
    assert float(jumps.std()) == pytest.approx(0.3, rel=0.02)


def test_proposal_entropy_mala_is_minus_expected_log_q():
    """H = -E_q[log q(x'|x)], estimated with the kernel's own proposal and density (d = 2, many draws)."""
    target = get_target("scg2")
    kernel = MALAKernel(target, step_size=0.4, seed=2)
    x = target.sample(20000, torch.Generator().manual_seed(3), dtype=torch.float64)
    state = kernel.init(x)
    x_new = kernel.propose(state).state.position
    mc = -kernel.proposal_log_density(state.position, state.grad, x_new)
    h = proposal_entropy(kernel, state)
    assert torch.allclose(h, torch.full_like(h, _gaussian_entropy(2, 0.4)))
    assert float(mc.mean()) == pytest.approx(float(h[0]), abs=4 * float(mc.std()) / math.sqrt(len(mc)))


def test_proposal_entropy_through_adaptation_wrapper_and_errors():
    target = get_target("icg50")
    wrapped = StepSizeAdaptation(MALAKernel(target, step_size=0.2), per_chain=True)
    state = wrapped.init(torch.zeros(4, 50))
    assert torch.allclose(proposal_entropy(wrapped, state), torch.full((4,), _gaussian_entropy(50, 0.2)))
    hmc = StepSizeAdaptation(HMCKernel(target, step_size=0.1, num_steps=3))
    with pytest.raises(ValueError, match="HMCKernel has no tractable proposal"):
        proposal_entropy(hmc, hmc.init(torch.zeros(4, 50)))


# ---------------------------------------------------------------- plots


@pytest.fixture(scope="module")
def funnel_run():
    target = get_target("funnel1-10")
    kernel = StepSizeAdaptation(MALAKernel(target, step_size=0.1), target_accept=0.6)
    return target, sample(kernel, 0.3 * torch.randn(4, 10, generator=torch.Generator().manual_seed(0)),
                          num_draws=200, num_warmup=100, progress=False, seed=0)


def _png(path):
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_trace_and_autocorr_plots(funnel_run, tmp_path):
    from matplotlib.figure import Figure

    _, res = funnel_run
    fig = plot_trace(res, dims=[0, 3, 7], path=tmp_path / "trace.png", max_chains=2)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 6
    assert [ax.get_ylabel() for ax in fig.axes[::2]] == ["x[0]", "x[3]", "x[7]"]
    assert len(fig.axes[0].lines) == 2  # max_chains traces
    assert np.allclose(fig.axes[2].lines[1].get_ydata(), res.draws[1, :, 3].numpy())
    assert _png(tmp_path / "trace.png")

    fig = plot_autocorr(res.draws.numpy(), dims=[0, 1], names=["log scale", "x1"], max_lag=30,
                        path=tmp_path / "acf.png")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["log scale", "x1"]
    mean_line = visible[0].lines[res.num_chains]  # after the per-chain lines
    assert np.allclose(mean_line.get_ydata(), autocorrelation(res.draws[:, :, :1], 30).mean(0)[:, 0])
    assert _png(tmp_path / "acf.png")

    with pytest.raises(ValueError, match="dims"):
        plot_trace(res, dims=[10])
    with pytest.raises(ValueError, match="names"):
        plot_autocorr(res, dims=[0, 1], names=["a"])


def test_pair_plot_contours_are_sigma_ellipses(tmp_path):
    """For a standard 2-d Gaussian the k-sigma contour is the circle of radius k."""
    target = Gaussian(torch.zeros(2), torch.eye(2))
    draws = target.sample(2000, torch.Generator().manual_seed(1)).reshape(4, 500, 2)
    fig = plot_pair(draws, target, xlim=(-6, 6), ylim=(-6, 6), path=tmp_path / "pair.png")
    ax = fig.axes[0]
    cs = [c for c in ax.collections if hasattr(c, "levels")][0]
    assert np.allclose(cs.levels, [0.5 * k * k for k in range(1, 6)])
    for k, path in enumerate(cs.get_paths()[:3], start=1):
        radius = np.hypot(*path.vertices.T)
        assert np.allclose(radius, k, atol=0.03), (k, radius.min(), radius.max())
    assert _png(tmp_path / "pair.png")


def test_pair_plot_slices_and_marks_divergences(funnel_run):
    target, res = funnel_run
    # exact 2-d marginal of (x_0, x_i)
    fig = plot_pair(res, Funnel(2, 1.0), dims=(0, 4))
    assert fig.axes[0].get_xlabel() == "x[0]" and fig.axes[0].get_ylabel() == "x[4]"
    # a slice of the 10-d target through its mean (zero)
    gx, gy, u = energy_grid(target, (0, 4), (-1.0, 1.0), (-2.0, 2.0), num=9)
    pt = torch.zeros(1, 10, dtype=torch.float64)
    pt[0, 0], pt[0, 4] = gx[3], gy[5]
    assert u[5, 3] == pytest.approx(float(target.energy(pt)))
    # divergent draws are overlaid in red
    div = torch.zeros(res.num_chains, res.num_draws, dtype=torch.bool)
    div[0, :7] = True
    ax = plot_pair(res, target, dims=(0, 1), diverging=div).axes[0]
    assert ax.collections[-1].get_offsets().shape == (7, 2)
    # slicing a target without a known mean uses the draws' mean
    german = get_target("german")
    german.mean = None
    blr = torch.randn(2, 50, 25, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 0.1
    assert "draws' mean" in plot_pair(blr, german, dims=(1, 2)).axes[0].get_title()
    with pytest.raises(ValueError, match="fixed must hold 25"):
        energy_grid(german, (1, 2), (0, 1), (0, 1), fixed=torch.zeros(3))
    with pytest.raises(ValueError, match="expected 2"):
        plot_pair(res, get_target("icg50"))


def test_importing_diagnostics_selects_no_backend():
    code = ("import sys, entropy_mcmc.diagnostics as d; "
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
