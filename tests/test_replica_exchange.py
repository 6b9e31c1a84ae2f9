"""Replica exchange: on a mixture whose modes one chain never crosses between (0.8 / 0.2, 10 sds apart) its b = 1
draws hold the weights within 4 MCSE while plain MALA does not, a swap with the wrong sign fails the same test, a
Gaussian keeps its moments; the registry, the negative phase of ML training and the EBM commands use it; bad input
is one line."""
import numpy as np
import pytest
import torch
from torch import nn

from entropy_mcmc.diagnostics import mcse
from entropy_mcmc.ebm_training import EnergyTarget, NegativePhase
from entropy_mcmc.samplers import MALAKernel, ReplicaExchange, build_kernel, sample
from entropy_mcmc.targets import Gaussian
from entropy_mcmc.targets.base import Target
from entropy_mcmc.targets.gaussian import GaussianMixture
from stats_helpers import moment_z_scores

pytestmark = pytest.mark.usefixtures("one_thread")
WEIGHTS = (0.8, 0.2)
MIXTURE = GaussianMixture(torch.tensor([[-5.0], [5.0]]), 1.0, torch.tensor(WEIGHTS))
START = torch.full((32, 1), 5.0, dtype=torch.float64)  # every chain in the light mode


def weight_z(draws: torch.Tensor) -> float:
    """(share of draws in the heavy mode - 0.8) / its MCSE."""
    inside = (draws[..., 0] < 0).double().numpy()
    return float((inside.mean() - WEIGHTS[0]) / mcse(inside[..., None])[0])


def run(kernel, seed=1):
    return sample(kernel, START, 1500, 300, seed=seed, progress=False, warn=False)


class WrongSign(ReplicaExchange):
    """Deliberately broken: a swap accepted with the inverse of its ratio (the cold replica takes the higher energy)."""

    def swap_log_ratio(self, delta_beta, u_cold, u_hot):
        return -super().swap_log_ratio(delta_beta, u_cold, u_hot)


def test_mode_weights_right_with_replica_exchange_and_wrong_with_mala_alone():
    res = run(build_kernel("mala", MIXTURE, num_warmup=300, replicas=4))
    assert abs(weight_z(res.draws)) < 4, weight_z(res.draws)
    swaps = {k: float(v.double().nanmean()) for k, v in res.stats.items() if k.startswith("swap_accept_")}
    assert sorted(swaps) == ["swap_accept_0_1", "swap_accept_1_2", "swap_accept_2_3"]
    assert all(0.3 < a < 1 for a in swaps.values()), swaps
    assert res.draws.shape == (32, 1500, 1) and res.stats["energy"].shape == (32, 1500)
    assert res.num_grad_evals == 4 * 1500  # four replicas of one MALA gradient per chain and step
    plain = run(build_kernel("mala", MIXTURE, num_warmup=300))
    in_heavy = plain.draws[..., 0] < 0
    assert (in_heavy.all(1) | (~in_heavy).all(1)).all()  # no chain crosses while sampling
    share = float(in_heavy.double().mean())  # the chains that jumped while warmup's first steps were huge
    assert abs(weight_z(plain.draws)) > 4 and abs(share - WEIGHTS[0]) > 0.15, (share, weight_z(plain.draws))


def test_a_swap_with_the_wrong_sign_fails_the_same_test():
    kernel = WrongSign(MIXTURE, lambda t: build_kernel("mala", t), num_replicas=4)
    kernel.adapt_step_size(0.574, adapt_mass_matrix="dense")
    z = weight_z(run(kernel).draws)
    assert abs(z) > 10, z


def test_a_gaussian_keeps_its_moments_at_b_1():
    target = Gaussian(torch.tensor([1.0, -2.0]), torch.tensor([[1.0, 0.6], [0.6, 2.0]]))
    kernel = build_kernel("hmc", target, num_warmup=300, replicas=3, max_temperature=5.0, num_steps=3)
    res = sample(kernel, torch.zeros(16, 2, dtype=torch.float64), 1000, 300, seed=3, progress=False, warn=False)
    z_mean, z_var = moment_z_scores(res.draws, target.mean, target.cov.diagonal())
    assert (z_mean < 4).all() and (z_var < 4).all(), (z_mean, z_var)
    s = kernel.step_size
    assert s.shape == (3,) and (s[1:] > s[:-1]).all()  # hotter replicas adapt wider steps
    assert res.stats["step_size"].shape == (16, 1000)  # the b = 1 replica's, jittered per chain


def test_nuts_runs_every_row_and_a_subset_is_refused():
    kernel = build_kernel("nuts", MIXTURE, replicas=2)
    assert not kernel.inner.base.compact  # NUTS would evaluate the active rows only
    state = kernel.init(START[:4])
    state, info = kernel.step(state)
    assert state.position.shape == (4, 1) and info.acceptance_prob.shape == (4,)
    with pytest.raises(ValueError, match="got 3 rows; a kernel that evaluates a subset"):
        kernel.tempered.energy(torch.zeros(3, 1))


class MixtureEnergy(nn.Module):
    """The 1-D mixture as an energy network with a (fixed) parameter."""

    def __init__(self):
        super().__init__()
        self.log_w = nn.Parameter(torch.tensor(WEIGHTS, dtype=torch.float64).log())

    def forward(self, x):
        return -torch.logsumexp(self.log_w - 0.5 * (x - torch.tensor([-5.0, 5.0], dtype=x.dtype)) ** 2, -1)


def test_negative_phase_buffer_takes_the_weights_and_resumes_per_temperature():
    def phase(replicas):
        options = {"replicas": replicas} if replicas else {}
        p = NegativePhase(EnergyTarget(MixtureEnergy(), event_shape=(1,)), kernel="mala", k_steps=20,
                          buffer_size=256, reinit_fraction=0.0, event_shape=(1,), dtype=torch.float64,
                          noise_scale=0.1, kernel_options=options)
        p.buffer.positions += 5.0
        return p

    shares = {}
    for replicas in (None, 4):
        p = phase(replicas)
        for _ in range(60):
            p(torch.zeros(64, 1, dtype=torch.float64))
        shares[replicas] = float((p.buffer.positions < 0).double().mean())
    assert shares[None] == 0.0 and abs(shares[4] - WEIGHTS[0]) < 0.08, shares
    s = p.kernel.step_size_value
    assert s.shape == (4,) and (s[1:] > s[:-1]).all() and abs(p.accept - 0.6) < 0.15
    resumed = phase(4)
    resumed.load_state_dict(p.state_dict())
    x = torch.zeros(64, 1, dtype=torch.float64)
    assert torch.equal(resumed(x), p(x))  # bitwise, per-temperature step sizes and their control included
    resumed(x[:16])  # fewer chains: step sizes regrouped, the control restarted from them
    control = resumed.adaptation.state_dict()["state"]
    assert control["t"] == 1 and control["log_s"].shape == (4 * 16,)


def test_train_and_sample_ebm_commands(tmp_path):
    from entropy_mcmc.cli import main

    out = tmp_path / "m.pt"
    assert main(["train-ebm", "--data", "two-moons", "--num", "256", "--loss", "ml", "--kernel", "mala",
                 "--replicas", "3", "--k-steps", "2", "--steps", "4", "--batch-size", "32", "--buffer-size", "64",
                 "--holdout", "0", "--out", str(out), "--no-progress"]) == 0
    state = torch.load(out, weights_only=True)
    assert state["config"]["kernel_options"] == {"replicas": 3} and state["ml"]["step_size"].shape == (3,)
    for extra, replicas in (([], 3), (["--replicas", "5", "--max-temperature", "20"], 5)):
        npz = tmp_path / f"s{replicas}.npz"
        assert main(["sample-ebm", "--model", str(out), "--num", "20", "--steps", "5", "--out", str(npz),
                     "--no-progress", *extra]) == 0
        with np.load(npz) as f:
            assert f["samples"].shape == (20, 2) and np.isfinite(f["samples"]).all()


class BinaryTarget(Target):
    state_space = "binary"

    def energy(self, x):
        return x.sum(-1)


@pytest.mark.parametrize("call, message", [
    (lambda: build_kernel("mala", MIXTURE, replicas=1), "number of replicas >= 2, got 1"),
    (lambda: build_kernel("mala", MIXTURE, replicas=3, max_temperature=1.0), "max_temperature must be a finite"),
    (lambda: build_kernel("mala", MIXTURE, max_temperature=5.0), "give replicas too"),
    (lambda: ReplicaExchange(MIXTURE, MALAKernel, inverse_temperatures=[1.0, 0.2, 0.5]), "decrease strictly"),
    (lambda: ReplicaExchange(MIXTURE, MALAKernel, inverse_temperatures=[1.0, 0.5, 0.0]), "staying positive"),
    (lambda: ReplicaExchange(MIXTURE, MALAKernel, inverse_temperatures=[0.9, 0.5]), "start at 1"),
    (lambda: ReplicaExchange(MIXTURE, MALAKernel, inverse_temperatures=[1.0]), ">= 2 inverse temperatures"),
    (lambda: ReplicaExchange(MIXTURE, lambda t: MALAKernel(MIXTURE), num_replicas=2), "on the tempered target"),
    (lambda: build_kernel("bernoulli-gibbs", MIXTURE, replicas=2), "moves binary states, but target"),
    (lambda: build_kernel("bernoulli-gibbs", BinaryTarget((3,)), replicas=2), "tempers real states; kernel"),
    (lambda: build_kernel("learned", MIXTURE, replicas=2), "it was trained for b = 1"),
    (lambda: build_kernel("mala", MIXTURE, replicas=2, per_chain=True), "adapts per temperature"),
])
def test_bad_input_is_one_line(call, message):
    with pytest.raises((ValueError, TypeError), match=message) as err:
        call()
    assert "\n" not in str(err.value)
