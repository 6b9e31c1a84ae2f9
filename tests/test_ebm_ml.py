"""Maximum-likelihood (PCD) training with a kernel as negative sampler (thesis section 4.5, appendix C.2): the
fixed point on a quadratic energy, the replay buffer, bitwise resume, the learned sampler trained in the loop,
refusals, the logit transform and the train-ebm / sample-ebm commands."""
import csv
import math

import numpy as np
import pytest
import torch

from entropy_mcmc.diagnostics import mcse
from entropy_mcmc.ebm_training import contrastive, ml_sampling, train_ebm
from entropy_mcmc.samplers.adaptation import RobbinsMonro
from entropy_mcmc.ebm_training.contrastive import ContrastiveTrainer, MLTrainConfig
from entropy_mcmc.ebm_training.negative_phase import ReplayBuffer
from entropy_mcmc.ebm_training.data import load_data
from entropy_mcmc.ebm_training.energy_target import EnergyTarget
from entropy_mcmc.ebm_training.networks import MLPEnergy, QuadraticEnergy
from entropy_mcmc.ebm_training.preprocess import LogitTransform, infer_levels
from entropy_mcmc.samplers import build_kernel, sample
from entropy_mcmc.samplers.base import ChainState, StepInfo, TransitionKernel
from entropy_mcmc.samplers.learned import LearnedProposal, LearnedProposalConfig, LearnedSampler
from entropy_mcmc.samplers.metropolis import Proposal
from entropy_mcmc.targets import Gaussian

from stats_helpers import moment_z_scores

pytestmark = pytest.mark.usefixtures("one_thread")
MEAN = torch.tensor([1.0, -1.0], dtype=torch.float64)
COV = torch.tensor([[1.0, 0.6], [0.6, 2.0]], dtype=torch.float64)


@pytest.fixture(scope="module")
def gaussian_data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2000, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(COV).T + MEAN


@pytest.fixture(scope="module")
def moons():
    return load_data("two-moons", num=512, seed=0)[0]


def quadratic_trainer(data, kernel="mala", seed=0, **kw):
    cfg = dict(kernel=kernel, steps=2000, batch_size=64, buffer_size=512, k_steps=3, lr=0.01, standardize=False,
               dtype="float64", reinit_fraction=0.0, log_every=100, energy_penalty=0.0)
    cfg.update(kw)
    return ContrastiveTrainer(QuadraticEnergy(2), data, MLTrainConfig(**cfg), seed=seed)


def stats(model):
    c = model.covariance.detach()
    return torch.cat([model.mean.detach(), c[0, :1], c[0, 1:], c[1, 1:]]).numpy()


def fixed_point_z_scores(data, burn_in=500, steps=2000, **kw):
    """|time average of (mean, cov entries) over the iterates - the data's sample mean and covariance| / MCSE.

    The ML fixed point of a quadratic energy is the data's sample mean and (1/n) covariance. With constant
    learning rate the iterates fluctuate around it as a stationary process after burn-in; the standard error of
    their time average is the MCSE of that trace (ArviZ, autocorrelation included), which gives the tolerance.
    A run that diverges (non-finite loss or energies) scores inf."""
    mu = data.mean(0)
    c = (data - mu).T @ (data - mu) / data.shape[0]
    truth = torch.cat([mu, c[0, :1], c[0, 1:], c[1, 1:]]).numpy()
    trainer = quadratic_trainer(data, **kw)
    try:
        trainer.train(steps=burn_in, progress=False)
        trace = []
        while trainer.step < steps:
            trainer.update()
            trace.append(stats(trainer.model))
    except (FloatingPointError, ValueError):
        return np.full(5, np.inf), trainer
    trace = np.array(trace)[None]
    if not np.isfinite(trace).all():
        return np.full(5, np.inf), trainer
    return np.abs(trace.mean((0, 1)) - truth) / mcse(trace), trainer


def test_quadratic_energy_recovers_data_mean_and_covariance(gaussian_data, monkeypatch):
    z, trainer = fixed_point_z_scores(gaussian_data)
    assert z.max() < 4, z
    assert abs(trainer.history["accept"][-1] - 0.6) < 0.05  # the step size follows the 0.6 target
    # deliberately broken: the negative phase with the wrong sign
    monkeypatch.setattr(contrastive, "ml_loss", lambda e_d, e_n, penalty: e_n.mean() - e_d.mean())
    z_bad, _ = fixed_point_z_scores(gaussian_data, burn_in=200, steps=400)
    assert z_bad.max() > 50, z_bad
    monkeypatch.undo()
    # an inexact negative sampler: Langevin without the accept step at s = 0.7 (half MALA's adapted step, stable)
    # spreads the negatives by O(s^2), so the fitted covariance shrinks: var(x1) about 0.79 against 0.98 (z ~ 13)
    z_ula, trainer = fixed_point_z_scores(gaussian_data, burn_in=300, steps=800, kernel="ula", step_size=0.7)
    assert np.isfinite(stats(trainer.model)).all() and z_ula.max() > 8, z_ula


def control_z_score(data, kernel, step_size, updates=80, window=40, **kw):
    """|mean acceptance of the last `window` updates - 0.6| / its MCSE (autocorrelation included), on the quadratic
    energy frozen at N(0, I) (lr 1e-12), so the step-size control alone moves the acceptance: at its fixed point
    E[accept] = 0.6 exactly, and the window's mean is within a few MCSE of it once the control has converged."""
    trainer = quadratic_trainer(data, kernel=kernel, lr=1e-12, step_size=step_size, steps=updates, **kw)
    acc = np.array([trainer.update()["accept"] for _ in range(updates)])[-window:]
    return abs(acc.mean() - 0.6) / max(float(mcse(acc[None, :, None])[0]), 1e-12), acc.mean()


@pytest.mark.parametrize("kernel", ["mala", "hmc"])
def test_step_size_control_reaches_the_target_acceptance_within_80_updates(gaussian_data, kernel, monkeypatch):
    for start in (0.1, 5.0):  # acceptance about 1 and about 0 at the start
        z, acc = control_z_score(gaussian_data, kernel, start)
        assert z < 4, (start, z, acc)
    # the constant rate 0.05 alone (the control before the decaying rate) is still at acceptance ~0.99
    z, acc = control_z_score(gaussian_data, kernel, 0.1, adapt_rate_init=0.0)
    assert z > 20 and acc > 0.9, (z, acc)
    # deliberately broken: the correction's sign flipped (log s -= r (accept - 0.6)) runs away from the target
    real = RobbinsMonro.update
    monkeypatch.setattr(RobbinsMonro, "update", lambda self, acc: real(self, 2 * self.target_accept - acc))
    z, acc = control_z_score(gaussian_data, kernel, 0.1)
    assert z > 20, (z, acc)


class DroppedReverse(LearnedSampler):
    """Deliberately broken: uses log q(x'|x) for the reverse density too (correction 0)."""

    def propose(self, state):
        prop = super().propose(state)
        return Proposal(prop.state, torch.zeros_like(prop.log_correction), prop.num_grad_evals)


def test_learned_sampler_trained_in_the_loop_stays_exact(gaussian_data):
    """After 40 updates with the learned sampler (variant 2) trained alongside, the same kernel, on the frozen
    quadratic energy (a Gaussian with known moments), keeps its moments within 4 MCSE; without the reverse
    density they are off by more than 8."""
    trainer = quadratic_trainer(gaussian_data, kernel="learned", steps=40, k_steps=3, sampler_eps=0.8,
                                sampler_flow_steps=1, sampler_width=16, sampler_batch=64, lr=0.02,
                                sampler_lr=3e-3, sampler_gate=1.0)
    trainer.train(progress=False)
    kernel = trainer.kernel
    model = kernel.model
    assert isinstance(model, LearnedProposal) and model.config.variant == "langevin"
    outputs = [p for n, p in model.named_parameters() if n.endswith(("w_out", "b_out"))]
    assert len(outputs) == 4 and all(p.abs().max() > 1e-3 for p in outputs)  # trained away from MALA (zeros)
    mean, cov = trainer.model.mean.detach(), trainer.model.covariance.detach()
    init = Gaussian(mean, cov).sample(200, torch.Generator().manual_seed(5), dtype=torch.float64)
    res = sample(kernel, init, 1000, num_warmup=50, progress=False, seed=3)
    z_mean, z_var = moment_z_scores(res.draws, mean, cov.diagonal())
    assert z_mean.max() < 4 and z_var.max() < 4, (z_mean, z_var)
    bad = sample(DroppedReverse(kernel.target, model), init, 1000, num_warmup=50, progress=False, seed=3)
    zb_mean, zb_var = moment_z_scores(bad.draws, mean, cov.diagonal())
    assert max(zb_mean.max(), zb_var.max()) > 8, (zb_mean, zb_var)


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("dtype,device", [("float32", "cpu"), ("float64", "cpu"),
                                          pytest.param("float32", "cuda", marks=CUDA)])
def test_buffer_keeps_dtype_and_reinitializes_an_exact_share(moons, dtype, device):
    trainer = ContrastiveTrainer(MLPEnergy(2, 16, 2), moons, MLTrainConfig(
        batch_size=50, buffer_size=200, k_steps=0, reinit_fraction=0.3, dtype=dtype, steps=3), seed=0, device=device)
    buf = trainer.buffer
    assert buf.positions.dtype == getattr(torch, dtype) and buf.positions.device.type == device
    assert buf.num_reinit(50) == 15
    for _ in range(3):
        before = buf.positions.clone()
        trainer.update()  # K = 0: a drawn state changes only when it is re-initialized
        changed = (buf.positions != before).any(1)
        assert int(changed.sum()) == 15
        assert buf.positions.dtype == getattr(torch, dtype) and buf.positions.device.type == device
    idx, x = buf.draw(50, reinit=False)
    assert torch.equal(x, buf.positions[idx]) and idx.unique().numel() == 50


@pytest.mark.parametrize("kernel", ["mala", "hmc", "learned"])
def test_resume_continues_bitwise(moons, tmp_path, kernel):
    def make():
        torch.manual_seed(0)
        return ContrastiveTrainer(MLPEnergy(2, 16, 2), moons, MLTrainConfig(
            kernel=kernel, steps=8, batch_size=32, buffer_size=96, k_steps=3, lr=1e-3, log_every=2,
            reinit_fraction=0.1, sampler_batch=32, sampler_updates=2, sampler_width=8, sampler_flow_steps=1,
            sampler_gate=1.0), seed=0)

    whole = make().train(progress=False)
    half = make()
    half.train(steps=4, progress=False, checkpoint_path=str(tmp_path / "half.pt"))
    resumed = ContrastiveTrainer.resume(str(tmp_path / "half.pt"), moons)
    assert resumed.step == 4
    resumed.train(progress=False)
    for (k, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert torch.equal(whole.buffer.positions, resumed.buffer.positions)
    assert torch.equal(whole.kernel.base.step_size, resumed.kernel.base.step_size)
    if kernel == "learned":
        for (k, a), b in zip(whole.kernel.model.state_dict().items(), resumed.kernel.model.state_dict().values()):
            assert torch.equal(a, b), k
    for key in ("loss", "accept", "energy_neg"):
        np.testing.assert_array_equal(resumed.history[key], whole.history[key])


class NoXGrad(MLPEnergy):
    """An energy that is piecewise constant in x (rounded inputs): no gradient with respect to x."""

    def forward(self, x):
        return super().forward(torch.round(x * 4).detach() / 4)


def test_kernels_that_cannot_serve_are_refused_before_training(moons):
    cfg = dict(batch_size=16, buffer_size=32, k_steps=1, steps=1)
    with pytest.raises(ValueError, match="needs the gradient of the energy"):
        ContrastiveTrainer(NoXGrad(2, 8, 1), moons, MLTrainConfig(kernel="mala", **cfg))
    ContrastiveTrainer(NoXGrad(2, 8, 1), moons, MLTrainConfig(kernel="rwm", **cfg)).train(progress=False)
    model = MLPEnergy(2, 8, 1)
    wrong_dim = LearnedSampler(Gaussian(torch.zeros(3), torch.eye(3)),
                               LearnedProposal(LearnedProposalConfig(3, width=4, variant="langevin")))
    with pytest.raises(ValueError, match="learned sampler has dimension 3"):
        ContrastiveTrainer(model, moons, MLTrainConfig(**cfg), kernel=wrong_dim)
    other = build_kernel("mala", Gaussian(torch.zeros(2), torch.eye(2)))
    with pytest.raises(ValueError, match="not this energy\nmodel|not this energy model"):
        ContrastiveTrainer(model, moons, MLTrainConfig(**cfg), kernel=other)
    with pytest.raises(ValueError, match="unknown kernel"):
        ContrastiveTrainer(model, moons, MLTrainConfig(kernel="no-such-kernel", **cfg))
    with pytest.raises(ValueError, match="gumbel-cluster.*cannot serve as negative sampler.*categorical states"):
        ContrastiveTrainer(model, moons, MLTrainConfig(kernel="gumbel-cluster", **cfg))
    with pytest.raises(ValueError, match="persistent"):
        MLTrainConfig(kernel="learned", persistent=False)


class HalfStepRWM(TransitionKernel):
    """A kernel defined here and never registered: random-walk Metropolis with step 0.3."""

    def __init__(self, target):
        super().__init__()
        self.target = target

    def init(self, position):
        self._ensure_generator(position)
        return ChainState(position, self.target.energy(position))

    def step(self, state):
        x_new = state.position + 0.3 * self.randn_like(state.position)
        u_new = self.target.energy(x_new)
        accept = self.rand(u_new.shape, u_new) < torch.exp(state.energy - u_new)
        m = accept[:, None]
        new = ChainState(torch.where(m, x_new, state.position), torch.where(accept, u_new, state.energy))
        return new, StepInfo(accept.to(u_new.dtype), accept, torch.zeros_like(accept))


def test_custom_kernel_object_and_callable_work_unregistered(moons):
    model = MLPEnergy(2, 8, 1)
    trainer = train_ebm(model, moons, loss="ml", kernel=HalfStepRWM(EnergyTarget(model)), steps=3, batch_size=16,
                        buffer_size=32, k_steps=2, progress=False)
    assert trainer.config.kernel == "object:HalfStepRWM" and 0 < trainer.history["accept"][-1] <= 1
    trainer = train_ebm(MLPEnergy(2, 8, 1), moons, loss="ml", kernel=HalfStepRWM, steps=2, batch_size=16,
                        buffer_size=32, k_steps=2, progress=False)
    assert isinstance(trainer.kernel, HalfStepRWM)


def test_logit_transform_jacobian_and_density():
    t = LogitTransform(levels=17, lam=0.05)
    u = torch.rand(5, 1, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: t.forward(v).flatten(), u[0].flatten())
    assert torch.allclose(t.log_abs_det_jacobian(u[:1]), torch.linalg.slogdet(jac)[1].reshape(1))
    torch.testing.assert_close(t.inverse(t.forward(u)), u)
    # exp(-E_u) on [0, 1] integrates to what exp(-E_y) does on R: sqrt(2 pi) for E_y = y^2/2 (d = 1); with the
    # Jacobian's sign flipped it does not
    grid = torch.linspace(0, 1, 200001, dtype=torch.float64).reshape(-1, 1)
    e_y = 0.5 * t.forward(grid).pow(2).flatten()
    mass = torch.trapezoid(torch.exp(-t.data_energy(e_y, grid)), grid.flatten())
    # the logit range is bounded (|y| <= logit(0.975) = 3.66), so the Gaussian mass beyond it is missing
    inside = math.sqrt(2 * math.pi) * math.erf(float(t.forward(torch.tensor(1.0))) / math.sqrt(2))
    assert abs(float(mass) - inside) < 1e-6, float(mass) - inside
    flipped = torch.trapezoid(torch.exp(-(e_y + t.log_abs_det_jacobian(grid))), grid.flatten())
    assert abs(float(flipped) - inside) > 0.1
    digits = load_data("digits", num=64)[0]
    assert infer_levels(digits) == 17
    deq = t.dequantize(digits, torch.Generator().manual_seed(0))
    k = torch.round(digits * 16)
    assert ((deq >= k / 17) & (deq < (k + 1) / 17)).all()


def test_images_train_in_logit_space_and_log_the_kernel(tmp_path):
    digits = load_data("digits", num=128)[0]
    from entropy_mcmc.ebm_training.networks import ResNetEnergy

    torch.manual_seed(0)
    trainer = ContrastiveTrainer(ResNetEnergy(1, 8, 8, 1, 1), digits, MLTrainConfig(
        steps=4, batch_size=16, buffer_size=32, k_steps=2, log_every=2), seed=0)
    log = tmp_path / "log.csv"
    trainer.train(progress=False, log_path=str(log))
    assert trainer.transform is not None and trainer.transform.levels == 17
    rows = list(csv.DictReader(open(log)))
    assert set(contrastive.LOG_KEYS) == set(rows[0]) and [int(r["step"]) for r in rows] == [2, 4]
    assert all(math.isfinite(float(r[k])) for r in rows for k in ("loss", "accept", "step_size", "entropy"))
    pixels = trainer.to_data(trainer.buffer.positions)
    assert pixels.min() >= 0 and pixels.max() <= 1 and trainer.buffer.positions.abs().max() > 1


def test_replay_buffer_alone():
    gen = torch.Generator().manual_seed(0)
    buf = ReplayBuffer(10, lambda n: torch.full((n, 3), -1.0), 0.25, gen)
    buf.positions.copy_(torch.arange(30, dtype=torch.float32).reshape(10, 3))
    idx, x = buf.draw(8)
    assert buf.num_reinit(8) == 2 and (x[:2] == -1).all() and torch.equal(x[2:], buf.positions[idx[2:]])
    buf.put(idx, x + 100)
    assert torch.equal(buf.positions[idx], x + 100)


def test_cli_train_and_sample(tmp_path):
    from entropy_mcmc.cli import main

    out = tmp_path / "m.pt"
    assert main(["train-ebm", "--data", "two-moons", "--num", "256", "--loss", "ml", "--kernel", "hmc",
                 "--k-steps", "2", "--steps", "6", "--batch-size", "32", "--buffer-size", "64", "--out", str(out),
                 "--no-progress"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "m.csv")))
    assert rows and "accept" in rows[0]
    assert main(["train-ebm", "--data", "two-moons", "--num", "256", "--loss", "ml", "--kernel", "hmc",
                 "--k-steps", "2", "--steps", "8", "--batch-size", "32", "--buffer-size", "64", "--out", str(out),
                 "--no-progress", "--resume"]) == 0
    assert torch.load(out, weights_only=True)["step"] == 8
    for extra in ([], ["--from-buffer"], ["--kernel", "mala"]):
        npz = tmp_path / f"s{len(extra)}.npz"
        assert main(["sample-ebm", "--model", str(out), "--num", "20", "--steps", "5", "--out", str(npz),
                     "--no-progress", *extra]) == 0
        with np.load(npz) as f:
            assert f["samples"].shape == (20, 2) and np.isfinite(f["samples"]).all()
            assert str(f["kernel"]) == ("mala" if extra[-1:] == ["mala"] else "hmc")


def test_cli_learned_kernel_samples_with_its_trained_sampler(tmp_path):
    from entropy_mcmc.cli import main

    out = tmp_path / "l.pt"
    assert main(["train-ebm", "--data", "two-moons", "--num", "256", "--loss", "ml", "--kernel", "learned",
                 "--k-steps", "2", "--steps", "3", "--batch-size", "32", "--buffer-size", "64", "--out", str(out),
                 "--no-progress"]) == 0
    state = torch.load(out, weights_only=True)
    assert state["ml"]["sampler"]["description"]["variant"] == "langevin"
    kernel = ml_sampling.checkpoint_kernel(state, _model_of(state))
    assert isinstance(kernel, LearnedSampler)
    for k, v in state["ml"]["sampler"]["model"].items():
        assert torch.equal(kernel.model.state_dict()[k], v), k
    npz = tmp_path / "l.npz"
    assert main(["sample-ebm", "--model", str(out), "--num", "10", "--steps", "3", "--out", str(npz),
                 "--no-progress", "--from-buffer"]) == 0
    with np.load(npz) as f:
        assert str(f["kernel"]) == "learned" and f["samples"].shape == (10, 2)


def _model_of(state):
    from entropy_mcmc.ebm_training.networks import build_network

    model = build_network(state["network"])
    model.load_state_dict(state["model"])
    return model


class RecordingRWM(HalfStepRWM):
    """HalfStepRWM that remembers where its chains started."""

    def init(self, position):
        self.started_at = position.clone()
        return super().init(position)


def test_cd_k_starts_the_chains_at_the_data_batch(moons):
    trainer = ContrastiveTrainer(MLPEnergy(2, 8, 1), moons, MLTrainConfig(persistent=False, k_steps=1, batch_size=16),
                                 kernel=RecordingRWM)
    assert trainer.buffer is None
    rng = trainer.batch_gen.get_state()
    expected = trainer._data_batch()
    trainer.batch_gen.set_state(rng)
    trainer.update()
    assert torch.equal(trainer.kernel.started_at, expected)


def test_annealed_langevin_anneals_over_the_k_steps_of_an_update(moons, tmp_path):
    trainer = ContrastiveTrainer(MLPEnergy(2, 8, 1), moons, MLTrainConfig(
        kernel="annealed-langevin", k_steps=4, batch_size=16, buffer_size=32, steps=2), seed=0)
    assert trainer.kernel.schedule.num_steps == 4 and trainer.negative.adaptation is None
    trainer.train(progress=False, checkpoint_path=str(tmp_path / "a.pt"))
    assert trainer.history["accept"][-1] == 1.0
    out = ml_sampling.sample_ml(str(tmp_path / "a.pt"), 8, steps=4, seed=0)
    assert out.kernel == "annealed-langevin" and torch.isfinite(out.samples).all()
