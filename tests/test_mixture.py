"""MixtureKernel and WarmupHandoff: moments within 4 MCSE, a state-dependent mixture that fails, the handoff."""
import pytest
import torch

from entropy_mcmc.samplers import (HMCKernel, MALAKernel, MixtureKernel, RandomWalkMetropolis, StepSizeAdaptation,
                                   WarmupHandoff, build_kernel, sample)
from entropy_mcmc.samplers.base import kernel_name
from entropy_mcmc.targets import Gaussian

from stats_helpers import moment_z_scores

COV = torch.tensor([[1.0, 0.6, 0.0], [0.6, 2.0, 0.3], [0.0, 0.3, 0.5]], dtype=torch.float64)
MEAN = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)


def target():
    return Gaussian(MEAN, COV)


def run(kernel, chains=200, draws=1500, seed=1, warmup=100):
    init = kernel_target(kernel).sample(chains, torch.Generator().manual_seed(seed + 100))
    return sample(kernel, init, draws, num_warmup=warmup, progress=False, seed=seed, warn=False)


def kernel_target(kernel):
    return kernel.parts[0].target


class StateDependentMixture(MixtureKernel):
    """Deliberately broken: the part is chosen by the state (a slow walk above the mean of x0, a fast one below),
    so the mixture no longer leaves the target invariant although each part does."""

    def choose_first(self, state):
        return state.position[:, 0] > MEAN[0].to(state.position)


@pytest.mark.parametrize("parts, p", [((lambda t: MALAKernel(t, 0.8), lambda t: RandomWalkMetropolis(t, 0.9)), 0.3),
                                      ((lambda t: HMCKernel(t, 0.35, num_steps=5), lambda t: MALAKernel(t, 0.8)), 0.5)])
def test_mixture_moments_within_4_mcse(parts, p):
    t = target()
    kernel = MixtureKernel(parts[0](t), parts[1](t), p)
    res = run(kernel)
    z_mean, z_var = moment_z_scores(res.draws, MEAN, COV.diagonal())
    assert z_mean.max() < 4 and z_var.max() < 4, (z_mean, z_var)
    # the info says which part moved each chain; the choice is Bernoulli(p) per chain and step
    first = (res.stats["mixture_component"] == 0).double()
    n = first.numel()
    assert abs(float(first.mean()) - p) < 4 * (p * (1 - p) / n) ** 0.5
    # each part's extras are kept where that part moved (HMC's Hamiltonian), NaN elsewhere
    if "potential_energy" in res.stats:
        h = res.stats["energy"]
        assert torch.isfinite(h[first.bool()]).all() and torch.isnan(h[~first.bool()]).all()


def test_state_dependent_mixture_fails_the_same_test():
    t = target()
    res = run(StateDependentMixture(RandomWalkMetropolis(t, 0.1), RandomWalkMetropolis(t, 2.0), 0.5))
    z_mean, z_var = moment_z_scores(res.draws, MEAN, COV.diagonal())
    assert max(z_mean.max(), z_var.max()) > 8, (z_mean, z_var)


def test_mixture_is_reproducible_and_its_parts_draw_from_its_generator():
    t = target()
    init = t.sample(16, torch.Generator().manual_seed(0))

    def draws(seed):
        return sample(MixtureKernel(MALAKernel(t, 0.8), RandomWalkMetropolis(t, 0.9), 0.4), init, 50,
                      progress=False, seed=seed, warn=False).draws

    assert torch.equal(draws(3), draws(3)) and not torch.equal(draws(3), draws(4))
    kernel = MixtureKernel(MALAKernel(t, 0.8), StepSizeAdaptation(RandomWalkMetropolis(t, 0.9)), 0.4)
    kernel.reseed(5)
    assert all(part.base.generator is kernel.generator for part in kernel.parts)


def test_a_part_without_a_gradient_cache_is_refreshed_for_the_part_that_needs_one():
    t = target()
    kernel = MixtureKernel(MALAKernel(t, 0.8), RandomWalkMetropolis(t, 0.9), 0.5)
    state = kernel.init(t.sample(64, torch.Generator().manual_seed(0)))
    assert state.grad is not None  # the richer part's state
    for i in range(5):  # RWM's moves drop the gradient; MALA's chains get it re-evaluated before they step
        state, info = kernel.step(state)
        assert state.grad is None
        # per chain on average: MALA's chains one evaluation, two with a refresh (after the first step); RWM's none
        share = float((info.extras["mixture_component"] == 0).double().mean())
        assert info.num_grad_evals == pytest.approx((1 if i == 0 else 2) * share)
    assert torch.isfinite(state.energy).all()
    torch.testing.assert_close(state.energy, t.energy(state.position))


def test_per_chain_step_sizes_are_cut_to_the_chains_of_each_part():
    t = target()
    mala = MALAKernel(t, torch.linspace(0.3, 0.9, 32, dtype=torch.float64))
    kernel = MixtureKernel(mala, RandomWalkMetropolis(t, 0.9), 0.5)
    res = sample(kernel, t.sample(32, torch.Generator().manual_seed(0)), 20, progress=False, seed=0, warn=False)
    used = res.stats["step_size"][res.stats["mixture_component"] == 0]
    chains = (res.stats["mixture_component"] == 0).nonzero()[:, 0]
    torch.testing.assert_close(used, mala.step_size[chains])
    assert mala.step_size.shape == (32,)


def test_mixture_argument_errors():
    t = target()
    for p in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="p must lie in"):
            MixtureKernel(MALAKernel(t), MALAKernel(t), p)
    with pytest.raises(TypeError, match="TransitionKernel"):
        MixtureKernel(MALAKernel(t), object(), 0.5)
    per_chain = StepSizeAdaptation(MALAKernel(t, 0.5), per_chain=True)
    kernel = MixtureKernel(per_chain, RandomWalkMetropolis(t, 0.9), 0.5)
    with pytest.raises(ValueError, match="per chain"):
        sample(kernel, t.sample(8, torch.Generator().manual_seed(0)), 5, num_warmup=5, progress=False)


def test_handoff_warms_up_with_one_kernel_and_samples_with_the_other():
    t = target()
    helper = StepSizeAdaptation(MALAKernel(t, 0.1), target_accept=0.574, adapt_mass_matrix="dense")
    slow = RandomWalkMetropolis(t, 0.05)  # stands for a kernel that cannot adapt and moves little
    kernel = WarmupHandoff(MixtureKernel(helper, slow, 0.2), helper)
    assert kernel_name(kernel) == ("WarmupHandoff(StepSizeAdaptation(MALAKernel), "
                                   "MixtureKernel(StepSizeAdaptation(MALAKernel), RandomWalkMetropolis))")
    init = torch.full((64, 3), 30.0, dtype=torch.float64)  # far outside the typical set
    res = sample(kernel, init, 300, num_warmup=300, progress=False, seed=0, collect_warmup=True, warn=False)
    assert "mixture_component" not in res.warmup_stats and "mixture_component" in res.stats
    assert not helper.adapting and helper.base.step_size > 0.3  # adapted during warmup, frozen after
    assert float(slow.step_size) == 0.05  # the sampling kernel's step size is left alone
    assert ((res.draws[:, 0] - MEAN) / COV.diagonal().sqrt()).abs().max() < 5  # warmup reached the typical set
    # without warmup, the handoff goes straight to the sampling kernel
    res0 = sample(WarmupHandoff(slow, StepSizeAdaptation(MALAKernel(t, 0.1))), init, 3, progress=False, seed=0,
                  warn=False)
    assert res0.kernel_name.startswith("WarmupHandoff") and "mixture_component" not in res0.stats
    assert (res0.draws - 30.0).abs().max() < 1.0  # only RWM steps of 0.05 from the start


def test_registry_spec_with_a_warmup_kernel_builds_the_handoff_and_the_mixture():
    from entropy_mcmc.samplers import KernelOption, KernelSpec
    from entropy_mcmc.samplers.registry import mixture_share

    spec = KernelSpec(lambda t, step_size=0.05: RandomWalkMetropolis(t, step_size), "slow walk", step_size=None,
                      adapts_step_size=False, warmup_kernel="mala",
                      options=(KernelOption("mixture_share", mixture_share, 0.1, "share"),))
    t = target()
    k = build_kernel(spec, t, num_warmup=100)
    assert isinstance(k, WarmupHandoff) and isinstance(k.kernel, MixtureKernel) and k.kernel.p == 0.1
    assert k.kernel.parts[0] is k.warmup_kernel and k.warmup_kernel.adapt_mass_matrix == "dense"
    assert k.warmup_kernel.target_accept == 0.574  # the warmup kernel's own defaults
    tuned = build_kernel(spec, t, num_warmup=100, target_accept=0.7, adapt_mass="diag").warmup_kernel
    assert tuned.target_accept == 0.7 and tuned.adapt_mass_matrix == "diag"
    assert isinstance(build_kernel(spec, t, num_warmup=100, mixture_share=0).kernel, RandomWalkMetropolis)
    assert isinstance(build_kernel(spec, t, num_warmup=0), MixtureKernel)
    assert isinstance(build_kernel(spec, t, num_warmup=0, mixture_share=0.0), RandomWalkMetropolis)
    with pytest.raises(ValueError, match="mixture_share"):
        build_kernel(spec, t, num_warmup=0, mixture_share=1.0)
