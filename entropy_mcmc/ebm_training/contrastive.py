"""Maximum-likelihood training of an energy model with any kernel as its negative sampler (thesis section 4.5,
appendix C.2): persistent contrastive divergence (Tieleman 2008) from a replay buffer.

    loss = mean_data E - mean_neg E + alpha (mean_data E^2 + mean_neg E^2)

Without the penalty its gradient is the log-likelihood gradient E_data[dE/dtheta] - E_model[dE/dtheta], the model
expectation estimated by the negatives; its fixed point matches the model's expectations of dE/dtheta to the data's
(for a quadratic energy: the sample mean and covariance, exactly so with alpha = 0). alpha = 0.001 by default
(TorchEBM's default; Du & Mordatch 2019 use 1): without it the MLP energy on two-moons at lr 1e-3 ran away within
160 updates (energies ~1e3, MALA's acceptance 0, energies ~1e7 by update 360, BENCHMARKS.md), with it the same run
is stable; at energies of order 1 it moves the gradient by about 0.2%. Pass 0 for the unbiased ML gradient.

Each update: `batch_size` negatives are drawn from a buffer of `buffer_size` states (10,000 by default), exactly
round(reinit_fraction * batch) of them replaced by noise, advanced `k_steps` steps of the kernel (whose cached
energies and gradients are evaluated afresh under the current weights, `kernel.init`) and put back; the buffer's
cached energies are marked stale when the weights change and re-evaluated on demand (`ReplayBuffer.energies`).
`persistent=False` starts the chains at the data batch instead (CD-K, Hinton 2002).

The kernel is a registry name (`ula`, `mala`, `hmc`, `annealed-langevin`, `learned`, a plug-in), a
`TransitionKernel` built on `trainer.target()`, or a callable `target -> TransitionKernel`. Calibrated kernels
with a step size adapt it toward `target_accept` (0.6, the thesis' rate) after every update t = 0, 1, ... by the
Robbins-Monro rule log s += r_t (mean acceptance of the update's K steps - target_accept) with the decaying rate
r_t = max(adapt_rate, adapt_rate_init / sqrt(1 + t)): large early, so HMC and MALA reach the target within a few
dozen updates from any start (at the constant 0.05 alone both were still at 0.8-0.99 after 100), then the floor
adapt_rate keeps following the moving model. The step size is fixed within an update, so each update's K steps are
one homogeneous Metropolis-Hastings chain. `learned` is variant 2 of
appendix C.1 (Langevin with flow noise and an affine-transformed gradient), trained alongside the model as
appendix C.2 does: before each update, `sampler_updates` steps of the entropy objective (eqs. 4.4-4.5) on
`sampler_batch` buffer states, which the sampler's own MH step moves and puts back; the energy model is updated
only when the sampler's mean acceptance exceeds target_accept - sampler_gate.

Images are dequantized and logit-transformed (`preprocess.LogitTransform`); the model and the sampler work in
logit space.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple, Union

import torch
from torch import nn

from ..samplers.base import TransitionKernel, find_kernel, kernel_name, spawn_seeds, unwrap
from ..samplers.distributed import chain_shard
from ..samplers.learned.kernel import LearnedSampler, TargetFunctions
from ..samplers.learned.proposal import LearnedProposal, LearnedProposalConfig
from ..samplers.learned.registry import build_model
from ..samplers.learned.training import clip_gradients, objective_terms
from ..samplers.registry import build_kernel, get_kernel_spec
from .energy_target import EnergyTarget
from .networks import build_network
from .preprocess import LogitTransform, infer_levels
from .trainer import EBMTrainConfig, EBMTrainer, check_architecture, load_checkpoint
from .trainer import train_ebm as train_score_matching

KernelArg = Union[str, TransitionKernel, Callable[[EnergyTarget], TransitionKernel]]


def ml_loss(energy_data: torch.Tensor, energy_neg: torch.Tensor, penalty: float = 0.001) -> torch.Tensor:
    """mean E(data) - mean E(negatives) + penalty (mean E(data)^2 + mean E(negatives)^2) (see the module)."""
    loss = energy_data.mean() - energy_neg.mean()
    if penalty:
        loss = loss + penalty * (energy_data.pow(2).mean() + energy_neg.pow(2).mean())
    return loss


@dataclass
class MLTrainConfig(EBMTrainConfig):
    """Settings of a maximum-likelihood (contrastive) run; the score-matching fields it inherits are unused.

    kernel: the registry name of the negative sampler (a kernel object is passed to the trainer instead).
    k_steps: kernel steps per update (thesis: 40 with the learned sampler; 30 here by default).
    buffer_size, reinit_fraction: the replay buffer and the share of each draw re-initialized from noise.
    persistent: False runs CD-K (chains start at the data batch; no buffer).
    energy_penalty: alpha of the squared-energy penalty (0.001; 0: the unbiased ML gradient, see the module).
    step_size: the kernel's initial step size (None: the registry's default).
    target_accept, adapt_rate_init, adapt_rate: the Robbins-Monro step-size control of calibrated kernels, rate
        max(adapt_rate, adapt_rate_init / sqrt(1 + update)) (both 0: a fixed step size).
    noise_scale: points are (re)initialized from N(0, noise_scale^2 I) in standardized coordinates; images from
        uniform pixels in logit space.
    preprocess: "logit" (dequantize and logit-transform images), "none", or None (logit for images).
    levels, logit_lambda: the grey levels of the images (None: inferred from the data) and the squeeze lambda.
    kernel_options: extra keywords of the kernel's builder (e.g. {"num_steps": 5} for HMC).
    sampler_*: the learned sampler (variant 2, appendix C.2): width, z-update steps, eps (None: 0.01 for images
        as in C.2, 0.1 for points), learning rate, updates and batch per EBM update, the entropy weight's start
        and log-space rate, and the acceptance gate.
    adam_betas: the energy model's Adam momentum (0.5, 0.9) and learning rate 1e-4, as in appendix C.2.
    """

    LOSS_CHOICES = ("ml",)
    loss: str = "ml"
    lr: float = 1e-4
    kernel: str = "mala"
    k_steps: int = 30
    buffer_size: int = 10000
    reinit_fraction: float = 0.05
    persistent: bool = True
    energy_penalty: float = 0.001
    step_size: Optional[float] = None
    target_accept: float = 0.6
    adapt_rate: float = 0.05
    adapt_rate_init: float = 1.0
    noise_scale: float = 1.0
    preprocess: Optional[str] = None
    levels: Optional[int] = None
    logit_lambda: float = 0.05
    kernel_options: Dict[str, Any] = field(default_factory=dict)
    adam_betas: Tuple[float, float] = (0.5, 0.9)
    sampler_width: int = 32
    sampler_flow_steps: int = 4
    sampler_eps: Optional[float] = None
    sampler_lr: float = 1e-4
    sampler_updates: int = 5
    sampler_batch: int = 64
    sampler_beta_init: float = 0.01
    sampler_beta_lr: float = 0.3
    sampler_gate: float = 0.1

    def __post_init__(self):
        super().__post_init__()
        for name in ("k_steps", "buffer_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
        if self.persistent and self.buffer_size < self.batch_size:
            raise ValueError(f"buffer_size ({self.buffer_size}) must be at least batch_size ({self.batch_size})")
        if not self.persistent and self.k_steps == 0:
            raise ValueError("CD-0 (persistent=False, k_steps=0) has negatives equal to the data: a zero gradient")
        if not 0.0 <= self.reinit_fraction <= 1.0:
            raise ValueError(f"reinit_fraction must lie in [0, 1], got {self.reinit_fraction!r}")
        if not 0.0 < self.target_accept < 1.0:
            raise ValueError(f"target_accept must lie in (0, 1), got {self.target_accept!r}")
        if not (self.energy_penalty >= 0 and self.adapt_rate >= 0 and self.adapt_rate_init >= 0
                and self.noise_scale > 0):
            raise ValueError("energy_penalty, adapt_rate and adapt_rate_init must be >= 0 and noise_scale > 0")
        if self.step_size is not None and not self.step_size > 0:
            raise ValueError(f"step_size must be positive, got {self.step_size!r}")
        if self.preprocess not in (None, "logit", "none"):
            raise ValueError(f"preprocess must be 'logit', 'none' or None, got {self.preprocess!r}")
        if isinstance(self.kernel, str) and not self.kernel.startswith("object:") and not self.persistent \
                and get_kernel_spec(self.kernel).capabilities.trainable:
            raise ValueError(f"kernel {self.kernel!r} is trained on the replay buffer: it needs persistent=True")
        for name in ("sampler_width", "sampler_flow_steps", "sampler_updates", "sampler_batch"):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        self.adam_betas = tuple(self.adam_betas)
        self.kernel_options = dict(self.kernel_options)


class ReplayBuffer:
    """`size` persistent negatives `[size, *event]` with their energies cached (PCD's replay buffer).

    `draw(n)` takes n distinct states at random, the first round(reinit_fraction * n) of them (a random subset,
    since the draw is a random permutation) replaced by `noise(k)`; `put` writes the advanced states back with
    their energies. `weights_changed()` marks every cached energy stale; `energies(fn)` re-evaluates the stale ones.
    The states keep the dtype and device of the initial noise.
    """

    def __init__(self, size: int, noise: Callable[[int], torch.Tensor], reinit_fraction: float,
                 generator: torch.Generator):
        self.noise, self.reinit_fraction, self.generator = noise, float(reinit_fraction), generator
        self.positions = noise(size)
        self.energy = torch.zeros(size, dtype=self.positions.dtype, device=self.positions.device)
        self.fresh = torch.zeros(size, dtype=torch.bool, device=self.positions.device)

    def __len__(self) -> int:
        return self.positions.shape[0]

    def num_reinit(self, n: int) -> int:
        return int(round(self.reinit_fraction * n))

    def draw(self, n: int, reinit: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
        """(indices `[n]`, states `[n, *event]`): distinct buffer entries, the first `num_reinit(n)` replaced by
        noise when `reinit`."""
        idx = torch.randperm(len(self), generator=self.generator)[:n].to(self.positions.device)
        x = self.positions[idx]
        k = self.num_reinit(n) if reinit else 0
        if k:
            x = torch.cat([self.noise(k), x[k:]])
        return idx, x

    def put(self, idx: torch.Tensor, positions: torch.Tensor, energy: Optional[torch.Tensor] = None) -> None:
        self.positions[idx] = positions.detach().to(self.positions)
        if energy is None:
            self.fresh[idx] = False
        else:
            self.energy[idx] = energy.detach().to(self.energy)
            self.fresh[idx] = True

    def weights_changed(self) -> None:
        self.fresh.zero_()

    @torch.no_grad()
    def energies(self, energy_fn: Callable[[torch.Tensor], torch.Tensor], chunk: int = 1024) -> torch.Tensor:
        """The cached energies, the stale ones re-evaluated by `energy_fn` (the current model) first."""
        stale = (~self.fresh).nonzero().flatten()
        for i in range(0, stale.numel(), chunk):
            rows = stale[i:i + chunk]
            self.energy[rows] = energy_fn(self.positions[rows]).to(self.energy)
        self.fresh.fill_(True)
        return self.energy

    def state_dict(self) -> Dict[str, Any]:
        return {"positions": self.positions.cpu(), "energy": self.energy.cpu(), "fresh": self.fresh.cpu(),
                "rng": self.generator.get_state()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if state["positions"].shape != self.positions.shape:
            raise ValueError(f"the saved buffer has shape {list(state['positions'].shape)}, this one "
                             f"{list(self.positions.shape)}")
        self.positions.copy_(state["positions"])
        self.energy.copy_(state["energy"])
        self.fresh.copy_(state["fresh"])
        self.generator.set_state(state["rng"])


def adapt_rate(update: int, rate_init: float, rate: float) -> float:
    """The Robbins-Monro rate of update t = 0, 1, ...: max(rate, rate_init / sqrt(1 + t)) (see the module)."""
    return max(rate, rate_init / math.sqrt(1 + update))


def adapt_step_size(kernel: TransitionKernel, accept: float, target_accept: float, rate: float) -> None:
    """log s += rate (accept - target_accept) on the innermost kernel's step size (scalar or per chain)."""
    base = kernel.base
    base.step_size = base.step_size * math.exp(rate * (accept - target_accept))


def learned_variant2(target: EnergyTarget, config: MLTrainConfig, seed: int, images: bool) -> LearnedSampler:
    """The learned sampler of section 4.5: variant 2 of appendix C.1 (Langevin with flow noise, no gradient in
    the flow), a checkerboard mask for images, outputs at zero (so it starts as MALA with step eps)."""
    eps = config.sampler_eps or (0.01 if images else 0.1)
    mc = LearnedProposalConfig(target.dim, tuple(target.event_shape), width=config.sampler_width,
                               num_steps=config.sampler_flow_steps, eps=eps, variant="langevin",
                               mask="checkerboard" if images else "random", mask_seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LearnedProposal(mc)
    return LearnedSampler(target, model)


class SamplerTraining:
    """The learned sampler trained alongside the energy model (appendix C.2): `train(buffer)` takes `batch`
    buffer states, runs `updates` steps of the entropy objective (eqs. 4.4-4.5, beta adapted toward
    `target_accept`), moving the states by the sampler's MH step each time, and puts them back; it returns the
    mean acceptance. Under DDP the gradients and acceptances are averaged over the ranks (`reduce`)."""

    def __init__(self, kernel: LearnedSampler, config: MLTrainConfig, generator: torch.Generator,
                 reduce: Callable[[torch.Tensor], torch.Tensor]):
        self.kernel, self.model = kernel, kernel.model
        self.config, self.generator, self.reduce = config, generator, reduce
        self.fns = TargetFunctions(kernel.target, differentiable=True)
        self.plain = TargetFunctions(kernel.target, differentiable=False)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.params, lr=config.sampler_lr, betas=config.adam_betas)
        self.log_beta = math.log(config.sampler_beta_init)

    def train(self, buffer: ReplayBuffer, batch: int) -> float:
        c, model = self.config, self.model
        model.train()
        idx, x = buffer.draw(batch, reinit=False)
        shape = x.shape
        x = x.reshape(batch, -1)
        accepts = []
        for _ in range(c.sampler_updates):
            u_x, g_x = self.plain.energy_and_grad(x)
            z0 = torch.randn(x.shape, generator=self.generator, dtype=torch.float64).to(x)
            beta = math.exp(self.log_beta)
            terms, sub = objective_terms(model, x, u_x, g_x, z0, self.fns, "entropy", beta, 100.0, 1e6)
            keep = terms.finite
            objective = (terms if sub is None else sub).per_x.sum() / batch
            self.optimizer.zero_grad(set_to_none=True)
            (-objective).backward()
            for p in self.params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                p.grad.copy_(self.reduce(p.grad))
            if math.isfinite(clip_gradients(self.params, 10.0)):
                self.optimizer.step()
            with torch.no_grad():
                acc = torch.where(keep, terms.log_a.exp(), torch.zeros_like(terms.log_a))
                take = torch.rand(acc.shape, generator=self.generator, dtype=torch.float64).to(acc) < acc
                x = torch.where(take[:, None], terms.x_new, x)
                mean_acc = float(self.reduce(acc.mean()))
                accepts.append(mean_acc)
                self.log_beta += c.sampler_beta_lr * (mean_acc - c.target_accept)
        model.eval()
        buffer.put(idx, x.reshape(shape))
        return sum(accepts) / len(accepts)

    def state_dict(self) -> Dict[str, Any]:
        return {"description": self.model.describe(), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "log_beta": self.log_beta,
                "rng": self.generator.get_state()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.log_beta = float(state["log_beta"])
        self.generator.set_state(state["rng"])


class ContrastiveTrainer(EBMTrainer):
    """Maximum-likelihood (PCD) training of an energy network with a kernel as negative sampler (see the module).

        trainer = ContrastiveTrainer(MLPEnergy(2), data, MLTrainConfig(kernel="mala", k_steps=30), seed=0)
        trainer.train(progress=True, log_path="log.csv", checkpoint_path="model.pt")
        trainer = ContrastiveTrainer.resume("model.pt", data)      # continues bitwise, buffer and sampler included

    `kernel` overrides `config.kernel`: a `TransitionKernel` built on `EnergyTarget(model)` (this model), or a
    callable `target -> TransitionKernel`; a kernel that cannot serve is refused here, before training.
    """

    def __init__(self, model: nn.Module, data: torch.Tensor, config: Optional[MLTrainConfig] = None, seed: int = 0,
                 device="cpu", data_info: Optional[Dict[str, Any]] = None, kernel: Optional[KernelArg] = None):
        config = config or MLTrainConfig()
        if not isinstance(config, MLTrainConfig):
            raise TypeError(f"ContrastiveTrainer needs an MLTrainConfig, got {type(config).__name__}")
        images = isinstance(data, torch.Tensor) and data.dim() > 2
        preprocess = config.preprocess or ("logit" if images else "none")
        if preprocess == "logit" and config.standardize:
            raise ValueError("the logit transform takes images in [0, 1]: standardize must be off")
        if preprocess == "logit":
            config.standardize = False
        super().__init__(model, data, config, seed, device, data_info)
        self.images = images
        self.transform = (LogitTransform(config.levels or infer_levels(data), config.logit_lambda)
                          if preprocess == "logit" else None)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, betas=config.adam_betas)
        buffer_seed, kernel_seed, sampler_seed = spawn_seeds(self.seed, 5)[2:]
        buffer_seed, kernel_seed, sampler_rank_seed = (spawn_seeds(s, self.world_size)[self.rank]
                                                       for s in (buffer_seed, kernel_seed, sampler_seed))
        self.buffer_gen = torch.Generator().manual_seed(buffer_seed)
        self.sampler_gen = torch.Generator().manual_seed(sampler_rank_seed)
        self.buffer = None
        if config.persistent:
            size = chain_shard(config.buffer_size, self.rank, self.world_size)[1]
            self.buffer = ReplayBuffer(size, self.noise, config.reinit_fraction, self.buffer_gen)
        self.kernel = self._make_kernel(config.kernel if kernel is None else kernel, sampler_seed)
        self.kernel.reseed(kernel_seed, self.device)
        learned = find_kernel(self.kernel, LearnedSampler)
        self.sampler_training = None
        if learned is not None and isinstance(learned.model, LearnedProposal):
            learned.model.to(dtype=self.dtype, device=self.device)
            self.sampler_training = SamplerTraining(learned, config, self.sampler_gen, self._reduce_mean)
        base = self.kernel.base
        self.adapts = (max(config.adapt_rate, config.adapt_rate_init) > 0 and base.is_calibrated and learned is None
                       and getattr(base, "step_size", None) is not None)
        self.history = {k: [] for k in LOG_KEYS}
        self._last_state = None

    # -- noise, data, kernel ----------------------------------------------------------------------------
    def noise(self, n: int) -> torch.Tensor:
        """n (re)initial states in model coordinates, drawn on the CPU from the buffer's generator."""
        event = tuple(self.data.shape[1:])
        if self.transform is not None:
            x = self.transform.noise(n, event, self.buffer_gen)
        else:
            x = self.config.noise_scale * torch.randn((n,) + event, generator=self.buffer_gen, dtype=torch.float64)
        return x.to(dtype=self.dtype, device=self.device)

    def _data_batch(self) -> torch.Tensor:
        b = self.config.batch_size
        idx = torch.randint(self.data.shape[0], (b,), generator=self.batch_gen)
        off, cnt = chain_shard(b, self.rank, self.world_size)
        x = self.data[idx[off:off + cnt].to(self.device)]
        if self.transform is not None:
            x = self.transform.forward(self.transform.dequantize(x, self.noise_gen))
        return x

    def _make_kernel(self, kernel: KernelArg, sampler_seed: int) -> TransitionKernel:
        c = self.config
        target = EnergyTarget(self.model)
        if isinstance(kernel, str):
            spec = get_kernel_spec(kernel)
            if spec.capabilities.trainable:  # trained here, in the loop, on the replay buffer
                k = learned_variant2(target, c, sampler_seed, self.images)
            else:
                options = dict(c.kernel_options)
                if spec.capabilities.schedule_option:  # one schedule per negative phase of k_steps
                    options.setdefault(spec.capabilities.schedule_option, max(c.k_steps, 1))
                try:
                    k = build_kernel(kernel, target, step_size=c.step_size, **options)
                except (TypeError, ValueError) as err:
                    raise ValueError(f"kernel {kernel!r} cannot serve as negative sampler of an energy model: "
                                     f"{err}") from None
        elif isinstance(kernel, TransitionKernel):
            k = kernel
            c.kernel = "object:" + kernel_name(k)
        elif callable(kernel):
            k = kernel(target)
            if not isinstance(k, TransitionKernel):
                raise TypeError(f"the kernel callable returned a {type(k).__name__}, not a TransitionKernel")
            c.kernel = "object:" + kernel_name(k)
        else:
            raise TypeError(f"kernel must be a registry name, a TransitionKernel or a callable target -> kernel, "
                            f"got {type(kernel).__name__}")
        self._check_kernel(k, target)
        return k

    def _check_kernel(self, kernel: TransitionKernel, target: EnergyTarget) -> None:
        """ValueError unless `kernel` can sample this model: a learned sampler of the model's dimension, a kernel
        built on this model, a gradient where the kernel needs one, a state with a position."""
        name = kernel_name(kernel)
        learned = find_kernel(kernel, LearnedSampler)
        if learned is not None and learned.model.dim != target.dim:
            raise ValueError(f"the learned sampler has dimension {learned.model.dim}, but the energy model's points "
                             f"have {target.dim} ({list(target.event_shape)})")
        parts = [kernel] + list(getattr(unwrap(kernel)[-1], "parts", ()))
        for part in parts:
            t = getattr(part.base, "target", None)
            if t is not None and not (isinstance(t, EnergyTarget) and t.model is self.model):
                raise ValueError(f"kernel {name} samples {getattr(t, 'name', type(t).__name__)}, not this energy "
                                 "model: build it on trainer.target(), or pass a registry name or a callable "
                                 "target -> kernel")
        rng = self.buffer_gen.get_state()
        probe = self.noise(2)
        self.buffer_gen.set_state(rng)  # the probe leaves the buffer's random stream as it was
        needs_grad = any(getattr(p.base, "needs_grad", True) for p in parts)
        try:
            if needs_grad:
                _, g = target.energy_and_grad(probe)
                if g is None or not torch.isfinite(g).all():
                    raise ValueError("the gradient is not finite at noise")
            else:
                target.energy(probe)
        except (RuntimeError, ValueError) as err:
            what = "the gradient of the energy with respect to x" if needs_grad else "the energy"
            raise ValueError(f"kernel {name} cannot serve as negative sampler: it needs {what}, which this model "
                             f"does not provide ({str(err).splitlines()[0]})") from None
        try:
            state = kernel.init(probe)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"kernel {name} cannot serve as negative sampler of an energy model: starting it at "
                             f"noise failed ({str(err).splitlines()[0]})") from None
        if not hasattr(state, "position"):
            raise ValueError(f"kernel {name} has a state without a `position`: the buffer cannot store it")

    def _reduce_mean(self, t: torch.Tensor) -> torch.Tensor:
        if self.world_size == 1:
            return t
        import torch.distributed as dist

        t = t.detach().clone()
        dist.all_reduce(t)
        return t / self.world_size

    # -- one update -------------------------------------------------------------------------------------
    def negatives(self, x_data: torch.Tensor) -> Tuple[torch.Tensor, float]:
        """This update's negatives (K kernel steps from the buffer, or from the data for CD-K) and the mean
        acceptance of the K steps (NaN for K = 0)."""
        c = self.config
        if self.buffer is not None:
            idx, start = self.buffer.draw(x_data.shape[0])
        else:
            start = x_data.detach()
        state = self.kernel.init(start)  # energies and gradients under the current weights
        acc = torch.zeros((), dtype=torch.float64, device=self.device)
        for _ in range(c.k_steps):
            state, info = self.kernel.step(state)
            acc = acc + info.acceptance_prob.to(acc).mean()
        self._last_state = state
        if self.buffer is not None:
            self.buffer.put(idx, state.position, getattr(state, "energy", None))
        accept = float(self._reduce_mean(acc / c.k_steps)) if c.k_steps else float("nan")
        if self.adapts and c.k_steps:
            rate = adapt_rate(self.step, c.adapt_rate_init, c.adapt_rate)
            adapt_step_size(self.kernel, accept, c.target_accept, rate)
        return state.position.detach(), accept

    def update(self) -> Dict[str, float]:
        """One update: the learned sampler's training steps (if any), then, unless its acceptance is below the
        gate, negatives and one Adam step on the ML loss."""
        t0 = time.perf_counter()
        c = self.config
        x = self._data_batch()
        row = dict.fromkeys(("loss", "energy_data", "energy_neg", "accept", "sampler_accept"), float("nan"))
        row["ebm_update"] = 1.0
        if self.sampler_training is not None:
            row["sampler_accept"] = self.sampler_training.train(self.buffer, min(c.sampler_batch, len(self.buffer)))
            row["ebm_update"] = float(row["sampler_accept"] > c.target_accept - c.sampler_gate)
        if row["ebm_update"]:
            neg, row["accept"] = self.negatives(x)
            self.model.train()
            self.optimizer.zero_grad(set_to_none=True)
            e = self.net(torch.cat([x, neg]))  # one forward pass: DDP reduces the gradients once
            e_data, e_neg = e[:x.shape[0]], e[x.shape[0]:]
            loss = ml_loss(e_data, e_neg, c.energy_penalty)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the ML loss is {loss.item()} at step {self.step}; lower the learning rate "
                                         "or add an energy penalty")
            loss.backward()
            self.optimizer.step()
            if self.buffer is not None:
                self.buffer.weights_changed()
            row.update(loss=loss.item(), energy_data=e_data.mean().item(), energy_neg=e_neg.mean().item())
        self.step += 1
        self.seconds += time.perf_counter() - t0
        s = self.kernel.step_size_value
        row["step_size"] = float(s.float().mean()) if s is not None else float("nan")
        return row

    def proposal_entropy(self) -> float:
        """The kernel's proposal entropy (nats) averaged over the last negatives, where the kernel has one."""
        base = self.kernel.base
        if self._last_state is None or not hasattr(base, "proposal_entropy"):
            return float("nan")
        with torch.no_grad():
            h = base.proposal_entropy(self._last_state)
        return float(self._reduce_mean(h.double().mean()))

    def _log_row(self, window) -> Dict[str, float]:
        keys = ("loss", "energy_data", "energy_neg", "accept", "step_size", "sampler_accept", "ebm_update")
        means = {}
        for k in keys:
            vals = [w[k] for w in window if math.isfinite(w[k])]
            means[k] = sum(vals) / len(vals) if vals else float("nan")
        if self.world_size > 1:
            t = self._reduce_mean(torch.tensor([means[k] for k in keys], dtype=torch.float64, device=self.device))
            means = dict(zip(keys, t.cpu().tolist()))
        row = {"step": self.step, **means, "entropy": self.proposal_entropy(), "seconds": self.seconds}
        for k, v in row.items():
            self.history[k].append(v)
        return row

    # -- sampling view ----------------------------------------------------------------------------------
    def to_data(self, x: torch.Tensor) -> torch.Tensor:
        """Model coordinates back to data coordinates (pixels in [0, 1] for logit-space images)."""
        if self.transform is not None:
            return self.transform.inverse(x)
        return super().to_data(x)

    # -- checkpoints ------------------------------------------------------------------------------------
    def _rank_state(self) -> Dict[str, Any]:
        gen = self.kernel.base.generator
        return {"buffer": None if self.buffer is None else self.buffer.state_dict(),
                "kernel_rng": None if gen is None else gen.get_state(),
                "sampler_rng": self.sampler_gen.get_state(), "noise_rng": self.noise_gen.get_state()}

    def _ml_state(self) -> Dict[str, Any]:
        ranks = [self._rank_state()]
        if self.world_size > 1:
            import torch.distributed as dist

            ranks = [None] * self.world_size
            dist.all_gather_object(ranks, self._rank_state())
        s = self.kernel.step_size_value
        return {"ranks": ranks, "step_size": None if s is None else s.cpu(),
                "sampler": None if self.sampler_training is None else self.sampler_training.state_dict(),
                "preprocess": None if self.transform is None else self.transform.state()}

    def state_dict(self) -> Dict[str, Any]:
        state = super().state_dict()
        state["ml"] = self.__dict__.pop("_ml", None) or self._ml_state()
        return state

    def save(self, path: str) -> None:
        """Write the checkpoint, every rank's buffer and random streams included (collective under torchrun)."""
        self._ml = self._ml_state()
        super().save(path)

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        ml = state["ml"]
        if ml["step_size"] is not None:
            self.kernel.base.step_size = ml["step_size"].to(self.kernel.base.step_size)
        if self.sampler_training is not None:
            if ml["sampler"] is None:
                raise ValueError("the checkpoint holds no learned sampler to resume")
            self.sampler_training.load_state_dict(ml["sampler"])
        ranks = ml["ranks"]
        if len(ranks) == self.world_size:
            mine = ranks[self.rank]
            if self.buffer is not None and mine["buffer"] is not None:
                self.buffer.load_state_dict(mine["buffer"])
            gen = self.kernel.base.generator
            if gen is not None and mine["kernel_rng"] is not None:
                gen.set_state(mine["kernel_rng"])
            self.sampler_gen.set_state(mine["sampler_rng"])
            self.noise_gen.set_state(mine["noise_rng"])
        elif self.buffer is not None:  # another world size: the pooled buffer re-split, fresh random streams
            pooled = torch.cat([r["buffer"]["positions"] for r in ranks])
            off, cnt = chain_shard(pooled.shape[0], self.rank, self.world_size)
            self.buffer.positions.copy_(pooled[off:off + cnt][:len(self.buffer)])
            self.buffer.weights_changed()

    @classmethod
    def resume(cls, path: str, data: torch.Tensor, device="cpu", steps: Optional[int] = None,
               model: Optional[nn.Module] = None, kernel: Optional[KernelArg] = None) -> "ContrastiveTrainer":
        """A trainer restored from `path`; a run trained with a kernel object needs it (or a callable) again."""
        state = load_checkpoint(path)
        config = ml_config(state)
        if steps is not None:
            config.steps = int(steps)
        if kernel is None and config.kernel.startswith("object:"):
            raise ValueError(f"{path} was trained with a kernel object ({config.kernel[7:]}): pass it (or a "
                             "callable target -> kernel) as `kernel`")
        if model is None:
            model = build_network(state["network"])
        check_architecture(model, state)
        trainer = cls(model, data, config, seed=state["seed"], device=device, data_info=state["data"],
                      kernel=kernel)
        trainer.load_state_dict(state)
        return trainer


LOG_KEYS = ("step", "loss", "energy_data", "energy_neg", "accept", "step_size", "sampler_accept", "ebm_update",
            "entropy", "seconds")


def ml_config(state: Dict[str, Any]) -> MLTrainConfig:
    """The `MLTrainConfig` saved in a checkpoint (ValueError for a score-matching checkpoint)."""
    saved = dict(state["config"])
    if saved.get("loss") != "ml":
        raise ValueError(f"the checkpoint was trained with the {saved.get('loss')} loss, not ml")
    return MLTrainConfig(**saved)


def checkpoint_kernel(state: Dict[str, Any], model: nn.Module, kernel: Optional[str] = None,
                      seed: int = 0) -> TransitionKernel:
    """The kernel a checkpoint was trained with (or `kernel`, a registry name), on `model`, with the trained
    step size, or the trained sampler's weights for `learned`."""
    config = ml_config(state)
    name = kernel or config.kernel
    target = EnergyTarget(model)
    dtype = next(model.parameters()).dtype
    device = next(model.parameters()).device
    if name.startswith("object:"):
        raise ValueError(f"the model was trained with a kernel object ({name[7:]}); name a registry kernel")
    spec = get_kernel_spec(name)
    if spec.capabilities.trainable:
        sampler = state["ml"]["sampler"]
        if sampler is None:
            raise ValueError("the checkpoint holds no learned sampler; name another kernel")
        proposal = build_model(sampler["description"])
        proposal.load_state_dict(sampler["model"])
        k = LearnedSampler(target, proposal.to(dtype=dtype, device=device).eval())
    else:
        same = name == config.kernel
        options = dict(config.kernel_options) if same else {}
        if spec.capabilities.schedule_option:
            options.setdefault(spec.capabilities.schedule_option, max(config.k_steps, 1))
        k = build_kernel(name, target, step_size=config.step_size if same else None, **options)
        step = state["ml"]["step_size"] if same else None
        if step is not None and getattr(k.base, "step_size", None) is not None:
            k.base.step_size = step
    k.reseed(seed, device)
    return k


def train_ebm(model: nn.Module, data: torch.Tensor, loss: str = "mdsm", seed: int = 0, device="cpu",
              progress: bool = True, log_path: Optional[str] = None, checkpoint_path: Optional[str] = None,
              kernel: Optional[KernelArg] = None, **config) -> EBMTrainer:
    """Train `model` on `data` with `loss`; returns the trainer. `loss="ml"`: maximum likelihood with `kernel` (a
    registry name, default "mala", a `TransitionKernel` on this model or a callable target -> kernel) as negative
    sampler and any `MLTrainConfig` field; otherwise score matching with any `EBMTrainConfig` field."""
    if loss != "ml":
        if kernel is not None:
            raise ValueError(f"the {loss} loss samples nothing during training: `kernel` is for loss='ml'")
        return train_score_matching(model, data, loss, seed, device, progress, log_path, checkpoint_path, **config)
    if isinstance(kernel, str):
        config["kernel"] = kernel
        kernel = None
    trainer = ContrastiveTrainer(model, data, MLTrainConfig(**config), seed=seed, device=device, kernel=kernel)
    return trainer.train(progress=progress, log_path=log_path, checkpoint_path=checkpoint_path)


@dataclass
class MLSamples:
    samples: torch.Tensor   # data coordinates
    model_space: torch.Tensor
    accept: float
    kernel: str             # the registry name
    seconds: float


def sample_ml(path_or_state, num: int, steps: int = 1000, kernel: Optional[str] = None, from_buffer: bool = False,
              seed: int = 0, device="cpu", progress: bool = False) -> MLSamples:
    """`num` samples of a model trained by `ContrastiveTrainer`: `steps` steps of the kernel it was trained with
    (or `kernel`) from noise, or from `num` states of its saved replay buffer (`from_buffer`)."""
    from .trainer import load_model

    if isinstance(path_or_state, (str, os.PathLike)):
        model, state = load_model(str(path_or_state), device)
    else:
        state = path_or_state
        model = build_network(state["network"])
        model.load_state_dict(state["model"])
        model = model.to(device).eval()
    config = ml_config(state)
    dtype = next(model.parameters()).dtype
    event = tuple(state["data"]["event_shape"])
    gen = torch.Generator().manual_seed(int(seed))
    pre = state["ml"]["preprocess"]
    transform = LogitTransform(pre["levels"], pre["lam"]) if pre else None
    if from_buffer:
        pooled = [r["buffer"]["positions"] for r in state["ml"]["ranks"] if r["buffer"] is not None]
        if not pooled:
            raise ValueError("the checkpoint has no replay buffer (trained with persistent=False)")
        pooled = torch.cat(pooled)
        if num > pooled.shape[0]:
            raise ValueError(f"the buffer holds {pooled.shape[0]} states, fewer than num = {num}")
        init = pooled[torch.randperm(pooled.shape[0], generator=gen)[:num]]
    elif transform is not None:
        init = transform.noise(num, event, gen)
    else:
        init = config.noise_scale * torch.randn((num,) + event, generator=gen, dtype=torch.float64)
    k = checkpoint_kernel(state, model, kernel, seed=seed + 1)
    t0 = time.perf_counter()
    st = k.init(init.to(dtype=dtype, device=device))
    acc = 0.0
    bar = range(steps)
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(bar, desc="sample-ebm", disable=None, dynamic_ncols=True)
    for _ in bar:
        st, info = k.step(st)
        acc += float(info.acceptance_prob.mean())
    x = st.position.detach()
    shift = state["normalization"]["shift"].to(x)
    scale = state["normalization"]["scale"].to(x)
    out = transform.inverse(x) if transform is not None else x * scale + shift
    return MLSamples(out.cpu(), x.cpu(), acc / max(steps, 1), kernel or config.kernel, time.perf_counter() - t0)


__all__ = ["train_ebm", "ContrastiveTrainer", "MLTrainConfig", "ReplayBuffer", "SamplerTraining", "ml_loss",
           "adapt_rate", "adapt_step_size", "learned_variant2", "sample_ml", "checkpoint_kernel", "ml_config", "MLSamples"]
