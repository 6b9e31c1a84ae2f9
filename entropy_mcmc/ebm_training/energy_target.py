"""`EnergyTarget(model)`: an energy network `[batch, *event] -> [batch]` as a `Target` any kernel samples.

Gradients are taken with respect to x only: the parameters are frozen (`requires_grad` off) for the
duration of each evaluation, and everything returned is detached, so no autograd graph outlives a step.
"""
from __future__ import annotations

import contextlib
from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from ..targets.base import Target


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel (or DataParallel) wrapper, else the module itself."""
    return getattr(model, "module", model) if isinstance(model, (nn.parallel.DistributedDataParallel,
                                                                  nn.DataParallel)) else model


@contextlib.contextmanager
def frozen(model: nn.Module):
    """Parameters with `requires_grad` off inside the block, restored after (so sampling builds no
    graph through the weights and leaves no `.grad` behind)."""
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p in params:
            p.requires_grad_(True)


def check_energy_output(e: torch.Tensor, x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(e, torch.Tensor) or e.shape != x.shape[:1]:
        shape = list(e.shape) if isinstance(e, torch.Tensor) else type(e).__name__
        raise ValueError(f"{name}: an energy model must map [batch, *event] = {list(x.shape)} to energies "
                         f"[batch] = [{x.shape[0]}], got {shape}")
    return e


class EnergyTarget(Target):
    """The Boltzmann density p(x) ∝ exp(-E(x)) of an energy network (thesis section 3.1).

    Parameters
    ----------
    model
        An `nn.Module` mapping `[batch, *event_shape]` to `[batch]`; a DDP wrapper is unwrapped.
    event_shape
        The shape of one point; defaults to `model.event_shape`.
    temperature
        Sample p(x)^(1/T) (energy divided by T); 1 by default.
    """

    def __init__(self, model: nn.Module, event_shape: Optional[Sequence[int]] = None, temperature: float = 1.0,
                 name: str = "energy_model"):
        if not isinstance(model, nn.Module):
            raise TypeError(f"EnergyTarget needs an nn.Module energy model, got {type(model).__name__}")
        model = unwrap_model(model)
        if event_shape is None:
            event_shape = getattr(model, "event_shape", None)
            if event_shape is None:
                raise ValueError("give event_shape, or an energy model with an `event_shape` attribute")
        super().__init__(tuple(event_shape))
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        self.model = model
        self.temperature = float(temperature)
        self.name = name

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        with frozen(self.model):
            e = check_energy_output(self.model(x), x, self.name)
        return e / self.temperature if self.temperature != 1.0 else e

    def energy_and_grad(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad(), frozen(self.model):
            x = x.detach().requires_grad_(True)
            e = check_energy_output(self.model(x), x, self.name)
            if self.temperature != 1.0:
                e = e / self.temperature
            (g,) = torch.autograd.grad(e.sum(), x)
        return e.detach(), g.detach()


__all__ = ["EnergyTarget", "frozen", "unwrap_model", "check_energy_output"]
