"""The global batch under `torchrun`/DistributedDataParallel: the coding rate is a function of the whole batch,
so every rank gathers all ranks' features with their gradients before the loss (appendix D.2's cost note)."""
from __future__ import annotations

import torch
import torch.distributed as dist


def world() -> tuple:
    """(rank, world size), (0, 1) without an initialized process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_with_grad(t: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Concatenate every rank's `t` along `dim` (rank order), keeping the autograd graph.

    Each rank computes the same global loss; the backward of the gather sums all ranks' gradients for
    this rank's slice (world size x the gradient of the global loss), and DDP's gradient average divides
    the world size back out: the result is the single-process gradient on the concatenated batch.
    """
    _, size = world()
    if size == 1:
        return t
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(t.contiguous()), dim=dim)


__all__ = ["world", "gather_with_grad"]
