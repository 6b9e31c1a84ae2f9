"""The benchmark table, as `entropy-mcmc bench` runs it (the code lives in `entropy_mcmc.benchmarks`).

    .venv/bin/python benchmarks/run_bench.py --quick --out results/bench
    .venv/bin/python benchmarks/run_bench.py            # full settings (several minutes)

Same options as `entropy-mcmc bench`.
"""
import sys

from entropy_mcmc.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
