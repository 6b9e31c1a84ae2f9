"""Bayesian logistic regression on the UCI German, Australian and Heart datasets (thesis Table 4.1).

Features standardized per column with an intercept column prepended, prior w ~ N(0, I):
U(w) = sum_n [softplus(x_n.w) - y_n x_n.w] + |w|^2 / 2, with the analytic gradient
dU/dw = X^T (sigmoid(X w) - y) + w. Equivalently, with a_n = (1 - 2 y_n) x_n,
U(w) = sum_n softplus(a_n.w) + |w|^2 / 2 and dU/dw = A^T sigmoid(A w) + w, which is what
the code evaluates (fewer passes over the [n, chains] logits).
"""
from __future__ import annotations

import json
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..datasets import load_dataset, package_data_dir
from .base import CastCache, Target


def load_reference(name: str) -> Optional[dict]:
    path = package_data_dir() / "blr_reference.json"
    if not path.exists():
        return None
    return json.loads(path.read_text()).get("datasets", {}).get(name)


def attach_reference(target: Target, name: str) -> Target:
    """Set `target.mean`/`std` (and `reference`) from the shipped reference posterior of dataset `name`, if any."""
    ref = load_reference(name)
    if ref is not None:
        target.mean = torch.tensor(ref["mean"], dtype=torch.float64)
        target.std = torch.tensor(ref["std"], dtype=torch.float64)
        target.reference = ref
    return target


class LogisticRegression(Target):
    """Posterior of logistic regression weights under a N(0, prior_scale^2 I) prior.

    Internally the labels are folded into the design matrix: with a_n = (1 - 2 y_n) x_n and
    z = A w, the likelihood term is sum_n softplus(z_n) and its gradient is A^T sigmoid(z).
    Outside autograd the logits live in a reused buffer (two matrix products and one in-place
    sigmoid per gradient; no fresh large allocations), computed in slices of chains when
    there are many (`_slice_size`), and `grad` skips the softplus that only the energy needs
    (HMC's inner leapfrog steps use it).
    Under autograd (`w.requires_grad`) the same formulas run out of place, so energy and
    gradient stay differentiable; and under `torch.compile`, which fuses them itself.
    """

    SLICE_ABOVE = 1 << 21  # logits elements above which the chains are evaluated in slices
    SLICE_ELEMENTS = 1 << 17  # logits elements per slice (512 KB in float32)

    def __init__(self, features, labels, prior_scale: float = 1.0, name: str = "logistic_regression"):
        x = torch.as_tensor(np.asarray(features), dtype=torch.float64)
        y = torch.as_tensor(np.asarray(labels), dtype=torch.float64).reshape(-1)
        if x.dim() != 2 or y.shape[0] != x.shape[0]:
            raise ValueError(f"LogisticRegression: expected features [n, d] and labels [n], got "
                             f"{list(x.shape)} and {list(y.shape)}")
        if not torch.all((y == 0) | (y == 1)):
            raise ValueError("LogisticRegression: labels must be 0 or 1")
        super().__init__((x.shape[1],))
        self.name = name
        self.prior_scale = float(prior_scale)
        self.num_data = x.shape[0]
        a = (1.0 - 2.0 * y)[:, None] * x  # signed design matrix: z = A w
        self._c = CastCache(x=x, xt=x.T.contiguous(), y=y, a=a, at=a.T.contiguous())
        self._buffers = {}
        self._mode: Optional[torch.Tensor] = None

    def mode(self, steps: int = 50, tol: float = 1e-10) -> torch.Tensor:
        """The posterior mode (MAP) by Newton's method from 0, float64; the energy is strictly convex,
        H = A^T diag(s (1 - s)) A + I / prior_scale^2, so a few steps reach machine precision."""
        if self._mode is None:
            a = self._c.get("a", torch.zeros((), dtype=torch.float64))
            w = torch.zeros(a.shape[1], dtype=torch.float64)
            eye = torch.eye(a.shape[1], dtype=torch.float64) / self.prior_scale ** 2
            for _ in range(steps):
                s = torch.sigmoid(a @ w)
                grad = a.T @ s + w / self.prior_scale ** 2
                hess = (a.T * (s * (1 - s))) @ a + eye
                delta = torch.linalg.solve(hess, grad)
                w = w - delta
                if float(delta.abs().max()) < tol:
                    break
            self._mode = w
        return self._mode

    def initial_center(self) -> torch.Tensor:
        """Default starts centre on the mode: the posterior can sit many sds from 0 (Australian's x[8]: mean
        1.68, sd 0.15), where a learned proposal trained on the typical set cannot move."""
        return self.mode()

    @classmethod
    def from_dataset(cls, name: str, data_dir=None) -> "LogisticRegression":
        return attach_reference(cls(*load_dataset(name, data_dir), name=name), name)

    def _buffer(self, which: str, w: torch.Tensor, size: int) -> torch.Tensor:
        """A reused flat scratch tensor of `size` elements (one per role; replaced when the batch changes)."""
        key = (size, w.dtype, w.device)
        buf = self._buffers.get(which)
        if buf is None or buf[0] != key:
            buf = (key, torch.empty(size, dtype=w.dtype, device=w.device))
            self._buffers[which] = buf
        return buf[1]

    def _out_of_place(self, w: torch.Tensor) -> bool:
        return (torch.is_grad_enabled() and w.requires_grad) or torch.compiler.is_compiling()

    def _prior_energy(self, w: torch.Tensor) -> torch.Tensor:
        return 0.5 / self.prior_scale ** 2 * (w * w).sum(1)

    def _slice_size(self, chains: int) -> int:
        """Chains per slice: all of them, unless their `[n, chains]` logits exceed `SLICE_ABOVE` elements; then
        slices of about `SLICE_ELEMENTS` elements (a multiple of 16 chains), which stay in a core's cache between
        the two matrix products (German, 4096 chains: 5.6 ms of CPU per gradient instead of 6.4, BENCHMARKS.md).
        Sliced results equal the unsliced ones up to rounding (the products' blocking and the sums' order
        change); below `SLICE_ABOVE` nothing changes."""
        if self.num_data * chains <= self.SLICE_ABOVE:
            return chains
        return max(16, self.SLICE_ELEMENTS // self.num_data // 16 * 16)

    def _evaluate(self, w: torch.Tensor, with_energy: bool):
        """(U or None, dU/dw) outside autograd, slice by slice of chains: logits z = A w^T in a reused buffer,
        sum softplus(z) for U (into a second buffer), sigmoid in place, A^T sigmoid(z) + w / prior_scale^2."""
        a, at = self._c.get("a", w), self._c.get("at", w)
        beta = 1.0 / self.prior_scale ** 2
        n, chains = self.num_data, w.shape[0]
        step = self._slice_size(chains)
        z_buf = self._buffer("z", w, n * step)
        sp_buf = self._buffer("softplus", w, n * step) if with_energy else None
        grad = torch.empty_like(w)
        lik = w.new_empty(chains) if with_energy else None
        zero = w.new_zeros(())
        for i in range(0, chains, step):
            wi = w[i:i + step]
            m = wi.shape[0]
            z = torch.mm(a, wi.T, out=z_buf[:n * m].view(n, m))
            if with_energy:
                lik[i:i + m] = torch.logaddexp(z, zero, out=sp_buf[:n * m].view(n, m)).sum(0)  # softplus
            grad[i:i + m] = torch.addmm(wi.T, at, z.sigmoid_(), beta=beta).T  # the logits are not needed after
        return lik, grad

    def energy_and_grad(self, w: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if self._out_of_place(w):
            z = self._c.get("a", w) @ w.T
            lik = F.softplus(z).sum(0)
            g = torch.addmm(w.T, self._c.get("at", w), torch.sigmoid(z), beta=1.0 / self.prior_scale ** 2).T
            return lik + self._prior_energy(w), g
        lik, g = self._evaluate(w, True)
        return lik + self._prior_energy(w), g

    def grad(self, w: torch.Tensor) -> torch.Tensor:
        """dU/dw alone, without the softplus the energy needs."""
        return self.energy_and_grad(w)[1] if self._out_of_place(w) else self._evaluate(w, False)[1]

    def energy(self, w: torch.Tensor) -> torch.Tensor:
        a = self._c.get("a", w)
        if self._out_of_place(w):
            return F.softplus(a @ w.T).sum(0) + self._prior_energy(w)
        z = torch.mm(a, w.T, out=self._buffer("energy", w, self.num_data * w.shape[0]).view(self.num_data, -1))
        return torch.logaddexp(z, z.new_zeros(()), out=z).sum(0) + self._prior_energy(w)  # softplus, in place
