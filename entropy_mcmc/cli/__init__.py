"""The `entropy-mcmc` command, one module per subcommand; the top layer of the package, imported by nothing.

    entropy-mcmc sample --target german --kernel hmc --chains 256 --warmup 500 --draws 1000 --seed 0 --out draws.nc
    entropy-mcmc bench --quick --out results/bench
    entropy-mcmc list

A subcommand module has `HELP`, `add_arguments(parser)` and `run(args) -> int`. Library code raises
ValueError/TypeError; `main` prints those, `OSError` and `UsageError`, as one line without a traceback (exit 2).
Heavy imports beyond torch (arviz, pandas, pyro, jax) happen inside the handlers.
"""
from __future__ import annotations

import os
import sys
import time
from typing import List, Optional

from . import bench, cluster, list as list_command, sample, sample_ebm, sample_rbm, train_ebm, train_rbm, train_sampler
from .common import Parser, UsageError

COMMANDS = {
    "sample": sample,
    "train-sampler": train_sampler,
    "train-ebm": train_ebm,
    "sample-ebm": sample_ebm,
    "bench": bench,
    "list": list_command,
    "cluster": cluster,
    "train-rbm": train_rbm,
    "sample-rbm": sample_rbm,
}


def build_parser() -> Parser:
    from .. import __version__

    parser = Parser(prog="entropy-mcmc", description="MCMC transition kernels in PyTorch.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for name, module in COMMANDS.items():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _parser=p)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    t0 = time.perf_counter()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args._run(args)
    except BrokenPipeError:  # the reader went away (`entropy-mcmc list | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (UsageError, ValueError, TypeError, OSError) as err:
        args._parser.error(str(err))
    from ..samplers.distributed import end_process_group

    end_process_group()  # under torchrun: every rank waits for rank 0's writing, then leaves cleanly
    if getattr(args, "command", None) == "sample":
        print(f"total {time.perf_counter() - t0:.2f} s in main()", flush=True)
    return code


__all__ = ["main", "build_parser", "COMMANDS", "UsageError"]
