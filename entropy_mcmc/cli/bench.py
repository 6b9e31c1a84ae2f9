"""`entropy-mcmc bench`: the kernels on the standard targets, with Pyro and BlackJAX side by side; with
`--suite posteriordb --db PATH`, NUTS and ChEES through `entropy_mcmc.MCMC` and Pyro's NUTS on posteriordb's
posteriors, scored against the reference draws; with `--suite unseen`, `train-ebm` and `sample-ebm` at their
defaults on 2-D densities drawn afresh, scored against exact draws. `--list`, `--experiment NAME` and
`--report`: the named experiments (these suites and the scripts of the repository's benchmarks/ folder) and the
results report built from their runs (`entropy_mcmc.benchmarks.experiments`)."""
from __future__ import annotations

import argparse

from . import common

HELP = ("ESS/MH, ESS/grad, ESS/s and R-hat of RWM, MALA and HMC on the standard targets, with Pyro and BlackJAX "
        "side by side; or (--suite posteriordb) posteriors against their reference draws; or (--suite unseen) "
        "energy models trained and sampled at defaults on densities drawn afresh; or (--list, --experiment NAME, "
        "--report) the named experiments and the results report")
RUNNER_OPTIONS = ("list", "experiment", "report", "results", "out")
LOSSES = ("mdsm", "dsm", "esm", "ssm", "ml")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..samplers import kernel_names
    from ..targets import target_names

    unseen = _suite(parser.argv) == "unseen"
    parser.add_argument("--list", action="store_true",
                        help="list the named experiments (these suites and the scripts of benchmarks/) with the time "
                             "each takes on the development machine")
    parser.add_argument("--experiment", nargs=argparse.REMAINDER, default=None,
                        help="NAME [--seed S] [--quick] [--out DIR] [its own options]: run a named experiment; its "
                             "files and result.json (the command, date, machine, commit, tables and figures) go to "
                             "--out (default results/NAME)")
    parser.add_argument("--report", action="store_true",
                        help="write the results report (--out, default docs/report.md) from every "
                             "--results/*/result.json")
    parser.add_argument("--results", default="results", metavar="DIR",
                        help="--report: the folder holding the experiments' output folders (default results)")
    parser.add_argument("--quick", action="store_true", help="small settings: finishes in under 3 minutes on 2 cores "
                        "(--suite unseen: a small training budget, for tests)")
    parser.add_argument("--demo", action="store_true",
                        help="the first run (`make demo`, about 2 minutes on 2 cores): NUTS, ChEES-HMC, HMC and MALA "
                             "on German BLR with RWM as the labelled baseline, Pyro's NUTS beside them, and BlackJAX's "
                             "when the peers extra is installed (pip install 'entropy-mcmc[peers]')")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="where the table (CSV, markdown), the JSON record and the plot go "
                             "(default results/bench; --suite unseen: results/unseen; --report: the report page, "
                             "default docs/report.md)")
    parser.add_argument("--seed", type=common.seed, default=None,
                        help="default 0; --suite unseen: a fresh seed from the OS, printed")
    parser.add_argument("--no-peers", action="store_true", help="skip Pyro and BlackJAX")
    parser.add_argument("--peers", default=None, metavar="NAMES",
                        type=common.name_list("peer", lambda: ("pyro", "blackjax")),
                        help="comma-separated subset of pyro,blackjax (default: both)")
    parser.add_argument("--targets", default=None, metavar="NAMES", type=common.name_list("target", target_names),
                        help="comma-separated subset of the benchmark targets "
                             "(default icg50,scg2,funnel1-100,german,australian,heart)")
    parser.add_argument("--kernels", default=None, metavar="NAMES",
                        type=common.name_list("kernel", _ml_kernels if unseen else _bench_kernels),
                        help="comma-separated registry kernels (default rwm,mala,hmc; plugged-in ones too); "
                             "--suite unseen: the negative samplers of --loss ml (default mala,hmc,learned)")
    parser.add_argument("--suite", choices=("standard", "posteriordb", "unseen"), default="standard",
                        help="standard: the kernels on the standard targets; posteriordb: NUTS and ChEES through "
                             "entropy_mcmc.MCMC (--kernels to choose) and Pyro's NUTS on the posteriors of --db, "
                             "scored against their reference draws; unseen: train-ebm and sample-ebm at defaults "
                             "on 2-D densities drawn afresh, scored against exact draws (default standard)")
    parser.add_argument("--densities", default=None, metavar="KINDS", type=common.name_list("density", _kinds),
                        help="--suite unseen: comma-separated kinds, one fresh density each (a kind twice: two) "
                             "(default mixture,rings,spiral,heavy)")
    parser.add_argument("--losses", default=None, metavar="NAMES", type=common.name_list("loss", lambda: LOSSES),
                        help="--suite unseen: comma-separated train-ebm losses (default mdsm,ml; ml once per "
                             "--kernels)")
    parser.add_argument("--db", default=None, metavar="PATH",
                        help="--suite posteriordb: a posterior database folder (a posteriordb clone or a subset)")
    parser.add_argument("--posteriors", default=None, metavar="NAMES", type=common.name_list("posterior", _ported),
                        help="--suite posteriordb: comma-separated posteriors (default: every ported one)")
    parser.add_argument("--sequential", default=None, metavar="NAMES", type=common.name_list("posterior", _ported),
                        help="--suite posteriordb: posteriors also run with chain_method='sequential', to measure "
                             "what vectorized chains save")
    parser.add_argument("--chains", type=common.positive_int, default=None,
                        help="--suite posteriordb: chains per run (default 4; tiny 2)")
    parser.add_argument("--mass", choices=("diag", "dense", "auto"), default=None,
                        help="the mass matrix our kernels with one adapt, their rows labelled with the one "
                             "adapted (default: each kernel's own; not --suite unseen)")
    # tiny settings for the test suite only
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)


def _bench_kernels():
    """The kernels that run on the bench's real-valued targets from a name alone (no required file)."""
    from ..samplers.registry import kernel_specs

    return [name for name, spec in kernel_specs().items()
            if spec.capabilities.state_space == "real" and not any(o.required for o in spec.options)]


def _suite(argv) -> str:
    """The --suite named in `argv` (None: formatting help)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--suite", default="standard")
    return pre.parse_known_args(argv or [])[0].suite


def _ml_kernels():
    """The kernels train-ebm takes as the negative sampler of --loss ml: those on real states."""
    from ..samplers.registry import kernel_specs

    return [name for name, spec in kernel_specs().items() if spec.capabilities.state_space == "real"]


def _kinds():
    from ..benchmarks.unseen import KINDS

    return KINDS


def _ported():
    from ..benchmarks.posteriordb import PORTS

    return tuple(sorted(PORTS))


def run(args) -> int:
    if args.list or args.report or args.experiment is not None:
        return _runner(args)
    mode = "tiny" if args.tiny else "demo" if args.demo else "quick" if args.quick else "full"
    if args.demo and (args.suite != "standard" or args.quick or args.tiny):
        raise common.UsageError("--demo is its own settings of the standard suite: no --quick or --suite")
    posteriordb_only = {"--db": args.db, "--posteriors": args.posteriors, "--sequential": args.sequential,
                        "--chains": args.chains}
    unseen_only = {"--densities": args.densities, "--losses": args.losses}
    if args.suite == "unseen":
        others = {**posteriordb_only, "--peers": args.peers, "--targets": args.targets, "--mass": args.mass}
        given = [k for k, v in others.items() if v is not None] + (["--no-peers"] if args.no_peers else [])
        if given:
            raise common.UsageError(f"{', '.join(given)} do not apply to --suite unseen")
        if args.kernels and args.losses and "ml" not in args.losses:
            raise common.UsageError("--kernels names the negative samplers of the ml loss; --losses has no ml")
        out = args.out or "results/unseen"
        common.check_writable_dir(out)
        from ..benchmarks.unseen import KINDS
        from ..benchmarks.unseen_suite import run_suite

        run_suite(args.densities or KINDS, losses=args.losses or ("mdsm", "ml"),
                  kernels=args.kernels or ("mala", "hmc", "learned"), seed=args.seed,
                  quick=args.quick or args.tiny, out_dir=out)
        return 0
    given = [k for k, v in unseen_only.items() if v is not None]
    if given:
        raise common.UsageError(f"{', '.join(given)} apply to --suite unseen")
    seed = 0 if args.seed is None else args.seed
    out = args.out or "results/bench"
    if args.suite == "posteriordb":
        if args.db is None:
            raise common.UsageError("--suite posteriordb needs --db PATH, a posterior database folder")
        if args.peers or args.targets:
            raise common.UsageError("--peers and --targets apply to the standard suite; --suite posteriordb runs "
                                    "Pyro's NUTS beside ours (--no-peers skips it) on --posteriors")
        common.check_writable_dir(out)
        from ..benchmarks.posteriordb.suite import run_suite

        run_suite(args.db, args.posteriors, kernels=args.kernels or ("nuts", "chees-hmc"),
                  pyro_nuts=not args.no_peers, mode=mode, seed=seed, sequential=args.sequential or (),
                  out_dir=out, chains=args.chains, mass=args.mass)
        return 0
    given = [k for k, v in posteriordb_only.items() if v is not None]
    if given:
        raise common.UsageError(f"{', '.join(given)} apply to --suite posteriordb")
    common.check_writable_dir(out)
    from ..benchmarks import run_benchmark

    run_benchmark(mode=mode, out_dir=out,
                  seed=seed, peers=False if args.no_peers else args.peers or True,
                  targets=args.targets, kernels=args.kernels, mass=args.mass)
    return 0


def _runner(args) -> int:
    """--list, --experiment NAME [ARGS] or --report, each alone (an experiment's options go after its name)."""
    chosen = [o for o, on in (("--list", args.list), ("--experiment", args.experiment is not None),
                              ("--report", args.report)) if on]
    others = [a.option_strings[0] for a in args._parser._actions if a.option_strings
              and a.dest not in RUNNER_OPTIONS and getattr(args, a.dest, a.default) != a.default]
    others += [o for o, on in (("--out", args.out is not None), ("--results", args.results != "results"))
               if on and not args.report]
    if len(chosen) > 1 or others:
        raise common.UsageError(f"{', '.join(chosen[1:] + others)} do not apply to {chosen[0]}"
                                + ("; an experiment's options go after its name" if args.experiment else ""))
    from ..benchmarks import experiments

    if args.list:
        print(experiments.list_text())
        return 0
    if args.report:
        from ..benchmarks.report import write_report

        print(f"wrote {write_report(args.results, args.out or 'docs/report.md')}")
        return 0
    if not args.experiment:
        raise common.UsageError("--experiment needs a NAME (entropy-mcmc bench --list shows them)")
    return experiments.run_experiment(args.experiment[0], args.experiment[1:])
