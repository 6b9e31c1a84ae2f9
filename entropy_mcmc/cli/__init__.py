"""The `entropy-mcmc` command, one module per subcommand; the top layer of the package, imported by nothing.

    entropy-mcmc sample --target german --kernel hmc --chains 256 --warmup 500 --draws 1000 --seed 0 --out draws.nc
    entropy-mcmc bench --quick --out results/bench
    entropy-mcmc list

A subcommand module has `HELP`, `add_arguments(parser)` and `run(args) -> int`. `main` prints a user error as one
line without a traceback (exit 2): a `UsageError`, a ValueError/TypeError from a `raise` statement in this package
(library code raises those on bad input), an OSError about a path the user gave; anything else is a bug and
propagates with its traceback.
A subcommand's arguments are added only when it runs (`Parser`), and imports beyond the standard library happen
inside the functions that need them: `entropy-mcmc --help` and `entropy-mcmc sample --help` import no torch.
"""
from __future__ import annotations

import linecache
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
        p = sub.add_parser(name, help=module.HELP, description=module.HELP, add_arguments=module.add_arguments)
        p.set_defaults(_run=module.run, _parser=p)
    return parser


def _user_error(err: Exception, args) -> bool:
    """Whether `err` reports bad input rather than a bug (see the module docstring)."""
    if isinstance(err, UsageError):
        return True
    if isinstance(err, OSError):
        given = [os.path.abspath(v) for v in vars(args).values() if isinstance(v, str) and v]
        paths = [os.path.abspath(os.fsdecode(f)) for f in (err.filename, err.filename2) if isinstance(f, (str, bytes))]
        return any(p == g or p.startswith(g + os.sep) for p in paths for g in given)
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    filename = tb.tb_frame.f_code.co_filename
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    return (os.path.abspath(filename).startswith(package)
            and linecache.getline(filename, tb.tb_lineno).lstrip().startswith("raise"))


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
        if not _user_error(err, args):
            raise
        args._parser.error(str(err))
    from ..samplers.distributed import end_process_group

    end_process_group()  # under torchrun: every rank waits for rank 0's writing, then leaves cleanly
    if getattr(args, "command", None) == "sample":
        print(f"total {time.perf_counter() - t0:.2f} s in main()", flush=True)
    return code


__all__ = ["main", "build_parser", "COMMANDS", "UsageError"]
