"""Training the learned sampler (thesis section 4.3) on any target, from a cold start:

1. `batch_size` chains from the target's initial box (Pyro's `init_to_uniform` for a model) run `warmup_steps`
   MALA steps with dual-averaged step size (acceptance 0.574). With zero network outputs the full variant *is*
   MALA with step eps (`LearnedProposal`), so unless a `model_config` fixes eps, eps starts at that adapted MALA
   step size; the chains seed the bootstrap buffer.
2. `train_sampler` maximizes the proposal-entropy objective (eqs. 4.4-4.5) from there.

`PyroKernel(model, "learned")` does this at the first warmup iteration of the first chain and reuses the trained
sampler for the following chains of the same run.
"""
from __future__ import annotations

from typing import Dict, Union

import torch

from ..samplers.adaptation import StepSizeAdaptation
from ..samplers.learned.proposal import LearnedProposalConfig
from ..samplers.mala import MALAKernel
from ..targets.base import Target
from .training import SamplerTrainConfig, TrainResult, train_sampler

# Modest defaults so that training fits in a Pyro warmup on a CPU; pass `train=` for the thesis' budgets.
DEFAULT_TRAIN = dict(steps=300, batch_size=64, lr=1e-3, min_lr=1e-5, target_accept=0.75, beta_lr=0.05,
                     buffer_init_steps=0)
DEFAULT_WIDTH = 32


def _train_config(train: Union[SamplerTrainConfig, Dict, None], dtype: torch.dtype) -> SamplerTrainConfig:
    if isinstance(train, SamplerTrainConfig):
        return train
    options = {**DEFAULT_TRAIN, "dtype": str(dtype).replace("torch.", ""), **(train or {})}
    return SamplerTrainConfig(**options)


def warm_start(target: Target, num_chains: int, steps: int, seed: int, dtype: torch.dtype):
    """`num_chains` positions after `steps` adapted MALA steps from uniform[-2, 2], and the MALA step size."""
    gen = torch.Generator().manual_seed(seed)
    if hasattr(target, "initial_position"):
        init = target.initial_position(num_chains, generator=gen, dtype=dtype)
    else:
        init = (4.0 * torch.rand((num_chains,) + tuple(target.event_shape), generator=gen, dtype=dtype) - 2.0)
    kernel = StepSizeAdaptation(MALAKernel(target, 0.1, seed=seed), target_accept=0.574)
    state = kernel.init(init)
    kernel.start_warmup(steps)
    for _ in range(steps):
        state, _ = kernel.step(state)
    kernel.end_warmup()
    return state.position, float(kernel.step_size)


def train_on_target(target: Target, train: Union[SamplerTrainConfig, Dict, None] = None,
                    model_config: Union[LearnedProposalConfig, Dict, None] = None, warmup_steps: int = 200,
                    seed: int = 0, progress: bool = False) -> TrainResult:
    """Train a `LearnedProposal` on a (chain-vectorized) target, eps initialized at the adapted MALA step size."""
    dtype = getattr(target, "dtype", torch.float32)
    cfg = _train_config(train, dtype)
    cfg_dtype = getattr(torch, cfg.dtype)
    chains = cfg.buffer_size or cfg.batch_size
    init, mala_step = warm_start(target, chains, warmup_steps, seed, cfg_dtype)
    if isinstance(model_config, LearnedProposalConfig):
        mc = model_config
    else:
        options = {"width": DEFAULT_WIDTH, "eps": mala_step, **(model_config or {})}
        mc = LearnedProposalConfig(target.dim, tuple(target.event_shape), **options)
    return train_sampler(target, config=cfg, model_config=mc, seed=seed, progress=progress,
                         init=init.reshape((chains,) + tuple(target.event_shape)))


__all__ = ["train_on_target", "warm_start", "DEFAULT_TRAIN", "DEFAULT_WIDTH"]
