"""`entropy-mcmc sample`: one registry target with one registry kernel; the summary, warnings, NetCDF.

    entropy-mcmc sample --target german --kernel hmc --chains 256 --warmup 500 --draws 1000 --seed 0 --out draws.nc

Under `torchrun --nproc_per_node N` the chains are split across the processes and rank 0 reports.
"""
from __future__ import annotations

import argparse

from . import common

HELP = "sample a registry target with one kernel; print the ArviZ summary, write NetCDF"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..samplers.registry import kernel_names

    specs = _kernel_specs(getattr(parser, "argv", None))
    kernel_help = [f"{k}: {s.help}" for k, s in specs.items()]
    plugged = [name for name in kernel_names() if name not in specs]
    if plugged:
        kernel_help.append(f"plugged in: {', '.join(plugged)} (`--kernel NAME --help` shows one's options, "
                           "`entropy-mcmc list` describes them)")
    parser.add_argument("--target", required=True, type=common.target_name,
                        help="registry name: icg50, scg2, funnel1-100, funnel3-20, mog2, german, australian, "
                             "heart, icg<d>, funnel<sigma>-<d>, or a plugged-in target (entropy-mcmc list)")
    parser.add_argument("--kernel", required=True, choices=kernel_names(), help="; ".join(kernel_help))
    parser.add_argument("--chains", type=common.positive_int, default=4, help="parallel chains (default 4)")
    parser.add_argument("--warmup", type=common.nonneg_int, default=500,
                        help="adaptation steps, discarded (default 500)")
    parser.add_argument("--draws", type=common.positive_int, default=1000, help="kept draws per chain (default 1000)")
    parser.add_argument("--thin", type=common.positive_int, default=1, help="keep every N-th state (default 1)")
    parser.add_argument("--seed", type=common.seed, default=0, help="seed of the initial positions and the kernel")
    parser.add_argument("--out", default=None, metavar="PATH",
                        help="write the draws and sample stats as ArviZ InferenceData (NetCDF, uncompressed)")
    parser.add_argument("--save-warmup", action="store_true",
                        help="keep the warmup draws and stats (warmup_posterior, warmup_sample_stats)")
    parser.add_argument("--target-accept", type=common.probability, default=None,
                        help="acceptance rate step-size adaptation aims at (default per kernel: "
                             + ", ".join(f"{k} {s.target_accept}" for k, s in specs.items()
                                         if s.target_accept and s.adapts_step_size)
                             + "; a kernel whose warmup another kernel runs, e.g. learned: that kernel's)")
    parser.add_argument("--step-size", type=common.positive_float, default=None,
                        help="initial step size before adaptation (default 0.1)")
    parser.add_argument("--adapt-mass", action=argparse.BooleanOptionalAction, default=None,
                        help="adapt a mass matrix during warmup (kernels with one: hmc, mala, and the MALA that runs "
                             "learned's warmup; default on for those)")
    parser.add_argument("--mass", choices=("diag", "dense", "auto"), default=None,
                        help="the mass matrix adapted: diagonal, dense, or auto (dense when the first window's "
                             "pooled draws can estimate it and its correlation matrix is ill-conditioned; the run "
                             "says which and why); default per kernel: "
                             + ", ".join(f"{k} {s.adapts_mass}" for k, s in specs.items() if s.adapts_mass))
    parser.add_argument("--step-size-jitter", type=common.unit_interval, default=None, metavar="J",
                        help="after warmup, draw each chain's step size uniformly in [s(1-J), s(1+J)] at every "
                             "step (default: hmc 0.5, others 0)")
    parser.add_argument("--per-chain-step-size", action="store_true",
                        help="adapt one step size per chain instead of one shared step size")
    parser.add_argument("--init-scale", type=common.positive_float, default=0.1,
                        help="chains start at N(c, s^2 I) draws around the target's centre c: the posterior mode "
                             "for logistic regression, the origin otherwise (default 0.1)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--device", type=common.device, default="cpu", help="torch device (default cpu)")
    parser.add_argument("--threads", type=common.nonneg_int, default=1,
                        help="torch intra-op threads while sampling; 0: torch's default, one per core "
                             "(default 1: the same draws on any load, and no stalls when other processes "
                             "share the cores; see BENCHMARKS.md)")
    parser.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                        help="run hmc's and mala's transitions under torch.compile (CUDA graphs on a GPU); auto: "
                             "where it repays its compile time over the run, which on a CPU takes runs of ~10^6 "
                             "gradients (BENCHMARKS.md); on: always, eager if compiling fails; off: eager "
                             "(default auto)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-summary", action="store_true", help="do not print the summary table")
    parser.add_argument("--full-summary", action="store_true",
                        help="print ArviZ's full summary (az.summary, with 94%% HDIs; slower at thousands of chains) "
                             "instead of the lean one (mean, sd, MCSE, ESS bulk/tail, R-hat: the same numbers)")
    parser.add_argument("--max-memory", type=common.positive_float, default=None, metavar="GIB",
                        help="GiB of draws and statistics held in memory (default 3/4 of the memory available); a "
                             "run that needs more streams them to --out as they come (README: the ceiling)")
    seen = set()
    for spec in specs.values():
        for option in spec.options:
            if option.cli_flag not in seen:
                seen.add(option.cli_flag)
                parser.add_argument(option.cli_flag, dest=_dest(option), type=_option_type(option.type),
                                    default=None, choices=option.choices, help=option.help)


def _kernel_specs(argv) -> dict:
    """The specs whose options `sample` offers: every kernel's when `argv` is None, else the registered kernels'
    and that of the plugin named by `--kernel` in `argv`, so that `sample --help` loads no plugin."""
    from ..samplers.registry import get_kernel_spec, kernel_names, kernel_specs

    if argv is None:
        return kernel_specs()
    specs = kernel_specs(load_plugins=False)
    pre = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    pre.add_argument("--kernel")
    try:
        name = pre.parse_known_args(argv)[0].kernel
    except argparse.ArgumentError:  # the full parser reports it
        return specs
    if name not in specs and name in kernel_names():
        try:
            specs[name] = get_kernel_spec(name)
        except ValueError:  # it failed to load: --kernel no longer offers it
            pass
    return specs


def _option_type(convert):
    """A kernel option's converter as an argparse type: its ValueError's message is the one-line error."""
    def parse(text: str):
        try:
            return convert(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return parse


def _dest(option) -> str:
    return "kernel_" + option.cli_flag.lstrip("-").replace("-", "_")


def build_options(args) -> dict:
    """The `build_kernel` keywords the parsed options ask for (None: the kernel's default)."""
    from ..samplers import get_kernel_spec

    spec = get_kernel_spec(args.kernel)
    options = {}
    for option in spec.options:
        value = getattr(args, _dest(option), None)
        if value is not None:
            options[option.name] = value
    from ..targets import get_target

    spec.capabilities.check_target(args.kernel, get_target(args.target))  # before any output or work
    for option in spec.options:
        if option.required and options.get(option.name) is None:
            raise common.UsageError(f"--kernel {args.kernel} needs {option.cli_flag}: {option.help}")
    mass = args.adapt_mass
    if args.mass is not None:
        if mass is False:
            raise common.UsageError(f"--mass {args.mass} contradicts --no-adapt-mass")
        mass = args.mass
    return dict(target_accept=args.target_accept, step_size=args.step_size, adapt_mass=mass,
                jitter=args.step_size_jitter, per_chain=args.per_chain_step_size, **options)


def run(args) -> int:
    from ..samplers import build_kernel, run_chains
    from ..samplers.distributed import process_group
    from ..targets import get_target

    options = build_options(args)
    rank, world = process_group(args.device)
    if rank == 0:  # only rank 0 writes; ranks checking at once could delete each other's probe file
        common.check_writable_file(args.out)
    target = get_target(args.target)
    kernel = build_kernel(args.kernel, target, num_warmup=args.warmup, **options)  # bad options fail before output
    if rank == 0:
        print(f"entropy-mcmc sample: {args.kernel} on {args.target}, {args.chains} chains"
              + (f" across {world} processes" if world > 1 else "")
              + f", {args.warmup} warmup + {args.draws} draws, {args.dtype} on {args.device}, seed {args.seed}",
              flush=True)
    result = run_chains(target, kernel, chains=args.chains, num_warmup=args.warmup, num_draws=args.draws,
                        thin=args.thin, seed=args.seed, dtype=args.dtype, device=args.device, threads=args.threads,
                        init_scale=args.init_scale, progress=not args.no_progress and rank == 0,
                        collect_warmup=args.save_warmup, warn=False,
                        max_memory=None if args.max_memory is None else args.max_memory * 2 ** 30,
                        stream_to=args.out if world == 1 else None, compile=args.compile)
    if rank != 0:
        return 0
    result.attrs["kernel_name"] = args.kernel
    attrs = dict(kernel=result.kernel_name, chains=args.chains, warmup=args.warmup, draws=args.draws,
                 command=common.command_line())
    if result.path:  # streamed: the file is written, the summary reads it
        result.save_attrs(attrs)
    idata = result.to_arviz()
    idata.posterior.attrs.update(attrs)
    from ..benchmarks.summary import ess_line, summary_while_writing

    summary = summary_while_writing(idata, None if result.path else args.out, full=args.full_summary,
                                    max_bytes=result.max_memory if result.path else None)
    if not args.no_summary:
        import pandas as pd

        with pd.option_context("display.max_rows", 500, "display.width", 140):
            print(summary.round(4).to_string())
    if summary.attrs.get("thin", 1) > 1:
        print(f"summary of 1 draw in {summary.attrs['thin']}: one variable's chains x draws exceed the memory budget")
    step = result.stat_mean("step_size")
    step_text = "" if step is None else f", step size {step:.4g}"
    jitter = result.attrs["step_size_jitter"]
    step_text += f" (jitter +-{jitter:g})" if jitter else ""
    print(f"warmup {result.warmup_time:.2f} s, sampling {result.sampling_time:.2f} s, "
          f"acceptance {result.acceptance_rate:.3f} (warmup {result.warmup_acceptance:.3f}){step_text}, "
          f"divergences {result.num_divergences}")
    print(ess_line(summary, result.sampling_time, result.total_time, "warmup + sampling"))
    print(f"compile: {result.attrs['compile']}")
    if result.attrs.get("mass_matrix_choice"):
        print(f"mass matrix: {result.attrs['mass_matrix_choice']}")
    for message in result.convergence_warnings(summary):
        print(f"warning: {message}")
    if args.out:
        print(f"wrote {args.out}" + (" as sampled (the draws exceed the memory budget)" if result.path else ""))
    return 0
