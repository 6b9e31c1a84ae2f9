"""Training of the learned sampler (eqs. 4.4-4.5): entropy rises, beta holds the acceptance, save/load, ESS helper."""
import math

import numpy as np
import pytest
import torch

from entropy_mcmc.diagnostics.autocorr_ess import autocorr_ess, thesis_ess
from entropy_mcmc.samplers import MALAKernel, sample
from entropy_mcmc.learning import SamplerTrainConfig, preset, train_sampler
from entropy_mcmc.samplers.learned import (AdaptiveMALAConfig, AdaptiveMALAProposal, LearnedProposalConfig,
                                           LearnedSampler, TargetFunctions, load_proposal)
from entropy_mcmc.learning.training import clip_gradients
from entropy_mcmc.targets import Funnel, Gaussian, get_target, ill_conditioned_gaussian
from entropy_mcmc.targets.base import Target

from stats_helpers import moment_z_scores

ICG = ill_conditioned_gaussian(6, 0.1, 10.0)


def small(steps=150, **kw):
    return SamplerTrainConfig(steps=steps, batch_size=128, target_accept=kw.pop("target_accept", 0.8), **kw)


@pytest.fixture(scope="module")
def trained():
    mc = LearnedProposalConfig(ICG.dim, width=32, num_steps=1)
    return train_sampler(ICG, config=small(), model_config=mc, seed=0, progress=False)


def test_entropy_rises_and_acceptance_tracks_target(trained):
    h = trained.history
    n = len(h["entropy"])
    assert n == 150 and trained.sample_source == "exact"
    start, end = np.mean(h["entropy"][:5]), np.mean(h["entropy"][-20:])
    # MALA at eps = 0.1 has entropy d/2 log(2 pi e) + d log 0.1; training must widen the proposal a lot
    assert start == pytest.approx(6 * (0.5 * math.log(2 * math.pi * math.e) + math.log(0.1)), abs=0.2)
    assert end > start + 3.0, (start, end)
    assert abs(np.mean(h["accept"][-30:]) - 0.8) < 0.1
    assert h["beta"][-1] != h["beta"][0]
    assert trained.skipped_steps == 0


def test_trained_sampler_beats_mala_and_stays_exact(trained):
    kernel = trained.kernel(ICG, seed=1)
    init = ICG.sample(64, torch.Generator().manual_seed(2))
    res = sample(kernel, init, 400, progress=False, seed=1)
    mres = sample(MALAKernel(ICG, 0.1), init, 400, progress=False, seed=1)
    learned_jump = (res.draws[:, 1:] - res.draws[:, :-1]).pow(2).sum(-1).mean()
    mala_jump = (mres.draws[:, 1:] - mres.draws[:, :-1]).pow(2).sum(-1).mean()
    assert learned_jump > 5 * mala_jump
    # exact: mean and variance of every coordinate within 4 Monte Carlo standard errors (ArviZ MCSE)
    z_mean, z_var = moment_z_scores(res.draws, ICG.mean, ICG.std ** 2)
    assert np.all(z_mean < 4) and np.all(z_var < 4), (z_mean, z_var)


def test_save_load_proposes_identical_moves(trained, tmp_path):
    path = tmp_path / "icg.pt"
    trained.save(path)
    loaded = LearnedSampler.load(path, ICG, seed=5)
    original = LearnedSampler(ICG, trained.model, seed=5)
    init = ICG.sample(16, torch.Generator().manual_seed(3))
    a = sample(original, init, 30, progress=False, seed=7)
    b = sample(loaded, init, 30, progress=False, seed=7)
    assert torch.equal(a.draws, b.draws)
    assert (a.draws[:, 1:] != a.draws[:, :-1]).any()
    model, meta = load_proposal(path)
    assert torch.equal(model.flow.masks, trained.model.flow.masks)
    assert meta["target"] == ICG.name and len(meta["history"]["accept"]) == 150
    assert meta["train_config"]["steps"] == 150


def test_masks_are_buffers_saved_with_the_state_dict():
    from entropy_mcmc.samplers.learned import LearnedProposal

    a = LearnedProposal(LearnedProposalConfig(6, width=8, num_steps=3, mask_seed=1))
    b = LearnedProposal(LearnedProposalConfig(6, width=8, num_steps=3, mask_seed=2))
    assert "flow.masks" in a.state_dict()
    assert not torch.equal(a.flow.masks, b.flow.masks)
    assert torch.all(a.flow.masks.sum(1) == 3)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.flow.masks, b.flow.masks)


def test_checkerboard_mask_for_images():
    from entropy_mcmc.samplers.learned import checkerboard_masks

    m = checkerboard_masks((3, 4, 4), 2)
    assert m.shape == (2, 48)
    board = m[0].view(3, 4, 4)
    assert torch.equal(board[0], board[2]) and board[0, 0, 0] != board[0, 0, 1] and board[0, 0, 0] != board[0, 1, 0]


class NoExactSampler(Gaussian):
    def sample(self, *args, **kwargs):
        raise NotImplementedError


def test_bootstrap_buffer_when_no_exact_sampler():
    t = NoExactSampler(torch.full((3,), 2.0, dtype=torch.float64), torch.eye(3, dtype=torch.float64) * 0.25)
    res = train_sampler(t, config=small(60, buffer_init_steps=100), seed=0, progress=False,
                        model_config=LearnedProposalConfig(3, width=16))
    assert res.sample_source == "bootstrap"
    buf = res.extra["buffer"]
    assert buf.shape == (128, 3)
    # the buffer started uniform on [-2, 2] and the MALA warm start plus the sampler moved it onto N(2, 0.25)
    assert (buf.mean(0) - 2.0).abs().max() < 0.25


@pytest.mark.parametrize("variant", ["no_grad", "langevin"])
def test_ablation_variants_train(variant):
    res = train_sampler(ICG, config=small(100, target_accept=0.5), seed=0, progress=False,
                        model_config=LearnedProposalConfig(ICG.dim, width=16, variant=variant))
    h = res.history
    assert np.mean(h["entropy"][-10:]) > np.mean(h["entropy"][:5]) + 1.0
    assert res.skipped_steps == 0


def test_adaptive_mala_baseline_trains_its_preconditioner():
    model = AdaptiveMALAProposal(AdaptiveMALAConfig(ICG.dim))
    res = train_sampler(ICG, model=model, config=small(300, lr=3e-2), seed=0, progress=False)
    assert np.mean(res.history["entropy"][-10:]) > np.mean(res.history["entropy"][:5]) + 5.0
    # the learned preconditioner C = L L^T follows the target's variances (0.1 ... 10, ratio 100)
    L = model.factor().detach()
    c = (L @ L.T).diagonal()
    assert 30 < float(c[-1] / c[0]) < 300


def test_l2_objective_increases_expected_jump():
    res = train_sampler(ICG, config=small(100, objective="l2"), seed=0, progress=False,
                        model_config=LearnedProposalConfig(ICG.dim, width=16))
    h = res.history
    assert np.mean(h["esjd"][-10:]) > 2 * np.mean(h["esjd"][:5])
    assert h["beta"][0] == h["beta"][-1]  # beta belongs to the entropy objective only


class _CountBackward(torch.autograd.Function):
    """Identity that counts the backward passes through it, per key."""

    calls = {"energy": 0, "grad": 0}

    @staticmethod
    def forward(ctx, x, key):
        ctx.key = key
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        _CountBackward.calls[ctx.key] += 1
        return g, None


class SpiedGaussian(Target):
    """N(0, diag(var)) with an analytic gradient, counting the backward passes through U and through dU."""

    def __init__(self, var):
        super().__init__((len(var),))
        self.var = torch.tensor(var)
        self.name = "spied"

    def energy(self, x):
        return _CountBackward.apply(0.5 * (x * x / self.var.to(x)).sum(1), "energy")

    def energy_and_grad(self, x):
        return self.energy(x), _CountBackward.apply(x / self.var.to(x), "grad")


@pytest.mark.parametrize("stop_gradient", [False, True])
def test_stop_gradient_stops_the_gradient_through_the_target_gradient_only(stop_gradient):
    t = SpiedGaussian([0.5, 1.0, 2.0])
    cfg = small(5, stop_gradient=stop_gradient, sample_source="bootstrap", buffer_init_steps=10)
    _CountBackward.calls.update(energy=0, grad=0)
    res = train_sampler(t, config=cfg, seed=0, progress=False, model_config=LearnedProposalConfig(3, width=8))
    assert res.skipped_steps == 0
    calls = dict(_CountBackward.calls)
    # U(x') in the acceptance ratio is differentiated either way; dU inside the flow only without stop_gradient
    assert calls["energy"] == 5
    assert (calls["grad"] == 0) if stop_gradient else (calls["grad"] >= 5), calls
    fns = TargetFunctions(t, differentiable=True, stop_gradient=stop_gradient)
    y = torch.randn(4, 3, requires_grad=True)
    u, g = fns.energy_and_grad(y * 1.0)
    assert u.requires_grad and g.requires_grad != stop_gradient and fns.grad(y * 1.0).requires_grad != stop_gradient


class EnergyOnly(Target):
    """A target with only `energy` (no analytic gradient): the trainer must use autograd with create_graph."""

    def __init__(self):
        super().__init__((2,))
        self.name = "energy_only"

    def energy(self, x):
        return 0.5 * (x * x).sum(1) + 0.1 * (x[:, 0] ** 4)


def test_differentiable_gradient_for_analytic_and_autograd_targets():
    x = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    for t in (EnergyOnly(), Funnel(2, 1.0), Gaussian(torch.zeros(2), torch.eye(2))):
        fns = TargetFunctions(t, differentiable=True)
        g = fns.grad(x * 1.0)
        assert g.requires_grad
        ref = torch.autograd.grad(t.energy(x).sum(), x, create_graph=True)[0]
        torch.testing.assert_close(g, ref)
        # second derivative flows: d/dx sum(g^2) equals autograd's
        torch.testing.assert_close(torch.autograd.grad(g.pow(2).sum(), x)[0],
                                   torch.autograd.grad(ref.pow(2).sum(), x)[0])


def test_clip_gradients_survives_huge_gradients():
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.tensor([3e30, -4e30, 0.0])
    norm = clip_gradients([p], 10.0)
    assert norm == pytest.approx(5e30, rel=1e-6)
    torch.testing.assert_close(p.grad, torch.tensor([6.0, -8.0, 0.0]))
    p.grad = torch.tensor([float("inf"), 1.0, 0.0])
    assert clip_gradients([p], 10.0) == float("inf")


def test_funnel3_training_survives_extreme_initial_proposals():
    """MALA at eps 0.1 in the Funnel-3 neck has log A ~ -1e17 and some NaN proposals: no step may be lost to NaN."""
    t = get_target("funnel3-20")
    res = train_sampler(t, config=small(25, lr=5e-4, target_accept=0.6), seed=0, progress=False,
                        model_config=LearnedProposalConfig(t.dim, width=16, num_steps=2))
    assert sum(res.history["dropped"]) > 0  # the extreme samples were there, and were left out
    assert res.skipped_steps == 0
    assert all(math.isfinite(v) for v in res.history["grad_norm"])
    # without the safeguards the same run loses steps to non-finite gradients
    raw = train_sampler(t, config=small(25, lr=5e-4, target_accept=0.6, log_accept_floor=None,
                                        drop_log_accept_below=None), seed=0, progress=False,
                        model_config=LearnedProposalConfig(t.dim, width=16, num_steps=2))
    assert raw.skipped_steps > 0


def test_preset_uses_table_c1():
    m, c = preset(get_target("funnel3-20"), "thesis")
    assert (m.width, m.num_steps, c.target_accept, c.lr, c.min_lr) == (1024, 4, 0.6, 5e-4, 1e-7)
    assert (c.batch_size, c.steps) == (1024, 20000)
    m, c = preset(get_target("german"), steps=10, batch_size=32)
    assert (m.width, c.target_accept, c.steps, c.batch_size, m.eps) == (128, 0.7, 10, 32, 0.1)
    assert m.precondition == "dense" and preset(get_target("german"), "thesis")[0].precondition == "none"
    assert preset(get_target("german"), precondition="none")[0].precondition == "none"
    with pytest.raises(ValueError):
        preset(get_target("german"), widht=3)


def test_autocorr_ess_on_ar1_and_iid():
    rng = np.random.default_rng(0)
    chains, t = 200, 1000
    iid = rng.standard_normal((chains, t, 2))
    e = autocorr_ess(iid, mean=[0, 0], var=[1, 1])
    assert np.all(e > 900)
    rho = 0.8
    x = np.zeros((chains, t, 1))
    x[:, 0] = rng.standard_normal((chains, 1))
    for i in range(1, t):
        x[:, i] = rho * x[:, i - 1] + math.sqrt(1 - rho ** 2) * rng.standard_normal((chains, 1))
    e = autocorr_ess(x, mean=[0.0], var=[1.0])[0]
    # sum of rho^s (1 - s/T) over lags with rho^s > 0.05: T / (1 + 2 * 3.7) ~ 119
    expected = t / (1 + 2 * sum(rho ** s * (1 - s / t) for s in range(1, 100) if rho ** s > 0.05))
    assert e == pytest.approx(expected, rel=0.1)
    out = thesis_ess(np.concatenate([np.zeros((chains, 1000, 1)), x], 1), [0.0], [1.0], num_grad_evals_per_step=4)
    assert out["ess_per_mh"] == pytest.approx(e / 1000, rel=1e-9)  # only the last 1000 steps count
    assert out["ess_per_grad"] == pytest.approx(out["ess_per_mh"] / 4)


@pytest.mark.parametrize("exact", [True, False])
def test_preconditioner_is_fitted_before_training_and_saved(exact, tmp_path):
    mean = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)
    cov = torch.tensor([[0.25, 0.2, 0.0], [0.2, 0.64, 0.1], [0.0, 0.1, 0.09]], dtype=torch.float64)
    t = Gaussian(mean, cov) if exact else NoExactSampler(mean, cov)
    res = train_sampler(t, config=small(40, buffer_init_steps=400), seed=0, progress=False,
                        model_config=LearnedProposalConfig(3, width=16, precondition="dense"))
    model = res.model
    assert res.sample_source == ("exact" if exact else "bootstrap") and not model.needs_preconditioner
    # fitted to exact draws, or to the warm buffer's last 200 MALA steps: mean and covariance near the target's
    assert (model.loc.double() - mean).abs().max() < 0.15
    fitted_cov = model.scale.double() @ model.scale.double().T
    assert (fitted_cov - cov).abs().max() < 0.12, fitted_cov
    path = tmp_path / "pre.pt"
    res.save(path)
    loaded = LearnedSampler.load(path, t, seed=4)
    assert torch.equal(loaded.model.scale, model.scale) and torch.equal(loaded.model.loc, model.loc)
    init = t.sample(8, torch.Generator().manual_seed(1)) if exact else res.extra["buffer"][:8].float()
    a = sample(LearnedSampler(t, model, seed=4), init, 20, progress=False, seed=2)
    b = sample(loaded, init, 20, progress=False, seed=2)
    assert torch.equal(a.draws, b.draws) and (a.draws[:, 1:] != a.draws[:, :-1]).any()


def test_preconditioner_without_samples_to_fit_is_a_clear_error():
    t = NoExactSampler(torch.zeros(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="buffer_init_steps"):
        train_sampler(t, config=small(5, buffer_init_steps=0), progress=False,
                      model_config=LearnedProposalConfig(3, width=8, precondition="diag"))


def test_buffer_larger_than_the_batch_moves_every_chain_by_minibatches():
    """buffer_size > batch_size: each step trains on batch_size distinct chains drawn from the whole buffer."""
    t = NoExactSampler(torch.full((3,), 2.0, dtype=torch.float64), torch.eye(3, dtype=torch.float64) * 0.25)
    init = torch.zeros(96, 3)
    res = train_sampler(t, config=SamplerTrainConfig(steps=40, batch_size=32, buffer_size=96, buffer_init_steps=0,
                                              target_accept=0.8), init=init, seed=0, progress=False,
                        model_config=LearnedProposalConfig(3, width=16))
    buf = res.extra["buffer"]
    assert res.sample_source == "bootstrap" and buf.shape == (96, 3) and res.skipped_steps == 0
    # a chain is left out of all 40 minibatches with probability (2/3)^40; moving only the first 32 rows
    # (or a fixed minibatch) would leave two thirds of the buffer at its start
    moved = (buf != init).any(1)
    assert moved.float().mean() > 0.9, int(moved.sum())
    # the same run with a buffer equal to the batch is the default
    a = train_sampler(t, config=small(5, buffer_init_steps=20, buffer_size=128), seed=0, progress=False,
                      model_config=LearnedProposalConfig(3, width=8))
    b = train_sampler(t, config=small(5, buffer_init_steps=20), seed=0, progress=False,
                      model_config=LearnedProposalConfig(3, width=8))
    assert torch.equal(a.extra["buffer"], b.extra["buffer"]) and a.history["loss"] == b.history["loss"]


def test_buffer_smaller_than_the_batch_is_refused_before_any_work():
    with pytest.raises(ValueError, match=r"buffer_size \(16\) must be at least batch_size \(32\)"):
        SamplerTrainConfig(batch_size=32, buffer_size=16)
    t = NoExactSampler(torch.zeros(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="init has 10 rows; the bootstrap buffer holds buffer_size = 64"):
        train_sampler(t, config=SamplerTrainConfig(steps=1, batch_size=32, buffer_size=64), init=torch.zeros(10, 3),
                      progress=False, model_config=LearnedProposalConfig(3, width=8))
