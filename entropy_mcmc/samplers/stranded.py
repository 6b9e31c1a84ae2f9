"""Warmup's check for chains stranded far below the others' density, and their move to where the others are.

Chains started at random points can settle in a local mode whose density is orders of magnitude below the bulk's
and never leave it: on posteriordb's lotka_volterra one of 8 chains started in Pyro's initial box ended in a mode
whose potential energy U = -log p is ~40 above the bulk's. The draws are then wrong, and R-hat says so. Partway
through warmup (`AT`) `sample` compares the chains' potential energies over the preceding `WINDOW` of steps. The
chains are stranded when they are fewer than half and their every energy there exceeds every energy of the others
by more than sqrt(2 d) (two standard deviations of U - min U on a d-dimensional Gaussian) and by more than four
standard deviations of the others' energies (a funnel's chains spread over tens of nats); each is moved to the
state of one of the others, the lowest-energy first, and the run warns which. A chain whose energy is coming down
fast enough to reach the others' within another window (its mean over the window's first half minus its second
half's at least the gap left) is left to arrive. A run split over processes checks each process's chains.

Warmup draws are discarded, so this changes where chains start sampling, not the transition kernel. It assumes
that a mode so far below the others holds negligible mass. Where separated modes of comparable mass have such an
energy gap (a very wide one beside a narrow one), moving the chains hides a mode that the chains could not have
sampled in proportion anyway; the warning names the chains, and `sample(restart_stranded=False)` keeps them.
"""
from __future__ import annotations

import dataclasses
import math
from typing import List, Optional, Tuple

import torch

# the check ends at AT * num_warmup and reads the WINDOW * num_warmup steps before it; shorter warmups are not checked
AT, WINDOW, MIN_WARMUP = 0.3, 0.1, 50


def stranded_chains(energies: torch.Tensor, dim: int) -> torch.Tensor:
    """Which chains are stranded, from their potential energies `[steps, chains]` over the window (module docstring):
    a boolean `[chains]`."""
    chains = energies.shape[1]
    stranded = torch.zeros(chains, dtype=torch.bool, device=energies.device)
    if chains < 3 or not torch.isfinite(energies).all():
        return stranded
    order = torch.argsort(energies.amin(0), descending=True)
    for k in range((chains - 1) // 2, 0, -1):
        top, rest = energies[:, order[:k]], energies[:, order[k:]]
        if top.amin() > rest.amax() + max(math.sqrt(2 * dim), 4 * float(rest.std())):
            half = energies.shape[0] // 2
            drop, now = top[:half].mean(0) - top[half:].mean(0), top[half:].mean(0)
            arriving = drop >= now - rest.amax()  # at this rate, with the others within another window
            stranded[order[:k][~arriving]] = True
            break
    return stranded


def gather_chains(state, index: torch.Tensor):
    """The state whose chain c is chain `index[c]` of `state` (every tensor field indexed on its leading dim)."""
    values = {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}
    return dataclasses.replace(state, **{k: v[index] for k, v in values.items() if isinstance(v, torch.Tensor)})


class StrandedCheck:
    """Runs the check during `num_warmup` steps of `sample`: `step(i, state)` after each warmup step returns the
    state, with stranded chains moved at the end of the window; `moved` lists (chain, to) pairs."""

    def __init__(self, num_warmup: int, enabled: bool = True):
        end = int(AT * num_warmup)
        self.window: Optional[range] = range(end - max(5, int(WINDOW * num_warmup)), end) \
            if enabled and num_warmup >= MIN_WARMUP else None
        self.energies: List[torch.Tensor] = []
        self.moved: List[Tuple[int, int]] = []

    def step(self, i: int, state):
        if self.window is None or i not in self.window:
            return state
        energy, position = getattr(state, "energy", None), getattr(state, "position", None)
        if energy is None or position is None or energy.dim() != 1:  # a state without a cached potential energy per chain
            self.window = None
            return state
        self.energies.append(energy.detach())
        if i != self.window[-1]:
            return state
        stranded = stranded_chains(torch.stack(self.energies), state.position[0].numel())
        if not stranded.any():
            return state
        mean = torch.stack(self.energies).mean(0)
        kept = torch.nonzero(~stranded).flatten()
        kept = kept[torch.argsort(mean[kept])]  # the lowest-energy chains first
        index = torch.arange(len(stranded), device=stranded.device)
        for j, c in enumerate(torch.nonzero(stranded).flatten().tolist()):
            index[c] = kept[j % len(kept)]
            self.moved.append((c, int(index[c])))
        return gather_chains(state, index)

    def message(self, chains: int) -> str:
        moved = ", ".join(f"{c} to {to}" for c, to in self.moved)
        return (f"{len(self.moved)} of {chains} chains stayed at potential energies far above those of the lower "
                f"half of the chains through warmup steps {self.window.start}-{self.window.stop - 1} (stranded in a "
                f"mode of far lower density, or still far in the tails); they were moved to other chains' states "
                f"({moved}) and warmup went on. If the posterior has separated modes, the draws may miss one; "
                "sample(restart_stranded=False) keeps the chains where they are")


__all__ = ["StrandedCheck", "stranded_chains", "gather_chains"]
