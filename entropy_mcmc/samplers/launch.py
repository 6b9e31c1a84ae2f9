"""`run_chains`: a target and a kernel by name (or as objects), seeds, initial positions, threads, one run.

What `entropy-mcmc sample` does, as a library function the bench suite and the benchmark scripts call.
Under torchrun it splits the chains across processes (see `distributed`).
"""
from __future__ import annotations

import math
import warnings
from typing import Optional, Union

import torch

from ..targets import get_target
from ..targets.base import Target
from .base import TransitionKernel, num_chains, spawn_seeds
from .distributed import chain_shard, gather_result, process_group
from .registry import build_kernel
from .runner import ConvergenceWarning, SampleResult, sample


def run_chains(target: Union[str, Target], kernel: Union[str, TransitionKernel], *, chains: int = 4,
               num_warmup: int = 500, num_draws: int = 1000, thin: int = 1, seed: int = 0, dtype="float32",
               device="cpu", threads: int = 1, init_scale: float = 0.1, init: Optional[torch.Tensor] = None,
               progress: bool = False, collect_warmup: bool = False, warn: bool = True,
               max_memory: Optional[float] = None, stream_to: Optional[str] = None, compile: str = "auto",
               rank: Optional[int] = None, world_size: Optional[int] = None, **build_options) -> SampleResult:
    """Sample `target` with `kernel` as `entropy-mcmc sample` does; returns the `SampleResult`, with the
    kernel and the target in `result.attrs["kernel_object"]` and `["target_object"]`, and the mass matrix adapted
    (with `adapt_mass="auto"`: which one and why) in `["mass_matrix_choice"]` ("" without one).

    Args:
        target, kernel: registry names or objects (`build_options` go to `build_kernel` with a name:
            `target_accept`, `step_size`, `adapt_mass`, `jitter`, `per_chain`, kernel options).
        seed: one seed; the initial positions and the kernel get independent streams derived from it.
        init: initial positions `[chains, *event]`, default `target.initial_positions` at `init_scale`;
            or a state of `kernel` (a kernel object) to continue from, in one process.
        num_draws: 0 runs the warmup alone (`result.final_state` is where it ended).
        threads: torch intra-op threads while sampling (0: torch's default); restored afterwards.
        max_memory, stream_to: a run whose draws and statistics need more than `max_memory` bytes (default 3/4
            of the memory available) streams them to the NetCDF file `stream_to` (see `sample`). Split across
            processes, the draws stay in memory: rank 0 gathers them.
        compile: "auto", "on" or "off": the transitions under `torch.compile` (see `sample`).
        rank, world_size: run only that share of the chains, with that rank's seed, in this process (what
            one process of a torchrun job runs). By default they come from torch.distributed: under torchrun
            every rank runs its share and rank 0 returns all chains (other ranks return their own share).
    """
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    target_obj = get_target(target) if isinstance(target, str) else target
    if isinstance(kernel, str):
        kernel_obj = build_kernel(kernel, target_obj, num_warmup=num_warmup, **build_options)
    elif build_options:
        raise ValueError(f"options {sorted(build_options)} apply to a kernel given by name, not to a kernel object")
    else:
        kernel_obj = kernel
    gathered = rank is None and world_size is None
    if gathered:
        rank, world_size = process_group(device)
    elif rank is None or world_size is None:
        raise ValueError("give both rank and world_size, or neither")
    init_seed, kernel_seed = spawn_seeds(seed, 2)
    if init is None:
        init = target_obj.initial_positions(chains, init_seed, dtype, device, init_scale)
    given = init.shape[0] if isinstance(init, torch.Tensor) else num_chains(init)
    if given != chains:
        raise ValueError(f"init has {given} chains, expected {chains}")
    if world_size > 1 and not isinstance(init, torch.Tensor):
        raise ValueError("continuing from a kernel state runs in one process, not split across processes")
    if world_size > 1 and stream_to is not None:
        raise ValueError("streaming draws to a file runs in one process, not split across processes")
    if world_size > 1:
        offset, count = chain_shard(chains, rank, world_size)
        init = init[offset:offset + count]
        kernel_seed = spawn_seeds(kernel_seed, world_size)[rank]
    saved_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with warnings.catch_warnings():
            if world_size > 1:  # warn once, on the gathered chains
                warnings.simplefilter("ignore", category=ConvergenceWarning)
            result = sample(kernel_obj, init, num_draws=num_draws, num_warmup=num_warmup, thin=thin,
                            progress=progress, seed=kernel_seed, collect_warmup=collect_warmup,
                            warn=warn and world_size == 1, max_memory=math.inf if world_size > 1 else max_memory,
                            stream_to=stream_to, compile=compile)
    finally:  # callers in the same process (bench, tests) keep their setting
        torch.set_num_threads(saved_threads)
    result.attrs.update(target=target_obj.name, kernel_name=kernel if isinstance(kernel, str) else result.kernel_name,
                        seed=seed, dtype=str(dtype).replace("torch.", ""), threads=threads or saved_threads,
                        step_size_jitter=float(getattr(kernel_obj, "jitter", 0.0)),
                        target_accept=float(getattr(kernel_obj, "target_accept", float("nan"))),
                        mass_matrix_choice=str(getattr(kernel_obj, "mass_choice", "")),
                        rank=rank, world_size=world_size, kernel_object=kernel_obj, target_object=target_obj)
    if result.path:
        result.save_attrs()
    if gathered and world_size > 1:
        merged = gather_result(result, world_size)
        if merged is None:
            return result
        result = merged
        if warn:
            for message in result.convergence_warnings():
                warnings.warn(message, ConvergenceWarning, stacklevel=2)
    return result


__all__ = ["run_chains"]
