"""Benchmark code shipped with the package (the `entropy-mcmc bench` command and the peer runners).

`suite.run_benchmark` runs our kernels and the peers and writes the tables; `peers` holds
Pyro and BlackJAX runners. Importing this package imports nothing heavy.
"""


def run_benchmark(*args, **kwargs):
    """See `entropy_mcmc.benchmarks.suite.run_benchmark`."""
    from .suite import run_benchmark as run

    return run(*args, **kwargs)


__all__ = ["run_benchmark"]
