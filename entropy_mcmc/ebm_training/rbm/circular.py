"""Circular pieces of the CAP-RBM: an exact von Mises sampler driven by a torch `Generator`, log I0 and I1/I0.

`torch.distributions.VonMises` draws from the global RNG; the kernels here draw only from their own
generator, so the same Best-Fisher rejection sampler (Best & Fisher 1979, the one torch uses) is
written against an explicit generator. It runs in float64 whatever the input dtype, so large
concentrations (inputs of modulus 100 and more in a trained model) stay exact.
"""
from __future__ import annotations

import math

import torch


def log_i0(x: torch.Tensor) -> torch.Tensor:
    """log I0(x) for x >= 0, stable for large x (log i0e(x) + x)."""
    return torch.log(torch.special.i0e(x)) + x


def i1_over_i0(x: torch.Tensor) -> torch.Tensor:
    """I1(x) / I0(x) for x >= 0: the mean resultant length of a von Mises with concentration x."""
    return torch.special.i1e(x) / torch.special.i0e(x)


def sample_von_mises(loc: torch.Tensor, concentration: torch.Tensor,
                     generator: torch.Generator) -> torch.Tensor:
    """Angles in [-pi, pi) from von Mises(loc, concentration), elementwise, exact.

    A concentration of 0 gives the uniform distribution on the circle.
    """
    shape, dtype = loc.shape, loc.dtype
    kappa = concentration.detach().to(torch.float64).clamp_min(1e-12)
    tau = 1 + torch.sqrt(1 + 4 * kappa ** 2)
    rho = (tau - torch.sqrt(2 * tau)) / (2 * kappa)
    # the proposal's r; below 1e-5 rho underflows to 0 and the Taylor expansion 1/kappa + kappa is exact enough
    r = torch.where(kappa < 1e-5, 1 / kappa + kappa, (1 + rho ** 2) / (2 * rho))
    kappa, r = kappa.reshape(-1), r.reshape(-1)
    x = torch.empty_like(kappa)
    pending = torch.arange(kappa.numel(), device=loc.device)
    while pending.numel():
        k, rr = kappa[pending], r[pending]
        u1, u2, u3 = torch.rand((3, pending.numel()), generator=generator, dtype=torch.float64,
                                device=loc.device).unbind()
        z = torch.cos(math.pi * u1)
        f = (1 + rr * z) / (rr + z)
        c = k * (rr - f)
        accept = ((c * (2 - c) - u2) > 0) | (torch.log(c / u2) + 1 - c >= 0)
        x[pending[accept]] = (torch.sign(u3 - 0.5) * torch.acos(f.clamp(-1, 1)))[accept]
        pending = pending[~accept]
    x = x.reshape(shape)
    angle = x + loc.detach().to(torch.float64)
    return (torch.remainder(angle + math.pi, 2 * math.pi) - math.pi).to(dtype)
