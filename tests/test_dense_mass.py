"""Dense mass matrices adapted in warmup (issue 25): HMC, NUTS and ChEES-HMC keep a strongly correlated Gaussian's
mean and covariance within 4 MCSE with `adapt_mass="dense"`, and a deliberately broken dense metric fails the same
check; `adapt_mass="auto"` picks dense or diagonal and says why."""
import numpy as np
import pytest
import torch

from entropy_mcmc import cli
from entropy_mcmc.diagnostics import ess, mcse
from entropy_mcmc.samplers import build_kernel, metropolis, run_chains
from entropy_mcmc.samplers.metric import Metric
from entropy_mcmc.targets import Gaussian

D = 5
SD = torch.tensor([1.0, 2.0, 0.5, 3.0, 1.0], dtype=torch.float64)
CORR = torch.full((D, D), 0.95, dtype=torch.float64).fill_diagonal_(1.0)  # condition number 96
COV = CORR * torch.outer(SD, SD)
MEAN = torch.tensor([1.0, -2.0, 0.5, 3.0, 0.0], dtype=torch.float64)
OPTIONS = {"hmc": {}, "nuts": {"max_tree_depth": 6}, "chees-hmc": {}}


def moment_check(res):
    """(max |error| / MCSE over the d means and the d (d + 1) / 2 covariances about the known mean, min bulk ESS).
    A chain that barely moves has a huge MCSE, so passing also takes an ESS of 2000 of the 25600 draws."""
    x = res.draws.double().numpy() - MEAN.numpy()
    i, j = np.triu_indices(D)
    stats = np.concatenate([x, x[..., i] * x[..., j]], axis=-1)  # [chains, draws, d + d (d + 1) / 2]
    truth = np.concatenate([np.zeros(D), COV.numpy()[i, j]])
    return float((np.abs(stats.mean((0, 1)) - truth) / mcse(stats)).max()), float(ess(res.draws.numpy()).min())


def _run(kernel: str, adapt_mass="dense", draws: int = 400):
    t = Gaussian(MEAN, COV)
    return run_chains(t, kernel, chains=64, num_warmup=300, num_draws=draws, seed=3, dtype="float64",
                      adapt_mass=adapt_mass, warn=False, **OPTIONS[kernel])


class CovarianceKineticEnergy(Metric):
    """Deliberately broken: the MH correction's kinetic energy p^T M p / 2, the covariance where its inverse
    belongs (the momenta are still drawn from N(0, M))."""

    def kinetic_energy(self, p):
        return 0.5 * self.whitened_sq_norm(p) if self.dense else super().kinetic_energy(p)


class TransposedCholesky(Metric):
    """Deliberately broken: momenta p = L^-1 z, covariance L^-1 L^-T, instead of L^-T z ~ N(0, M)."""

    def sample_momentum(self, z):
        if not self.dense:
            return super().sample_momentum(z)
        return torch.linalg.solve_triangular(self.chol, z.T, upper=False).T


@pytest.mark.parametrize("kernel", ["hmc", "nuts", "chees-hmc"])
def test_adapted_dense_mass_keeps_mean_and_covariance(kernel):
    res = _run(kernel)
    inv_mass = res.attrs["kernel_object"].base.inv_mass
    assert inv_mass.shape == (D, D) and res.attrs["mass_matrix_choice"] == "dense"
    torch.testing.assert_close(inv_mass, COV, rtol=0.3, atol=0.3)  # the windows estimate the covariance
    z, min_ess = moment_check(res)
    assert z < 4 and min_ess > 2000, (z, min_ess)


@pytest.mark.parametrize("kernel,broken", [("hmc", CovarianceKineticEnergy), ("nuts", TransposedCholesky),
                                           ("chees-hmc", TransposedCholesky)])
def test_a_broken_dense_metric_fails_the_moment_check(kernel, broken, monkeypatch):
    monkeypatch.setattr(metropolis, "Metric", broken)  # what PreconditionedKernel.metric builds
    # 150 draws, as the broken kernels' tiny step sizes make long trajectories (z ~ 35 at 400 draws)
    z, min_ess = moment_check(_run(kernel, draws=150))
    assert z > 8 or min_ess < 500, (z, min_ess)  # the covariance in K: the step size collapses to 4e-5


def test_auto_picks_dense_for_a_correlated_posterior_and_says_why():
    res = _run("hmc", adapt_mass="auto")
    choice = res.attrs["mass_matrix_choice"]
    assert choice.startswith("dense (auto: the first window's correlation matrix has condition number"), choice
    assert res.attrs["kernel_object"].base.inv_mass.shape == (D, D)


def test_auto_picks_diag_for_independent_coordinates_or_too_few_draws():
    t = Gaussian(MEAN, torch.diag(SD ** 2))
    res = run_chains(t, "hmc", chains=64, num_warmup=300, num_draws=10, seed=0, adapt_mass="auto", warn=False)
    assert res.attrs["mass_matrix_choice"].startswith("diag (auto: the first window's correlation matrix"), \
        res.attrs["mass_matrix_choice"]
    assert res.attrs["kernel_object"].base.inv_mass.shape == (D,)
    # 150 warmup steps have one window, of 25: 2 chains pool 50 draws, fewer than 10 per each of the 15 entries
    t = Gaussian(MEAN, COV)
    res = run_chains(t, "nuts", chains=2, num_warmup=150, num_draws=10, seed=0, adapt_mass="auto", warn=False)
    assert res.attrs["mass_matrix_choice"] == ("diag (auto: the last window's 50 pooled draws are fewer than 10 "
                                               "per entry of a dense matrix, 15 entries)")
    assert res.attrs["kernel_object"].base.inv_mass.shape == (D,)


def test_mass_option_errors_and_cli(capsys):
    with pytest.raises(ValueError, match="'auto'"):
        build_kernel("hmc", Gaussian(MEAN, COV), num_warmup=10, adapt_mass="full")
    assert cli.main(["sample", "--target", "scg2", "--kernel", "hmc", "--chains", "16", "--warmup", "150",
                     "--draws", "20", "--leapfrog-steps", "2", "--mass", "auto", "--no-progress",
                     "--no-summary"]) == 0
    assert "mass matrix: dense (auto: the first window's correlation matrix has condition number" \
        in capsys.readouterr().out


def test_bench_mass_option_labels_rows_and_counts_each_chains_leapfrog_steps(tmp_path, capsys):
    import pandas as pd

    from entropy_mcmc.benchmarks.suite import sampling_gradients

    out = tmp_path / "bench"
    assert cli.main(["bench", "--tiny", "--targets", "scg2", "--kernels", "nuts,rwm", "--mass", "dense",
                     "--no-peers", "--out", str(out)]) == 0
    assert "ESS/grad" in capsys.readouterr().out
    table = pd.read_csv(out / "bench.csv")
    assert list(table["kernel"]) == ["NUTS (dense mass)", "RWM (baseline)"]  # RWM has no mass matrix
    assert table["ess_per_grad"][0] > 0 and np.isnan(table["ess_per_grad"][1])  # nor gradients
    res = run_chains("scg2", "nuts", chains=8, num_warmup=20, num_draws=20, seed=0, warn=False)
    assert sampling_gradients(res) == int(res.stats["n_steps"].sum()) < res.num_grad_evals * 8  # chains wait
