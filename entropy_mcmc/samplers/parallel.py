"""Chains over local processes through torch.distributed (gloo): NumPyro's `chain_method="parallel"`.

`run_in_processes(fn, args, chains)` starts one process per share of the chains (at most one per
core), joins them into a gloo process group and calls `fn(*args)` in each. `fn` runs
`run_chains`, which in an initialized group runs that rank's share and gathers every rank's
draws on rank 0 (see `distributed`); rank 0's return value comes back to the caller.
"""
from __future__ import annotations

import os
import pickle
import tempfile
import time
import traceback
from typing import Callable, Optional, Sequence

import torch

from .distributed import end_process_group

__all__ = ["run_in_processes"]


def _worker(fn: Callable, args: Sequence, init_method: str, rank: int, world_size: int, threads: int,
            queue) -> None:
    import torch.distributed as dist

    torch.set_num_threads(threads)
    try:
        dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world_size)
        out = fn(*args)
        if rank == 0:  # by value: a tensor shared by handle dies with this process, maybe before it is read
            queue.put(("ok", pickle.dumps(out)))
        end_process_group()
    except Exception as e:  # noqa: BLE001 - handed to the caller, which raises it there
        user_error = isinstance(e, (ValueError, TypeError))
        queue.put(("error", type(e).__name__ if user_error else "RuntimeError",
                   str(e) if user_error else f"rank {rank}: {traceback.format_exc()}"))


def _wait(queue, procs):
    """The first message of any process; a RuntimeError if every process ended without one."""
    while queue.empty():
        if not any(p.is_alive() for p in procs) and queue.empty():
            raise RuntimeError(f"the chain processes ended without a result (exit codes {[p.exitcode for p in procs]})")
        time.sleep(0.02)
    return queue.get()


def run_in_processes(fn: Callable, args: Sequence, chains: int, num_processes: Optional[int] = None):
    """`fn(*args)` in `min(chains, num_processes or cores)` processes of one gloo group; rank 0's result.

    `fn` and `args` are pickled to the processes (started with "spawn"): a model must be a function
    defined at module level. A `ValueError` or `TypeError` in a process is raised here as such;
    anything else as a `RuntimeError` with that process's traceback.
    """
    n = max(1, min(chains, num_processes or os.cpu_count() or 1))
    try:
        pickle.dumps((fn, args))
    except Exception as e:  # noqa: BLE001 - pickling raises several types
        raise ValueError(f"chain_method='parallel' sends the model and its arguments to worker processes, which "
                         f"needs them picklable (a model defined at module level): {type(e).__name__}: {e}") from e
    ctx = torch.multiprocessing.get_context("spawn")
    queue = ctx.SimpleQueue()
    threads = max(1, (os.cpu_count() or 1) // n)
    with tempfile.TemporaryDirectory() as tmp:
        init_method = f"file://{os.path.join(tmp, 'store')}"
        procs = [ctx.Process(target=_worker, args=(fn, args, init_method, r, n, threads, queue)) for r in range(n)]
        for p in procs:
            p.start()
        try:
            message = _wait(queue, procs)
            if message[0] == "ok":
                for p in procs:
                    p.join(timeout=60)
        finally:
            for p in procs:
                if p.is_alive():
                    p.terminate()
                p.join()
    if message[0] == "ok":
        return pickle.loads(message[1])  # written by our own worker above
    kind, text = message[1], message[2]
    raise {"ValueError": ValueError, "TypeError": TypeError}.get(kind, RuntimeError)(text)
