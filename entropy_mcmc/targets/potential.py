"""A NumPyro-style `potential_fn` as a target: of one point or of a batch, of a tensor or of a dict.

NumPyro's `potential_fn` maps one point (`[*event]`, or a dict of named tensors) to a scalar
potential U = -log p + const. The kernels need U over `[chains, d]`. At construction the function
is called on three distinct points stacked as a batch; it is taken as

- "vectorized" if it returns `[3]` and each entry equals the function on that point alone
  (a batch of one), so it does not mix chains;
- otherwise as a function of one point, which must return a scalar. It is then mapped over
  chains with `torch.func.vmap` ("vmap") if the vmapped value and gradient equal a chain-by-chain
  evaluation at those points, else evaluated chain by chain ("sequential"), with one
  `SequentialFallbackWarning` saying why and what it costs.
"""
from __future__ import annotations

import warnings
from typing import Callable, Dict, Mapping, Optional, Tuple, Union

import torch

from .base import Target, energy_and_grad
from .layout import SiteLayout

__all__ = ["PotentialFn", "SequentialFallbackWarning", "same_energy"]

Init = Union[torch.Tensor, Mapping[str, torch.Tensor]]


class SequentialFallbackWarning(UserWarning):
    """A density that does not vectorize over chains is evaluated one chain at a time (correct, slower)."""


def same_energy(a: Tuple[torch.Tensor, torch.Tensor], b: Tuple[torch.Tensor, torch.Tensor]) -> bool:
    """Energies and gradients equal within float tolerance, with the same non-finite entries."""
    (ua, ga), (ub, gb) = a, b
    tol = 1e-8 if ua.dtype == torch.float64 else 1e-4
    finite = torch.isfinite(ub)
    return bool(torch.equal(finite, torch.isfinite(ua)) and torch.allclose(ua[finite], ub[finite], rtol=tol, atol=tol)
                and torch.allclose(ga[finite], gb[finite], rtol=tol, atol=tol))


class PotentialFn(Target):
    """U(x) = potential_fn(x) as a `Target` on flat positions `[chains, d]`.

    Parameters
    ----------
    potential_fn
        A function of one point (`[*event]` -> scalar, as NumPyro takes it) or of a
        batch (`[chains, *event]` -> `[chains]`); for a dict `init`, of a dict of named tensors.
    init
        Initial positions: a tensor `[chains, *event]` or a dict `{name: [chains, *shape]}`; they
        fix the layout and the dtype.
    chain_method
        "auto" (vectorize where it verifies, else chain by chain with a warning),
        "vectorized" (vectorize or raise a `ValueError`), "sequential" (chain by chain).
    name
        For reports.

    Attributes
    ----------
    method
        "vectorized", "vmap" or "sequential".
    layout
        The `SiteLayout` of a dict potential (None for a tensor one).
    point_shape
        The shape of one point of a tensor potential.
    """

    def __init__(self, potential_fn: Callable, init: Init, chain_method: str = "auto", name: Optional[str] = None):
        if not callable(potential_fn):
            raise TypeError(f"potential_fn must be a callable, got {type(potential_fn).__name__}")
        if chain_method not in ("auto", "vectorized", "sequential"):
            raise ValueError(f"chain_method must be 'auto', 'vectorized' or 'sequential', got {chain_method!r}")
        self.potential_fn = potential_fn
        if isinstance(init, Mapping):
            if not init:
                raise ValueError("init_params is an empty dict")
            values = {k: torch.as_tensor(v) for k, v in init.items()}
            bad = {k: list(v.shape) for k, v in values.items() if v.dim() < 1}
            if bad:
                raise ValueError(f"init_params values must be [num_chains, *shape], got shapes {bad}")
            self.layout = SiteLayout({k: v.shape[1:] for k, v in values.items()})
            self.point_shape = None
            self.init = self.layout.flatten(values, 1)
        else:
            x = torch.as_tensor(init)
            if x.dim() < 1:
                raise ValueError(f"init_params must be [num_chains, *event], got shape {list(x.shape)}")
            self.layout, self.point_shape = None, x.shape[1:]
            self.init = x.reshape(x.shape[0], -1)
        if not self.init.is_floating_point():
            self.init = self.init.to(torch.get_default_dtype())
        super().__init__((self.init.shape[1],))
        self.dtype = self.init.dtype
        self.name = name or getattr(potential_fn, "__name__", "potential_fn")
        if self.name == "<lambda>":
            self.name = "potential_fn"
        self.fallback_reason: Optional[str] = None
        self.method = "sequential" if chain_method == "sequential" else self._detect()
        if self.method == "sequential" and chain_method != "sequential":
            message = f"{self.name}: cannot vectorize over chains: {self.fallback_reason}."
            if chain_method == "vectorized":
                raise ValueError(f"{message} Use chain_method='auto' or 'sequential' to evaluate chains one at a "
                                 "time (slow).")
            warnings.warn(f"{message} Evaluating it once per chain instead: C calls per log-density evaluation "
                          "for C chains instead of one, about C times slower.", SequentialFallbackWarning,
                          stacklevel=3)

    def _args(self, x: torch.Tensor, batch: int):
        """Flat `[*batch, d]` positions as the function's argument: a dict of named tensors or `[*batch, *event]`."""
        if self.layout is not None:
            return self.layout.unflatten(x)
        return x.reshape(*x.shape[:batch], *self.point_shape)

    def _point(self, x: torch.Tensor) -> torch.Tensor:
        u = self.potential_fn(self._args(x, 0))
        if not isinstance(u, torch.Tensor) or u.numel() != 1:
            got = list(u.shape) if isinstance(u, torch.Tensor) else type(u).__name__
            raise ValueError(f"it returned {got} for one point instead of one number")
        return u.reshape(())

    def _point_desc(self) -> str:
        if self.layout is not None:
            return "a dict " + ", ".join(f"{k}: {list(s)}" for k, s in self.layout.shapes.items())
        return f"shape {list(self.point_shape)}"

    def _loop(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._point(xi) for xi in x])

    def _batched(self, x: torch.Tensor) -> torch.Tensor:
        return self.potential_fn(self._args(x, 1))

    def _vmapped(self, x: torch.Tensor) -> torch.Tensor:
        return torch.func.vmap(self._point)(x)

    def _detect(self) -> str:
        gen = torch.Generator().manual_seed(0)
        x = self.init[:1].to(torch.float64) + 0.5 * torch.randn(3, self.dim, generator=gen, dtype=torch.float64)
        x = x.to(self.dtype)
        try:
            u = self._batched(x)
            if isinstance(u, torch.Tensor) and u.shape == (3,):
                rows = torch.cat([self._batched(x[i:i + 1]).reshape(-1) for i in range(3)])
                if rows.shape == (3,) and torch.allclose(u.detach(), rows.detach(), rtol=1e-5, atol=1e-5,
                                                         equal_nan=True):
                    return "vectorized"
                batched = "mixed the points (each entry differs from that point alone)"
            else:
                batched = f"returned {list(u.shape) if isinstance(u, torch.Tensor) else type(u).__name__}"
        except Exception as e:  # noqa: BLE001 - a function of one point may fail on a batch; tried as such below
            batched = f"failed with {type(e).__name__}: {str(e).splitlines()[0]}"
        try:
            reference = energy_and_grad(self._loop, x)
        except Exception as e:  # noqa: BLE001 - the user's function fits neither contract: say how it was called
            raise ValueError(f"{self.name}: potential_fn must map one point ({self._point_desc()}) to a scalar, or "
                             f"a batch [chains, ...] to [chains]; on a batch of 3 points it {batched}, on one point "
                             f"{type(e).__name__}: {str(e).splitlines()[0]}") from e
        try:
            if same_energy(energy_and_grad(self._vmapped, x), reference):
                return "vmap"
            self.fallback_reason = "under torch.func.vmap its value or gradient differs from a chain-by-chain call"
        except Exception as e:  # noqa: BLE001 - any failure here means vmap does not apply
            self.fallback_reason = f"under torch.func.vmap it failed with {type(e).__name__}: {str(e).splitlines()[0]}"
        return "sequential"

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        xm = x.to(self.dtype)
        if self.method == "vectorized":
            u = self._batched(xm)
            if not isinstance(u, torch.Tensor) or u.shape != x.shape[:1]:
                got = list(u.shape) if isinstance(u, torch.Tensor) else type(u).__name__
                raise ValueError(f"{self.name}: potential_fn returned {got} for {x.shape[0]} chains, expected "
                                 f"[{x.shape[0]}]")
        elif self.method == "vmap":
            u = self._vmapped(xm)
        else:
            u = self._loop(xm)
        return u.to(x.dtype)

    def unflatten(self, x: torch.Tensor) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
        """Flat positions `[*batch, d]` in the function's own layout: a dict or `[*batch, *event]`."""
        return self._args(x, x.dim() - 1)
