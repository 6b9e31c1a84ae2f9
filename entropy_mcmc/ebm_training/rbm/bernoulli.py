"""The binary (Bernoulli) restricted Boltzmann machine, the real-valued model the CAP-RBM extends.

    E(v, h) = -v^T W h - c^T v - b^T h,   v in {0,1}^V, h in {0,1}^H
    F(v) = -c^T v - sum_k softplus((v W + b)_k)

Note the sign convention differs from the CAP-RBM's amplitude biases (eq. A.5), which penalise
activity: here, as in scikit-learn's `BernoulliRBM` (`intercept_visible_`, `intercept_hidden_`), a
positive bias favours an active unit.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import nn
from torch.nn import functional as F

from .caprbm import check_layers


class RBM(nn.Module):
    """Bernoulli RBM: `W` `[visible, hidden]`, `visible_bias` c, `hidden_bias` b, all real."""

    kind = "bernoulli"
    state_space = "binary"  # what its Gibbs kernel moves (`samplers.Capabilities`)

    def __init__(self, num_visible: int, num_hidden: int, dtype: torch.dtype = torch.float32, device=None,
                 init_scale: float = 0.01, seed: Optional[int] = None):
        super().__init__()
        check_layers(num_visible, num_hidden, dtype)
        self.num_visible, self.num_hidden = int(num_visible), int(num_hidden)
        gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
        self.W = nn.Parameter((init_scale * torch.randn(num_visible, num_hidden, generator=gen, dtype=dtype))
                              .to(device))
        self.visible_bias = nn.Parameter(torch.zeros(num_visible, dtype=dtype, device=device))
        self.hidden_bias = nn.Parameter(torch.zeros(num_hidden, dtype=dtype, device=device))

    def config(self) -> Dict[str, object]:
        return {"num_visible": self.num_visible, "num_hidden": self.num_hidden,
                "dtype": str(self.W.dtype).replace("torch.", "")}

    def check_visible(self, v, name: str = "v") -> torch.Tensor:
        """`v` as a real `[batch, visible]` tensor in the model's dtype, values in [0, 1] (probabilities allowed)."""
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(v).__name__}")
        if v.is_complex():
            raise TypeError(f"{name} must be real (0/1 units) for a Bernoulli RBM, got {v.dtype}")
        if v.dim() != 2 or v.shape[1] != self.num_visible:
            raise ValueError(f"{name} must have shape [batch, {self.num_visible}], got {list(v.shape)}")
        v = v.to(self.W.dtype)
        if not bool(((v >= 0) & (v <= 1)).all()):  # NaN fails too
            raise ValueError(f"{name} must lie in [0, 1] (binary units or their probabilities)")
        return v

    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """E(v, h) `[batch]`."""
        v = self.check_visible(v)
        h = h.to(self.W.dtype)
        return -((v @ self.W) * h).sum(-1) - v @ self.visible_bias - h @ self.hidden_bias

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) = -c^T v - sum_k softplus((v W + b)_k), `[batch]`."""
        v = self.check_visible(v)
        return -v @ self.visible_bias - F.softplus(v @ self.W + self.hidden_bias).sum(-1)

    def hidden_probs(self, v: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(v @ self.W + self.hidden_bias)

    def visible_probs(self, h: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(h @ self.W.transpose(0, 1) + self.visible_bias)

    def sample_hidden(self, v: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        p = self.hidden_probs(v)
        return (torch.rand(p.shape, generator=generator, dtype=p.dtype, device=p.device) < p).to(p.dtype)

    def sample_visible(self, h: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        p = self.visible_probs(h)
        return (torch.rand(p.shape, generator=generator, dtype=p.dtype, device=p.device) < p).to(p.dtype)

    def free_energy_grad(self, v: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Batch mean of dF(v)/d(parameter): -v^T p(h|v), -v, -p(h|v) (the CD statistics)."""
        v = self.check_visible(v)
        p = self.hidden_probs(v)
        n = v.shape[0]
        return {"W": -(v.transpose(0, 1) @ p) / n, "visible_bias": -v.mean(0), "hidden_bias": -p.mean(0)}

    def pseudo_log_likelihood(self, v: torch.Tensor) -> torch.Tensor:
        """sum_i log p(v_i | v_{-i}) = sum_i log sigmoid(F(v with bit i flipped) - F(v)), `[batch]`, every bit.

        scikit-learn's `score_samples` is an unbiased one-bit estimate of this (a random bit, times V).
        """
        v = self.check_visible(v)
        x = v @ self.W + self.hidden_bias                              # [B, H]
        sign = 1 - 2 * v                                               # +1 turns a bit on, -1 off
        x_flip = x.unsqueeze(1) + sign.unsqueeze(-1) * self.W.unsqueeze(0)   # [B, V, H]
        delta_f = -sign * self.visible_bias - (F.softplus(x_flip).sum(-1) - F.softplus(x).sum(-1, keepdim=True))
        return F.logsigmoid(delta_f).sum(-1)

    def extra_repr(self) -> str:
        return f"num_visible={self.num_visible}, num_hidden={self.num_hidden}"
