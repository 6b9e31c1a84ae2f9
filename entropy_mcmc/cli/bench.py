"""`entropy-mcmc bench`: the kernels on the standard targets, with Pyro and BlackJAX side by side; with
`--suite posteriordb --db PATH`, NUTS and ChEES through `entropy_mcmc.MCMC` and Pyro's NUTS on posteriordb's
posteriors, scored against the reference draws."""
from __future__ import annotations

import argparse

from . import common

HELP = ("ESS/MH, ESS/grad, ESS/s and R-hat of RWM, MALA and HMC on the standard targets, with Pyro and BlackJAX "
        "side by side; or (--suite posteriordb) posteriors against their reference draws")


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
                        type=common.name_list("kernel", _bench_kernels),
                        help="comma-separated registry kernels (default rwm,mala,hmc; plugged-in ones too)")
    parser.add_argument("--suite", choices=("standard", "posteriordb"), default="standard",
                        help="standard: the kernels on the standard targets; posteriordb: NUTS and ChEES through "
                             "entropy_mcmc.MCMC (--kernels to choose) and Pyro's NUTS on the posteriors of --db, "
                             "scored against their reference draws (default standard)")
    parser.add_argument("--db", default=None, metavar="PATH",
                        help="--suite posteriordb: a posterior database folder (a posteriordb clone or a subset)")
    parser.add_argument("--posteriors", default=None, metavar="NAMES", type=common.name_list("posterior", _ported),
                        help="--suite posteriordb: comma-separated posteriors (default: every ported one)")
    parser.add_argument("--sequential", default=None, metavar="NAMES", type=common.name_list("posterior", _ported),
                        help="--suite posteriordb: posteriors also run with chain_method='sequential', to measure "
                             "what vectorized chains save")
    parser.add_argument("--chains", type=common.positive_int, default=None,
                        help="--suite posteriordb: chains per run (default 4; tiny 2)")
    # tiny settings for the test suite only
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)


def _bench_kernels():
    """The kernels that run on the bench's real-valued targets from a name alone (no required file)."""
    from ..samplers.registry import kernel_specs

    return [name for name, spec in kernel_specs().items()
            if spec.capabilities.state_space == "real" and not any(o.required for o in spec.options)]


def _ported():
    from ..benchmarks.posteriordb import PORTS

    return tuple(sorted(PORTS))


def run(args) -> int:
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    posteriordb_only = {"--db": args.db, "--posteriors": args.posteriors, "--sequential": args.sequential,
                        "--chains": args.chains}
    if args.suite == "posteriordb":
        if args.db is None:
            raise common.UsageError("--suite posteriordb needs --db PATH, a posterior database folder")
        if args.peers or args.targets:
            raise common.UsageError("--peers and --targets apply to the standard suite; --suite posteriordb runs "
                                    "Pyro's NUTS beside ours (--no-peers skips it) on --posteriors")
        common.check_writable_dir(args.out)
        from ..benchmarks.posteriordb.suite import run_suite

        run_suite(args.db, args.posteriors, kernels=args.kernels or ("nuts", "chees-hmc"),
                  pyro_nuts=not args.no_peers, mode=mode, seed=args.seed, sequential=args.sequential or (),
                  out_dir=args.out, chains=args.chains)
        return 0
    given = [k for k, v in posteriordb_only.items() if v is not None]
    if given:
        raise common.UsageError(f"{', '.join(given)} apply to --suite posteriordb")
    common.check_writable_dir(args.out)
    from ..benchmarks import run_benchmark

    run_benchmark(mode=mode, out_dir=args.out,
                  seed=args.seed, peers=False if args.no_peers else args.peers or True,
                  targets=args.targets, kernels=args.kernels)
    return 0
