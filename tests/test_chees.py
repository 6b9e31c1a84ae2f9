"""ChEES-HMC: the Halton jitter by hand, lengths that do not depend on the state, the adapted trajectory length
against the criterion's analytic optimum on Gaussians of known scales, moments within MCSE, broken variants."""
import math

import pytest
import torch

from entropy_mcmc.samplers import ChainState, ChEESAdaptation, ChEESHMC, build_kernel, sample, select_chains
from entropy_mcmc.samplers.chees import van_der_corput
from entropy_mcmc.samplers.metropolis import Proposal
from entropy_mcmc.targets import Gaussian
from stats_helpers import moment_z_scores

pytestmark = pytest.mark.usefixtures("one_thread")

# E_u[sin^2(u T)] = 1/2 - sin(2T) / (4T), u ~ U(0, 1), is largest where tan 2T = 2T
T_OPT = 0.5 * 4.493409457909064


def test_halton_points_by_hand_and_the_chees_optimum():
    assert [van_der_corput(i) for i in range(1, 8)] == [0.5, 0.25, 0.75, 0.125, 0.625, 0.375, 0.875]
    f = lambda t: 0.5 - math.sin(2 * t) / (4 * t)  # noqa: E731
    assert f(T_OPT) > max(f(T_OPT - 0.01), f(T_OPT + 0.01))


def test_the_number_of_steps_does_not_depend_on_the_state():
    target = Gaussian(torch.zeros(2), torch.eye(2))
    runs = []
    for scale in (0.1, 3.0):
        kernel = ChEESHMC(target, 0.2, trajectory_length=2.0)
        init = scale * torch.randn(8, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        runs.append(sample(kernel, init, 12, progress=False, seed=1, warn=False).stats["n_steps"])
    assert torch.equal(runs[0], runs[1])
    expected = [math.ceil(van_der_corput(i) * 2.0 / 0.2) for i in range(1, 13)]
    assert runs[0][0].tolist() == expected and (runs[0] == runs[0][:1]).all()


class DescendingChEES(ChEESAdaptation):
    """Deliberately broken: follows the ChEES gradient downhill."""

    def criterion_gradient(self, info):
        g = super().criterion_gradient(info)
        return None if g is None else -g


def adapted_length(largest_sd, adaptation=ChEESAdaptation, seed=0):
    sd = torch.tensor([0.5, 1.0, 2.0, largest_sd])
    target = Gaussian(torch.zeros(4), torch.diag(sd ** 2))
    kernel = build_kernel("chees-hmc", target, num_warmup=300, adapt_mass=False)
    kernel.kernel = adaptation(kernel.kernel.kernel)  # StepSizeAdaptation(ChEESAdaptation(ChEESHMC))
    init = target.sample(128, torch.Generator().manual_seed(seed), torch.float64)
    sample(kernel, init, 1, num_warmup=300, progress=False, seed=seed, warn=False)
    return kernel.base.trajectory_length


@pytest.mark.parametrize("largest_sd", [4.0, 8.0])
def test_adapted_length_is_the_chees_optimum_of_the_widest_direction(largest_sd):
    """Without a mass matrix the criterion is dominated by the widest direction, where the small step the narrow
    ones impose makes the leapfrog nearly exact: T -> 2.2467 sd."""
    t = adapted_length(largest_sd)
    assert 0.8 < t / (T_OPT * largest_sd) < 1.2, t


def test_descending_the_criterion_fails_the_same_test():
    t = adapted_length(4.0, DescendingChEES)
    assert not 0.8 < t / (T_OPT * 4.0) < 1.2, t


COV = torch.tensor([[1.0, 0.6, 0.0], [0.6, 2.0, 0.3], [0.0, 0.3, 0.5]], dtype=torch.float64)
MEAN = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)


class FarthestPointChEES(ChEESHMC):
    """Deliberately broken: integrates the jittered length but proposes, per chain, the point of the trajectory
    farthest from the mean (a state-dependent length), with the MH correction of that point."""

    def propose(self, state):
        self.halton_index += 1
        s = float(torch.as_tensor(self.step_size).mean())
        n = max(math.ceil(van_der_corput(self.halton_index) * self.trajectory_length / s), 1)
        metric = self.metric(state.position)
        p0 = metric.sample_momentum(self.randn_like(state.position))
        cur, p = state, p0
        best, best_p, best_d = None, None, None
        for _ in range(n):
            x, u, g, p = self.integrate(cur, p, 1)
            cur = ChainState(x, u, g)
            d = (x - MEAN.to(x)).pow(2).sum(1)
            take = torch.ones_like(d, dtype=torch.bool) if best is None else d > best_d
            best = cur if best is None else select_chains(take, cur, best)
            best_p = p if best_p is None else torch.where(take[:, None], p, best_p)
            best_d = d if best_d is None else torch.where(take, d, best_d)
        k0, k1 = metric.kinetic_energy(p0), metric.kinetic_energy(best_p)
        self.last_transition = (state.position, best.position, best_p, van_der_corput(self.halton_index))
        return Proposal(best, k0 - k1, n, {"energy": best.energy + k1, "initial_energy": state.energy + k0})


def run_chees(build, seed=1, **options):
    target = Gaussian(MEAN, COV)
    kernel = build_kernel(build, target, num_warmup=200, **options)
    init = target.sample(128, torch.Generator().manual_seed(seed + 100), torch.float64)
    return sample(kernel, init, 600, num_warmup=200, progress=False, seed=seed, warn=False)


# chees-hmc (BlackJAX's setup: 0.651, no step-size jitter) and hmc --adapt-path-length chees (hmc's 0.8 and
# step-size jitter 0.5 on top of the Halton jitter of the length)
VARIANTS = [("chees-hmc", {}), ("hmc", {"adapt_path_length": "chees"})]


@pytest.mark.parametrize("name, options", VARIANTS)
def test_moments_within_4_mcse(name, options):
    res = run_chees(name, **options)
    z_mean, z_var = moment_z_scores(res.draws, MEAN, COV.diagonal())
    assert z_mean.max() < 4 and z_var.max() < 4, (z_mean, z_var)
    assert 0.5 < res.acceptance_rate < 0.95
    length = res.stats["trajectory_length"]
    assert (length == length.flatten()[0]).all() and res.stats["n_steps"].float().mean() > 1  # frozen after warmup


@pytest.mark.parametrize("name, options", VARIANTS)
def test_state_dependent_length_fails_the_same_test(name, options):
    import dataclasses

    from entropy_mcmc.samplers import get_kernel_spec

    def build(target, step_size, num_steps, adapt_path_length, max_num_steps, **kw):
        assert adapt_path_length == "chees"
        return ChEESAdaptation(FarthestPointChEES(target, step_size, num_steps * step_size,
                                                  max_num_steps=max_num_steps, **kw))

    spec = dataclasses.replace(get_kernel_spec(name), build=build)
    res = run_chees(spec, **options)
    z_mean, z_var = moment_z_scores(res.draws, MEAN, COV.diagonal())
    assert max(z_mean.max(), z_var.max()) > 8, (z_mean, z_var)


def test_hmc_option_builds_chees_from_its_initial_length():
    from entropy_mcmc.samplers import StepSizeAdaptation, StepSizeJitter

    target = Gaussian(MEAN, COV)
    kernel = build_kernel("hmc", target, num_warmup=10, step_size=0.05, num_steps=7, adapt_path_length="chees")
    assert isinstance(kernel, StepSizeJitter) and isinstance(kernel.kernel, StepSizeAdaptation)
    assert isinstance(kernel.kernel.kernel, ChEESAdaptation) and isinstance(kernel.base, ChEESHMC)
    assert kernel.base.trajectory_length == pytest.approx(0.35) and kernel.kernel.target_accept == 0.8
    preset = build_kernel("chees-hmc", target, num_warmup=10)
    assert isinstance(preset.kernel, ChEESAdaptation) and preset.target_accept == 0.651
    assert preset.base.trajectory_length == pytest.approx(0.1)  # one step of the initial 0.1, as BlackJAX
    plain = build_kernel("hmc", target, num_warmup=10)
    assert type(plain.base).__name__ == "HMCKernel" and plain.base.num_steps == 4
    with pytest.raises(ValueError, match="none, chees"):
        build_kernel("hmc", target, adapt_path_length="adam")
    with pytest.raises(ValueError, match="num_steps"):
        build_kernel("hmc", target, num_steps=0, adapt_path_length="chees")


def test_cli_sample_with_chees_hmc(capsys):
    from entropy_mcmc import cli

    assert cli.main(["sample", "--target", "scg2", "--kernel", "chees-hmc", "--chains", "8", "--warmup", "30",
                     "--draws", "10", "--no-progress", "--no-summary"]) == 0
    assert "chees-hmc on scg2" in capsys.readouterr().out


def test_cli_hmc_adapt_path_length_chees(tmp_path, capsys):
    import arviz as az

    from entropy_mcmc import cli

    out = tmp_path / "draws.nc"
    assert cli.main(["sample", "--target", "scg2", "--kernel", "hmc", "--adapt-path-length", "chees", "--chains", "8",
                     "--warmup", "30", "--draws", "16", "--leapfrog-steps", "10", "--no-progress", "--no-summary",
                     "--out", str(out)]) == 0
    assert "hmc on scg2" in capsys.readouterr().out
    stats = az.from_netcdf(out).sample_stats
    n = stats["n_steps"].values
    assert len(set(stats["trajectory_length"].values.flatten().tolist())) == 1
    assert len(set(n[0].tolist())) > 1  # Halton-jittered numbers of steps
    with pytest.raises(SystemExit):
        cli.main(["sample", "--target", "scg2", "--kernel", "hmc", "--adapt-path-length", "adam"])


def test_front_door_hmc_with_adapt_path_length_chees():
    from entropy_mcmc.infer import HMC, MCMC

    mcmc = MCMC(HMC(potential_fn=lambda x: 0.5 * (x ** 2).sum(-1), event_shape=2, adapt_path_length="chees"),
                num_warmup=50, num_samples=20, num_chains=8, progress_bar=False)
    mcmc.run(0, init_params=torch.zeros(8, 2), extra_fields=("n_steps", "trajectory_length"))
    extra = mcmc.get_extra_fields()
    assert extra["trajectory_length"].unique().numel() == 1 and extra["n_steps"].unique().numel() > 1


def quartic_run(statistic):
    """U(x) = sum x^4 / 4 (curvature 3 x^2), 15 chains near the bulk and one at x = (30, 30), where only a step
    below 2 / sqrt(2700) = 0.04 is stable while the bulk takes ~0.5."""
    from entropy_mcmc.targets.potential import PotentialFn

    init = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    init[0] = 30.0
    target = PotentialFn(lambda x: (x ** 4).sum(-1) / 4, init, "vectorized")
    kernel = build_kernel("chees-hmc", target, num_warmup=200, adapt_mass=False)
    assert kernel.statistic == "harmonic"  # ChEESAdaptation declares it
    kernel.statistic = statistic
    # without the stranded-chain move, which would carry chain 0 to the bulk whatever the step size does
    return sample(kernel, init.clone(), 200, num_warmup=200, progress=False, seed=0, warn=False,
                  restart_stranded=False).draws


def test_the_harmonic_mean_of_acceptances_brings_a_far_chain_into_the_bulk():
    draws = quartic_run("harmonic")
    # E[x^2] = 2 Gamma(3/4) / Gamma(1/4) = 0.676 under exp(-x^4/4)
    assert draws[0].abs().max() < 30 and (draws[0] ** 2).mean() < 2.0


def test_the_arithmetic_mean_leaves_it_stuck():
    draws = quartic_run("mean")
    assert (draws[0] == 30.0).all()


class NoRestartChEES(ChEESAdaptation):
    """Deliberately broken: keeps Adam's state and the running average across a new mass matrix."""

    def _update(self, info):
        self._inv_mass = self.base.inv_mass
        super()._update(info)


@pytest.mark.parametrize("adaptation, lo, hi", [(ChEESAdaptation, 0.55, 1.3), (NoRestartChEES, 0.0, 0.5)])
def test_a_new_mass_matrix_restarts_the_length_adaptation(adaptation, lo, hi):
    """sds 0.01, 1 and 100: the diagonal mass matrix whitens them, where the criterion's optimum is T_OPT; Adam's
    second moment from the unwhitened gradients (1e4 times larger) stalls the length unless it restarts."""
    sd = torch.tensor([0.01, 1.0, 100.0], dtype=torch.float64)
    target = Gaussian(torch.zeros(3, dtype=torch.float64), torch.diag(sd ** 2))
    for seed in (0, 1):
        kernel = build_kernel("chees-hmc", target, num_warmup=500)
        kernel.kernel = adaptation(kernel.kernel.kernel)
        init = target.sample(64, torch.Generator().manual_seed(seed), torch.float64)
        sample(kernel, init, 1, num_warmup=500, progress=False, seed=seed, warn=False)
        assert torch.allclose(kernel.base.inv_mass.sqrt(), sd, rtol=0.3)
        assert lo < kernel.base.trajectory_length / T_OPT < hi, kernel.base.trajectory_length


class KeepLengthChEES(ChEESAdaptation):
    """Deliberately broken: restarts Adam on a new mass matrix but keeps T, tuned in the old units."""

    def _set_length(self, length):
        if self.base.inv_mass is not self._inv_mass:
            return
        super()._set_length(length)


@pytest.mark.parametrize("adaptation, lo, hi", [(ChEESAdaptation, 0.4, 1.3), (KeepLengthChEES, 10.0, math.inf)])
def test_a_new_mass_matrix_restarts_the_length_at_the_whitened_scale(adaptation, lo, hi):
    """sds 1000: before the first mass matrix T grows towards 2247 (capped at 1000 steps); whitened, the optimum is
    T_OPT, ~2.2 steps. Kept, T would need ~240 of Adam's steps to come down, each transition running hundreds of
    leapfrog steps meanwhile; restarted at 1, it is within the warmup's reach."""
    target = Gaussian(torch.zeros(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64) * 1e6)
    for seed in (0, 1):
        kernel = build_kernel("chees-hmc", target, num_warmup=250)
        kernel.kernel = adaptation(kernel.kernel.kernel)
        init = target.sample(64, torch.Generator().manual_seed(seed), torch.float64)
        sample(kernel, init, 1, num_warmup=250, progress=False, seed=seed, warn=False)
        assert lo < kernel.base.trajectory_length / T_OPT < hi, kernel.base.trajectory_length
