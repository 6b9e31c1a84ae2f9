"""Proposal entropy and acceptance statistics of a kernel or a run.

The entropy of a Gaussian proposal N(m(x), s^2 I) in d dimensions is
H = d/2 (1 + log 2 pi) + d log s nats (thesis section 4.2, the quantity the
learned sampler maximizes); it does not depend on the mean m(x).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Union

import numpy as np
import torch

from ..samplers.base import ChainState, StepInfo

if TYPE_CHECKING:
    from ..samplers.runner import SampleResult


def _innermost(kernel):
    while hasattr(kernel, "__dict__") and "kernel" in vars(kernel):
        kernel = vars(kernel)["kernel"]
    return kernel


def proposal_entropy(kernel, state: ChainState) -> torch.Tensor:
    """Entropy (nats) of the kernel's proposal q(.|x) at each chain's position, shape `[chains]`.

    Works for kernels with a tractable Gaussian proposal (RWM, MALA), also inside
    wrappers such as `StepSizeAdaptation`; raises `ValueError` for any other kernel.
    """
    fn = getattr(kernel, "proposal_entropy", None)
    if not callable(fn):
        name = type(_innermost(kernel)).__name__
        raise ValueError(f"{name} has no tractable proposal density, so no proposal entropy; "
                         "it is defined for kernels with a Gaussian proposal (RandomWalkMetropolis, MALA)")
    position = state.position if isinstance(state, ChainState) else state
    if not isinstance(position, torch.Tensor) or position.dim() < 1:
        raise ValueError(f"expected a ChainState or positions [chains, *event], got {type(state).__name__}")
    if not isinstance(state, ChainState):
        state = ChainState(position)
    h = torch.as_tensor(fn(state))
    return h.expand(position.shape[0]) if h.dim() == 0 else h


def acceptance_rate(source: Union["SampleResult", StepInfo, dict, torch.Tensor], per_chain: bool = False):
    """Mean MH acceptance probability of a `SampleResult`, its `stats`, a `StepInfo` or a raw tensor.

    Returns a float, or with `per_chain=True` a numpy array `[chains]` (mean over draws).
    """
    if isinstance(source, StepInfo):
        a = source.acceptance_prob
    elif isinstance(source, dict):
        a = source["acceptance_prob"]
    elif hasattr(source, "stats"):
        a = source.stats["acceptance_prob"]
    else:
        a = source
    a = np.asarray(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a, dtype=np.float64)
    if not per_chain:
        return float(a.mean())
    return a.reshape(a.shape[0], -1).mean(1) if a.ndim > 1 else a


__all__ = ["proposal_entropy", "acceptance_rate"]
