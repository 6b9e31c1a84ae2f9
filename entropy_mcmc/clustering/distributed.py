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


class _GatherWithGrad(torch.autograd.Function):
    """All ranks' tensors concatenated along `dim`; backward sums the incoming gradients over the ranks (every
    rank holds the same global loss) and returns this rank's slice."""

    @staticmethod
    def forward(ctx, t: torch.Tensor, dim: int) -> torch.Tensor:
        ctx.dim, ctx.rank, ctx.size = dim, dist.get_rank(), t.shape[dim]
        parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, t)
        return torch.cat(parts, dim=dim)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.clone(memory_format=torch.contiguous_format)   # all_reduce works in place
        dist.all_reduce(grad)
        return grad.narrow(ctx.dim, ctx.rank * ctx.size, ctx.size), None


def gather_with_grad(t: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Concatenate every rank's `t` along `dim` (rank order), keeping the autograd graph.

    Each rank computes the same global loss; the backward of the gather sums all ranks' gradients for
    this rank's slice (world size x the gradient of the global loss), and DDP's gradient average divides
    the world size back out: the result is the single-process gradient on the concatenated batch.
    """
    _, size = world()
    if size == 1:
        return t
    return _GatherWithGrad.apply(t.contiguous(), dim)


__all__ = ["world", "gather_with_grad"]
