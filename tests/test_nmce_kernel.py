"""The Gumbel cluster sampler through the common runner: exact categorical frequencies (within ArviZ MCSE),
independent draws (ArviZ ESS close to the number of draws), and broken variants reusing the Gumbel noise fail."""
import numpy as np
import pytest
import torch

from entropy_mcmc.clustering.gumbel import (GumbelClusterKernel, assignment_entropy, cluster_posterior,
                                            coassignment_matrix, gumbel_softmax)
from entropy_mcmc.diagnostics import ess, mcse
from entropy_mcmc.samplers import sample

DRAWS = 3000
LOGITS = torch.tensor([[0.0, 0.0, 0.0, 0.0], [2.0, 0.0, -1.0, 0.5], [-3.0, 1.0, 1.0, 0.0],
                       [5.0, 0.0, 0.0, 0.0], [0.3, -0.3, 1.2, -2.0]], dtype=torch.float64)


class FrozenNoise(GumbelClusterKernel):
    """Deliberately broken: draws the Gumbel noise once and reuses it at every step."""

    def _noise(self, logits):
        if getattr(self, "_frozen", None) is None:
            self._frozen = super()._noise(logits)
        return self._frozen


class StickyNoise(GumbelClusterKernel):
    """Deliberately broken, subtly: each step reuses the previous step's noise with probability 1/2.

    Every draw still has the right marginal law, so only the ESS test can catch it."""

    def _noise(self, logits):
        fresh = super()._noise(logits)
        last = getattr(self, "_last", None)
        if last is not None:
            keep = self.rand((logits.shape[0], 1), logits) < 0.5
            fresh = torch.where(keep, last, fresh)
        self._last = fresh
        return fresh


def run(kernel, logits=LOGITS, draws=DRAWS):
    return sample(kernel, logits, num_draws=draws, seed=1, progress=False)


def frequency_z_scores(draws):
    """|frequency - softmax(logits)| / MCSE for every (point, cluster); MCSE from ArviZ, one chain per point."""
    p = torch.softmax(LOGITS, -1).numpy()
    x = draws.double().numpy()
    z = np.empty_like(p)
    for i in range(x.shape[0]):
        se = mcse(x[i:i + 1])
        z[i] = np.abs(x[i].mean(0) - p[i]) / np.where(se > 0, se, np.nan)
    return np.nan_to_num(z, nan=np.inf)


def ess_ratio(draws):
    """Smallest bulk ESS / draws over points and clusters (every probability here is in (0.005, 1)).

    A constant indicator carries no information about its frequency: ArviZ reports ESS = draws
    for it, counted here as 0."""
    x = draws.double().numpy()
    ratios = [np.where(x[i].std(0) > 0, np.nan_to_num(ess(x[i:i + 1]), nan=0.0), 0.0) / x.shape[1]
              for i in range(x.shape[0])]
    return float(np.min(ratios))


def test_hard_draws_have_categorical_frequencies():
    res = run(GumbelClusterKernel(hard=True))
    assert res.draws.shape == (5, DRAWS, 4)
    assert torch.all(res.draws.sum(-1) == 1)
    assert np.all(frequency_z_scores(res.draws) < 4.0)


def test_relaxed_draws_argmax_is_categorical_and_positions_are_on_the_simplex():
    res = run(GumbelClusterKernel(hard=False, tau=0.5))
    torch.testing.assert_close(res.draws.sum(-1), torch.ones(5, DRAWS, dtype=torch.float64))
    one_hot = torch.nn.functional.one_hot(res.draws.argmax(-1), 4).double()
    assert np.all(frequency_z_scores(one_hot) < 4.0)
    assert res.final_state.assignment.dtype == torch.long


def test_draws_are_independent_ess_close_to_number_of_draws():
    assert ess_ratio(run(GumbelClusterKernel()).draws) > 0.8


def test_frozen_noise_fails_both_tests():
    res = run(FrozenNoise())
    assert not np.all(frequency_z_scores(res.draws) < 4.0)
    assert ess_ratio(res.draws) < 0.8


def test_sticky_noise_passes_frequencies_but_fails_ess():
    res = run(StickyNoise())
    assert np.all(frequency_z_scores(res.draws) < 4.0)   # marginally exact ...
    assert ess_ratio(res.draws) < 0.5                     # ... but ESS ~ draws / 3


def test_posterior_coassignment_and_entropy():
    res = run(GumbelClusterKernel(), draws=2000)
    post = cluster_posterior(res.draws)
    torch.testing.assert_close(post.sum(-1), torch.ones(5, dtype=torch.float64))
    co = coassignment_matrix(res.draws)
    assert torch.allclose(torch.diagonal(co), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(co, co.T)
    p = torch.softmax(LOGITS, -1)
    # points 0 and 3: P(same) = sum_k p0k p3k for independent draws
    assert abs(float(co[0, 3] - (p[0] * p[3]).sum())) < 4 * 0.5 / 2000 ** 0.5
    h = assignment_entropy(LOGITS)
    torch.testing.assert_close(h[0], torch.log(torch.tensor(4.0, dtype=torch.float64)))
    _, info = GumbelClusterKernel(seed=0).step(GumbelClusterKernel(seed=0).init(LOGITS))
    torch.testing.assert_close(info.extras["entropy"], h)


def test_kernel_with_a_network_and_refresh():
    net = torch.nn.Linear(3, 2).double()
    x = torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    kernel = GumbelClusterKernel(net, seed=0)
    state = kernel.init(x)
    torch.testing.assert_close(state.logits, net(x).detach())
    with torch.no_grad():
        net.weight.mul_(-1)
    torch.testing.assert_close(kernel.refresh(state).logits, net(x).detach())
    assert torch.equal(kernel.record(state), state.position)


def test_seed_reproducible_and_errors():
    a, b = run(GumbelClusterKernel(), draws=50), run(GumbelClusterKernel(), draws=50)
    assert torch.equal(a.draws, b.draws)
    with pytest.raises(ValueError, match="temperature"):
        GumbelClusterKernel(tau=0.0)
    with pytest.raises(ValueError, match="temperature"):
        gumbel_softmax(LOGITS, tau=-1.0)
    with pytest.raises(ValueError, match=r"\[n, k\]"):
        GumbelClusterKernel(lambda x: x.sum(-1)).init(torch.ones(4, 2))


def test_registered_as_gumbel_cluster_and_declared_as_entry_point():
    """`build_kernel("gumbel-cluster", net)` gives the sampler, unwrapped (no step size), with the options passed
    through; setup.cfg declares the same KernelSpec under `entropy_mcmc.kernels`."""
    import configparser
    import importlib
    from pathlib import Path

    from entropy_mcmc.samplers import build_kernel, get_kernel_spec

    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    lines = [ln.strip() for ln in cfg["options.entry_points"]["entropy_mcmc.kernels"].strip().splitlines()]
    module, obj = dict(ln.split(" = ") for ln in lines)["gumbel-cluster"].split(":")
    assert getattr(importlib.import_module(module), obj) is get_kernel_spec("gumbel-cluster")

    net = torch.nn.Linear(3, 4)
    kernel = build_kernel("gumbel-cluster", net, num_warmup=100, tau=0.5, hard=False, seed=0)
    assert type(kernel) is GumbelClusterKernel and kernel.model is net and kernel.tau == 0.5 and not kernel.hard
    draws = sample(kernel, torch.randn(3, 3), num_draws=5, progress=False, seed=1).draws
    assert draws.shape == (3, 5, 4) and torch.allclose(draws.sum(-1), torch.ones(3, 5))
    with pytest.raises(ValueError, match="temperature"):
        build_kernel("gumbel-cluster", net, num_warmup=0, tau=0.0)
