"""Multistage NMCE training (thesis ch. 5.3-5.4, appendix D.2).

Stage 1 trains backbone and feature head with TCR (eq. 5.5); stage 2 re-initializes the feature head,
adds the cluster head and trains both with NMCE (eq. 5.4) on the frozen backbone; stage 3 fine-tunes the
whole network with NMCE. Adam (or LARS) with linear learning-rate warm-up then cosine decay (the released
code's schedule), the cluster-term weight gamma ramped linearly from `gamma_min` to `gamma` (the released code's
`set_gamma`), optional restarts of stage 2 kept by the largest rate reduction (eq. 5.3; no labels),
checkpoints that resume bitwise, a tqdm bar and a CSV log. Under `torchrun` the network is
wrapped in DistributedDataParallel and the losses see the global batch (`distributed.gather_with_grad`).
"""
from __future__ import annotations

import copy
import csv
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import List, Optional

import torch
import torch.nn as nn

from .augment import make_views
from .coding_rate import coding_rate_reduction, nmce_loss, tcr_loss
from .distributed import gather_with_grad, world
from .gumbel import gumbel_softmax
from .lars import LARS
from .networks import ClusterNetwork


@dataclass
class Stage:
    """One training stage. `objective` is 'tcr' or 'nmce'; `lam` weighs the view-similarity constraint.

    `optimizer` is 'adam' (betas 0.9/0.99) or 'lars' (`lars.LARS`, momentum 0.9, the thesis' choice for its
    large image sets) for backbone and feature head. The cluster head has its own SGD optimizer (momentum 0.9,
    `cluster_lr`, `cluster_weight_decay`), as in the released code: with a slow head the soft memberships stay
    uniform, the cluster rate equals the total rate and the features collapse under the similarity term.

    `eps_sq` overrides the run's eps^2 (eq. 5.2) for this stage. `restarts` > 1 (only with `reset_heads`) runs
    the stage that many times from the same starting network with differently initialized heads and keeps the
    run with the largest rate reduction Delta R(Z, argmax of the cluster head) (eq. 5.3) on all points: model
    selection by the objective, no labels.
    """

    objective: str
    steps: int
    lr: float = 1e-3
    weight_decay: float = 1e-6
    cluster_lr: float = 0.5
    cluster_weight_decay: float = 5e-3
    lam: float = 20.0
    train_backbone: bool = True
    reset_heads: bool = False
    gamma: float = 1.0
    gamma_min: float = 0.0
    gamma_warmup: int = 0
    lr_warmup: int = 0
    eps_sq: Optional[float] = None
    restarts: int = 1
    optimizer: str = "adam"

    def __post_init__(self):
        if self.objective not in ("tcr", "nmce"):
            raise ValueError(f"a stage's objective is 'tcr' or 'nmce', got {self.objective!r}")
        if self.optimizer not in ("adam", "lars"):
            raise ValueError(f"a stage's optimizer is 'adam' or 'lars', got {self.optimizer!r}")
        if int(self.steps) != self.steps or self.steps < 0:
            raise ValueError(f"stage steps must be a non-negative integer, got {self.steps!r}")
        if int(self.restarts) != self.restarts or self.restarts < 1:
            raise ValueError(f"stage restarts must be a positive integer, got {self.restarts!r}")
        if self.restarts > 1 and not (self.reset_heads and self.objective == "nmce"):
            raise ValueError("restarts > 1 needs an NMCE stage that re-initializes the heads (reset_heads=True)")
        if self.eps_sq is not None and not self.eps_sq > 0:
            raise ValueError(f"eps_sq must be positive, got {self.eps_sq!r}")

    def gamma_at(self, step: int) -> float:
        if self.gamma_warmup <= 0:
            return self.gamma
        return self.gamma_min + (self.gamma - self.gamma_min) * min(1.0, step / self.gamma_warmup)

    def lr_factor(self, step: int) -> float:
        if step < self.lr_warmup:
            return (step + 1) / self.lr_warmup
        span = max(self.steps - self.lr_warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * (step - self.lr_warmup) / span))


def default_lr(optimizer: str, batch_size: int) -> float:
    """1e-3 for Adam (the released code); batch / 256 for LARS (the thesis' base rate 1 at batch 256, Table D.4)."""
    return batch_size / 256 if optimizer == "lars" else 1e-3


def three_stages(steps=(500, 300, 300), lr: float = 1e-3, lam: float = 20.0, gamma_warmup: int = 100,
                 restarts: int = 1, cluster_eps_sq: Optional[float] = None, **common) -> List[Stage]:
    """The thesis' three stages: TCR; NMCE with new heads on the frozen backbone (best of `restarts` by the
    rate reduction); NMCE fine-tuning of all. `cluster_eps_sq` sets eps^2 of the two NMCE stages."""
    s1, s2, s3 = steps
    return [Stage("tcr", s1, lr=lr, lam=lam, lr_warmup=min(50, s1 // 10), **common),
            Stage("nmce", s2, lr=lr, lam=lam, train_backbone=False, reset_heads=True, gamma_warmup=gamma_warmup,
                  eps_sq=cluster_eps_sq, restarts=restarts, **common),
            Stage("nmce", s3, lr=lr / 10, lam=lam, eps_sq=cluster_eps_sq, **common)]


@dataclass
class NMCETrainConfig:
    """Everything a run needs besides network, augmentation and data; `batch_size` is the global batch."""

    stages: List[Stage] = field(default_factory=three_stages)
    eps_sq: float = 0.01
    tau: float = 1.0
    batch_size: int = 1024
    n_views: int = 2
    seed: int = 0
    checkpoint_every: int = 0
    log_every: int = 10


class NMCETrainer:
    """Runs the stages of `config` on `net` with `augment`; `out_dir` receives `log.csv` and `checkpoint.pt`."""

    def __init__(self, net: ClusterNetwork, augment: nn.Module, config: NMCETrainConfig, out_dir=None,
                 progress: bool = True):
        self.net, self.augment, self.config = net, augment, config
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.progress = progress
        self.stage_index, self.step, self.restart = 0, 0, 0
        self.restart_scores: List[dict] = []
        self.generator = torch.Generator().manual_seed(config.seed)
        self.optimizer: Optional[torch.optim.Optimizer] = None
        self.history: List[dict] = []
        self.seconds = 0.0

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "stage": self.stage_index, "step": self.step,
                "optimizer": None if self.optimizer is None else (self.optimizer.state_dict(),
                                                                  self.cluster_optimizer.state_dict()),
                "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
                "history": list(self.history), "seconds": self.seconds, "restart_scores": list(self.restart_scores),
                "config": {**asdict(self.config), "stages": [asdict(s) for s in self.config.stages]}}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.stage_index, self.step = state["stage"], state["step"]
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.history, self.seconds = list(state["history"]), state["seconds"]
        self.restart_scores = list(state.get("restart_scores", []))
        self._resume_optimizer = state["optimizer"]

    def save(self, path=None) -> None:
        path = Path(path) if path is not None else self.out_dir / "checkpoint.pt"
        torch.save(self.state_dict(), path)

    # ------------------------------------------------------------------ training
    def _setup_stage(self, stage: Stage, fresh: bool):
        if fresh and stage.reset_heads:
            with torch.random.fork_rng():
                torch.manual_seed(self.config.seed + 1000 * (self.stage_index + 1) + self.restart)
                self.net.reset_heads()
        for p in self.net.backbone_parameters():
            p.requires_grad_(stage.train_backbone)
        for p in self.net.cluster.parameters():  # unused by TCR: DDP refuses parameters that get no gradient
            p.requires_grad_(stage.objective == "nmce")
        params = list(self.net.subspace.parameters())
        if stage.train_backbone:
            params += self.net.backbone_parameters()
        if stage.optimizer == "lars":
            self.optimizer = LARS(params, lr=stage.lr, momentum=0.9, weight_decay=stage.weight_decay)
        else:
            self.optimizer = torch.optim.Adam(params, lr=stage.lr, betas=(0.9, 0.99), weight_decay=stage.weight_decay)
        self.cluster_optimizer = torch.optim.SGD(self.net.cluster.parameters(), lr=stage.cluster_lr, momentum=0.9,
                                                 weight_decay=stage.cluster_weight_decay)
        state = getattr(self, "_resume_optimizer", None)
        if not fresh and state is not None:
            self.optimizer.load_state_dict(state[0])
            self.cluster_optimizer.load_state_dict(state[1])
        self._resume_optimizer = None
        rank, size = world()
        self.model = self.net
        if size > 1:
            self.model = nn.parallel.DistributedDataParallel(self.net)

    def _batch(self, x: torch.Tensor) -> torch.Tensor:
        n, b = x.shape[0], self.config.batch_size
        idx = torch.randperm(n, generator=self.generator)[:b] if b < n else torch.arange(n)
        rank, size = world()
        return x[idx.chunk(size)[rank]] if size > 1 else x[idx]

    def train_step(self, x: torch.Tensor, stage: Stage) -> dict:
        xb = self._batch(x)
        views = make_views(xb, self.augment, self.config.n_views, generator=self.generator)
        v, b = views.shape[:2]
        if not stage.train_backbone:  # frozen: batch-norm statistics stay those of the previous stage
            self.net.backbone.eval()
            self.net.pre_feature.eval()
        z, logits = self.model(views.flatten(0, 1), detach_backbone=not stage.train_backbone)
        z = gather_with_grad(z.view(v, b, -1), dim=1)
        gamma, eps_sq = stage.gamma_at(self.step), self._eps_sq(stage)
        if stage.objective == "tcr":
            parts = tcr_loss(z, eps_sq, stage.lam)
        else:
            logits = gather_with_grad(logits.view(v, b, -1), dim=1)
            probs = gumbel_softmax(logits, self.config.tau, generator=self.generator)
            parts = nmce_loss(z, probs, eps_sq, stage.lam, gamma)
        if not torch.isfinite(parts.loss):
            raise FloatingPointError(f"non-finite NMCE loss at stage {self.stage_index + 1}, step {self.step}")
        factor = stage.lr_factor(self.step)
        lr = stage.lr * factor
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        for group in self.cluster_optimizer.param_groups:
            group["lr"] = stage.cluster_lr * factor
        self.optimizer.zero_grad(set_to_none=True)
        self.cluster_optimizer.zero_grad(set_to_none=True)
        parts.loss.backward()
        self.optimizer.step()
        if stage.objective == "nmce":
            self.cluster_optimizer.step()
        return {"stage": self.stage_index + 1, "step": self.step + 1, "loss": float(parts.loss.detach()),
                "rate": parts.rate, "cluster_rate": parts.cluster_rate, "similarity": parts.similarity,
                "gamma": gamma if stage.objective == "nmce" else float("nan"), "lr": lr, "restart": self.restart}

    def _eps_sq(self, stage: Stage) -> float:
        return self.config.eps_sq if stage.eps_sq is None else stage.eps_sq

    def _run_stage(self, x: torch.Tensor, stage: Stage, bar, checkpoints: bool) -> None:
        rank, _ = world()
        t0 = time.perf_counter()
        while self.step < stage.steps:
            row = self.train_step(x, stage)
            self.step += 1
            if self.step % self.config.log_every == 0 or self.step == stage.steps:
                self.history.append(row)
                if bar is not None:
                    bar.set_postfix(stage=row["stage"], loss=f"{row['loss']:.3g}", sim=f"{row['similarity']:.3f}",
                                    refresh=False)
            if bar is not None:
                bar.update(1)
            if checkpoints and self.config.checkpoint_every and self.step % self.config.checkpoint_every == 0 \
                    and self.out_dir is not None and rank == 0:
                self.seconds += time.perf_counter() - t0
                t0 = time.perf_counter()
                self.save()
        self.seconds += time.perf_counter() - t0

    def restart_score(self, x: torch.Tensor, stage: Stage) -> float:
        """Delta R(Z, argmax of the cluster head) (eq. 5.3) on all points `x`, in evaluation mode."""
        z, logits = embed(self.net, x)
        return float(coding_rate_reduction(z, logits.argmax(1), self._eps_sq(stage)))

    def _run_restarts(self, x: torch.Tensor, stage: Stage, bar) -> None:
        """Run `stage` `stage.restarts` times from the same network and keep the largest rate reduction.

        A checkpoint is written only once the best run is chosen: a run stopped inside this stage starts the
        stage afresh on resume (`checkpoint_every` does not apply here).
        """
        start, best = copy.deepcopy(self.net.state_dict()), None
        for r in range(stage.restarts):
            self.net.load_state_dict(start)
            self.step, self.restart = 0, r
            self._setup_stage(stage, fresh=True)
            self._run_stage(x, stage, bar, checkpoints=False)
            score = self.restart_score(x, stage)
            self.restart_scores.append({"stage": self.stage_index + 1, "restart": r, "rate_reduction": score})
            if best is None or score > best[0]:
                best = (score, r, copy.deepcopy(self.net.state_dict()))
        self.net.load_state_dict(best[2])
        self.restart_scores.append({"stage": self.stage_index + 1, "restart": best[1], "rate_reduction": best[0],
                                    "chosen": True})

    def fit(self, x: torch.Tensor, resume: bool = True) -> List[dict]:
        """Train on points `x` `[n, ...]`; resumes from `out_dir/checkpoint.pt` when it exists and `resume`.

        A checkpoint written with other settings is refused (ValueError) instead of being silently continued.
        Under DDP every rank takes an equal share of the global batch (the gather needs equal shapes).
        """
        _, size = world()
        batch = min(self.config.batch_size, x.shape[0])
        if batch % size:
            raise ValueError(f"the global batch of {batch} points does not split evenly over {size} processes; "
                             f"use a batch size divisible by {size}")
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            ckpt = self.out_dir / "checkpoint.pt"
            if resume and ckpt.exists():
                state = _load_checkpoint(ckpt)
                if state.get("config") != self.state_dict()["config"]:
                    raise ValueError(f"{ckpt} was written by a run with other settings; give another output folder "
                                     "(or resume=False to start afresh)")
                self.load_state_dict(state)
        if self.stage_index == 0 and self.step == 0 and not self.history:
            torch.manual_seed(self.config.seed)
        rank, _ = world()
        total = sum(s.steps * s.restarts for s in self.config.stages)
        done = sum(s.steps * s.restarts for s in self.config.stages[:self.stage_index]) + self.step
        bar = None
        if self.progress and rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=done, desc="NMCE", disable=None, leave=False, dynamic_ncols=True)
        self.net.train()
        while self.stage_index < len(self.config.stages):
            stage = self.config.stages[self.stage_index]
            if stage.restarts > 1 and self.step == 0:
                self._run_restarts(x, stage, bar)
            else:
                self._setup_stage(stage, fresh=self.step == 0)
                self._run_stage(x, stage, bar, checkpoints=True)
            self.net.train()
            self.stage_index, self.step, self.restart = self.stage_index + 1, 0, 0
            if self.out_dir is not None and rank == 0:
                self.save()
        if bar is not None:
            bar.close()
        if self.out_dir is not None and rank == 0:
            self.write_log(self.out_dir / "log.csv")
        return self.history

    def write_log(self, path) -> None:
        if not self.history:
            return
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(self.history[0]))
            writer.writeheader()
            writer.writerows(self.history)


@torch.no_grad()
def embed(net: ClusterNetwork, x: torch.Tensor, batch_size: int = 2048):
    """Features `[n, z_dim]` and cluster logits `[n, k]` of `x` in evaluation mode."""
    was = net.training
    net.eval()
    outs = [net(chunk) for chunk in x.split(batch_size)]
    net.train(was)
    return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])


__all__ = ["Stage", "NMCETrainConfig", "three_stages", "default_lr", "NMCETrainer", "embed"]


def _load_checkpoint(path: Path) -> dict:
    """A checkpoint written by `NMCETrainer.save`, read with `weights_only=True`: a file holding anything but
    tensors and plain data (a crafted pickle that would run code) is refused with a ValueError."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError... on bad files
        raise ValueError(f"{path}: not a checkpoint of this trainer ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else 'unreadable'}); move it away to start afresh") from e
    if not isinstance(state, dict) or "config" not in state:
        raise ValueError(f"{path}: not a checkpoint of this trainer; move it away to start afresh")
    return state
