"""Image preprocessing of thesis section 4.5 / appendix C.2 (after RealNVP, Dinh et al. 2017, section 4.1):
dequantization and the logit transform, with the log-Jacobian that converts densities between the two spaces.

    u = (k + v) / L,  k in {0, ..., L-1} the quantized pixel, v ~ U(0, 1)       (dequantization)
    p = lam + (1 - 2 lam) u,  y = log p - log(1 - p)                          (logit transform)
    log p_u(u) = log p_y(y) + sum_i log |dy_i/du_i|,  dy/du = (1 - 2 lam) / (p (1 - p))

The energy model lives in y; `data_energy` is its energy in pixel space u (E_y - log|dy/du|), the one to use
where densities of pixels are compared (likelihoods, bits per dimension).
"""
from __future__ import annotations

import math
from typing import Optional

import torch


def infer_levels(images: torch.Tensor) -> int:
    """The number L of evenly spaced grey levels k / (L - 1) of images in [0, 1] (17 for the 8x8 digits,
    256 for MNIST)."""
    values = torch.unique(images.detach().to(torch.float64).flatten().cpu())
    if values.min() < 0 or values.max() > 1:
        raise ValueError("dequantization needs images with values in [0, 1]")
    if values.numel() < 2:
        raise ValueError("cannot infer the grey levels of constant images")
    gap = float((values[1:] - values[:-1]).min())
    levels = int(round(1.0 / gap)) + 1
    if levels > 65536 or not torch.allclose(values * (levels - 1), torch.round(values * (levels - 1)), atol=1e-4):
        raise ValueError("the images are not quantized to evenly spaced levels in [0, 1]; give `levels`")
    return levels


class LogitTransform:
    """Dequantize images in [0, 1] with `levels` grey levels and map them to logit space (see the module).

    Parameters
    ----------
    levels
        L, the number of grey levels of the data (the thesis requantizes to 5 bits, L = 32).
    lam
        The squeeze lambda keeping p inside (0, 1) (RealNVP's 0.05).
    """

    def __init__(self, levels: int, lam: float = 0.05):
        if isinstance(levels, bool) or int(levels) != levels or levels < 2:
            raise ValueError(f"levels must be an integer >= 2, got {levels!r}")
        if not 0.0 < lam < 0.5:
            raise ValueError(f"lam must lie in (0, 0.5), got {lam!r}")
        self.levels, self.lam = int(levels), float(lam)

    def dequantize(self, images: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """u = (k + v) / L with k = round(x (L - 1)) and fresh uniform v per pixel (drawn on the generator's
        device)."""
        k = torch.round(images * (self.levels - 1)).clamp(0, self.levels - 1)
        v = torch.rand(images.shape, generator=generator, dtype=images.dtype,
                       device=generator.device if generator is not None else images.device)
        return (k + v.to(images.device)) / self.levels

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """y = logit(lam + (1 - 2 lam) u)."""
        p = self.lam + (1 - 2 * self.lam) * u
        return torch.log(p) - torch.log1p(-p)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """u = (sigmoid(y) - lam) / (1 - 2 lam), clamped to [0, 1] (the pixel image of a logit-space sample)."""
        return ((torch.sigmoid(y) - self.lam) / (1 - 2 * self.lam)).clamp(0.0, 1.0)

    def log_abs_det_jacobian(self, u: torch.Tensor) -> torch.Tensor:
        """``sum_i log |dy_i/du_i|`` per image `[batch]`."""
        p = self.lam + (1 - 2 * self.lam) * u
        return (math.log(1 - 2 * self.lam) - torch.log(p) - torch.log1p(-p)).flatten(1).sum(1)

    def data_energy(self, energy_y: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """The energy in pixel space of pixels `u` whose logit-space energy is `energy_y`:
        E_u(u) = E_y(y(u)) - log|dy/du|, so that exp(-E_u) integrates over [0, 1]^d to what exp(-E_y) does
        over R^d."""
        return energy_y - self.log_abs_det_jacobian(u)

    def noise(self, num: int, event_shape, generator: torch.Generator, dtype=torch.float64) -> torch.Tensor:
        """Uniform pixels mapped to logit space: the noise the replay buffer is (re)initialized from."""
        u = torch.rand((num,) + tuple(event_shape), generator=generator, dtype=torch.float64)
        return self.forward(u).to(dtype)

    def state(self) -> dict:
        return {"kind": "logit", "levels": self.levels, "lam": self.lam}


__all__ = ["LogitTransform", "infer_levels"]
