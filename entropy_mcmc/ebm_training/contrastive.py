"""Maximum-likelihood training of an energy model with any kernel as its negative sampler (thesis section 4.5,
appendix C.2): persistent contrastive divergence (Tieleman 2008) from a replay buffer.

    loss = mean_data E - mean_neg E + alpha (mean_data E^2 + mean_neg E^2)

Without the penalty its gradient is the log-likelihood gradient E_data[dE/dtheta] - E_model[dE/dtheta], the model
expectation estimated by the negatives; its fixed point matches the model's expectations of dE/dtheta to the data's
(for a quadratic energy: the sample mean and covariance, exactly so with alpha = 0). alpha = 0.001 by default
(TorchEBM's default; Du & Mordatch 2019 use 1): without it the MLP energy on two-moons at lr 1e-3 ran away within
160 updates (energies ~1e3, MALA's acceptance 0, energies ~1e7 by update 360, BENCHMARKS.md), with it the same run
is stable; at energies of order 1 it moves the gradient by about 0.2%. Pass 0 for the unbiased ML gradient.

Each update draws `batch_size` negatives from the replay buffer by `NegativePhase` (`negative_phase`: K steps of
the kernel, exactly round(reinit_fraction * batch) of the draw re-initialized from noise; `persistent=False` starts
the chains at the data batch, CD-K), which also adapts a calibrated kernel's step size toward `target_accept`
(0.6, the thesis' rate) by `StepSizeAdaptation`'s Robbins-Monro controller, rate max(adapt_rate,
adapt_rate_init / sqrt(1 + t)): large early, so HMC and MALA reach the target within a few dozen updates from any
start (at the constant 0.05 alone both were still at 0.8-0.99 after 100), then the floor keeps following the
moving model. The kernel is a registry name (`ula`, `mala`, `hmc`, `annealed-langevin`, a plug-in), a
`TransitionKernel` built on `trainer.target()`, or a callable `target -> TransitionKernel`. A trainable kernel
(`learned`, by its declared capabilities) is variant 2 of appendix C.1, trained alongside the model as appendix
C.2 does (`learned_in_loop`): before each update, `sampler_updates` steps of the entropy objective
(eqs. 4.4-4.5) on `sampler_batch` buffer states; the energy model is updated only when the sampler's mean
acceptance exceeds target_accept - sampler_gate.

Images are dequantized and logit-transformed (`preprocess.LogitTransform`); the model and the sampler work in
logit space.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from ..samplers.base import find_kernel, spawn_seeds
from ..samplers.distributed import chain_shard
from ..samplers.learned.kernel import LearnedSampler
from ..samplers.learned.proposal import LearnedProposal
from ..samplers.registry import get_kernel_spec
from .learned_in_loop import SamplerTraining, learned_variant2
from .metrics import mmd
from .negative_phase import KernelArg, NegativePhase, ReplayBuffer
from .networks import build_network
from .preprocess import LogitTransform, infer_levels
from .trainer import EBMTrainConfig, EBMTrainer, check_architecture, load_checkpoint, train_score_matching


def ml_loss(energy_data: torch.Tensor, energy_neg: torch.Tensor, penalty: float = 0.001) -> torch.Tensor:
    """mean E(data) - mean E(negatives) + penalty (mean E(data)^2 + mean E(negatives)^2) (see the module)."""
    loss = energy_data.mean() - energy_neg.mean()
    if penalty:
        loss = loss + penalty * (energy_data.pow(2).mean() + energy_neg.pow(2).mean())
    return loss


@dataclass
class MLTrainConfig(EBMTrainConfig):
    """Settings of a maximum-likelihood (contrastive) run; the score-matching fields it inherits are unused.

    Parameters
    ----------
    kernel
        The registry name of the negative sampler (a kernel object is passed to the trainer instead).
    k_steps
        Kernel steps per update (thesis: 40 with the learned sampler; 30 here by default).
    buffer_size, reinit_fraction
        The replay buffer and the share of each draw re-initialized from noise.
    persistent
        False runs CD-K (chains start at the data batch; no buffer).
    energy_penalty
        Alpha of the squared-energy penalty (0.001; 0: the unbiased ML gradient, see the module).
    step_size
        The kernel's initial step size (None: the registry's default).
    target_accept, adapt_rate_init, adapt_rate
        The Robbins-Monro step-size control of calibrated kernels, rate
        max(adapt_rate, adapt_rate_init / sqrt(1 + update)) (both 0: a fixed step size).
    noise_scale
        Points are (re)initialized from N(0, noise_scale^2 I) in standardized coordinates; images from
        uniform pixels in logit space.
    preprocess
        "logit" (dequantize and logit-transform images), "none", or None (logit for images).
    levels, logit_lambda
        The grey levels of the images (None: inferred from the data) and the squeeze lambda.
    kernel_options
        Extra keywords of the kernel's builder (e.g. {"num_steps": 5} for HMC).
    sampler_*
        The learned sampler (variant 2, appendix C.2): width, z-update steps, eps (None: 0.01 for images
        as in C.2, 0.1 for points), learning rate, updates and batch per EBM update, the entropy weight's start
        and log-space rate, and the acceptance gate.
    adam_betas
        The energy model's Adam momentum (0.5, 0.9) and learning rate 1e-4, as in appendix C.2.
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
        given_object = kernel is not None and not isinstance(kernel, str)
        kernel = config.kernel if kernel is None else kernel
        if isinstance(kernel, str) and get_kernel_spec(kernel).capabilities.trainable:
            kernel = learned_variant2(self.target(), config, sampler_seed, images)  # trained here, in the loop
        self.negative = NegativePhase(
            self.target(), kernel, k_steps=config.k_steps,
            buffer_size=chain_shard(config.buffer_size, self.rank, self.world_size)[1] if config.persistent else 0,
            reinit_fraction=config.reinit_fraction, noise=self.noise, target_accept=config.target_accept,
            adapt_rate_init=config.adapt_rate_init, adapt_rate=config.adapt_rate, step_size=config.step_size,
            kernel_options=config.kernel_options, seed=kernel_seed, generator=self.buffer_gen, dtype=self.dtype,
            device=self.device, reduce=self._reduce_mean)
        if given_object:
            config.kernel = "object:" + self.negative.name
        learned = find_kernel(self.negative.kernel, LearnedSampler)
        self.sampler_training = None
        if learned is not None and isinstance(learned.model, LearnedProposal):
            learned.model.to(dtype=self.dtype, device=self.device)
            self.sampler_training = SamplerTraining(learned, config, self.sampler_gen, self._reduce_mean)
        self.history = {k: [] for k in LOG_KEYS}

    @property
    def kernel(self):
        """The negative phase's kernel (with its step-size adaptation, if it adapts)."""
        return self.negative.kernel

    @property
    def buffer(self) -> Optional[ReplayBuffer]:
        return self.negative.buffer

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

    def _reduce_mean(self, t: torch.Tensor) -> torch.Tensor:
        if self.world_size == 1:
            return t
        import torch.distributed as dist

        t = t.detach().clone()
        dist.all_reduce(t)
        return t / self.world_size

    # -- one update -------------------------------------------------------------------------------------
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
            neg = self.negative(x)
            row["accept"] = self.negative.accept
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
            row.update(loss=loss.item(), energy_data=e_data.mean().item(), energy_neg=e_neg.mean().item())
        self.step += 1
        self.seconds += time.perf_counter() - t0
        row["step_size"] = self.negative.step_size
        return row

    def _log_row(self, window) -> Dict[str, float]:
        keys = ("loss", "energy_data", "energy_neg", "accept", "step_size", "sampler_accept", "ebm_update")
        means = {}
        for k in keys:
            vals = [w[k] for w in window if math.isfinite(w[k])]
            means[k] = sum(vals) / len(vals) if vals else float("nan")
        if self.world_size > 1:
            t = self._reduce_mean(torch.tensor([means[k] for k in keys], dtype=torch.float64, device=self.device))
            means = dict(zip(keys, t.cpu().tolist()))
        row = {"step": self.step, **means, "entropy": self.negative.proposal_entropy(),
               "val": self._mean_over_ranks(self.validation_criterion()), "seconds": self.seconds}
        for k, v in row.items():
            self.history.setdefault(k, []).append(v)
        return row

    def validation_criterion(self) -> float:
        """The MMD between held-out points and as many replay-buffer states (at most 1024, the same draw at every
        check), in data coordinates; NaN without held-out points or a buffer (CD-K). Lower is better."""
        if self.val_data is None or self.buffer is None:
            return float("nan")
        n = min(self.val_data.shape[0], len(self.buffer), VALIDATION_POINTS)
        rows = torch.randperm(len(self.buffer), generator=torch.Generator().manual_seed(self.seed))[:n]
        neg = self.buffer.positions[rows.to(self.buffer.positions.device)]
        if self.transform is not None:  # logit-space states back to pixels, as the held-out images are
            neg = self.transform.inverse(neg)
        return mmd(self.val_data[:n].double().cpu(), neg.double().cpu())

    # -- sampling view ----------------------------------------------------------------------------------
    def to_data(self, x: torch.Tensor) -> torch.Tensor:
        """Model coordinates back to data coordinates (pixels in [0, 1] for logit-space images)."""
        if self.transform is not None:
            return self.transform.inverse(x)
        return super().to_data(x)

    # -- checkpoints ------------------------------------------------------------------------------------
    def _rank_state(self) -> Dict[str, Any]:
        return {**self.negative.state_dict(), "sampler_rng": self.sampler_gen.get_state(),
                "noise_rng": self.noise_gen.get_state()}

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
        if self.sampler_training is not None:
            if ml["sampler"] is None:
                raise ValueError("the checkpoint holds no learned sampler to resume")
            self.sampler_training.load_state_dict(ml["sampler"])
        ranks = ml["ranks"]
        same_world = len(ranks) == self.world_size
        mine = ranks[self.rank] if same_world else ranks[0]
        self.negative.load_state_dict({**mine, "step_size": ml["step_size"]}, kernel_state=same_world)
        if same_world:
            self.sampler_gen.set_state(mine["sampler_rng"])
            self.noise_gen.set_state(mine["noise_rng"])
        elif self.buffer is not None:  # another world size: the pooled buffer re-split, fresh random streams
            pooled = torch.cat([r["buffer"]["positions"] for r in ranks])
            off, cnt = chain_shard(pooled.shape[0], self.rank, self.world_size)
            self.buffer.positions.copy_(pooled[off:off + cnt][:len(self.buffer)])

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


def ml_config(state: Dict[str, Any]) -> MLTrainConfig:
    """The `MLTrainConfig` saved in a checkpoint (ValueError for a score-matching checkpoint)."""
    saved = dict(state["config"])
    if saved.get("loss") != "ml":
        raise ValueError(f"the checkpoint was trained with the {saved.get('loss')} loss, not ml")
    return MLTrainConfig(**saved)


VALIDATION_POINTS = 1024
LOG_KEYS = ("step", "loss", "energy_data", "energy_neg", "accept", "step_size", "sampler_accept", "ebm_update",
            "entropy", "val", "seconds")


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


__all__ = ["train_ebm", "ContrastiveTrainer", "MLTrainConfig", "ml_loss", "ml_config", "LOG_KEYS"]
