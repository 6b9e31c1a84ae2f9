"""Warmup moves chains stranded in a mode of negligible mass (`samplers.stranded`): exact moments after the move,
wrong ones without it, no move on healthy runs (Gaussian, funnel), and none when half the chains would move."""
import math
import warnings

import arviz as az
import pytest
import torch

from entropy_mcmc.samplers import build_kernel, sample
from entropy_mcmc.samplers.runner import ConvergenceWarning
from entropy_mcmc.samplers.stranded import MIN_WARMUP, StrandedCheck, stranded_chains
from entropy_mcmc.targets import Funnel, Gaussian
from entropy_mcmc.targets.potential import PotentialFn
from stats_helpers import moment_z_scores

TRAP = 12.0
LOG_W = math.log(1e-15)  # the trap's weight: its mass is negligible, its density 1e-15 / 0.09 of the bulk's


def trapped_target(init):
    """N(0, I_2) with weight 1 - 1e-15 and N((12, 12), 0.3^2 I_2) with weight 1e-15: the trap's potential energies
    (~34 and up) lie far above the bulk's (1.8 to ~8), and no chain crosses the 17 sds between them."""

    def potential(x):
        bulk = -0.5 * (x ** 2).sum(-1) - math.log(2 * math.pi)
        trap = LOG_W - 0.5 * ((x - TRAP) ** 2).sum(-1) / 0.09 - math.log(2 * math.pi * 0.09)
        return -torch.logaddexp(bulk, trap)

    return PotentialFn(potential, init, "vectorized")


def trapped_run(kernel_name, restart, seed=0, chains=8, trapped=2):
    init = torch.randn(chains, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    init[:trapped] = TRAP + 0.1 * init[:trapped]
    kernel = build_kernel(kernel_name, trapped_target(init), num_warmup=200)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = sample(kernel, init, 500, num_warmup=200, progress=False, seed=seed, restart_stranded=restart)
    return result, [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]


def exact(result) -> bool:
    """Moments of N(0, I) within 4 MCSE, and R-hat below 1.01 (the MCSE of chains that disagree is itself wide)."""
    z_mean, z_var = moment_z_scores(result.draws, [0.0, 0.0], [1.0, 1.0])
    rhat = az.rhat(az.convert_to_dataset(result.draws.numpy()))["x"].values
    return bool(z_mean.max() < 4 and z_var.max() < 4 and rhat.max() < 1.01)


@pytest.mark.parametrize("kernel_name", ["hmc", "nuts", "mala"])
def test_stranded_chains_are_moved_and_the_moments_are_exact(kernel_name):
    result, messages = trapped_run(kernel_name, True)
    assert [m.split("->")[0] for m in result.attrs["restarted_chains"].split()] == ["0", "1"]
    assert any("2 of 8 chains" in m for m in messages)
    assert exact(result)


@pytest.mark.parametrize("kernel_name", ["hmc", "nuts"])
def test_kept_where_they_are_the_same_test_fails(kernel_name):
    result, _ = trapped_run(kernel_name, False)
    assert result.attrs["restarted_chains"] == ""
    assert not exact(result)


def test_nothing_moves_when_half_the_chains_are_stranded():
    result, _ = trapped_run("hmc", True, chains=8, trapped=4)
    assert result.attrs["restarted_chains"] == ""


@pytest.mark.parametrize("seed", range(4))
def test_chains_in_the_typical_set_are_not_moved(seed):
    """Chains started at exact draws: a 20-d Gaussian with sds 0.1-10, and Neal's funnel (sigma 3, whose chains
    spread over the neck and the mouth have energies tens of nats apart). No chain is stranded."""
    sd = torch.logspace(-1, 1, 20, dtype=torch.float64)
    gauss = Gaussian(torch.zeros(20, dtype=torch.float64), torch.diag(sd ** 2))
    for target, kernel_name in ((gauss, "nuts"), (gauss, "chees-hmc"), (Funnel(10, 3.0), "nuts")):
        init = target.sample(16, torch.Generator().manual_seed(seed), torch.float64)
        kernel = build_kernel(kernel_name, target, num_warmup=MIN_WARMUP)  # the shortest window checked: 10-14
        result = sample(kernel, init, 0, num_warmup=MIN_WARMUP, progress=False, seed=seed, warn=False)
        assert result.attrs["restarted_chains"] == "", (kernel_name, result.attrs["restarted_chains"])


def test_the_criterion_by_hand():
    e = torch.tensor([[1.0, 2.0, 1.5, 30.0], [2.0, 1.0, 2.5, 31.0]])
    # chain 3's energies exceed the others' (at most 2.5, sd 0.6) by more than max(sqrt(2 d), 4 sd) = 2.4
    assert stranded_chains(e, 2).tolist() == [False, False, False, True]
    assert not stranded_chains(e, 400).any()  # sqrt(2 d) = 28.3: 30 - 2.5 is within it
    assert not stranded_chains(e[:, [0, 3]].repeat(1, 2), 2).any()  # half the chains
    assert not stranded_chains(e[:, 2:], 2).any()  # fewer than 3 chains
    down = torch.tensor([[1.0, 2.0, 1.5, 60.0], [2.0, 1.0, 2.5, 31.0]])  # chain 3 arrives within 2 steps
    assert not stranded_chains(down, 2).any()
    assert stranded_chains(down + torch.tensor([0.0, 0, 0, 30]), 2)[3]  # 30 down, 58 to go
    assert StrandedCheck(49).window is None and StrandedCheck(1000).window == range(200, 300)
    assert StrandedCheck(1000, enabled=False).window is None
