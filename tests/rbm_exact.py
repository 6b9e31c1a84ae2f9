"""Exact CAP-RBM quantities on tiny models by enumeration of amplitudes and quadrature over phases.

Only `model.energy` (eq. A.5) and the base measure (inactive unit: weight 1; active unit: phase
uniform, d theta / 2 pi) are used, never the model's closed forms, so these serve as references for
the free energy, the conditionals, the learning rules and the Gibbs kernel. Integrands are periodic
and analytic in the phases, so the uniform grid (trapezoid rule) converges exponentially.
"""
import itertools
import math

import torch


def _grid(n):
    return torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)


def configurations(num_units, n_grid, fix_first=False):
    """All states of `num_units` complex units on the phase grid, with quadrature weights.

    Returns `z` `[P, num_units]` complex128 and `log_w` `[P]` (log of the base-measure mass of each
    point). With `fix_first`, the first active unit's phase is set to 0, which is exact for integrands
    invariant under a global phase shift and saves one grid dimension.
    """
    zs, logws = [], []
    for amps in itertools.product((0, 1), repeat=num_units):
        active = [i for i, a in enumerate(amps) if a]
        free = active[1:] if (fix_first and active) else active
        grids = torch.cartesian_prod(*([_grid(n_grid)] * len(free))) if free else torch.zeros(1, 0)
        if grids.dim() == 1:
            grids = grids[:, None]
        phase = torch.zeros(grids.shape[0], num_units, dtype=torch.float64)
        for col, i in enumerate(free):
            phase[:, i] = grids[:, col]
        amp = torch.tensor(amps, dtype=torch.float64).expand_as(phase)
        zs.append(torch.polar(amp.contiguous(), phase))
        logws.append(torch.full((grids.shape[0],), -len(free) * math.log(n_grid), dtype=torch.float64))
    return torch.cat(zs), torch.cat(logws)


def joint_table(model, n_grid=48):
    """Every (v, h) of a tiny CAP-RBM with its probability: `v` `[P, V]`, `h` `[P, H]`, `p` `[P]` (sums to 1),
    and log Z. Differentiable in the model's parameters (through `model.energy`)."""
    z, log_w = configurations(model.num_visible + model.num_hidden, n_grid, fix_first=True)
    v, h = z[:, :model.num_visible], z[:, model.num_visible:]
    log_mass = -model.energy(v, h) + log_w
    log_z = torch.logsumexp(log_mass, 0)
    return v, h, torch.exp(log_mass - log_z), log_z


def hidden_given_visible(model, v, n_grid=64):
    """p(h | v) for each row of `v` `[B, V]` on a grid of hidden states: `h` `[P, H]`, `p` `[B, P]`, and
    -log of the normaliser (the free energy F(v) by its definition)."""
    h, log_w = configurations(model.num_hidden, n_grid)
    b, p = v.shape[0], h.shape[0]
    e = model.energy(v.repeat_interleave(p, 0), h.repeat(b, 1)).reshape(b, p)
    log_mass = -e + log_w
    log_norm = torch.logsumexp(log_mass, 1)
    return h, torch.exp(log_mass - log_norm[:, None]), -log_norm
