"""LARS: layer-wise adaptive rate scaling (You, Gitman and Ginsburg 2017), the optimizer of the thesis' CIFAR,
STL and ImageNet runs (appendix D.2, Table D.4; learning rates there are for a base batch of 256).

Each weight tensor w with gradient g takes the SGD-with-momentum step of

    g' = (g + wd w) * eta ||w|| / ||g + wd w||,

so its step size follows its own norm, not the gradient's scale. One-dimensional tensors (biases, batch-norm
scales) skip both the weight decay and the rescaling, as is usual for LARS in self-supervised learning.
"""
from __future__ import annotations

import torch


class LARS(torch.optim.Optimizer):
    """SGD with momentum and a layer-wise trust ratio `eta ||w|| / ||g + wd w||` on tensors of two or more dims."""

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, eta: float = 0.001):
        if not lr > 0:
            raise ValueError(f"LARS needs a positive learning rate, got {lr!r}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
        if weight_decay < 0 or not eta > 0:
            raise ValueError(f"weight_decay must be >= 0 and eta > 0, got {weight_decay!r} and {eta!r}")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if p.dim() > 1:
                    g = g.add(p, alpha=group["weight_decay"])
                    w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(g)
                    ratio = torch.where((w_norm > 0) & (g_norm > 0), group["eta"] * w_norm / g_norm,
                                        torch.ones_like(w_norm))
                    g = g.mul(ratio)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = g.clone()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(g)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss


__all__ = ["LARS"]
