"""Cluster assignment by Gumbel-max / Gumbel-softmax (thesis ch. 5.4, Jang et al. [73]) as an amortized sampler.

A chain is a data point and a draw is its cluster assignment. Each step draws independently of the
last: with Gumbel noise g, `argmax(log softmax(l) + g)` is an exact draw from Categorical(softmax(l))
(Gumbel-max) and `softmax((log softmax(l) + g) / tau)` is its relaxation (Gumbel-softmax), the
membership NMCE trains with.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch
import torch.nn.functional as F

from ..samplers import Capabilities, KernelSpec, register_kernel
from ..samplers.base import Seed, StepInfo, TransitionKernel


def gumbel_noise(shape, generator: Optional[torch.Generator] = None, dtype=torch.float32, device="cpu"):
    """Standard Gumbel noise -log(-log U), U ~ Uniform(0, 1)."""
    u = torch.rand(shape, generator=generator, dtype=dtype, device=device)
    return -torch.log(-torch.log(u.clamp_min(torch.finfo(dtype).tiny)))


def gumbel_softmax(logits: torch.Tensor, tau: float = 1.0, hard: bool = False,
                   generator: Optional[torch.Generator] = None, noise: Optional[torch.Tensor] = None) -> torch.Tensor:
    """One draw per row of `logits` `[..., k]`: relaxed memberships (`hard=False`) or a one-hot Gumbel-max draw.

    Differentiable in the relaxed form (the training path); `noise` lets a caller supply the Gumbel noise.
    """
    if tau <= 0:
        raise ValueError(f"the Gumbel-softmax temperature must be positive, got {tau}")
    g = gumbel_noise(logits.shape, generator, logits.dtype, logits.device) if noise is None else noise
    y = torch.log_softmax(logits, -1) + g
    if hard:
        return F.one_hot(y.argmax(-1), logits.shape[-1]).to(logits.dtype)
    return torch.softmax(y / tau, -1)


@dataclass
class ClusterState:
    """Chains are data points: `position` the current memberships `[n, k]` (one-hot when hard),
    `assignment` its argmax `[n]`, `logits` the cluster head's output `[n, k]`, `inputs` the points."""

    position: torch.Tensor
    assignment: torch.Tensor
    logits: torch.Tensor
    inputs: Optional[torch.Tensor] = None

    def replace(self, **changes) -> "ClusterState":
        return dataclasses.replace(self, **changes)


LogitsFn = Callable[[torch.Tensor], Union[torch.Tensor, tuple]]


class GumbelClusterKernel(TransitionKernel):
    """Independent cluster assignments from a network's logits, through the common runner.

    Parameters
    ----------
    model
        Maps data points `[n, ...]` to logits `[n, k]` (or to `(features, logits)`, as
        `ClusterNetwork` does); None means `init` receives the logits themselves.
    tau
        Gumbel-softmax temperature of the relaxed draws.
    hard
        Exact categorical draws (Gumbel-max, one-hot positions) instead of relaxed ones.

    Notes
    -----
    `info.extras["entropy"]` is the entropy (nats) of each point's assignment distribution.
    `refresh(state)` re-evaluates the logits after the network changed.
    """

    is_calibrated = True

    def __init__(self, model: Optional[LogitsFn] = None, tau: float = 1.0, hard: bool = True, seed: Seed = None):
        super().__init__(seed)
        if tau <= 0:
            raise ValueError(f"the Gumbel-softmax temperature must be positive, got {tau}")
        self.model, self.tau, self.hard = model, float(tau), bool(hard)

    def logits_of(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.model is None:
            return inputs
        with torch.no_grad():
            out = self.model(inputs)
        logits = out[-1] if isinstance(out, (tuple, list)) else out
        if logits.dim() != 2 or logits.shape[0] != inputs.shape[0]:
            raise ValueError(f"the model must return logits [n, k] for {inputs.shape[0]} points, "
                             f"got {tuple(logits.shape)}")
        return logits.detach()

    def _noise(self, logits: torch.Tensor) -> torch.Tensor:
        return gumbel_noise(logits.shape, self.generator, logits.dtype, logits.device)

    def _draw(self, logits: torch.Tensor, inputs) -> ClusterState:
        noise = self._noise(logits)
        position = gumbel_softmax(logits, self.tau, self.hard, noise=noise)
        return ClusterState(position, position.argmax(-1), logits, inputs)

    def init(self, inputs: torch.Tensor) -> ClusterState:
        if not isinstance(inputs, torch.Tensor):
            raise TypeError("GumbelClusterKernel.init takes the data points (or, without a model, the logits)")
        if not bool(torch.isfinite(inputs).all()):
            raise ValueError("the data points (or logits) have non-finite entries")
        try:
            logits = self.logits_of(inputs)
        except RuntimeError as e:  # the network cannot take points of this shape (a user error, one line)
            if isinstance(e, torch.OutOfMemoryError):
                raise
            raise ValueError(f"the model cannot take data points of shape {list(inputs.shape)}: "
                             f"{str(e).splitlines()[0]}") from e
        if not logits.dtype.is_floating_point or logits.dim() != 2:
            raise ValueError(f"logits must be a floating-point [n, k] tensor, got {tuple(logits.shape)}")
        self._ensure_generator(logits)
        return self._draw(logits, inputs if self.model is not None else None)

    def step(self, state: ClusterState):
        new = self._draw(state.logits, state.inputs)
        return new, StepInfo.always_accepted(state.logits, entropy=assignment_entropy(state.logits))

    def refresh(self, state: ClusterState) -> ClusterState:
        if state.inputs is None:
            return state
        return state.replace(logits=self.logits_of(state.inputs))

    def record(self, state: ClusterState) -> torch.Tensor:
        """The memberships `[n, k]` (one-hot when hard): the runner's `draws`, whose argmax is the assignment."""
        return state.position


def assignment_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of softmax(logits) per row."""
    logp = torch.log_softmax(logits, -1)
    return -(logp.exp() * logp).sum(-1)


def cluster_posterior(membership_draws: torch.Tensor) -> torch.Tensor:
    """Each point's posterior over clusters from one-hot draws `[n, draws, k]` (assignment frequencies)."""
    return membership_draws.mean(1)


def coassignment_matrix(membership_draws: torch.Tensor) -> torch.Tensor:
    """P(c_i = c_j) estimated from one-hot draws `[n, draws, k]`: the fraction of draws assigning i and j together."""
    return torch.einsum("itk,jtk->ij", membership_draws, membership_draws) / membership_draws.shape[1]


def build_gumbel_cluster(target, **options) -> GumbelClusterKernel:
    """Registry builder: `target` is the network (or None for logits given to `init`)."""
    return GumbelClusterKernel(target, **options)


# `build_kernel("gumbel-cluster", net, num_warmup=0, tau=..., hard=...)`; also an `entropy_mcmc.kernels` entry point.
GUMBEL_CLUSTER = register_kernel("gumbel-cluster", KernelSpec(
    build_gumbel_cluster, "independent cluster assignments by Gumbel-max/softmax from a network's logits (thesis "
    "ch. 5.4); chains are data points; target: a network returning logits or (features, logits), or None",
    step_size=None, adapts_step_size=False,
    capabilities=Capabilities(state_space="categorical", needs_gradient=False, step_size=False)))


__all__ = ["GumbelClusterKernel", "ClusterState", "gumbel_noise", "gumbel_softmax", "assignment_entropy",
           "cluster_posterior", "coassignment_matrix", "build_gumbel_cluster", "GUMBEL_CLUSTER"]
