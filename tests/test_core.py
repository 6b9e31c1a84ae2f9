"""The core's contracts: extensible chain states, what the runner records, wrappers in any order, mass matrices,
refreshable caches, convergence warnings, the layer contracts."""
import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from entropy_mcmc.samplers import (ChainState, HMCKernel, MALAKernel, RandomWalkMetropolis, StepInfo,
                                   StepSizeAdaptation, StepSizeJitter, TransitionKernel, UnadjustedLangevin, sample,
                                   select_chains)
from entropy_mcmc.samplers.metric import Metric
from entropy_mcmc.samplers.metropolis import Proposal
from entropy_mcmc.samplers.runner import ConvergenceWarning
from entropy_mcmc.targets import Gaussian, Target, get_target

from stats_helpers import moment_z_scores

MEAN = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
COV = torch.tensor([[1.0, 0.9, 0.2], [0.9, 1.5, 0.3], [0.2, 0.3, 0.5]], dtype=torch.float64)
ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ a state any kernel can extend
@dataclasses.dataclass
class CountingState:
    position: torch.Tensor
    visits: torch.Tensor   # [chains] integer counter: an extra field the core knows nothing about
    phase: torch.Tensor    # [chains, 2] complex


class CountingKernel(TransitionKernel):
    """A toy kernel: x' = x + 1 on even chains, an integer count and a complex phase advance; records two names."""

    def init(self, x):
        self._ensure_generator(x)
        n = x.shape[0]
        return CountingState(x, torch.zeros(n, dtype=torch.int64), torch.ones(n, 2, dtype=torch.complex64))

    def step(self, state):
        move = torch.arange(state.position.shape[0]) % 2 == 0
        new = CountingState(state.position + 1, state.visits + 1, state.phase * torch.exp(torch.tensor(0.3j)))
        out = select_chains(move, new, state)
        return out, StepInfo.always_accepted(out.position, visits=out.visits.double())

    def record(self, state):
        return {"position": state.position, "visits": state.visits, "phase": state.phase}


def test_a_kernel_with_its_own_state_runs_through_the_runner_with_every_field_intact():
    res = sample(CountingKernel(), torch.zeros(4, 3), num_draws=5, num_warmup=2, progress=False, seed=0, warn=False)
    final = res.final_state
    assert isinstance(final, CountingState)
    assert final.visits.tolist() == [7, 0, 7, 0]   # select_chains kept the extra field per chain
    assert res.samples["visits"].dtype == torch.int64 and res.samples["visits"][0].tolist() == [3, 4, 5, 6, 7]
    assert torch.equal(res.stats["visits"], res.samples["visits"].double())   # every info extra is kept per draw
    idata = res.to_arviz()
    assert set(idata.posterior.data_vars) == {"position", "visits", "phase_amplitude", "phase_phase"}
    assert idata.posterior["position"].shape == (4, 5, 3) and idata.posterior["visits"].shape == (4, 5)
    np.testing.assert_allclose(idata.posterior["phase_phase"].values[0, :, 0], 0.3 * np.arange(3, 8), rtol=1e-5)
    np.testing.assert_allclose(idata.posterior["phase_amplitude"].values, 1.0, rtol=1e-6)


def test_select_chains_rejects_mixed_state_types():
    a = ChainState(torch.zeros(2, 1))
    with pytest.raises(TypeError, match="states of types"):
        select_chains(torch.tensor([True, False]), a, CountingKernel().init(torch.zeros(2, 1)))


# ------------------------------------------------------------------ the runner records what happened
class DivergesOnChainZero(HMCKernel):
    """HMC whose chain 0 reports a divergence at every step (events the runner must count through thinning)."""

    def step(self, state):
        state, info = super().step(state)
        info.diverging = info.diverging.clone()
        info.diverging[0] = True
        return state, info


def test_thinning_drops_draws_not_events():
    t = get_target("scg2")
    res = sample(DivergesOnChainZero(t, 0.1, 3), torch.zeros(3, 2), num_draws=5, thin=10, progress=False, seed=0,
                 warn=False)
    assert res.num_divergences == 50           # every one of the 50 steps of chain 0, not 5 recorded draws
    assert res.stats["diverging"][0].all() and not res.stats["diverging"][1:].any()
    assert res.num_grad_evals == 150           # 50 steps x 3 leapfrog gradients
    unthinned = sample(HMCKernel(t, 0.1, 3), torch.zeros(3, 2), num_draws=50, progress=False, seed=0, warn=False)
    # a recorded draw carries the mean acceptance of its 10 steps
    torch.testing.assert_close(res.stats["acceptance_prob"], unthinned.stats["acceptance_prob"].view(3, 5, 10).mean(2))
    torch.testing.assert_close(res.draws, unthinned.draws[:, 9::10])


def test_collect_warmup_keeps_warmup_draws_and_stats():
    t = get_target("scg2")
    k = StepSizeAdaptation(MALAKernel(t, 0.1), 0.574)
    res = sample(k, torch.zeros(4, 2), num_draws=6, num_warmup=8, progress=False, seed=0, collect_warmup=True,
                 warn=False)
    assert res.warmup_samples["x"].shape == (4, 8, 2) and res.warmup_stats["step_size"].shape == (4, 8)
    idata = res.to_arviz()
    assert idata.warmup_posterior["x"].shape == (4, 8, 2) and "step_size" in idata.warmup_sample_stats


def test_unconverged_runs_warn_with_the_numbers():
    t = get_target("icg50")
    with pytest.warns(ConvergenceWarning, match=r"max R-hat is \d"):
        sample(MALAKernel(t, 0.01), torch.randn(4, 50, generator=torch.Generator().manual_seed(0)) * 3, 50,
               progress=False, seed=0)
    res = sample(MALAKernel(t, 0.01), torch.zeros(4, 50), 50, progress=False, seed=0, warn=False)
    messages = res.convergence_warnings()
    assert any("min bulk ESS" in m and "400 for 4 chains" in m for m in messages)


def test_converged_run_does_not_warn():
    t = Gaussian(MEAN, COV)
    init = t.sample(8, torch.Generator().manual_seed(3))
    res = sample(StepSizeJitter(HMCKernel(t, 0.4, 5), 0.5), init, 1500, progress=False, seed=0, warn=False)
    assert res.convergence_warnings() == []


# ------------------------------------------------------------------ adaptation that cannot be mis-stacked
def test_adaptation_and_jitter_stack_in_either_order():
    t = Gaussian(MEAN, COV)
    init = t.sample(16, torch.Generator().manual_seed(0))
    a, b = HMCKernel(t, 0.05, 5), HMCKernel(t, 0.05, 5)
    outer_adapt = StepSizeAdaptation(StepSizeJitter(a, 0.5), 0.8)
    outer_jitter = StepSizeJitter(StepSizeAdaptation(b, 0.8), 0.5)
    ra = sample(outer_adapt, init, 200, num_warmup=300, progress=False, seed=4, warn=False)
    rb = sample(outer_jitter, init, 200, num_warmup=300, progress=False, seed=4, warn=False)
    assert torch.equal(ra.draws, rb.draws) and torch.equal(a.step_size, b.step_size)
    assert 0.05 < float(a.step_size) < 2.0      # adapted on the kernel that transitions, not on a wrapper
    assert abs(ra.acceptance_rate - 0.8) < 0.1
    assert "step_size" not in vars(outer_adapt) and "step_size" not in vars(outer_jitter)


def test_adaptation_refuses_a_kernel_without_an_accept_step():
    with pytest.raises(ValueError, match="no accept step"):
        StepSizeAdaptation(UnadjustedLangevin(get_target("scg2"), 0.1))


def test_dual_averaging_restarts_at_each_warmup():
    """A second run of the same adapted kernel equals a fresh kernel started from where the first one ended."""
    t = Gaussian(MEAN, COV)
    init = t.sample(8, torch.Generator().manual_seed(1))
    k = StepSizeAdaptation(HMCKernel(t, 0.05, 5), 0.8, adapt_mass_matrix=True)
    sample(k, init, 20, num_warmup=200, progress=False, seed=0, warn=False)
    fresh = StepSizeAdaptation(HMCKernel(t, k.base.step_size.clone(), 5, inv_mass=k.base.inv_mass.clone()), 0.8,
                               adapt_mass_matrix=True)
    again = sample(k, init, 20, num_warmup=200, progress=False, seed=5, warn=False)
    ref = sample(fresh, init, 20, num_warmup=200, progress=False, seed=5, warn=False)
    assert torch.equal(again.draws, ref.draws)


def test_repeated_runs_do_not_drift_the_jittered_step_size():
    t = get_target("scg2")
    k = StepSizeJitter(HMCKernel(t, 0.3, 3), 0.5)
    for seed in range(3):
        res = sample(k, torch.zeros(8, 2), 20, progress=False, seed=seed, warn=False)
        assert float(k.base.step_size) == 0.3
        assert res.stats["step_size"].std() > 0


# ------------------------------------------------------------------ mass matrices
def test_dense_metric_matches_the_explicit_matrices():
    inv_mass = COV
    x = torch.zeros(200000, 3, dtype=torch.float64)
    m = Metric(inv_mass, x)
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    p = m.sample_momentum(z)
    mass = torch.linalg.inv(inv_mass)
    torch.testing.assert_close(torch.cov(p.T), mass, atol=0.02, rtol=0.02)            # p ~ N(0, M)
    torch.testing.assert_close(torch.cov(m.scale_noise(z).T), inv_mass, atol=0.02, rtol=0.02)
    torch.testing.assert_close(m.kinetic_energy(p[:5]), 0.5 * ((p[:5] @ inv_mass) * p[:5]).sum(1))
    torch.testing.assert_close(m.whitened_sq_norm(p[:5]), ((p[:5] @ mass) * p[:5]).sum(1))


def test_dense_mala_proposal_density_is_the_gaussian_it_draws_from():
    t = Gaussian(MEAN, COV)
    k = MALAKernel(t, 0.7, inv_mass=COV)
    x = t.sample(5, torch.Generator().manual_seed(0)).double()
    state = k.init(x)
    y = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    mean = x - 0.5 * 0.49 * state.grad @ COV
    ref = torch.distributions.MultivariateNormal(mean, covariance_matrix=0.49 * COV).log_prob(y)
    torch.testing.assert_close(k.proposal_log_density(x, state.grad, y), ref)
    h = torch.distributions.MultivariateNormal(torch.zeros(3), covariance_matrix=0.49 * COV.float()).entropy()
    torch.testing.assert_close(k.proposal_entropy(state).float(), h.expand(5), rtol=1e-5, atol=1e-5)


class DenseMALAIdentityCorrection(MALAKernel):
    """Deliberately broken: proposes with the dense preconditioner but corrects as if M = I."""

    def propose(self, state):
        prop = super().propose(state)
        inv_mass = self.inv_mass
        self._inv_mass, self._metric = None, None
        wrong = (self.proposal_log_density(prop.state.position, prop.state.grad, state.position)
                 - self.proposal_log_density(state.position, state.grad, prop.state.position))
        self._inv_mass, self._metric = inv_mass, None
        return Proposal(prop.state, wrong, 1)


@pytest.mark.parametrize("make,broken", [(lambda t: MALAKernel(t, 1.0, inv_mass=COV), False),
                                         (lambda t: HMCKernel(t, 0.7, 4, inv_mass=COV), False),
                                         (lambda t: DenseMALAIdentityCorrection(t, 1.0, inv_mass=COV), True)])
def test_dense_mass_kernels_have_the_right_moments(make, broken):
    t = Gaussian(MEAN, COV)
    init = t.sample(100, torch.Generator().manual_seed(11))
    res = sample(make(t), init, 1000, num_warmup=50, progress=False, seed=2, warn=False)
    z_mean, z_var = moment_z_scores(res.draws, MEAN, COV.diagonal())
    worst = max(z_mean.max(), z_var.max())
    assert (worst > 8) if broken else (worst < 4), (z_mean, z_var)


def test_dense_mass_adaptation_learns_the_covariance():
    t = Gaussian(MEAN, 4.0 * COV)
    k = StepSizeAdaptation(MALAKernel(t, 0.1), 0.574, adapt_mass_matrix="dense")
    sample(k, t.sample(64, torch.Generator().manual_seed(0)), 10, num_warmup=600, progress=False, seed=0, warn=False)
    assert k.base.inv_mass.shape == (3, 3)
    torch.testing.assert_close(k.base.inv_mass, 4.0 * COV, atol=0.5, rtol=0.15)


# ------------------------------------------------------------------ refreshable caches, plain functions
class Shifted(Target):
    def __init__(self):
        super().__init__((2,))
        self.shift = 0.0

    def energy(self, x):
        return 0.5 * ((x - self.shift) ** 2).sum(1)


def test_refresh_re_evaluates_the_cache_after_the_target_changed():
    t = Shifted()
    k = MALAKernel(t, 0.1)
    state = k.init(torch.ones(3, 2))
    t.shift = 3.0
    fresh = StepSizeAdaptation(k).refresh(state)
    torch.testing.assert_close(fresh.energy, torch.full((3,), 4.0))
    torch.testing.assert_close(fresh.grad, torch.full((3, 2), -2.0))
    assert torch.equal(fresh.position, state.position)


def test_target_from_a_plain_function():
    prec = torch.linalg.inv(COV)

    def log_prob(x):
        r = x - MEAN
        return -0.5 * ((r @ prec) * r).sum(1)

    t = Target.from_log_prob(log_prob, 3)
    init = Gaussian(MEAN, COV).sample(64, torch.Generator().manual_seed(0))
    res = sample(HMCKernel(t, 0.4, 5), init, 800, progress=False, seed=1, warn=False)
    z_mean, z_var = moment_z_scores(res.draws, MEAN, COV.diagonal())
    assert z_mean.max() < 4 and z_var.max() < 4
    bad = Target.from_log_prob(lambda x: log_prob(x)[:, None], 3)
    with pytest.raises(ValueError, match=r"tensor \[chains\]"):
        MALAKernel(bad, 0.1).init(init)


def test_initial_positions_are_a_target_method_and_reproducible():
    t = get_target("icg50")
    a, b = t.initial_positions(5, seed=3), t.initial_positions(5, seed=3, dtype=torch.float64)
    assert a.shape == (5, 50) and a.dtype == torch.float32 and torch.equal(a, b.float())
    assert 0.07 < float(b.std()) < 0.13 and abs(float(b.mean())) < 0.05   # N(0, 0.1^2) around the origin


@pytest.mark.parametrize("name", ["german", "australian", "heart"])
def test_logistic_regression_starts_at_its_mode(name):
    """Default starts are not absurd for the posterior: centred on the MAP, within a posterior sd of the mean."""
    from entropy_mcmc.targets.logistic_regression import load_reference

    t = get_target(name)
    mode = t.mode()
    assert float(t.energy_and_grad(mode[None])[1].abs().max()) < 1e-8   # a stationary point of a convex energy
    ref = load_reference(name)
    z = (mode - torch.tensor(ref["mean"], dtype=torch.float64)) / torch.tensor(ref["std"], dtype=torch.float64)
    assert float(z.abs().max()) < 1.0
    x = t.initial_positions(4000, seed=0, dtype=torch.float64)
    torch.testing.assert_close(x.mean(0), mode, atol=4 * 0.1 / 4000 ** 0.5, rtol=0)


# ------------------------------------------------------------------ layers
def test_layer_contracts_hold():
    exe = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(exe), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


# ------------------------------------------------------------------ stuck chains
def test_a_chain_that_never_moves_is_named_and_counted():
    t = get_target("scg2")
    step = torch.full((4,), 0.3, dtype=torch.float64)
    step[2] = 1e4   # chain 2 proposes absurd moves: every one rejected
    res = sample(RandomWalkMetropolis(t, step), torch.zeros(4, 2), 200, progress=False, seed=0, warn=False)
    assert res.stuck_at_end[2] == 200 and res.longest_stuck[2] == 200
    assert res.longest_stuck[[0, 1, 3]].max() < 20
    messages = [m for m in res.convergence_warnings() if "accepted no move" in m]
    assert len(messages) == 1 and messages[0].startswith("chain 2 of 4 accepted no move")
    # a kernel without an accept step is never stuck
    gibbs = sample(CountingKernel(), torch.zeros(4, 3), 50, progress=False, seed=0, warn=False)
    assert gibbs.longest_stuck.max() == 0 and not any("accepted no move" in m for m in gibbs.convergence_warnings())
