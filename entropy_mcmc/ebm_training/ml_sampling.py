"""Sampling a model trained by maximum likelihood (`ContrastiveTrainer`): the kernel its checkpoint was trained
with (or another registry kernel), from noise or from its saved replay buffer (`entropy-mcmc sample-ebm`)."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch
from torch import nn

from ..samplers.base import TransitionKernel
from ..samplers.learned.kernel import LearnedSampler
from ..samplers.learned.model_kinds import build_model
from ..samplers.registry import build_kernel, get_kernel_spec
from ..samplers.replica_exchange import ReplicaExchange
from .contrastive import ml_config
from .energy_target import EnergyTarget
from .networks import build_network
from .preprocess import LogitTransform
from .trainer import load_model


def checkpoint_kernel(state: Dict[str, Any], model: nn.Module, kernel: Optional[str] = None, seed: int = 0,
                      replicas: Optional[int] = None, max_temperature: Optional[float] = None) -> TransitionKernel:
    """The kernel a checkpoint was trained with (or `kernel`, a registry name), on `model`, with the trained
    step size, or the trained sampler's weights for `learned`; with `replicas` (and `max_temperature`), inside a
    replica exchange on that ladder (`build_kernel`), which starts from the trained step size at b = 1."""
    config = ml_config(state)
    name = kernel or config.kernel
    target = EnergyTarget(model)
    dtype = next(model.parameters()).dtype
    device = next(model.parameters()).device
    if name.startswith("object:"):
        raise ValueError(f"the model was trained with a kernel object ({name[7:]}); name a registry kernel")
    spec = get_kernel_spec(name)
    ladder = {k: v for k, v in (("replicas", replicas), ("max_temperature", max_temperature)) if v is not None}
    if spec.capabilities.trainable:
        if ladder:
            raise ValueError(f"kernel {name!r} was trained for the model itself (b = 1): it cannot run inside "
                             "replica exchange; name another kernel")
        sampler = state["ml"]["sampler"]
        if sampler is None:
            raise ValueError("the checkpoint holds no learned sampler; name another kernel")
        proposal = build_model(sampler["description"])
        proposal.load_state_dict(sampler["model"])
        k = LearnedSampler(target, proposal.to(dtype=dtype, device=device).eval())
    else:
        same = name == config.kernel
        options = dict(config.kernel_options) if same else {}
        options.update(ladder)
        if spec.capabilities.schedule_option:
            options.setdefault(spec.capabilities.schedule_option, max(config.k_steps, 1))
        k = build_kernel(name, target, step_size=config.step_size if same else None, **options)
        step = state["ml"]["step_size"] if same else None
        if step is not None and ladder:
            step = step.flatten()[0]  # per-temperature step sizes belong to the ladder trained with
        if step is not None and getattr(k.base, "step_size", None) is not None:
            k.base.step_size = step
    k.reseed(seed, device)
    return k


@dataclass
class MLSamples:
    samples: torch.Tensor   # data coordinates
    model_space: torch.Tensor
    accept: float
    kernel: str             # the registry name
    seconds: float
    replicas: Optional[int] = None  # of the replica exchange it ran inside


def sample_ml(path_or_state, num: int, steps: int = 1000, kernel: Optional[str] = None, from_buffer: bool = False,
              seed: int = 0, device="cpu", progress: bool = False, replicas: Optional[int] = None,
              max_temperature: Optional[float] = None) -> MLSamples:
    """`num` samples of a model trained by `ContrastiveTrainer`: `steps` steps of the kernel it was trained with
    (or `kernel`; inside a replica exchange with `replicas`, see `checkpoint_kernel`) from noise, or from `num`
    states of its saved replay buffer (`from_buffer`)."""
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
    k = checkpoint_kernel(state, model, kernel, seed=seed + 1, replicas=replicas, max_temperature=max_temperature)
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
    return MLSamples(out.cpu(), x.cpu(), acc / max(steps, 1), kernel or config.kernel, time.perf_counter() - t0,
                     k.num_replicas if isinstance(k, ReplicaExchange) else None)


__all__ = ["sample_ml", "checkpoint_kernel", "MLSamples"]
