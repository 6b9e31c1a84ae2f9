"""Exactness of the learned sampler (thesis section 4.3): inverse, log-determinant, MALA limit, MH invariance."""
import math

import pytest
import torch

from entropy_mcmc.samplers import MALAKernel, sample
from entropy_mcmc.samplers.learned import (AdaptiveMALA, AdaptiveMALAConfig, AdaptiveMALAProposal, LearnedProposal,
                                           LearnedProposalConfig, LearnedSampler, TargetFunctions)
from entropy_mcmc.samplers.metropolis import Proposal
from entropy_mcmc.targets import Gaussian

from stats_helpers import moment_z_scores

COV = torch.tensor([[1.0, 0.6, 0.0, 0.0], [0.6, 2.0, 0.3, 0.0], [0.0, 0.3, 0.5, 0.1], [0.0, 0.0, 0.1, 0.8]],
                   dtype=torch.float64)
MEAN = torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=torch.float64)
VARIANTS = ["full", "no_grad", "langevin"]


def target():
    return Gaussian(MEAN, COV)


def randomize(model, scale=0.3, seed=0):
    """Random non-zero weights everywhere (the output layers start at zero otherwise)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=gen, dtype=torch.float64))
    return model


def make_model(variant, num_steps=2, width=16, eps=0.4, scale=0.3, seed=0):
    cfg = LearnedProposalConfig(dim=4, width=width, num_steps=num_steps, eps=eps, variant=variant, mask_seed=seed)
    return randomize(LearnedProposal(cfg).double(), scale, seed)


def points(n=6, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return target().sample(n, gen, dtype=torch.float64), torch.randn(n, 4, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("variant", VARIANTS)
def test_inverse_round_trip(variant):
    model, fns = make_model(variant), TargetFunctions(target())
    x, z0 = points()
    eps_half = torch.tensor(model.eps / (2 * model.config.num_steps), dtype=torch.float64)
    z, ld_fwd = model.flow(z0, x, eps_half, fns.grad)
    assert (z - z0).abs().max() > 1e-2  # the random weights really transform z0
    z0_back, ld_inv = model.flow.inverse(z, x, eps_half, fns.grad)
    torch.testing.assert_close(z0_back, z0, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ld_inv, ld_fwd, rtol=1e-10, atol=1e-10)
    # the whole move: x' from z0, then log q(x'|x) recomputed from (x, x') alone inverts to the same z0
    g = fns.grad(x)
    move = model.forward_move(x, g, z0, model.eps, fns.grad)
    torch.testing.assert_close(model.log_density(x, g, move.x_new, model.eps, fns.grad), move.log_q,
                               rtol=1e-9, atol=1e-9)


def _jacobian_logdet(model, x, g, z0, fns):
    """log|det dx'/dz0| per row by brute-force autograd Jacobians."""
    out = []
    for i in range(x.shape[0]):
        def f(zi):
            return model.forward_move(x[i:i + 1], None if g is None else g[i:i + 1], zi[None], model.eps,
                                      fns.grad).x_new[0]
        jac = torch.autograd.functional.jacobian(f, z0[i])
        out.append(torch.linalg.slogdet(jac)[1])
    return torch.stack(out)


@pytest.mark.parametrize("variant", VARIANTS)
def test_log_det_equals_autograd_jacobian(variant):
    model, fns = make_model(variant), TargetFunctions(target())
    x, z0 = points(4)
    g = fns.grad(x)
    move = model.forward_move(x, g, z0, model.eps, fns.grad)
    brute = _jacobian_logdet(model, x, g, z0, fns)
    torch.testing.assert_close(move.log_det, brute, rtol=1e-9, atol=1e-9)
    assert (move.log_det - 4 * math.log(model.eps)).abs().min() > 1e-3  # the flow is not volume preserving


def test_adaptive_mala_log_det_and_inverse():
    model = AdaptiveMALAProposal(AdaptiveMALAConfig(4, eps=0.5)).double()
    randomize(model, 0.3)
    fns = TargetFunctions(target())
    x, z0 = points(4)
    g = fns.grad(x)
    move = model.forward_move(x, g, z0, model.eps, fns.grad)
    torch.testing.assert_close(move.log_det, _jacobian_logdet(model, x, g, z0, fns), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(model.log_density(x, g, move.x_new, model.eps, fns.grad), move.log_q,
                               rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("variant,num_steps", [("full", 1), ("full", 3), ("langevin", 2)])
def test_zero_outputs_is_mala(variant, num_steps):
    """Freshly built (output layers at zero): x' = x - eps^2/2 dU(x) + eps z0 and MALA's density."""
    t = target()
    cfg = LearnedProposalConfig(dim=4, width=8, num_steps=num_steps, eps=0.3, variant=variant)
    model = LearnedProposal(cfg).double()
    kernel, mala = LearnedSampler(t, model), MALAKernel(t, 0.3)
    x, z0 = points(8)
    g = t.energy_and_grad(x)[1]
    move = model.forward_move(x, g, z0, 0.3, kernel._fns.grad)
    torch.testing.assert_close(move.x_new, x - 0.045 * g + 0.3 * z0, rtol=1e-12, atol=1e-12)
    y = x + 0.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    torch.testing.assert_close(kernel.proposal_log_density(x, y), mala.proposal_log_density(x, g, y),
                               rtol=1e-10, atol=1e-10)
    am = AdaptiveMALA(t, step_size=0.3)
    am.model.double()
    torch.testing.assert_close(am.proposal_log_density(x, y), mala.proposal_log_density(x, g, y),
                               rtol=1e-10, atol=1e-10)


def test_proposal_entropy_of_zero_model_is_mala_entropy():
    t = target()
    kernel = LearnedSampler(t, LearnedProposal(LearnedProposalConfig(4, width=8, eps=0.3)).double())
    x, _ = points(3)
    h = kernel.proposal_entropy(kernel.init(x))
    torch.testing.assert_close(h, MALAKernel(t, 0.3).proposal_entropy(kernel.init(x)))


@pytest.mark.parametrize("variant,grads", [("full", 8), ("no_grad", 0), ("langevin", 1)])
def test_gradient_evaluations_are_counted(variant, grads):
    """Full model: 2N forward + 2N reverse (N = 2); variant 2 reads dU(x) from the state, evaluates dU(x')."""
    t = target()

    class Counting(Gaussian):
        calls = 0

        def energy_and_grad(self, x):
            Counting.calls += 1
            return super().energy_and_grad(x)

        def energy(self, x):  # without a gradient evaluation
            r = x - self._c.get("mean", x)
            return 0.5 * ((r @ self._c.get("precision", x)) * r).sum(-1)

    ct = Counting(MEAN, COV)
    kernel = LearnedSampler(ct, make_model(variant), seed=0)
    state = kernel.init(points()[0])
    Counting.calls = 0
    state, info = kernel.step(state)
    assert info.num_grad_evals == grads
    assert Counting.calls == grads
    am = AdaptiveMALA(t)
    assert am.step(am.init(points()[0]))[1].num_grad_evals == 1


class DroppedReverse(LearnedSampler):
    """Deliberately broken: uses log q(x'|x) for the reverse density too (correction 0)."""

    def propose(self, state):
        prop = super().propose(state)
        return Proposal(prop.state, torch.zeros_like(prop.log_correction), prop.num_grad_evals)


def _run(kernel, chains=200, draws=1000, seed=3):
    init = target().sample(chains, torch.Generator().manual_seed(seed + 100), dtype=torch.float64)
    return sample(kernel, init, draws, num_warmup=50, progress=False, seed=seed)


def assert_exact_and_broken_variant_fails(model):
    """Moments within 4 MCSE with the model as an MH proposal; beyond 8 MCSE once the reverse density is dropped."""
    t = target()
    res = _run(LearnedSampler(t, model))
    z_mean, z_var = moment_z_scores(res.draws, MEAN, COV.diagonal())
    assert z_mean.max() < 4 and z_var.max() < 4, (z_mean, z_var)
    assert 0.1 < res.acceptance_rate < 0.95
    bad = _run(DroppedReverse(t, model))
    zb_mean, zb_var = moment_z_scores(bad.draws, MEAN, COV.diagonal())
    assert max(zb_mean.max(), zb_var.max()) > 8, (zb_mean, zb_var)


@pytest.mark.parametrize("variant", ["full", "langevin"])
def test_random_weights_chain_has_correct_moments_and_broken_one_does_not(variant):
    assert_exact_and_broken_variant_fails(make_model(variant, num_steps=1, width=16, eps=0.8, scale=0.25, seed=2))


def make_preconditioned(variant, precondition, seed=0, **kw):
    """Random weights and a preconditioner fitted to distorted target draws (loc and L far from 0 and I)."""
    model = make_model(variant, seed=seed, **kw)
    cfg = LearnedProposalConfig(**{**model.config.__dict__, "precondition": precondition})
    pre = LearnedProposal(cfg).double()
    pre.load_state_dict(model.state_dict(), strict=False)
    gen = torch.Generator().manual_seed(seed + 50)
    draws = target().sample(400, gen, dtype=torch.float64)
    pre.fit_preconditioner(draws @ torch.tensor([[2.0, 0.5, 0, 0], [0, 0.3, 0, 0], [0, 0, 1.5, 0.2], [0, 0, 0, 0.7]],
                                                dtype=torch.float64) + 3.0)
    return pre


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("precondition", ["diag", "dense"])
def test_preconditioned_density_inverts_and_log_det_is_exact(variant, precondition):
    model, fns = make_preconditioned(variant, precondition), TargetFunctions(target())
    assert bool(model.preconditioner_fitted) and not model.needs_preconditioner
    x, z0 = points(4)
    g = fns.grad(x)
    move = model.forward_move(x, g, z0, model.eps, fns.grad)
    torch.testing.assert_close(model.log_density(x, g, move.x_new, model.eps, fns.grad), move.log_q,
                               rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(move.log_det, _jacobian_logdet(model, x, g, z0, fns), rtol=1e-9, atol=1e-9)


def test_preconditioned_zero_model_is_preconditioned_mala():
    """Output layers at zero: x' = x - eps^2/2 L L^T dU(x) + eps L z0, the Gaussian density of that move."""
    t = target()
    model = LearnedProposal(LearnedProposalConfig(dim=4, width=8, eps=0.3, precondition="dense")).double()
    model.fit_preconditioner(t.sample(300, torch.Generator().manual_seed(0), dtype=torch.float64))
    chol = model.scale
    assert (chol - torch.diag(chol.diagonal())).abs().max() > 0.1  # a dense factor
    fns = TargetFunctions(t)
    x, z0 = points(5)
    g = fns.grad(x)
    move = model.forward_move(x, g, z0, 0.3, fns.grad)
    expected = x - 0.045 * g @ chol @ chol.T + 0.3 * z0 @ chol.T
    torch.testing.assert_close(move.x_new, expected, rtol=1e-10, atol=1e-10)
    gauss = torch.distributions.MultivariateNormal(x - 0.045 * g @ chol @ chol.T, scale_tril=0.3 * chol)
    torch.testing.assert_close(move.log_q, gauss.log_prob(move.x_new), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("precondition", ["diag", "dense"])
def test_preconditioned_chain_has_correct_moments_and_broken_one_does_not(precondition):
    assert_exact_and_broken_variant_fails(make_preconditioned("full", precondition, seed=2, num_steps=1, width=16,
                                                              eps=0.6, scale=0.25))


def test_fit_preconditioner_rejects_bad_samples():
    model = LearnedProposal(LearnedProposalConfig(dim=4, width=8, precondition="dense"))
    with pytest.raises(ValueError, match="samples"):
        model.fit_preconditioner(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="NaN"):
        model.fit_preconditioner(torch.full((10, 4), float("nan")))
    with pytest.raises(ValueError, match="zero variance"):
        model.fit_preconditioner(torch.ones(10, 4))
    with pytest.raises(ValueError, match="precondition='none'"):
        LearnedProposal(LearnedProposalConfig(dim=4, width=8)).fit_preconditioner(torch.randn(10, 4))
    with pytest.raises(ValueError, match="precondition must be"):
        LearnedProposalConfig(dim=4, precondition="full")
