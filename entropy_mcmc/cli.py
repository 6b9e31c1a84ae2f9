"""The `entropy-mcmc` command: `sample` a registry target with a kernel, `bench` the kernels against peers.

    entropy-mcmc sample --target german --kernel hmc --chains 256 --warmup 500 --draws 1000 --seed 0 --out draws.nc
    entropy-mcmc bench --quick --out results/bench

Extension points (for the learned sampler and later commands):

* a kernel is a `KernelSpec` in `KERNELS` (use `register_kernel`): a builder
  `build(target, args) -> TransitionKernel`, its default target acceptance and
  initial step size, and optionally `add_arguments(parser)` for options of its own
  (e.g. `--sampler PATH` for `--kernel learned`). `sample` wraps whatever the
  builder returns in `StepSizeAdaptation` when it has a `step_size`.
* a subcommand is a `Command` in `COMMANDS` (use `register_command`): a parser
  setup `add_arguments(parser)` and a handler `run(args) -> int`.

Heavy imports beyond torch (arviz, pandas, pyro, jax) happen inside the handlers.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import torch

from .samplers import StepSizeJitter


class UsageError(Exception):
    """A bad combination of options found after parsing; `main` reports it like an argparse error."""


# --------------------------------------------------------------------------- kernels


@dataclass
class KernelSpec:
    """How `sample` builds one kernel by name.

    build: `(target, args) -> TransitionKernel`; `args` is the parsed namespace
        (`args.step_size` is already resolved to a float).
    target_accept: the adaptation target when `--target-accept` is not given.
    step_size: the initial step size when `--step-size` is not given.
    help: one line for `--help`.
    add_arguments: optional hook adding the kernel's own options to the `sample` parser.
    adapts_mass: whether `--adapt-mass` applies (the kernel has a diagonal `inv_mass`).
    step_size_jitter: default `--step-size-jitter` (HMC: 0.5, see BENCHMARKS.md).
    adapts_step_size: whether warmup adapts the step size (False for a trained learned sampler,
        whose eps is part of what was trained; `step_size` None then means the kernel's own).
    """

    build: Callable
    target_accept: float
    step_size: float
    help: str
    add_arguments: Optional[Callable[[argparse.ArgumentParser], None]] = None
    adapts_mass: bool = False
    step_size_jitter: float = 0.0
    adapts_step_size: bool = True


def _build_rwm(target, args):
    from .samplers import RandomWalkMetropolis

    return RandomWalkMetropolis(target, step_size=args.step_size)


def _build_mala(target, args):
    from .samplers import MALA

    return MALA(target, step_size=args.step_size)


def _build_hmc(target, args):
    from .samplers import HMC

    return HMC(target, step_size=args.step_size, num_steps=args.leapfrog_steps)


def _hmc_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--leapfrog-steps", type=_positive_int, default=10, metavar="N",
                        help="HMC: leapfrog steps per transition (default 10)")


def _build_learned(target, args):
    from .samplers.learned.commands import build_learned

    return build_learned(target, args)


def _learned_arguments(parser: argparse.ArgumentParser) -> None:
    from .samplers.learned.commands import sampler_arguments

    sampler_arguments(parser)


KERNELS: Dict[str, KernelSpec] = {
    "rwm": KernelSpec(_build_rwm, 0.234, 0.1, "random-walk Metropolis"),
    "mala": KernelSpec(_build_mala, 0.574, 0.1, "Metropolis-adjusted Langevin"),
    "hmc": KernelSpec(_build_hmc, 0.8, 0.1, "HMC, fixed number of leapfrog steps, diagonal mass matrix",
                      add_arguments=_hmc_arguments, adapts_mass=True, step_size_jitter=0.5),
    "learned": KernelSpec(_build_learned, 0.7, None, "the trained entropy-maximizing sampler of --sampler PATH "
                          "(thesis ch. 4); no step-size adaptation", add_arguments=_learned_arguments,
                          adapts_step_size=False),
}


def register_kernel(name: str, spec: KernelSpec) -> None:
    """Make `--kernel NAME` available to `entropy-mcmc sample` (call before `main`)."""
    KERNELS[name] = spec


# --------------------------------------------------------------------------- argument types


def _checked(convert, ok, unparsable: str, out_of_range: Optional[str] = None):
    """An argparse type: `convert(text)`, then `ok(value)`; each failure says what was expected."""
    out_of_range = out_of_range or unparsable

    def parse(text: str):
        try:
            v = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{unparsable}, got {text!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"{out_of_range}, got {text!r}")
        return v

    return parse


_positive_int = _checked(int, lambda v: v >= 1, "expected a positive integer")
_nonneg_int = _checked(int, lambda v: v >= 0, "expected a non-negative integer")
_probability = _checked(float, lambda v: 0.0 < v < 1.0, "expected a number in (0, 1)")
_positive_float = _checked(float, lambda v: v > 0.0 and v != float("inf"), "expected a positive number",
                           "expected a positive finite number")
_seed = _checked(int, lambda v: 0 <= v < 2 ** 63, "expected an integer seed", "seed must lie in [0, 2^63)")


def _target_name(text: str) -> str:
    """Checks a registry name without building the target (that happens once, in the handler)."""
    from .targets import check_target_name

    try:
        return check_target_name(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _target_names():
    from .targets import target_names

    return target_names()


def _name_list(kind: str, allowed: Callable[[], tuple]):
    """An argparse type for a comma-separated list of names out of `allowed()`."""

    def parse(text: str) -> List[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        known = list(allowed())
        for n in names or [text]:
            if n not in known:
                raise argparse.ArgumentTypeError(f"unknown benchmark {kind} {n!r}; expected some of "
                                                 f"{', '.join(known)}")
        return names

    return parse


def _device(text: str) -> str:
    try:
        torch.empty(1, device=text)
        torch.Generator(device=text)  # the kernels draw their randomness on the device
    except Exception as err:  # RuntimeError, or AssertionError from a torch built without that backend
        raise argparse.ArgumentTypeError(f"device {text!r} is not usable: {err}") from None
    return text


def spawn_seeds(seed: int, n: int) -> List[int]:
    """`n` independent 63-bit seeds derived from one (NumPy's SeedSequence), e.g. for init and kernel."""
    import numpy as np

    return [int(s.generate_state(1, np.uint64)[0] >> np.uint64(1)) for s in np.random.SeedSequence(seed).spawn(n)]


def initial_positions(target, chains: int, seed: int, dtype, device, scale: float = 0.1):
    """`[chains, *event]` draws of N(0, scale^2 I), made on the CPU so every device gets the same start."""
    gen = torch.Generator().manual_seed(seed)
    x = scale * torch.randn((chains,) + tuple(target.event_shape), generator=gen, dtype=torch.float64)
    return x.to(dtype=dtype, device=device)


# --------------------------------------------------------------------------- sample


def _sample_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", required=True, type=_target_name,
                        help="registry name: icg50, scg2, funnel1-100, funnel3-20, mog2, german, australian, "
                             "heart, icg<d>, funnel<sigma>-<d>")
    parser.add_argument("--kernel", required=True, choices=sorted(KERNELS),
                        help="; ".join(f"{k}: {s.help}" for k, s in sorted(KERNELS.items())))
    parser.add_argument("--chains", type=_positive_int, default=4, help="parallel chains (default 4)")
    parser.add_argument("--warmup", type=_nonneg_int, default=500,
                        help="adaptation steps, discarded (default 500)")
    parser.add_argument("--draws", type=_positive_int, default=1000, help="kept draws per chain (default 1000)")
    parser.add_argument("--thin", type=_positive_int, default=1, help="keep every N-th state (default 1)")
    parser.add_argument("--seed", type=_seed, default=0, help="seed of the initial positions and the kernel")
    parser.add_argument("--out", default=None, metavar="PATH",
                        help="write the draws and sample stats as ArviZ InferenceData (NetCDF)")
    parser.add_argument("--target-accept", type=_probability, default=None,
                        help="acceptance rate step-size adaptation aims at (default: rwm 0.234, mala 0.574, "
                             "hmc 0.8)")
    parser.add_argument("--step-size", type=_positive_float, default=None,
                        help="initial step size before adaptation (default 0.1)")
    parser.add_argument("--adapt-mass", action=argparse.BooleanOptionalAction, default=None,
                        help="adapt a diagonal mass matrix during warmup (kernels with one: hmc; default on "
                             "for those)")
    parser.add_argument("--step-size-jitter", type=float, default=None, metavar="J",
                        help="after warmup, draw each chain's step size uniformly in [s(1-J), s(1+J)] at every "
                             "step (default: hmc 0.5, others 0)")
    parser.add_argument("--per-chain-step-size", action="store_true",
                        help="adapt one step size per chain instead of one shared step size")
    parser.add_argument("--init-scale", type=_positive_float, default=0.1,
                        help="chains start at N(0, s^2 I) draws (default 0.1)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--device", type=_device, default="cpu", help="torch device (default cpu)")
    parser.add_argument("--threads", type=_nonneg_int, default=1,
                        help="torch intra-op threads while sampling; 0: torch's default, one per core "
                             "(default 1: the same draws on any load, and no stalls when other processes "
                             "share the cores; see BENCHMARKS.md)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-summary", action="store_true", help="do not print the ArviZ summary table")
    for spec in KERNELS.values():
        if spec.add_arguments is not None:
            spec.add_arguments(parser)


def build_kernel(args, target):
    """The kernel `sample` runs: the spec's kernel in `StepSizeAdaptation` (if it has a step size)."""
    from .samplers import StepSizeAdaptation

    spec = KERNELS[args.kernel]
    if args.step_size is None:
        args.step_size = spec.step_size
    kernel = spec.build(target, args)
    adapt_mass = spec.adapts_mass if args.adapt_mass is None else args.adapt_mass
    if adapt_mass and not spec.adapts_mass:
        raise UsageError(f"--adapt-mass does not apply to --kernel {args.kernel}")
    jitter = spec.step_size_jitter if args.step_size_jitter is None else args.step_size_jitter
    if not 0.0 <= jitter < 1.0:
        raise UsageError(f"--step-size-jitter must lie in [0, 1), got {jitter}")
    if not hasattr(kernel, "step_size"):
        return kernel
    if args.warmup > 0 and spec.adapts_step_size:
        target_accept = spec.target_accept if args.target_accept is None else args.target_accept
        kernel = StepSizeAdaptation(kernel, target_accept=target_accept, per_chain=args.per_chain_step_size,
                                    adapt_mass_matrix=adapt_mass)
    return StepSizeJitter(kernel, jitter) if jitter > 0 else kernel


def run_chains(args):
    """Build target and kernel from parsed `sample` arguments and run them; returns `(result, kernel, target)`."""
    from .samplers import sample
    from .targets import get_target

    dtype = getattr(torch, args.dtype)
    target = get_target(args.target)
    kernel = build_kernel(args, target)
    init_seed, kernel_seed = spawn_seeds(args.seed, 2)
    init = initial_positions(target, args.chains, init_seed, dtype, args.device, args.init_scale)
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        result = sample(kernel, init, num_draws=args.draws, num_warmup=args.warmup, thin=args.thin,
                        progress=not args.no_progress, seed=kernel_seed)
    finally:  # callers in the same process (bench, tests) keep their setting
        torch.set_num_threads(threads)
    result.attrs.update(target=args.target, kernel_name=args.kernel, seed=args.seed, dtype=args.dtype,
                        threads=args.threads or threads,
                        step_size_jitter=float(getattr(kernel, "jitter", 0.0)),
                        target_accept=float(getattr(kernel, "target_accept", float("nan"))))
    return result, kernel, target


def sample_args(target: str, kernel: str, **options) -> argparse.Namespace:
    """The namespace `entropy-mcmc sample --target T --kernel K` parses to, with `options` replacing defaults
    (`sample_args("german", "hmc", chains=256, leapfrog_steps=5, no_progress=True)`)."""
    args = build_parser().parse_args(["sample", "--target", target, "--kernel", kernel])
    for key, value in options.items():
        if not hasattr(args, key):
            raise ValueError(f"entropy-mcmc sample has no option --{key.replace('_', '-')}")
        setattr(args, key, value)
    return args


def run_sample(args) -> int:
    print(f"entropy-mcmc sample: {args.kernel} on {args.target}, {args.chains} chains, "
          f"{args.warmup} warmup + {args.draws} draws, {args.dtype} on {args.device}, seed {args.seed}", flush=True)
    result, kernel, target = run_chains(args)
    idata = result.to_arviz()
    idata.posterior.attrs.update(
        kernel=result.kernel_name, chains=args.chains, warmup=args.warmup, draws=args.draws,
        command="entropy-mcmc " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("entropy-mcmc")
        else "entropy_mcmc.cli.main")
    from .benchmarks.summary import ess_line, summary_while_writing

    summary = summary_while_writing(idata, args.out)

    if not args.no_summary:
        import pandas as pd

        with pd.option_context("display.max_rows", 500, "display.width", 140):
            print(summary.round(4).to_string())
    step = result.stats.get("step_size")
    step_text = "" if step is None else f", step size {float(step.float().mean()):.4g}"
    jitter = result.attrs["step_size_jitter"]
    step_text += f" (jitter +-{jitter:g})" if jitter else ""
    print(f"warmup {result.warmup_time:.2f} s, sampling {result.sampling_time:.2f} s, "
          f"acceptance {result.acceptance_rate:.3f} (warmup {result.warmup_acceptance:.3f}){step_text}, "
          f"divergences {result.num_divergences}")
    print(ess_line(summary, result.sampling_time, result.total_time, "warmup + sampling"))
    if args.out:
        print(f"wrote {args.out}")
    return 0


# --------------------------------------------------------------------------- bench


def _bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="small settings: finishes in under 3 minutes on 2 cores")
    parser.add_argument("--out", default="results/bench", metavar="DIR",
                        help="where the table (CSV, markdown), the JSON record and the plot go "
                             "(default results/bench)")
    parser.add_argument("--seed", type=_seed, default=0)
    parser.add_argument("--no-peers", action="store_true", help="skip Pyro and BlackJAX")
    parser.add_argument("--peers", default=None, metavar="NAMES",
                        type=_name_list("peer", lambda: ("pyro", "blackjax")),
                        help="comma-separated subset of pyro,blackjax (default: both)")
    parser.add_argument("--targets", default=None, metavar="NAMES", type=_name_list("target", _target_names),
                        help="comma-separated subset of the benchmark targets "
                             "(default icg50,scg2,funnel1-100,german,australian,heart)")
    parser.add_argument("--kernels", default=None, metavar="NAMES",
                        type=_name_list("kernel", lambda: ("rwm", "mala", "hmc")),
                        help="comma-separated subset of rwm,mala,hmc")
    # tiny settings for the test suite only
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)


def run_bench(args) -> int:
    from .benchmarks import run_benchmark

    run_benchmark(mode="tiny" if args.tiny else "quick" if args.quick else "full", out_dir=args.out,
                  seed=args.seed, peers=False if args.no_peers else args.peers or True,
                  targets=args.targets, kernels=args.kernels)
    return 0


# --------------------------------------------------------------------------- commands


@dataclass
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _train_sampler_arguments(parser: argparse.ArgumentParser) -> None:
    from .samplers.learned.commands import train_arguments

    train_arguments(parser)


def _run_train_sampler(args) -> int:
    from .samplers.learned.commands import run_train

    return run_train(args)


COMMANDS: Dict[str, Command] = {
    "sample": Command("sample a registry target with one kernel; print the ArviZ summary, write NetCDF",
                      _sample_arguments, run_sample),
    "train-sampler": Command("train the learned sampler (thesis ch. 4) on a registry target with its Table C.1 "
                             "settings scaled to a CPU; write it for `sample --kernel learned --sampler PATH`",
                             _train_sampler_arguments, _run_train_sampler),
    "bench": Command("ESS/MH, ESS/grad, ESS/s and R-hat of RWM, MALA and HMC on the standard targets, "
                     "with Pyro and BlackJAX side by side", _bench_arguments, run_bench),
}


def register_command(name: str, command: Command) -> None:
    """Add a subcommand (e.g. `train-sampler`); call before `main`."""
    COMMANDS[name] = command


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="entropy-mcmc", description="MCMC transition kernels in PyTorch.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        cmd.add_arguments(p)
        p.set_defaults(_run=cmd.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    t0 = time.perf_counter()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args._run(args)
    except UsageError as err:
        parser.error(str(err))
    if getattr(args, "command", None) == "sample":
        print(f"total {time.perf_counter() - t0:.2f} s in main()", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
