"""The flat layout of named sites (a Pyro model's latent sites, a dict potential's arguments): one vector per chain.

Pyro's MCMC keeps latent values as a dict of unconstrained tensors and flattens
them in sorted site order (`pyro.infer.mcmc.api._gen_samples`); our kernels need
a tensor `[chains, d]`. `SiteLayout` converts between the two.
"""
from __future__ import annotations

import math
from typing import Dict, Mapping, Tuple

import torch


class SiteLayout:
    """Site names (sorted) and unconstrained shapes, and the map to and from a flat `[chains, d]` tensor."""

    def __init__(self, shapes: Mapping[str, torch.Size]):
        self.names: Tuple[str, ...] = tuple(sorted(shapes))
        self.shapes: Dict[str, torch.Size] = {k: torch.Size(shapes[k]) for k in self.names}
        self.sizes: Dict[str, int] = {k: math.prod(self.shapes[k]) for k in self.names}
        self.dim = sum(self.sizes.values())

    @classmethod
    def from_params(cls, params: Mapping[str, torch.Tensor]) -> "SiteLayout":
        return cls({k: v.shape for k, v in params.items()})

    def flatten(self, params: Mapping[str, torch.Tensor], batch_dims: int = 0) -> torch.Tensor:
        """Concatenate site values with `batch_dims` leading batch dimensions into `[*batch, d]`."""
        missing = [k for k in self.names if k not in params]
        if missing:
            raise ValueError(f"missing values for latent sites {missing}")
        if not self.names:
            raise ValueError("the model has no continuous latent sites")
        first = params[self.names[0]]
        batch = first.shape[:batch_dims]
        return torch.cat([params[k].reshape(tuple(batch) + (self.sizes[k],)) for k in self.names], -1)

    def unflatten(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Split `[*batch, d]` into a dict of site values `[*batch, *site_shape]`."""
        if x.shape[-1] != self.dim:
            raise ValueError(f"expected a last dimension of {self.dim} (the flattened latent sites "
                             f"{list(self.names)}), got shape {list(x.shape)}")
        out, start = {}, 0
        batch = x.shape[:-1]
        for k in self.names:
            n = self.sizes[k]
            out[k] = x[..., start:start + n].reshape(tuple(batch) + tuple(self.shapes[k]))
            start += n
        return out

    def __repr__(self) -> str:
        sites = ", ".join(f"{k}: {tuple(self.shapes[k])}" for k in self.names)
        return f"SiteLayout({sites})"
