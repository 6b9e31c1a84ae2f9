"""Chains across processes with torch.distributed (`torchrun --nproc_per_node N`; gloo on CPU, NCCL on GPU).

Rank r of W runs chains [offset_r, offset_r + count_r) of the run: the same initial positions
a one-process run would give those chains, and the kernel seed `spawn_seeds(seed, W)[r]`.
Each rank adapts its own step size and mass matrix from its own chains (no statistics are
reduced across ranks, so a rank's draws depend only on its share and its seed). Rank 0
gathers every rank's draws and statistics into one `SampleResult` in chain order.
"""
from __future__ import annotations

import os
from typing import Optional, Tuple

import torch

from .runner import SampleResult


def process_group(device="cpu") -> Tuple[int, int]:
    """`(rank, world_size)`: of the initialized default group, or of a new one when launched by torchrun
    (WORLD_SIZE > 1 in the environment), else `(0, 1)`."""
    import torch.distributed as dist

    if not dist.is_available():
        return 0, 1
    if not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return 0, 1
        dist.init_process_group("nccl" if torch.device(device).type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def end_process_group() -> None:
    """Wait for every rank, then destroy the default group: a process that exits with the gloo
    threads still running aborts ("terminate called without an active exception")."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def chain_shard(chains: int, rank: int, world_size: int) -> Tuple[int, int]:
    """`(offset, count)` of rank's chains: contiguous blocks, the first `chains % world_size` one larger."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must lie in [0, {world_size}), got {rank}")
    if chains < world_size:
        raise ValueError(f"{chains} chains cannot be split across {world_size} processes")
    q, r = divmod(chains, world_size)
    return rank * q + min(rank, r), q + (rank < r)


def gather_result(result: SampleResult, world_size: int) -> Optional[SampleResult]:
    """On rank 0, every rank's `result` joined along the chain dimension; None on the other ranks."""
    import torch.distributed as dist

    local = {"samples": _cpu(result.samples), "stats": _cpu(result.stats),
             "warmup_samples": _cpu(result.warmup_samples), "warmup_stats": _cpu(result.warmup_stats),
             "warmup_time": result.warmup_time, "sampling_time": result.sampling_time,
             "divergences": result.num_divergences, "longest_stuck": result.longest_stuck,
             "stuck_at_end": result.stuck_at_end}
    parts = [None] * world_size if dist.get_rank() == 0 else None
    dist.gather_object(local, parts, dst=0)
    if dist.get_rank() != 0:
        return None

    def join(key):
        if parts[0][key] is None:
            return None
        return {name: torch.cat([p[key][name] for p in parts], 0) for name in parts[0][key]}

    result.samples, result.stats = join("samples"), join("stats")
    result.warmup_samples, result.warmup_stats = join("warmup_samples"), join("warmup_stats")
    result.warmup_time = max(p["warmup_time"] for p in parts)
    result.sampling_time = max(p["sampling_time"] for p in parts)
    result.num_divergences = sum(p["divergences"] for p in parts)
    result.longest_stuck = torch.cat([p["longest_stuck"] for p in parts])
    result.stuck_at_end = torch.cat([p["stuck_at_end"] for p in parts])
    result.final_state = None  # each rank keeps its own
    result.attrs["world_size"] = world_size
    return result


def _cpu(d):
    return None if d is None else {k: v.detach().cpu() for k, v in d.items()}
