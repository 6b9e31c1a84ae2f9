"""Sampling an energy model: annealed Langevin (eq. 3.8) through the chain runner, then the denoising jump
(eq. 3.9); inpainting with a mask of known pixels. The recorded trace (mean energy and temperature per
recorded step) is the Figure B.7B analogue.

    out = sample_ebm(model, num=256, seed=0)                    # out.samples [256, *event]
    out = sample_ebm(model, num=16, mask=mask, reference=imgs)  # inpainting
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..samplers.runner import SampleResult, sample
from .annealed_langevin import AnnealedLangevin, as_target
from .denoising import denoise_jump


@dataclass
class EBMSamples:
    """Final samples (denoised when asked), the samples before the jump, and the per-record trace."""

    samples: torch.Tensor
    noisy: torch.Tensor
    temperature: torch.Tensor  # [records]: T of the step that produced each record
    mean_energy: torch.Tensor  # [records]: mean energy over chains after that step
    snapshots: torch.Tensor  # [chains, records, *event]
    result: SampleResult
    seconds: float


def record_interval(num_steps: int, records: int) -> int:
    """The largest divisor of `num_steps` not above num_steps / records (so the records end on the last step)."""
    target = max(1, num_steps // max(records, 1))
    return max(d for d in range(1, target + 1) if num_steps % d == 0)


def sample_ebm(model, num: int, seed: int = 0, step_size: float = 0.02, schedule="thesis", anneal_steps: int = 2700,
               t_max: float = 100.0, t_min: float = 1.0, sigma0: float = 0.1, init: Optional[torch.Tensor] = None,
               init_mean: float = 0.0, init_scale: float = 1.0, denoise: bool = True,
               mask: Optional[torch.Tensor] = None, reference: Optional[torch.Tensor] = None, records: int = 100,
               progress: bool = True, dtype: torch.dtype = torch.float32, device="cpu") -> EBMSamples:
    """`num` samples of an energy model (an `nn.Module` or a `Target`) by annealed Langevin over
    `anneal_steps` steps from chains at `init` (default: init_mean + init_scale N(0, I), drawn on the CPU
    from `seed`), then the denoising jump when `denoise`. Inpainting: `mask` (True: known) and `reference`
    values; known pixels follow the reference with sqrt(T) sigma0 noise and are exact after the jump."""
    target = as_target(model)
    if init is None:
        gen = torch.Generator().manual_seed(int(seed))
        init = init_mean + init_scale * torch.randn((num,) + tuple(target.event_shape), generator=gen,
                                                    dtype=torch.float64)
    init = init.to(dtype=dtype, device=device)
    kernel = AnnealedLangevin(target, step_size, schedule, anneal_steps, t_max, t_min, sigma0, mask, reference)
    steps = kernel.schedule.num_steps or anneal_steps
    thin = record_interval(steps, records)
    result = sample(kernel, init, num_draws=steps // thin, thin=thin, progress=progress, seed=seed + 1, warn=False)
    noisy = result.final_state.position
    out = denoise_jump(target, noisy, sigma0, mask, reference) if denoise else noisy
    if mask is not None and not denoise:
        out = torch.where(mask.to(out.device).expand_as(out), reference.to(out).expand_as(out), out)
    temperature = result.stats["temperature"][0]
    energy = result.stats["energy"].mean(0)
    return EBMSamples(out.detach(), noisy.detach(), temperature, energy, result.draws, result,
                      result.total_time)


__all__ = ["sample_ebm", "EBMSamples", "record_interval"]
