"""Score-matching objectives for an energy model E: multiscale denoising score matching (MDSM, eq. 3.7),
single-level denoising score matching (eq. 3.3, the ablation of appendix B.2), exact score matching
(Hyvarinen's objective) and sliced score matching. Each returns a scalar loss (mean over the batch) that
back-propagates to the weights through the energy gradient (double back-propagation).

For Gaussian data N(m, s^2 I) and the energy |x - mu|^2 / (2 tau^2), the minimisers are closed-form
(`gaussian_minimiser`): exact and sliced score matching give tau^2 = s^2, DSM at sigma gives the smoothed
density's s^2 + sigma^2, and MDSM with weights l(sigma_k) gives
tau^2 = sigma_0^2 sum_k l_k (sigma_k^2 + s^2) / sum_k l_k sigma_k^2, which is s^2 + sigma_0^2 (the density
p_sigma0 the thesis says MDSM approximates) only when every sigma_k equals sigma_0: the gap is the
approximation of appendix B.1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from .energy_target import check_energy_output

# The thesis' noise ranges (section 3.4): [0.05, 1.2] linearly spaced (CIFAR-10, CelebA), [0.1, 3]
# geometrically spaced (MNIST, Fashion-MNIST); sigma_0 = 0.1 throughout.
NOISE_PRESETS: Dict[str, Tuple[float, float, str]] = {
    "thesis-cifar": (0.05, 1.2, "linear"),
    "thesis-mnist": (0.1, 3.0, "geometric"),
    "2d": (0.05, 2.0, "geometric"),
}
LOSSES = ("mdsm", "dsm", "esm", "ssm")


@dataclass(frozen=True)
class NoiseLevels:
    """Noise levels sigma over [sigma_min, sigma_max] for one batch.

    spacing: "linear" or "geometric". draw: "spaced" puts the levels evenly (in that spacing) along the
    batch, as the thesis does; "random" draws each sample's level from the distribution with that spacing
    (uniform, or log-uniform).
    """

    sigma_min: float = 0.1
    sigma_max: float = 3.0
    spacing: str = "geometric"
    draw: str = "spaced"

    def __post_init__(self):
        if not 0 < self.sigma_min <= self.sigma_max < math.inf:
            raise ValueError(f"noise levels need 0 < sigma_min <= sigma_max < inf, got "
                             f"[{self.sigma_min}, {self.sigma_max}]")
        if self.spacing not in ("linear", "geometric"):
            raise ValueError(f"spacing must be 'linear' or 'geometric', got {self.spacing!r}")
        if self.draw not in ("spaced", "random"):
            raise ValueError(f"draw must be 'spaced' or 'random', got {self.draw!r}")

    @classmethod
    def preset(cls, name: str, draw: str = "spaced") -> "NoiseLevels":
        if name not in NOISE_PRESETS:
            raise ValueError(f"unknown noise preset {name!r}; expected one of {', '.join(NOISE_PRESETS)}")
        lo, hi, spacing = NOISE_PRESETS[name]
        return cls(lo, hi, spacing, draw)

    def __call__(self, n: int, like: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """`[n]` levels in the dtype and device of `like`."""
        if self.draw == "spaced":
            u = torch.linspace(0.0, 1.0, n, dtype=like.dtype, device=like.device) if n > 1 else \
                torch.full((n,), 0.5, dtype=like.dtype, device=like.device)
        else:
            u = torch.rand(n, generator=generator, dtype=like.dtype, device=like.device)
        lo, hi = self.sigma_min, self.sigma_max
        if self.spacing == "linear":
            return lo + (hi - lo) * u
        return lo * (hi / lo) ** u


def energy_and_input_grad(model: nn.Module, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """E(x) `[batch]`, dE/dx with the graph kept (create_graph, so a loss on the gradient reaches the weights),
    and the input leaf the gradient was taken at (for second derivatives)."""
    x = x.detach().requires_grad_(True)
    e = check_energy_output(model(x), x, type(model).__name__)
    (g,) = torch.autograd.grad(e.sum(), x, create_graph=True)
    return e, g, x


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (x.dim() - 1)))


def mdsm_loss(model: nn.Module, x: torch.Tensor, sigmas: torch.Tensor, sigma0: float = 0.1,
              weighting: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
              generator: Optional[torch.Generator] = None, return_parts: bool = False):
    """Multiscale denoising score matching, eq. 3.7: the batch mean of
    ``l(sigma) |x - x~ + sigma_0^2 dE(x~)/dx~|^2`` with x~ = x + sigma z, each sample at its own level sigma, and
    l(sigma) = 1/sigma^2 (the thesis' weighting; `weighting` replaces it).

    x: clean data `[batch, *event]`; sigmas: each sample's noise level `[batch]`.
    With `return_parts`, returns (loss, noisy points, their energies `[batch]` with the graph kept).
    """
    if sigmas.shape != x.shape[:1]:
        raise ValueError(f"sigmas must have shape [{x.shape[0]}] (one level per sample), got {list(sigmas.shape)}")
    if not sigma0 > 0:
        raise ValueError(f"sigma0 must be positive, got {sigma0!r}")
    z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    x_noisy = x + _bcast(sigmas, x) * z
    e, g, _ = energy_and_input_grad(model, x_noisy)
    residual = x - x_noisy + (sigma0 * sigma0) * g
    w = sigmas.pow(-2) if weighting is None else weighting(sigmas)
    loss = (w * residual.pow(2).flatten(1).sum(1)).mean()
    return (loss, x_noisy.detach(), e) if return_parts else loss


def dsm_loss(model: nn.Module, x: torch.Tensor, sigma: float = 0.1, generator: Optional[torch.Generator] = None,
             return_parts: bool = False):
    """Single-level denoising score matching, eq. 3.3 with sigma_0 = sigma: the batch mean of
    ``|x - x~ + sigma^2 dE/dx~|^2``, x~ = x + sigma z. It fits the smoothed density p_sigma."""
    sigmas = torch.full(x.shape[:1], float(sigma), dtype=x.dtype, device=x.device)
    return mdsm_loss(model, x, sigmas, sigma, weighting=lambda s: torch.ones_like(s), generator=generator,
                     return_parts=return_parts)


def esm_loss(model: nn.Module, x: torch.Tensor, return_energy: bool = False):
    """Exact score matching (Hyvarinen): the batch mean of |dE/dx|^2 / 2 - tr(d^2E/dx^2), the Fisher
    divergence to the data distribution up to a constant. The Laplacian takes one backward pass per
    dimension: for low dimensions only (at most 64). `return_energy` also returns E(x) (graph kept)."""
    d = x[0].numel()
    if d > 64:
        raise ValueError(f"exact score matching needs {d} backward passes per batch; use 'ssm' or 'dsm' above "
                         "64 dimensions")
    e, g, xr = energy_and_input_grad(model, x)
    flat = g.flatten(1)
    laplacian = torch.zeros_like(e)
    for i in range(d):
        (h,) = torch.autograd.grad(flat[:, i].sum(), xr, create_graph=True)
        laplacian = laplacian + h.flatten(1)[:, i]
    loss = (0.5 * flat.pow(2).sum(1) - laplacian).mean()
    return (loss, e) if return_energy else loss


def ssm_loss(model: nn.Module, x: torch.Tensor, num_projections: int = 1, projection: str = "rademacher",
             variance_reduced: bool = False, generator: Optional[torch.Generator] = None,
             projections: Optional[torch.Tensor] = None, return_energy: bool = False):
    """Sliced score matching (Song et al. 2019): the batch mean over random directions v with E[v v^T] = I of
    (v.dE/dx)^2 / 2 - v^T (d^2E/dx^2) v; `variance_reduced` replaces the first term by its expectation
    |dE/dx|^2 / 2. One Hessian-vector product per direction, so it scales to images.

    projection: "rademacher" or "gaussian" directions, `num_projections` per sample; `projections`
    (`[P, *event]`) gives fixed directions shared by every sample instead. `return_energy` also returns E(x).
    """
    if projection not in ("rademacher", "gaussian"):
        raise ValueError(f"projection must be 'rademacher' or 'gaussian', got {projection!r}")
    e, g, xr = energy_and_input_grad(model, x)
    if projections is None:
        shape = (num_projections,) + tuple(x.shape)
        v = torch.randn(shape, generator=generator, dtype=x.dtype, device=x.device)
        if projection == "rademacher":
            v = torch.sign(v)
    else:
        if projections.shape[1:] != x.shape[1:]:
            raise ValueError(f"projections must have shape [P, {', '.join(map(str, x.shape[1:]))}], got "
                             f"{list(projections.shape)}")
        v = projections.to(x).unsqueeze(1).expand(-1, *x.shape)
    total = torch.zeros_like(e)
    for vp in v:
        gv = (g * vp).flatten(1).sum(1)
        (hv,) = torch.autograd.grad(gv.sum(), xr, create_graph=True)
        first = 0.5 * g.flatten(1).pow(2).sum(1) if variance_reduced else 0.5 * gv.pow(2)
        total = total + first - (hv * vp).flatten(1).sum(1)
    loss = (total / v.shape[0]).mean()
    return (loss, e) if return_energy else loss


def gaussian_minimiser(loss: str, data_var: float, sigma0: float = 0.1, sigmas: Optional[Sequence[float]] = None,
                       weights: Optional[Sequence[float]] = None) -> float:
    """The variance tau^2 of the isotropic Gaussian energy that minimises `loss` in expectation for data
    N(m, data_var I) (its mean is m for every loss); see the module docstring."""
    s2 = float(data_var)
    if loss in ("esm", "ssm"):
        return s2
    if loss == "dsm":
        return s2 + sigma0 ** 2
    if loss == "mdsm":
        if sigmas is None:
            raise ValueError("the MDSM minimiser needs the noise levels")
        sig = torch.as_tensor(sigmas, dtype=torch.float64)
        w = sig.pow(-2) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        return float(sigma0 ** 2 * (w * (sig ** 2 + s2)).sum() / (w * sig ** 2).sum())
    raise ValueError(f"unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")
