"""Annealed Langevin dynamics, eq. 3.8 of the thesis, as a `TransitionKernel`:

    x_{t+1} = x_t - eps^2 / 2 dE(x_t)/dx + eps sqrt(T_t) N(0, I)

with a fixed step length eps (0.02 by default) and T_t from a temperature schedule (`schedules.py`). The
state carries the step index t, so `sample`, a trainer, or a caller stepping by hand all follow the same
schedule. No accept step: `is_calibrated` is False (at fixed T it is unadjusted Langevin on p^(1/T)).

Inpainting (section 3.4): with a `mask` of known pixels and their `reference` values, the known pixels are
clamped after every step to reference + sqrt(T_t) sigma_0 N(0, I), noise matched to the temperature, and only
the unknown pixels follow eq. 3.8. Per draw the runner records the energy (the state's) and the temperature
(an extra), the trace of Figure B.7B.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import nn

from ..samplers.base import Seed, StepInfo, TransitionKernel
from ..samplers.metropolis import select_chains
from ..samplers.registry import (Capabilities, KernelOption, KernelSpec, _positive_finite, _positive_int,
                                 register_kernel)
from ..targets.base import Target
from .energy_target import EnergyTarget
from .schedules import SCHEDULES, TemperatureSchedule, make_schedule


@dataclass
class AnnealedLangevinState:
    """Positions `[chains, *event]`, their energy `[chains]` and gradient, and each chain's step index `[chains]`."""

    position: torch.Tensor
    energy: torch.Tensor
    grad: torch.Tensor
    step: torch.Tensor

    def replace(self, **changes) -> "AnnealedLangevinState":
        return dataclasses.replace(self, **changes)


def as_target(target) -> Target:
    """A `Target` as is; an energy `nn.Module` wrapped in `EnergyTarget`."""
    if isinstance(target, Target):
        return target
    if isinstance(target, nn.Module):
        return EnergyTarget(target)
    raise TypeError(f"expected an entropy_mcmc Target or an energy nn.Module, got {type(target).__name__}")


def check_mask(mask: torch.Tensor, reference: torch.Tensor,
               event_shape: torch.Size) -> Tuple[torch.Tensor, torch.Tensor]:
    """A boolean mask of known entries and their reference values, each of the event shape or `[chains, *event]`."""
    if not isinstance(mask, torch.Tensor) or not isinstance(reference, torch.Tensor):
        raise TypeError("inpainting needs a mask and reference values as tensors")
    for name, t in (("mask", mask), ("reference", reference)):
        if tuple(t.shape[-len(event_shape):]) != tuple(event_shape) or t.dim() not in (len(event_shape),
                                                                                     len(event_shape) + 1):
            raise ValueError(f"inpainting {name} must have the event shape {list(event_shape)} or "
                             f"[chains, {', '.join(map(str, event_shape))}], got {list(t.shape)}")
    if mask.dtype != torch.bool:
        if not ((mask == 0) | (mask == 1)).all():
            raise ValueError("inpainting mask must be boolean (True: known pixel) or 0/1")
        mask = mask.to(torch.bool)
    return mask, reference


class AnnealedLangevin(TransitionKernel):
    """Eq. 3.8 with a temperature schedule; optional inpainting.

    Parameters
    ----------
    target
        A `Target`, or an energy `nn.Module` (wrapped in `EnergyTarget`).
    step_size
        The step length eps (thesis: 0.02; 0.015-0.05 reasonable).
    schedule
        Anything `make_schedule` takes ("thesis", "geometric", "linear", "cosine", a number, a table,
        a callable of the step index); `num_steps`, `t_max`, `t_min` shape the named ones.
    sigma0
        The noise level of the model's smoothed density (clamped pixels get sqrt(T) sigma0 noise).
    mask, reference
        Inpainting: True where a pixel is known, and the known values.
    """

    is_calibrated = False

    def __init__(self, target, step_size: float = 0.02, schedule="thesis", num_steps: Optional[int] = 2700,
                 t_max: float = 100.0, t_min: float = 1.0, sigma0: float = 0.1, mask: Optional[torch.Tensor] = None,
                 reference: Optional[torch.Tensor] = None, seed: Seed = None):
        super().__init__(seed)
        self.target = as_target(target)
        if isinstance(step_size, torch.Tensor):
            step_size = float(step_size)
        if not (step_size > 0 and step_size < float("inf")):
            raise ValueError(f"step_size must be positive and finite, got {step_size!r}")
        self.step_size = float(step_size)
        self.schedule: TemperatureSchedule = make_schedule(schedule, num_steps, t_max, t_min)
        if not sigma0 > 0:
            raise ValueError(f"sigma0 must be positive, got {sigma0!r}")
        self.sigma0 = float(sigma0)
        if (mask is None) != (reference is None):
            raise ValueError("inpainting needs both a mask and the reference values")
        self.mask, self.reference = (None, None) if mask is None else check_mask(mask, reference,
                                                                                  self.target.event_shape)

    def temperature(self, state: AnnealedLangevinState) -> torch.Tensor:
        """T at each chain's current step index, `[chains]` in the position's dtype."""
        return self.schedule(state.step).to(state.position.dtype)

    def _clamp(self, x: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
        """Known pixels set to reference + sqrt(T) sigma0 noise (fresh each call); unknown pixels kept."""
        if self.mask is None:
            return x
        ref = self.reference.to(dtype=x.dtype, device=x.device).expand_as(x)
        mask = self.mask.to(x.device).expand_as(x)
        scale = (temperature.sqrt() * self.sigma0).view(-1, *([1] * (x.dim() - 1)))
        return torch.where(mask, ref + scale * self.randn_like(x), x)

    def _evaluate(self, x: torch.Tensor, step: torch.Tensor) -> AnnealedLangevinState:
        u, g = self.target.energy_and_grad(x)
        return AnnealedLangevinState(x, u, g, step)

    def init(self, position: torch.Tensor, step: int = 0) -> AnnealedLangevinState:
        """Chains at `position`, at step index `step` of the schedule (known pixels clamped at that T)."""
        self.target.validate(position)
        if not torch.isfinite(position).all():
            raise ValueError("initial position has non-finite entries")
        self._ensure_generator(position)
        steps = torch.full(position.shape[:1], int(step), dtype=torch.long, device=position.device)
        x = self._clamp(position.detach(), self.schedule(steps).to(position.dtype))
        return self._evaluate(x, steps)

    def step(self, state: AnnealedLangevinState) -> Tuple[AnnealedLangevinState, StepInfo]:
        x, g = state.position, state.grad
        temp = self.temperature(state)
        eps = self.step_size
        noise_scale = (eps * temp.sqrt()).view(-1, *([1] * (x.dim() - 1)))
        x_new = self._clamp(x - 0.5 * eps * eps * g + noise_scale * self.randn_like(x), temp)
        cand = self._evaluate(x_new, state.step + 1)
        ok = torch.isfinite(cand.energy) & torch.isfinite(x_new).flatten(1).all(1)
        # a non-finite step keeps the old position (flagged as divergent) but the schedule moves on
        new_state = select_chains(ok, cand, state.replace(step=state.step + 1))
        info = StepInfo(ok.to(x.dtype), ok, ~ok, 1, {"temperature": temp},
                        torch.as_tensor(eps, dtype=x.dtype, device=x.device))
        return new_state, info

    def refresh(self, state: AnnealedLangevinState) -> AnnealedLangevinState:
        """Energy and gradient re-evaluated at the same positions and step (after the model's weights changed)."""
        return self._evaluate(state.position, state.step)


def _build(target, step_size: float = 0.02, schedule: str = "thesis", anneal_steps: int = 2700,
           t_max: float = 100.0, t_min: float = 1.0, sigma0: float = 0.1, **kwargs) -> AnnealedLangevin:
    return AnnealedLangevin(target, step_size=step_size, schedule=schedule, num_steps=anneal_steps, t_max=t_max,
                            t_min=t_min, sigma0=sigma0, **kwargs)


def _schedule_name(text: str) -> str:
    if text not in SCHEDULES:
        raise ValueError(f"expected one of {', '.join(SCHEDULES)}, got {text!r}")
    return text


ANNEALED_LANGEVIN = KernelSpec(
    _build, "annealed Langevin, eq. 3.8 (temperature schedule from T=100, fixed step 0.02, uncalibrated)",
    step_size=0.02, adapts_step_size=False, capabilities=Capabilities(exact=False, schedule_option="anneal_steps"),
    options=(KernelOption("schedule", _schedule_name, "thesis",
                          "annealed-langevin: temperature schedule (thesis, geometric, linear, cosine, constant)",
                          flag="--anneal-schedule"),
             KernelOption("anneal_steps", _positive_int, 2700,
                          "annealed-langevin: steps of the schedule (default 2700)"),
             KernelOption("t_max", _positive_finite, 100.0, "annealed-langevin: initial temperature (default 100)"),
             KernelOption("t_min", float, 1.0, "annealed-langevin: temperature the cooling reaches (default 1)"),
             KernelOption("sigma0", _positive_finite, 0.1, "annealed-langevin: the model's sigma_0 (default 0.1)")))
register_kernel("annealed-langevin", ANNEALED_LANGEVIN)

__all__ = ["AnnealedLangevin", "AnnealedLangevinState", "ANNEALED_LANGEVIN", "as_target"]
