"""Training an energy model by score matching: MDSM (eq. 3.7, the default), DSM, exact or sliced score matching.

    trainer = EBMTrainer(MLPEnergy(2), data, EBMTrainConfig(loss="mdsm", steps=5000, lr=1e-3), seed=0)
    trainer.train(progress=True, log_path="log.csv", checkpoint_path="model.pt")
    trainer.save("model.pt")                   # model, optimizer, step, RNG states, config, normalization
    trainer = EBMTrainer.resume("model.pt", data)   # continues bitwise as an uninterrupted run would

Adam (the thesis' learning rate 5e-5 by default), a tqdm bar, a CSV log of the loss and the mean energies of
clean and noisy data, float32 or float64, any device. Under `torchrun --nproc_per_node N` the model is
wrapped in DistributedDataParallel (gloo on CPU, NCCL on GPU): every rank draws the same global batch
indices and noise levels and takes its own contiguous block, with its own noise seed, so the global batch is
the one a single process would see. Points (`[n, d]` data) are standardized (one shift per coordinate, one
common scale) unless told otherwise; the normalization is saved with the model.

Training ends when it has learned: `holdout` (10%) of the points are kept out of training, and at every log
the validation criterion is measured on them (score matching: the loss on the held-out points with the same
noise at every check, so that checks differ only by the model; maximum likelihood: the MMD between held-out
points and replay-buffer states). After `patience` checks without improving on the best by `min_delta` times
the improvement made since the first check (a loss's constant part does not count), or once `time_budget`
seconds of training are spent, training stops before `steps` (the most it
runs); `stop_reason` says why. The bar shows the criterion, the checks left and the time left of the budget.
"""
from __future__ import annotations

import csv
import dataclasses
import math
import os
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Optional, Tuple

import torch
from torch import nn

from ..samplers.base import spawn_seeds
from ..samplers.distributed import chain_shard, process_group
from .energy_target import EnergyTarget, unwrap_model
from .losses import LOSSES, NoiseLevels, dsm_loss, esm_loss, mdsm_loss, ssm_loss
from .networks import build_network

CHECKPOINT_FORMAT = "entropy-mcmc-ebm/1"
MAX_VALIDATION = 4096  # held-out points at most; the criterion is evaluated in chunks of VALIDATION_CHUNK
VALIDATION_CHUNK = 1024
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class EBMTrainConfig:
    """Settings of a score-matching run.

    Parameters
    ----------
    loss
        "mdsm" (eq. 3.7), "dsm" (eq. 3.3 at the single level sigma0), "esm" (exact), "ssm" (sliced).
    sigma_min, sigma_max, spacing, draw
        MDSM's noise levels (`NoiseLevels`); the thesis' MNIST range
        [0.1, 3] geometric is the default.
    sigma0
        The fixed kernel width of eq. 3.7 (0.1), and DSM's single level.
    ssm_projections
        Random directions per sample for "ssm".
    standardize
        None standardizes points and leaves images as they are.
    steps
        The most updates a run takes; it ends earlier on a plateau of the validation criterion or the budget.
    holdout
        Share of the points held out for validation (0: none, and no early stop).
    patience, min_delta
        Stop after `patience` validation checks (one per `log_every` updates) without improving
        on the best by `min_delta` times the improvement made since the first check (patience 0: never on a
        plateau).
    time_budget
        Stop once this many seconds of training are spent (None: no budget).
    """

    LOSS_CHOICES: ClassVar[Tuple[str, ...]] = LOSSES
    loss: str = "mdsm"
    steps: int = 5000
    batch_size: int = 128
    lr: float = 5e-5
    sigma0: float = 0.1
    sigma_min: float = 0.1
    sigma_max: float = 3.0
    spacing: str = "geometric"
    draw: str = "spaced"
    ssm_projections: int = 1
    standardize: Optional[bool] = None
    dtype: str = "float32"
    log_every: int = 50
    checkpoint_every: int = 0
    holdout: float = 0.1
    patience: int = 10
    min_delta: float = 0.005
    time_budget: Optional[float] = None

    def __post_init__(self):
        if self.loss not in self.LOSS_CHOICES:
            raise ValueError(f"unknown loss {self.loss!r}; expected one of {', '.join(self.LOSS_CHOICES)}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        for name in ("steps", "batch_size", "log_every", "ssm_projections"):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be positive and finite, got {self.lr!r}")
        if not self.sigma0 > 0:
            raise ValueError(f"sigma0 must be positive, got {self.sigma0!r}")
        if not 0.0 <= self.holdout < 0.5:
            raise ValueError(f"holdout must lie in [0, 0.5), got {self.holdout!r}")
        if isinstance(self.patience, bool) or int(self.patience) != self.patience or self.patience < 0:
            raise ValueError(f"patience must be a non-negative integer, got {self.patience!r}")
        if not (0.0 <= self.min_delta < 1.0):
            raise ValueError(f"min_delta must lie in [0, 1), got {self.min_delta!r}")
        if self.time_budget is not None and not (self.time_budget > 0 and math.isfinite(self.time_budget)):
            raise ValueError(f"time_budget must be a positive number of seconds, got {self.time_budget!r}")
        self.noise_levels()  # validates the range

    def noise_levels(self) -> NoiseLevels:
        return NoiseLevels(self.sigma_min, self.sigma_max, self.spacing, self.draw)


def _normalization(data: torch.Tensor, standardize: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """(shift `[*event]`, scale scalar) with model input = (x - shift) / scale."""
    if not standardize:
        return torch.zeros(data.shape[1:], dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    d = data.to(torch.float64)
    shift = d.mean(0)
    scale = (d - shift).pow(2).mean().sqrt()
    if not scale > 0:
        raise ValueError("cannot standardize data whose points are all equal")
    return shift, scale


class EBMTrainer:
    """Score matching for an energy network on a data tensor `[n, *event]` (see the module docstring)."""

    def __init__(self, model: nn.Module, data: torch.Tensor, config: Optional[EBMTrainConfig] = None, seed: int = 0,
                 device="cpu", data_info: Optional[Dict[str, Any]] = None):
        self.config = config = config or EBMTrainConfig()
        if not isinstance(model, nn.Module):
            raise TypeError(f"the energy model must be an nn.Module, got {type(model).__name__}")
        if not isinstance(data, torch.Tensor) or data.dim() < 2 or data.shape[0] < 2:
            raise ValueError(f"data must be a tensor [n, *event] with n >= 2, got "
                             f"{list(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__}")
        event = getattr(model, "event_shape", None)
        if event is not None and tuple(data.shape[1:]) != tuple(event):
            raise ValueError(f"the data points have shape {list(data.shape[1:])} but the model takes "
                             f"{list(event)}")
        self.device = torch.device(device)
        self.dtype = DTYPES[config.dtype]
        self.rank, self.world_size = process_group(self.device)
        if config.batch_size < self.world_size:
            raise ValueError(f"batch size {config.batch_size} cannot be split across {self.world_size} processes")
        self.seed = int(seed)
        standardize = data.dim() == 2 if config.standardize is None else config.standardize
        self.shift, self.scale = _normalization(data, standardize)
        self.data_info = dict(data_info or {}, event_shape=list(data.shape[1:]))
        data = ((data.to(torch.float64) - self.shift) / self.scale).to(dtype=self.dtype, device=self.device)
        n_val = min(int(round(config.holdout * data.shape[0])), MAX_VALIDATION) if data.shape[0] >= 20 else 0
        order = torch.randperm(data.shape[0], generator=torch.Generator().manual_seed(spawn_seeds(self.seed, 6)[5]))
        self.val_data = data[order[:n_val].to(self.device)] if n_val else None
        self.data = data[order[n_val:].to(self.device)] if n_val else data
        self.model = unwrap_model(model).to(dtype=self.dtype, device=self.device)
        self.net = self.model
        if self.world_size > 1:
            kwargs = {"device_ids": [self.device.index]} if self.device.type == "cuda" else {}
            self.net = nn.parallel.DistributedDataParallel(self.model, **kwargs)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.step = 0
        batch_seed, noise_seed = spawn_seeds(self.seed, 2)
        self.batch_gen = torch.Generator().manual_seed(batch_seed)
        self.noise_gen = torch.Generator(device=self.device).manual_seed(spawn_seeds(noise_seed,
                                                                                     self.world_size)[self.rank])
        self.history = {"step": [], "loss": [], "energy_data": [], "energy_noisy": [], "val": [], "seconds": []}
        self.seconds = 0.0
        self.first_val, self.best_val, self.stale_checks, self.stop_reason = float("inf"), float("inf"), 0, None

    # -- one update -------------------------------------------------------------------------------------
    def _batch(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """This rank's block of the global batch, and its noise levels."""
        b = self.config.batch_size
        idx = torch.randint(self.data.shape[0], (b,), generator=self.batch_gen)
        sig = self.config.noise_levels()(b, torch.empty(0, dtype=torch.float64), self.batch_gen)
        off, cnt = chain_shard(b, self.rank, self.world_size)
        idx = idx[off:off + cnt].to(self.device)
        return self.data[idx], sig[off:off + cnt].to(dtype=self.dtype, device=self.device)

    def loss(self, x: torch.Tensor, sigmas: torch.Tensor, net: Optional[nn.Module] = None,
             generator: Optional[torch.Generator] = None):
        """(loss, energies `[batch]` at the points the loss evaluated, graph kept) for a batch."""
        c = self.config
        net = self.net if net is None else net
        gen = self.noise_gen if generator is None else generator
        if c.loss == "mdsm":
            loss, _, e = mdsm_loss(net, x, sigmas, c.sigma0, generator=gen, return_parts=True)
        elif c.loss == "dsm":
            loss, _, e = dsm_loss(net, x, c.sigma0, generator=gen, return_parts=True)
        elif c.loss == "esm":
            loss, e = esm_loss(net, x, return_energy=True)
        else:
            loss, e = ssm_loss(net, x, c.ssm_projections, generator=gen, return_energy=True)
        return loss, e

    def validation_criterion(self) -> float:
        """The loss on the held-out points, with the same noise levels and noise at every check (NaN without
        held-out points); lower is better."""
        if self.val_data is None:
            return float("nan")
        levels = torch.Generator().manual_seed(self.seed)
        noise = torch.Generator(device=self.device).manual_seed(self.seed)
        self.model.eval()
        total = 0.0
        for x in self.val_data.split(VALIDATION_CHUNK):
            sig = self.config.noise_levels()(x.shape[0], torch.empty(0, dtype=torch.float64), levels)
            loss, _ = self.loss(x, sig.to(dtype=self.dtype, device=self.device), self.model, noise)
            total += float(loss.detach()) * x.shape[0]
        return total / self.val_data.shape[0]

    def _mean_over_ranks(self, value: float) -> float:
        if self.world_size == 1 or not math.isfinite(value):
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t) / self.world_size

    def _check_progress(self, val: float) -> Optional[str]:
        """Update the plateau count with a validation criterion; the reason to stop, if any."""
        c = self.config
        if math.isfinite(val):
            if not math.isfinite(self.first_val):
                self.first_val = val
            # losses carry a constant they cannot go below (DSM's noise term): an improvement is measured
            # against the improvement made so far, not against the criterion's value
            progress = self.first_val - self.best_val
            if not math.isfinite(self.best_val) or val < self.best_val - c.min_delta * progress:
                self.best_val, self.stale_checks = min(val, self.best_val), 0
            else:
                self.stale_checks += 1
            if c.patience and self.stale_checks >= c.patience:
                return (f"plateau: the validation criterion has not improved on {self.best_val:.4g} by "
                        f"{c.min_delta:g} of its improvement so far in {c.patience} checks")
        if c.time_budget is not None and self.seconds >= c.time_budget:
            return f"time budget of {c.time_budget:g} s spent"
        return None

    def update(self) -> Dict[str, float]:
        """One Adam step on one batch; returns the loss and the mean energies (data, noisy data)."""
        t0 = time.perf_counter()
        self.model.train()
        x, sigmas = self._batch()
        self.optimizer.zero_grad(set_to_none=True)
        loss, e = self.loss(x, sigmas)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the {self.config.loss} loss is {loss.item()} at step {self.step}; lower the "
                                     "learning rate")
        # Score matching never reaches the energy's additive constant (the last bias), and DDP only reduces
        # once every parameter has a gradient: the zero-weighted energy gives that one an exact zero.
        (loss + 0.0 * e.sum() if self.world_size > 1 else loss).backward()
        self.optimizer.step()
        self.step += 1
        with torch.no_grad():
            e_data = self.model(x).mean()
        self.seconds += time.perf_counter() - t0
        e_noisy = e.mean().item() if self.config.loss in ("mdsm", "dsm") else float("nan")
        return {"loss": loss.item(), "energy_data": e_data.item(), "energy_noisy": e_noisy}

    # -- the loop ---------------------------------------------------------------------------------------
    def train(self, steps: Optional[int] = None, progress: bool = True, log_path: Optional[str] = None,
              checkpoint_path: Optional[str] = None) -> "EBMTrainer":
        """Run until `steps` updates in total (default: the config's), logging every `log_every` updates and
        checkpointing every `checkpoint_every` (and at the end) when `checkpoint_path` is given."""
        total = self.config.steps if steps is None else int(steps)
        c = self.config
        bar = None
        if progress and self.rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=self.step, desc=f"train-ebm {c.loss}", disable=None, dynamic_ncols=True)
        window = []
        self.stop_reason = None
        while self.step < total and self.stop_reason is None:
            window.append(self.update())
            if bar is not None:
                bar.update(1)
            if self.step % c.log_every == 0 or self.step == total:
                row = self._log_row(window)
                window = []
                self.stop_reason = self._check_progress(row["val"])
                if bar is not None:
                    left = "" if c.time_budget is None else f"{max(c.time_budget - self.seconds, 0):.0f}s"
                    bar.set_postfix(loss=f"{row['loss']:.4g}", val=f"{row['val']:.4g}", best=f"{self.best_val:.4g}",
                                    plateau=f"{self.stale_checks}/{c.patience}", budget_left=left)
                if log_path and self.rank == 0:
                    self._append_csv(log_path, row)
            elif c.time_budget is not None and self.seconds >= c.time_budget:
                self.stop_reason = f"time budget of {c.time_budget:g} s spent"
            if checkpoint_path and c.checkpoint_every and self.step % c.checkpoint_every == 0:
                self.save(checkpoint_path)
        if bar is not None:
            bar.close()
        if checkpoint_path:
            self.save(checkpoint_path)
        return self

    def _log_row(self, window) -> Dict[str, float]:
        keys = ("loss", "energy_data", "energy_noisy")
        means = torch.tensor([sum(w[k] for w in window) / len(window) for k in keys], dtype=torch.float64)
        if self.world_size > 1:
            import torch.distributed as dist

            means = means.to(self.device)
            dist.all_reduce(means)
            means = means.cpu() / self.world_size
        row = {"step": self.step, **{k: float(v) for k, v in zip(keys, means)},
               "val": self._mean_over_ranks(self.validation_criterion()), "seconds": self.seconds}
        for k, v in row.items():
            self.history.setdefault(k, []).append(v)
        return row

    @staticmethod
    def _append_csv(path: str, row: Dict[str, float]) -> None:
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)

    # -- sampling view ----------------------------------------------------------------------------------
    def target(self) -> EnergyTarget:
        """The trained model as a `Target` (in the standardized coordinates it was trained in)."""
        return EnergyTarget(self.model)

    def to_data(self, x: torch.Tensor) -> torch.Tensor:
        """Model coordinates back to data coordinates."""
        return x * self.scale.to(x) + self.shift.to(x)

    # -- checkpoints ------------------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, "network": dict(self.model.config), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "step": self.step, "seed": self.seed,
                "config": dataclasses.asdict(self.config), "rng": {"batch": self.batch_gen.get_state(),
                                                                   "noise": self.noise_gen.get_state()},
                "normalization": {"shift": self.shift, "scale": self.scale}, "data": self.data_info,
                "history": self.history, "seconds": self.seconds, "world_size": self.world_size,
                "early_stopping": {"first": self.first_val, "best": self.best_val, "stale": self.stale_checks,
                                   "reason": self.stop_reason}}

    def save(self, path: str) -> None:
        """Write the checkpoint (rank 0 only under torchrun)."""
        if self.rank == 0:
            folder = os.path.dirname(os.path.abspath(path))
            os.makedirs(folder, exist_ok=True)
            tmp = path + ".tmp"
            torch.save(self.state_dict(), tmp)
            os.replace(tmp, path)

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        check_architecture(self.model, state)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.batch_gen.set_state(state["rng"]["batch"])
        if state.get("world_size", 1) == self.world_size:
            self.noise_gen.set_state(state["rng"]["noise"])
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.seconds = float(state.get("seconds", 0.0))
        stopping = state.get("early_stopping",
                             {"first": float("inf"), "best": float("inf"), "stale": 0, "reason": None})
        self.first_val, self.best_val = float(stopping["first"]), float(stopping["best"])
        self.stale_checks = int(stopping["stale"])
        self.stop_reason = stopping["reason"]

    @classmethod
    def resume(cls, path: str, data: torch.Tensor, device="cpu", steps: Optional[int] = None,
               model: Optional[nn.Module] = None) -> "EBMTrainer":
        """A trainer restored from `path` (its network is rebuilt from the saved config unless `model` is given,
        which must then be of the same architecture); `steps` raises the total number of updates."""
        state = load_checkpoint(path)
        config = EBMTrainConfig(**state["config"])
        if steps is not None:
            config.steps = int(steps)
        if model is None:
            model = build_network(state["network"])
        trainer = cls(model, data, config, seed=state["seed"], device=device, data_info=state["data"])
        trainer.load_state_dict(state)
        return trainer


def load_checkpoint(path: str) -> Dict[str, Any]:
    """A checkpoint written by `EBMTrainer.save` (read with weights_only=True: plain data only)."""
    if not os.path.exists(path):
        raise ValueError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types
        detail = (str(err).splitlines() or [type(err).__name__])[0]
        raise ValueError(f"{path} is not a readable energy-model checkpoint ({detail})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an entropy-mcmc energy-model checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def check_architecture(model: nn.Module, state: Dict[str, Any]) -> None:
    """ValueError unless `model` has the architecture the checkpoint was saved from."""
    mine = dict(getattr(unwrap_model(model), "config", {}) or {})
    saved = dict(state["network"])
    if mine != saved:
        raise ValueError(f"the checkpoint holds a {saved.get('kind')} network {saved}, not this model's "
                         f"{mine.get('kind')} {mine}")


def load_model(path: str, device="cpu") -> Tuple[nn.Module, Dict[str, Any]]:
    """The trained network of a checkpoint (eval mode) and the checkpoint dict (normalization, config, data)."""
    state = load_checkpoint(path)
    model = build_network(state["network"])
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not fit the saved architecture: {str(err).splitlines()[0]}") from None
    dtype = DTYPES[state["config"]["dtype"]]
    return model.to(dtype=dtype, device=device).eval(), state


def train_score_matching(model: nn.Module, data: torch.Tensor, loss: str = "mdsm", seed: int = 0, device="cpu",
                         progress: bool = True, log_path: Optional[str] = None, checkpoint_path: Optional[str] = None,
                         **config) -> EBMTrainer:
    """Train `model` on `data` with a score-matching `loss` and any `EBMTrainConfig` field; returns the trainer
    (`train_ebm` takes every loss, maximum likelihood included)."""
    trainer = EBMTrainer(model, data, EBMTrainConfig(loss=loss, **config), seed=seed, device=device)
    return trainer.train(progress=progress, log_path=log_path, checkpoint_path=checkpoint_path)


__all__ = ["EBMTrainer", "EBMTrainConfig", "train_score_matching", "load_checkpoint", "load_model",
           "check_architecture"]
