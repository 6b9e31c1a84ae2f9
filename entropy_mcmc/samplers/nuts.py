"""The No-U-Turn sampler, vectorized over chains: multinomial sampling, generalized U-turn criterion.

Each transition draws a momentum p ~ N(0, M) and doubles a leapfrog trajectory in a random
direction until it U-turns, diverges or reaches `2^max_tree_depth - 1` leapfrog steps
(Hoffman & Gelman 2014, thesis ref. [71]; the multinomial, generalized-criterion form of
Betancourt 2017, "A conceptual introduction to HMC", appendix A, as Stan, NumPyro and BlackJAX
implement it). Every state z of the trajectory weighs w(z) = exp(-H(z)), H(x, p) = U(x) + K(p):

- within a new subtree a leaf replaces the subtree's sample with probability w(leaf) / W(subtree
  so far) (progressive uniform sampling: the sample is drawn in proportion to w);
- a finished subtree's sample replaces the trajectory's with probability min(1, W(new) / W(old))
  (biased progressive sampling, which favours moving away from the start);
- a sub-trajectory from z_a to z_b (in time order) with momentum sum rho = sum p U-turns when
  (M^-1 p_a) . rho <= 0 or (M^-1 p_b) . rho <= 0. A new subtree is checked on every aligned block
  of 2, 4, ..., 2^depth leaves as its leaves are integrated (a subtree that U-turns inside or
  diverges is discarded), and the whole trajectory after each merge.

A leaf diverges when its energy error H - H_0 exceeds `divergence_threshold` (1000, Stan's value)
or is not finite.

Vectorization. Trees are built leaf by leaf for all chains at once: a chain whose tree is finished
(or whose current subtree failed) is masked and waits while the others keep integrating, so one
transition costs as many batched leapfrog steps as the deepest chain needs. With `compact=True`
(the default) the energy and gradient of a leaf are evaluated on the still-active chains only
(gathered, then scattered back), so on a CPU, where the cost is proportional to the rows
evaluated, waiting chains cost almost nothing; on a GPU a batched evaluation costs about the same
whatever the number of rows, and `compact=False` avoids the device syncs of the gather.
`StepInfo.num_grad_evals` counts the batched leapfrog steps (the wall-clock cost); the per-chain
number of leapfrog steps is the `n_steps` statistic.
"""
from __future__ import annotations

import math
from typing import List, Tuple

import torch

from ..targets.base import Target
from .base import ChainState, Seed, StepInfo
from .metric import Metric
from .metropolis import PreconditionedKernel, broadcast_step_size


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per chain: `a` where `mask` (shape `[chains]`), else `b`."""
    return torch.where(mask.view(-1, *([1] * (a.dim() - 1))), a, b)


def is_turning(metric: Metric, p_a: torch.Tensor, p_b: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
    """The generalized U-turn criterion (Betancourt 2017, eq. A.4.2's discrete form, as in Stan): a
    sub-trajectory with end momenta p_a, p_b and momentum sum rho (both ends included) U-turns when
    (M^-1 p_a) . rho <= 0 or (M^-1 p_b) . rho <= 0. It is symmetric in the ends, so the direction of
    integration does not matter. Returns a `[chains]` bool tensor."""
    va = (metric.apply_inv_mass(p_a) * rho).flatten(1).sum(1)
    vb = (metric.apply_inv_mass(p_b) * rho).flatten(1).sum(1)
    return (va <= 0) | (vb <= 0)


class NUTSKernel(PreconditionedKernel):
    """Multinomial NUTS with the generalized U-turn criterion, over a batch of chains.

    Parameters
    ----------
    target
        The `Target` to sample.
    step_size
        Leapfrog step size (float or `[chains]` tensor); warmup adapts it.
    max_tree_depth
        At most `2^max_tree_depth - 1` leapfrog steps per transition (Stan: 10).
    inv_mass
        M^-1: None (identity), the event shape (diagonal) or `[d, d]` (dense).
    divergence_threshold
        An energy error H - H_0 above this marks a divergence (Stan: 1000).
    compact
        Evaluate leaves on the active chains only (see the module docstring).

    Notes
    -----
    Statistics per draw (`StepInfo.extras`): `tree_depth` (the number of doublings merged into the
    trajectory, as Stan reports it), `n_steps` (leapfrog steps, including a discarded last subtree),
    `energy` (the Hamiltonian of the state drawn). `acceptance_prob` is Stan's accept_stat, the mean
    over the leaves integrated of min(1, exp(H_0 - H)), which step-size adaptation aims at 0.8;
    `accepted` says whether the chain moved.
    """

    def __init__(self, target: Target, step_size=0.1, max_tree_depth: int = 10, inv_mass=None, seed: Seed = None,
                 divergence_threshold: float = 1000.0, compact: bool = True):
        super().__init__(target, step_size, inv_mass, seed, divergence_threshold)
        if isinstance(max_tree_depth, bool) or int(max_tree_depth) != max_tree_depth or not 1 <= max_tree_depth <= 30:
            raise ValueError(f"max_tree_depth must be an integer in [1, 30], got {max_tree_depth!r}")
        self.max_tree_depth = int(max_tree_depth)
        self.compact = bool(compact)

    # -- pieces a test (or a deliberately broken variant) can replace ------------------------------
    def directions(self, like: torch.Tensor) -> torch.Tensor:
        """+1 (forward in time) or -1 per chain, for one doubling."""
        return torch.where(self.rand(like.shape[:1], like) < 0.5, -1.0, 1.0).to(like.dtype)

    def take_leaf(self, active: torch.Tensor, leaf_log_w: torch.Tensor, subtree_log_w: torch.Tensor) -> torch.Tensor:
        """Whether a new leaf becomes its subtree's sample: with probability w(leaf) / W(subtree, leaf included)."""
        prob = torch.exp(leaf_log_w - subtree_log_w).nan_to_num(0.0)
        return active & (self.rand(prob.shape, prob) < prob)

    def take_subtree(self, valid: torch.Tensor, subtree_log_w: torch.Tensor, log_w: torch.Tensor) -> torch.Tensor:
        """Whether a merged subtree's sample replaces the trajectory's: probability min(1, W(new) / W(old))."""
        prob = torch.exp(torch.clamp(subtree_log_w - log_w, max=0.0)).nan_to_num(0.0)
        return valid & (self.rand(prob.shape, prob) < prob)

    # -- the transition ----------------------------------------------------------------------------
    def _energy_and_grad(self, x: torch.Tensor, active: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """U and dU/dx at x for the active chains (others: 0, to be masked by the caller)."""
        if not self.compact:
            return self.target.energy_and_grad(x)
        idx = active.nonzero().flatten()
        if idx.numel() == x.shape[0]:
            return self.target.energy_and_grad(x)
        u_a, g_a = self.target.energy_and_grad(x.index_select(0, idx))
        u = torch.zeros(x.shape[0], dtype=u_a.dtype, device=x.device).index_copy_(0, idx, u_a)
        g = torch.zeros_like(x).index_copy_(0, idx, g_a.to(x.dtype))
        return u, g

    def step(self, state: ChainState) -> Tuple[ChainState, StepInfo]:
        x0, u0, g0 = state.position, state.energy, state.grad
        n = x0.shape[0]
        metric = self.metric(x0)
        s = broadcast_step_size(self.step_size, x0)
        p0 = metric.sample_momentum(self.randn_like(x0))
        h0 = u0 + metric.kinetic_energy(p0)

        left, right = (x0, p0, g0), (x0, p0, g0)           # the trajectory's ends in time order
        sample = (x0, u0, g0, h0)                         # the trajectory's draw, with its H
        log_w = torch.zeros_like(h0)                      # log W(trajectory) - (-H_0)
        rho = p0
        tree_depth = torch.zeros(n, dtype=torch.long, device=x0.device)
        stats = {"n_steps": torch.zeros(n, dtype=torch.long, device=x0.device),
                 "accept_sum": torch.zeros_like(h0),
                 "diverging": torch.zeros(n, dtype=torch.bool, device=x0.device)}
        moved = torch.zeros(n, dtype=torch.bool, device=x0.device)
        active = torch.ones(n, dtype=torch.bool, device=x0.device)
        batched_steps = 0
        for depth in range(self.max_tree_depth):
            if not bool(active.any()):
                break
            v = self.directions(h0)
            forward = v > 0
            start = tuple(_where(forward, r, l) for l, r in zip(left, right))
            eps = s * v.view(-1, *([1] * (x0.dim() - 1)))
            valid, sub_log_w, sub_sample, sub_rho, last, steps = self._subtree(
                start, eps, depth, active, (x0, p0, g0), h0, metric, stats)
            batched_steps += steps
            take = self.take_subtree(valid, sub_log_w, log_w)
            sample = tuple(_where(take, a, b) for a, b in zip(sub_sample, sample))
            moved |= take
            log_w = torch.where(valid, torch.logaddexp(log_w, sub_log_w), log_w)
            left = tuple(_where(valid & ~forward, a, b) for a, b in zip(last, left))
            right = tuple(_where(valid & forward, a, b) for a, b in zip(last, right))
            rho = _where(valid, rho + sub_rho, rho)
            tree_depth = torch.where(valid, depth + 1, tree_depth)
            active = valid & ~is_turning(metric, left[1], right[1], rho)

        x, u, g, h = sample
        accept_stat = stats["accept_sum"] / stats["n_steps"].clamp_min(1).to(h0.dtype)
        extras = {"tree_depth": tree_depth, "n_steps": stats["n_steps"], "energy": h}
        info = StepInfo(accept_stat, moved, stats["diverging"], batched_steps, extras, self.step_size)
        return ChainState(x, u, g), info

    def _subtree(self, start, eps: torch.Tensor, depth: int, active: torch.Tensor, safe, h0: torch.Tensor,
                 metric: Metric, stats):
        """Integrate a subtree of 2^depth leaves from `start` (x, p, grad) with step `eps` (signed per chain),
        for the `active` chains. Returns (valid, log W, sample (x, U, grad, H), momentum sum, last leaf
        (x, p, grad), batched leapfrog steps); `valid` marks the chains whose subtree neither U-turned inside
        nor diverged. `safe` is a finite state that masked chains integrate from when they are evaluated
        (`compact=False`), so no NaN reaches the target.

        Checkpoints: when leaf k starts an aligned block of 2^j leaves (k % 2^j == 0) its momentum and the
        momentum sum before it are kept at level j; when leaf k ends one ((k + 1) % 2^j == 0) the block is
        checked with rho = sum(k) - sum(before the block). These are the checks of every inner node of the
        recursive tree, with O(depth) memory."""
        x, p, g = start
        sub_active = active.clone()
        sub_log_w = torch.full_like(h0, -math.inf)
        sub_sample = (x, torch.zeros_like(h0), g, h0)
        sub_rho = torch.zeros_like(p)
        p_start: List[torch.Tensor] = [p] * (depth + 1)
        sum_before: List[torch.Tensor] = [sub_rho] * (depth + 1)
        steps = 0
        for k in range(2 ** depth):
            if not bool(sub_active.any()):
                break
            a = sub_active
            if not self.compact:  # masked chains are evaluated too: from a finite state
                x, p, g = (_where(a, cur, ok) for cur, ok in zip((x, p, g), safe))
            p = p - 0.5 * eps * g
            x = x + eps * metric.apply_inv_mass(p)
            u, g = self._energy_and_grad(x, a)
            p = p - 0.5 * eps * g
            steps += 1
            h = u + metric.kinetic_energy(p)
            delta = h - h0
            delta = torch.where(torch.isfinite(delta), delta, torch.full_like(delta, math.inf))
            stats["n_steps"] += a
            stats["accept_sum"] += torch.where(a, torch.exp(torch.clamp(-delta, max=0.0)), torch.zeros_like(delta))
            leaf_div = delta > self.divergence_threshold
            new_log_w = torch.logaddexp(sub_log_w, -delta)
            take = self.take_leaf(a, -delta, new_log_w)
            sub_sample = tuple(_where(take, new, old) for new, old in zip((x, u, g, h), sub_sample))
            sub_log_w = new_log_w
            before = sub_rho
            sub_rho = sub_rho + p
            turned = torch.zeros_like(a)
            for j in range(1, depth + 1):
                if k % 2 ** j == 0:
                    p_start[j], sum_before[j] = p, before
                if (k + 1) % 2 ** j == 0:
                    turned |= is_turning(metric, p_start[j], p, sub_rho - sum_before[j])
            stats["diverging"] |= a & leaf_div
            sub_active = a & ~leaf_div & ~turned
        return sub_active, sub_log_w, sub_sample, sub_rho, (x, p, g), steps


__all__ = ["NUTSKernel", "is_turning"]
