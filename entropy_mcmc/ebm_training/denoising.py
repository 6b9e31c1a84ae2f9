"""The single-step denoising jump, eq. 3.9: x_clean = x_noisy - sigma_0^2 dE(x_noisy)/dx.

For a model of the smoothed density p_sigma0 this is Tweedie's posterior mean E[x | x_noisy] (the
Empirical Bayes reading the thesis cites); on the exact energy of smoothed Gaussian data it is exact.
"""
from __future__ import annotations

from typing import Optional

import torch

from .annealed_langevin import as_target, check_mask


def denoise_jump(model, x: torch.Tensor, sigma0: float = 0.1, mask: Optional[torch.Tensor] = None,
                 reference: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Eq. 3.9 on a batch `[n, *event]`; `model` is an energy `nn.Module` or a `Target`.

    With an inpainting `mask` (True: known) and `reference`, known pixels are set to the reference and
    only the unknown ones jump.
    """
    if not sigma0 > 0:
        raise ValueError(f"sigma0 must be positive, got {sigma0!r}")
    target = as_target(model)
    target.validate(x)
    _, g = target.energy_and_grad(x)
    out = x.detach() - sigma0 ** 2 * g
    if mask is not None or reference is not None:
        if mask is None or reference is None:
            raise ValueError("inpainting needs both a mask and the reference values")
        mask, reference = check_mask(mask, reference, target.event_shape)
        out = torch.where(mask.to(x.device).expand_as(out), reference.to(out).expand_as(out), out)
    return out


__all__ = ["denoise_jump"]
