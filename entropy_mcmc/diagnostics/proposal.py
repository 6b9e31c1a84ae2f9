"""Proposal entropy and acceptance statistics of a kernel or a run.

The entropy of a Gaussian proposal N(m(x), s^2 I) in d dimensions is
H = d/2 (1 + log 2 pi) + d log s nats (thesis section 4.2, the quantity the
learned sampler maximizes); it does not depend on the mean m(x).

Diagnostics know no sampler classes: a kernel is anything with a `proposal_entropy(state)`
method, a state anything with a `position`, a run anything with `stats` or `acceptance_prob`.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch


def proposal_entropy(kernel, state) -> torch.Tensor:
    """Entropy (nats) of the kernel's proposal q(.|x) at each chain's position, shape `[chains]`.

    Works for kernels with a tractable Gaussian proposal (RWM, MALA) or a flow (the learned
    sampler), also inside wrappers such as `StepSizeAdaptation`; `state` is a kernel state or
    positions `[chains, *event]`. Raises `ValueError` for any other kernel.
    """
    fn = getattr(kernel, "proposal_entropy", None)
    if not callable(fn):
        name = type(getattr(kernel, "base", kernel)).__name__
        raise ValueError(f"{name} has no tractable proposal density, so no proposal entropy; "
                         "it is defined for kernels with a Gaussian or flow proposal (RandomWalkMetropolis, "
                         "MALAKernel, LearnedSampler)")
    position = getattr(state, "position", state)
    if not isinstance(position, torch.Tensor) or position.dim() < 1:
        raise ValueError(f"expected a kernel state or positions [chains, *event], got {type(state).__name__}")
    if position is state:
        state = SimpleNamespace(position=position, grad=None)
    h = torch.as_tensor(fn(state))
    return h.expand(position.shape[0]) if h.dim() == 0 else h


def acceptance_rate(source, per_chain: bool = False):
    """Mean MH acceptance probability of a run (`.stats`), its stats dict, a step info (`.acceptance_prob`)
    or a raw tensor. Returns a float, or with `per_chain=True` a numpy array `[chains]` (mean over draws)."""
    if isinstance(source, dict):
        a = source["acceptance_prob"]
    elif hasattr(source, "acceptance_prob"):
        a = source.acceptance_prob
    elif hasattr(source, "stats"):
        a = source.stats["acceptance_prob"]
    else:
        a = source
    a = np.asarray(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a, dtype=np.float64)
    if not per_chain:
        return float(a.mean())
    return a.reshape(a.shape[0], -1).mean(1) if a.ndim > 1 else a


__all__ = ["proposal_entropy", "acceptance_rate"]
