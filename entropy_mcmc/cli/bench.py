"""`entropy-mcmc bench`: the kernels on the standard targets, with Pyro and BlackJAX side by side."""
from __future__ import annotations

import argparse

from . import common

HELP = ("ESS/MH, ESS/grad, ESS/s and R-hat of RWM, MALA and HMC on the standard targets, with Pyro and BlackJAX "
        "side by side")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..samplers import kernel_names
    from ..targets import target_names

    parser.add_argument("--quick", action="store_true", help="small settings: finishes in under 3 minutes on 2 cores")
    parser.add_argument("--out", default="results/bench", metavar="DIR",
                        help="where the table (CSV, markdown), the JSON record and the plot go "
                             "(default results/bench)")
    parser.add_argument("--seed", type=common.seed, default=0)
    parser.add_argument("--no-peers", action="store_true", help="skip Pyro and BlackJAX")
    parser.add_argument("--peers", default=None, metavar="NAMES",
                        type=common.name_list("peer", lambda: ("pyro", "blackjax")),
                        help="comma-separated subset of pyro,blackjax (default: both)")
    parser.add_argument("--targets", default=None, metavar="NAMES", type=common.name_list("target", target_names),
                        help="comma-separated subset of the benchmark targets "
                             "(default icg50,scg2,funnel1-100,german,australian,heart)")
    parser.add_argument("--kernels", default=None, metavar="NAMES",
                        type=common.name_list("kernel", lambda: [k for k in kernel_names() if k != "learned"]),
                        help="comma-separated registry kernels (default rwm,mala,hmc; plugged-in ones too)")
    # tiny settings for the test suite only
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)


def run(args) -> int:
    from ..benchmarks import run_benchmark

    run_benchmark(mode="tiny" if args.tiny else "quick" if args.quick else "full", out_dir=args.out,
                  seed=args.seed, peers=False if args.no_peers else args.peers or True,
                  targets=args.targets, kernels=args.kernels)
    return 0
