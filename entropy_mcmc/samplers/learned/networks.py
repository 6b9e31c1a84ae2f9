"""Step-indexed MLPs of the learned sampler (thesis appendix C.2).

"A 5-layer MLP with ELU activation function and constant width ... The weights of
both input and output layer are indexed with step number as a means to condition on
the step number ... The weights of all other layers are shared across different steps
... Weights of the output layers of all networks are initialized at 0."
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class StepIndexedMLP(nn.Module):
    """ELU MLP with `depth` linear layers whose first and last layers have one weight set per step.

    Parameters
    ----------
    in_dim, out_dim
        Input and output sizes.
    width
        The constant hidden width (Table C.1 "Width").
    num_steps
        How many step-indexed copies of the input and output layers.
    depth
        Number of linear layers (5 in the thesis): input, depth - 2 shared hidden, output.

    Notes
    -----
    The output layer starts at zero, so the network's output is exactly 0 until trained.
    """

    def __init__(self, in_dim: int, out_dim: int, width: int, num_steps: int = 1, depth: int = 5):
        super().__init__()
        if depth < 2:
            raise ValueError(f"depth must be >= 2 (input and output layers), got {depth}")
        if min(in_dim, out_dim, width, num_steps) < 1:
            raise ValueError("in_dim, out_dim, width and num_steps must be positive")
        self.in_dim, self.out_dim, self.width, self.num_steps = in_dim, out_dim, width, num_steps
        bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's default uniform initialization, per step
        self.w_in = nn.Parameter(torch.empty(num_steps, in_dim, width).uniform_(-bound, bound))
        self.b_in = nn.Parameter(torch.empty(num_steps, width).uniform_(-bound, bound))
        self.hidden = nn.ModuleList(nn.Linear(width, width) for _ in range(depth - 2))
        self.w_out = nn.Parameter(torch.zeros(num_steps, width, out_dim))
        self.b_out = nn.Parameter(torch.zeros(num_steps, out_dim))

    def forward(self, h: torch.Tensor, step: int = 0) -> torch.Tensor:
        """`h` `[batch, in_dim]` -> `[batch, out_dim]` with the input/output weights of `step`."""
        h = F.elu(torch.addmm(self.b_in[step], h, self.w_in[step]))
        for layer in self.hidden:
            h = F.elu(layer(h))
        return torch.addmm(self.b_out[step], h, self.w_out[step])


def squash(v: torch.Tensor) -> torch.Tensor:
    """asinh: the identity near 0 and logarithmic for large |v|.

    Applied to the position and gradient inputs of the networks (not in the thesis, an
    input normalization): funnel positions and gradients span several orders of
    magnitude, and raw inputs of 1e3 drive the ELU layers into overflow. It changes only
    what the networks see, never the proposal density, so exactness is unaffected.
    """
    return torch.asinh(v)


__all__ = ["StepIndexedMLP", "squash"]
