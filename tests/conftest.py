import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("EMCMC_NB_SMALL", "1")


@pytest.fixture(scope="module")
def one_thread():
    """Pyro's per-step work is many tiny tensor ops: a second intra-op thread only adds contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def sequential_chains():
    """Pyro runs chains in worker processes when it finds free cores; run them one after the other on every
    machine, so the seeded results (and the warmup hooks, which run where the chain runs) are the same."""
    import pyro.infer.mcmc.api as api

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(api.mp, "cpu_count", lambda: 1)
        yield
