"""Contrastive divergence (CD-k) and persistent CD for the CAP-RBM and the Bernoulli RBM (thesis sec. 2.3).

Each update: the positive statistics are the free-energy gradient at the data (hidden rates, as
appendix A.3 prescribes: "rate ... is used to compute weight updates"); the negative statistics the
same at visible states after k block Gibbs steps, started at the data (CD-k) or continued from
persistent chains (PCD, Tieleman 2008). Their difference is the gradient of the negative
log-likelihood up to the CD bias; SGD with momentum and weight decay (on W and J only) applies it.
An optional sparsity penalty, `sparsity_cost/2 * sum_k (q_k - sparsity_target)^2` on the batch-mean
hidden activity q (the thesis motivates a sparsity constraint, sec. 2.1), adds its exact gradient.
"""
from __future__ import annotations

import csv
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Union

import torch

from .bernoulli import RBM
from .caprbm import CAPRBM, check_units
from .checkpoint import atomic_save, model_payload, read_payload
from .gibbs import BernoulliGibbs, CAPRBMGibbs, RBMState


@dataclass
class RBMTrainConfig:
    """Settings of `train_rbm`. The defaults are the thesis' bars run (CD-1, 10 epochs) with a batch of 100."""

    epochs: int = 10
    batch_size: int = 100
    learning_rate: float = 0.05
    momentum: float = 0.5
    weight_decay: float = 0.0
    cd_k: int = 1
    persistent: bool = False
    num_chains: Optional[int] = None        # PCD chains; default: the batch size
    sparsity_target: Optional[float] = None
    sparsity_cost: float = 0.0
    seed: int = 0
    progress: bool = True

    def __post_init__(self):
        for name in ("epochs", "batch_size", "cd_k"):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name in ("learning_rate",):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("momentum", "weight_decay", "sparsity_cost"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not self.momentum < 1:
            raise ValueError(f"momentum must be < 1, got {self.momentum!r}")
        if self.sparsity_target is not None and not 0 < self.sparsity_target < 1:
            raise ValueError(f"sparsity_target must lie in (0, 1), got {self.sparsity_target!r}")


def gibbs_kernel(model, seed=None, **options):
    """The block Gibbs kernel of `model` (a CAPRBM or an RBM)."""
    if isinstance(model, CAPRBM):
        return CAPRBMGibbs(model, seed=seed, **options)
    if isinstance(model, RBM):
        return BernoulliGibbs(model, seed=seed, **options)
    raise TypeError(f"expected a CAPRBM or an RBM, got {type(model).__name__}")


def check_data(model, data: torch.Tensor) -> torch.Tensor:
    """Training data as the model needs it, or a clear error (complex 0/1 moduli for the CAP-RBM)."""
    if isinstance(model, CAPRBM):
        return check_units(data, model.num_visible, "data", model.complex_dtype).to(model.W.device)
    return model.check_visible(data, "data").to(model.W.device)


def _hidden_activity(model, v):
    if isinstance(model, CAPRBM):
        return torch.sigmoid(model.hidden_logits(v))
    return model.hidden_probs(v)


def reconstruction_error(model, v: torch.Tensor) -> torch.Tensor:
    """Mean squared |v - E[v | E[h | v]]| of a one-step mean-field reconstruction (a training monitor)."""
    with torch.no_grad():
        if isinstance(model, CAPRBM):
            rate, prob = model._rates(*model.hidden_input(v), model.hidden_bias)
            u = rate @ model.W.transpose(0, 1)
            recon = model._rates(u, prob @ model.J.transpose(0, 1), model.visible_bias)[0]
        else:
            recon = model.visible_probs(model.hidden_probs(v))
        return (v - recon).abs().pow(2).sum(-1).mean()


class Trainer:
    """CD-k / PCD trainer of one model. `fit(data)` runs the remaining epochs; `save`/`load` checkpoint
    everything (weights, optimizer, chains, generators, epoch) so a resumed run continues bitwise."""

    def __init__(self, model, config: Optional[RBMTrainConfig] = None, meta: Optional[Dict[str, object]] = None):
        self.model = model
        self.meta = dict(meta or {})    # saved with the checkpoint: what the data was, how to show it
        self.config = config or RBMTrainConfig()
        c = self.config
        weights = [p for n, p in model.named_parameters() if n in ("W", "J")]
        biases = [p for n, p in model.named_parameters() if n not in ("W", "J")]
        self.optimizer = torch.optim.SGD([{"params": weights, "weight_decay": c.weight_decay},
                                          {"params": biases, "weight_decay": 0.0}],
                                         lr=c.learning_rate, momentum=c.momentum)
        self.generator = torch.Generator().manual_seed(c.seed)
        self.kernel = gibbs_kernel(model, seed=c.seed + 1, record_energy=False)
        self.chains: Optional[RBMState] = None
        self.epoch = 0
        self.history: List[Dict[str, float]] = []

    def _negatives(self, v: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
        c = self.config
        if c.persistent:
            if self.chains is None:
                n = c.num_chains or c.batch_size
                idx = torch.randint(0, data.shape[0], (n,), generator=self.generator)
                self.chains = self.kernel.init(data[idx])
            state = self.chains
        else:
            state = RBMState(v, torch.zeros(v.shape[0], self.model.num_hidden, dtype=v.dtype, device=v.device))
        self.kernel._ensure_generator(v.real if v.is_complex() else v)
        for _ in range(c.cd_k):
            state, _ = self.kernel.step(state)
        if c.persistent:
            self.chains = state
        return state.visible

    def update(self, v: torch.Tensor, data: torch.Tensor) -> Dict[str, float]:
        """One CD/PCD step on the minibatch `v`; returns the batch's monitors."""
        c, model = self.config, self.model
        with torch.no_grad():
            pos = model.free_energy_grad(v)
            v_neg = self._negatives(v, data)
            neg = model.free_energy_grad(v_neg)
        self.optimizer.zero_grad(set_to_none=True)
        if c.sparsity_target is not None and c.sparsity_cost > 0:
            activity = _hidden_activity(model, v).mean(0)
            (0.5 * c.sparsity_cost * (activity - c.sparsity_target).pow(2).sum()).backward()
        for name, p in model.named_parameters():
            if name in pos:
                step = pos[name] - neg[name]
                p.grad = step if p.grad is None else p.grad + step
        self.optimizer.step()
        # the mean hidden activity at the data, before the step: dF/d(hidden bias) is +-P(h = 1 | v)
        mean_activity = pos["hidden_bias"].mean() if isinstance(model, CAPRBM) else -pos["hidden_bias"].mean()
        return {"hidden_activity": float(mean_activity)}

    def fit(self, data: torch.Tensor, checkpoint: Optional[Union[str, Path]] = None,
            log: Optional[Union[str, Path]] = None, callback=None) -> List[Dict[str, float]]:
        """Train until `config.epochs`; after each epoch write the checkpoint and a CSV row, call `callback(self)`."""
        c = self.config
        data = check_data(self.model, data)
        n = data.shape[0]
        batches = math.ceil(n / c.batch_size)
        from tqdm.auto import tqdm

        while self.epoch < c.epochs:
            t0 = time.perf_counter()
            order = torch.randperm(n, generator=self.generator).to(data.device)
            monitors = []
            bar = tqdm(range(batches), desc=f"epoch {self.epoch + 1}/{c.epochs}", leave=False,
                       disable=None if c.progress else True, dynamic_ncols=True)
            for b in bar:
                v = data[order[b * c.batch_size:(b + 1) * c.batch_size]]
                monitors.append(self.update(v, data))
            self.epoch += 1
            probe = data[:min(n, 1000)]
            with torch.no_grad():
                row = {"epoch": self.epoch, "seconds": time.perf_counter() - t0,
                       "reconstruction_error": float(reconstruction_error(self.model, probe)),
                       "hidden_activity": sum(m["hidden_activity"] for m in monitors) / len(monitors),
                       "free_energy_data": float(self.model.free_energy(probe).mean())}
            self.history.append(row)
            if log is not None:
                self._append_csv(log, row)
            if checkpoint is not None:
                self.save(checkpoint)
            if callback is not None:
                callback(self)
        return self.history

    @staticmethod
    def _append_csv(path, row):
        path = Path(path)
        new = not path.exists() or path.stat().st_size == 0
        with path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)

    def save(self, path: Union[str, Path]) -> None:
        payload = model_payload(self.model)
        payload["meta"] = self.meta
        payload["trainer"] = {
            "config": dataclasses.asdict(self.config), "epoch": self.epoch, "history": self.history,
            "optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state(),
            "kernel_generator": None if self.kernel.generator is None else self.kernel.generator.get_state(),
            "chains": None if self.chains is None else {"visible": self.chains.visible.cpu(),
                                                        "hidden": self.chains.hidden.cpu()}}
        atomic_save(payload, path)

    @classmethod
    def load(cls, path: Union[str, Path], model=None, **config_changes) -> "Trainer":
        """Resume from a checkpoint written by `save`; `config_changes` (e.g. `epochs=20`, `persistent=True`
        to continue CD-1 with PCD as the thesis' MNIST run does) override the saved settings."""
        from .checkpoint import load_model

        payload = read_payload(path)
        if "trainer" not in payload:
            raise ValueError(f"{path} holds a model without trainer state; train it anew or load it with load_model")
        t = payload["trainer"]
        model = model if model is not None else load_model(path)
        config = RBMTrainConfig(**{**t["config"], **config_changes})
        trainer = cls(model, config, payload.get("meta"))
        trainer.optimizer.load_state_dict(t["optimizer"])   # momentum buffers; the settings are the new config's
        for group, decay in zip(trainer.optimizer.param_groups, (config.weight_decay, 0.0)):
            group.update(lr=config.learning_rate, momentum=config.momentum, weight_decay=decay)
        trainer.generator.set_state(t["generator"])
        if t["kernel_generator"] is not None:
            trainer.kernel.reseed(config.seed + 1, model.W.device)
            trainer.kernel.generator.set_state(t["kernel_generator"])
        if t["chains"] is not None and config.persistent:
            dev = model.W.device
            trainer.chains = RBMState(t["chains"]["visible"].to(dev), t["chains"]["hidden"].to(dev))
        trainer.epoch, trainer.history = t["epoch"], list(t["history"])
        return trainer


def train_rbm(model, data: torch.Tensor, config: Optional[RBMTrainConfig] = None, checkpoint=None, log=None,
              meta=None, **settings) -> Trainer:
    """Train `model` (CAPRBM or RBM) on `data` `[n, visible]` with CD-k or PCD; returns the trainer
    (its `history` has one row of monitors per epoch). Keyword `settings` are `RBMTrainConfig` fields."""
    config = config or RBMTrainConfig(**settings)
    trainer = Trainer(model, config, meta)
    trainer.fit(data, checkpoint=checkpoint, log=log)
    return trainer
