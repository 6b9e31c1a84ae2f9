"""Statistical and exact checks of the MH kernels: moments within 4 MCSE, broken variants fail, detailed balance."""
import math

import pytest
import torch

from entropy_mcmc.samplers import HMCKernel, MALAKernel, ChainState, RandomWalkMetropolis, UnadjustedLangevin, sample
from entropy_mcmc.samplers.metropolis import Proposal, gaussian_log_density
from entropy_mcmc.targets import Gaussian

from stats_helpers import moment_z_scores

COV = torch.tensor([[1.0, 0.6, 0.0], [0.6, 2.0, 0.3], [0.0, 0.3, 0.5]], dtype=torch.float64)
MEAN = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)


def target():
    return Gaussian(MEAN, COV)


def kernel_cases():
    return {
        "rwm": lambda t: RandomWalkMetropolis(t, 0.9),
        "mala": lambda t: MALAKernel(t, 0.8),
        "hmc": lambda t: HMCKernel(t, 0.35, num_steps=5),
    }


def run(kernel, chains=200, draws=1500, seed=1):
    t = kernel.target
    init = t.sample(chains, torch.Generator().manual_seed(seed + 100))
    return sample(kernel, init, draws, num_warmup=100, progress=False, seed=seed)


@pytest.mark.parametrize("name", ["rwm", "mala", "hmc"])
def test_moments_within_4_mcse(name):
    t = target()
    res = run(kernel_cases()[name](t))
    z_mean, z_var = moment_z_scores(res.draws, MEAN, COV.diagonal())
    assert z_mean.max() < 4 and z_var.max() < 4, (z_mean, z_var)
    assert 0.2 < res.acceptance_rate < 0.99


class MALADroppedReverse(MALAKernel):
    """Deliberately broken: treats the Langevin proposal as symmetric (drops log q(x|x') - log q(x'|x))."""

    def propose(self, state):
        prop = super().propose(state)
        return Proposal(prop.state, torch.zeros_like(prop.log_correction), prop.num_grad_evals)


class HMCNoKinetic(HMCKernel):
    """Deliberately broken: accepts on the potential energy change only."""

    def propose(self, state):
        prop = super().propose(state)
        return Proposal(prop.state, torch.zeros_like(prop.log_correction), prop.num_grad_evals, prop.extras)


class RWMAsymmetric(RandomWalkMetropolis):
    """Deliberately broken: a drifting random walk corrected as if it were symmetric."""

    def propose(self, state):
        x = state.position
        cand = self.evaluate(x + 0.9 * self.randn_like(x) + 0.3)
        return Proposal(cand, torch.zeros_like(state.energy), 0)


@pytest.mark.parametrize("broken", [lambda t: MALADroppedReverse(t, 1.2), lambda t: HMCNoKinetic(t, 0.35, 5),
                                    lambda t: RWMAsymmetric(t, 0.9)])
def test_broken_kernels_fail_the_same_test(broken):
    res = run(broken(target()))
    z_mean, z_var = moment_z_scores(res.draws, MEAN, COV.diagonal())
    assert max(z_mean.max(), z_var.max()) > 8, (z_mean, z_var)


def _forced(kernel, noise):
    """Make the kernel's next Gaussian draw equal `noise` (to walk a chosen proposal path)."""
    kernel.randn_like = lambda x: noise.to(x.dtype)
    return kernel


def _log_p(t, x):
    return -t.energy(x)


@pytest.mark.parametrize("name", ["rwm", "mala"])
def test_detailed_balance_exact(name):
    """p(x) q(x'|x) A(x'|x) == p(x') q(x|x') A(x|x') for the acceptance the kernel actually computes."""
    t = Gaussian(MEAN, COV)
    gen = torch.Generator().manual_seed(3)
    x = t.sample(16, gen, dtype=torch.float64)
    y = x + 0.7 * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    k = kernel_cases()[name](t)
    sx, sy = k.init(x), k.init(y)
    s = 0.9 if name == "rwm" else 0.8

    def mean_of(state):
        return state.position - (0.5 * s * s * state.grad if name == "mala" else 0.0)

    def log_q(frm, to):
        return gaussian_log_density(to.position - mean_of(frm), torch.tensor(s, dtype=torch.float64))

    _, info_xy = _forced(k, (y - mean_of(sx)) / s).step(sx)
    _, info_yx = _forced(k, (x - mean_of(sy)) / s).step(sy)
    lhs = _log_p(t, x) + log_q(sx, sy) + info_xy.acceptance_prob.log()
    rhs = _log_p(t, y) + log_q(sy, sx) + info_yx.acceptance_prob.log()
    torch.testing.assert_close(lhs, rhs, rtol=1e-9, atol=1e-9)
    assert (info_xy.acceptance_prob < 1).any() and (info_yx.acceptance_prob < 1).any()


def test_hmc_detailed_balance_exact():
    """Leapfrog reversibility plus exp(-H) A symmetric between (x, p) and (x', -p')."""
    t = Gaussian(MEAN, COV)
    gen = torch.Generator().manual_seed(4)
    x = t.sample(16, gen, dtype=torch.float64)
    inv_mass = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)
    k = HMCKernel(t, 0.45, num_steps=7, inv_mass=inv_mass)
    z = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    p0 = z / inv_mass.sqrt()
    sx = k.init(x)
    prop = _forced(k, z).propose(sx)
    _, info_xy = k.step(sx)
    y = prop.state.position
    h0 = sx.energy + 0.5 * (p0 * p0 * inv_mass).sum(1)
    h1 = prop.extras["energy"]
    # reverse: start at y with momentum -p1 (p1 from an independent leapfrog) and land back on x
    p1 = _final_momentum(k, x, p0)
    sy = k.init(y)
    back = _forced(k, -p1 * inv_mass.sqrt()).propose(sy)
    _, info_yx = k.step(sy)
    torch.testing.assert_close(back.state.position, x, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(back.extras["energy"], h0, rtol=1e-9, atol=1e-9)
    lhs = -h0 + info_xy.acceptance_prob.log()
    rhs = -h1 + info_yx.acceptance_prob.log()
    torch.testing.assert_close(lhs, rhs, rtol=1e-9, atol=1e-9)
    assert (info_xy.acceptance_prob < 1).any()


def _final_momentum(k, x, p):
    u, g = k.target.energy_and_grad(x)
    inv_mass, s = k.inv_mass, float(k.step_size)
    p = p - 0.5 * s * g
    for i in range(k.num_steps):
        x = x + s * inv_mass * p
        u, g = k.target.energy_and_grad(x)
        if i < k.num_steps - 1:
            p = p - s * g
    return p - 0.5 * s * g


def test_ula_stationary_variance_and_temperature():
    """ULA on N(0, 1): x' = (1 - s^2/2) x + sqrt(T) s z has stationary variance T / (1 - s^2/4)."""
    t = Gaussian(torch.zeros(1, dtype=torch.float64), torch.eye(1, dtype=torch.float64))
    s, temp = 0.8, 2.0
    k = UnadjustedLangevin(t, s, temperature=temp)
    res = sample(k, torch.zeros(400, 1), 1500, num_warmup=200, progress=False, seed=0)
    z_mean, z_var = moment_z_scores(res.draws, [0.0], [temp / (1 - s * s / 4)])
    assert z_mean.max() < 4 and z_var.max() < 4
    assert not k.is_calibrated
    assert res.acceptance_rate == 1.0


class NanTarget(Gaussian):
    """A standard Gaussian whose energy is NaN for x0 > 1.5 and inf for x0 < -1.5."""

    def energy_and_grad(self, x):
        u, g = super().energy_and_grad(x)
        u = torch.where(x[:, 0] > 1.5, torch.full_like(u, float("nan")), u)
        u = torch.where(x[:, 0] < -1.5, torch.full_like(u, float("inf")), u)
        return u, g

    def energy(self, x):
        return self.energy_and_grad(x)[0]


@pytest.mark.parametrize("make", [lambda t: RandomWalkMetropolis(t, 1.0), lambda t: MALAKernel(t, 1.0),
                                  lambda t: HMCKernel(t, 0.5, 4)])
def test_nan_and_inf_energies_are_rejected_and_counted(make):
    t = NanTarget(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64))
    res = sample(make(t), torch.zeros(64, 2), 300, progress=False, seed=0)
    assert torch.isfinite(res.draws).all()
    assert res.draws[..., 0].abs().max() <= 1.5
    div = res.stats["diverging"]
    assert div.any()
    # every divergent step is a rejection
    assert not (div & res.stats["accepted"]).any()


def test_nan_gradient_in_proposal_is_a_divergence():
    class NanGrad(Gaussian):
        def energy_and_grad(self, x):
            u, g = super().energy_and_grad(x)
            return u, torch.where(x[:, :1] > 0.5, torch.full_like(g, float("nan")), g)

    t = NanGrad(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64))
    k = MALAKernel(t, 0.9)
    res = sample(k, torch.zeros(32, 2), 200, progress=False, seed=0)
    assert torch.isfinite(res.final_state.grad).all()
    assert res.stats["diverging"].any()


def test_step_info_fields_and_grad_counts():
    t = target()
    x = t.sample(8, torch.Generator().manual_seed(0))
    for k, grads in ((RandomWalkMetropolis(t, 0.5), 0), (MALAKernel(t, 0.5), 1), (HMCKernel(t, 0.2, 6), 6)):
        state, info = k.step(k.init(x))
        assert info.acceptance_prob.shape == (8,) and info.accepted.dtype == torch.bool
        assert info.diverging.shape == (8,)
        assert info.num_grad_evals == grads
        assert isinstance(state, ChainState) and state.energy.shape == (8,)


def test_mala_proposal_density_is_normalized_gaussian():
    t = target()
    k = MALAKernel(t, 0.3)
    x = torch.zeros(1, 3, dtype=torch.float64)
    u, g = t.energy_and_grad(x)
    lq = k.proposal_log_density(x, g, x - 0.5 * 0.09 * g)
    torch.testing.assert_close(lq, torch.tensor([-3 * math.log(0.3) - 1.5 * math.log(2 * math.pi)],
                                                dtype=torch.float64))
