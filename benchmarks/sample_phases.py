"""Where the time of `entropy-mcmc sample` goes, phase by phase, in one process.

    .venv/bin/python benchmarks/sample_phases.py [sample options, default: the issue-2 command]

Runs what `entropy-mcmc sample` runs (same defaults) and prints the seconds spent
importing, building target and kernel, in warmup, in sampling, converting to ArviZ
(which imports ArviZ), and in the summary with the NetCDF file written alongside.
Interpreter start-up itself is not included (compare with `/usr/bin/time`).
"""
import time

T0 = time.perf_counter()
import sys  # noqa: E402

from entropy_mcmc import cli  # noqa: E402 (imports torch)
from entropy_mcmc.cli.sample import build_options  # noqa: E402
from entropy_mcmc.samplers import run_chains  # noqa: E402

T1 = time.perf_counter()


def main(argv):
    argv = argv or ["--target", "german", "--kernel", "hmc", "--chains", "256", "--warmup", "500", "--draws", "1000",
                    "--seed", "0", "--out", "results/phases/draws.nc"]
    args = cli.build_parser().parse_args(["sample", *argv, "--no-progress"])
    t2 = time.perf_counter()
    result = run_chains(args.target, args.kernel, chains=args.chains, num_warmup=args.warmup, num_draws=args.draws,
                        thin=args.thin, seed=args.seed, dtype=args.dtype, device=args.device, threads=args.threads,
                        init_scale=args.init_scale, warn=False, **build_options(args))
    t3 = time.perf_counter()
    idata = result.to_arviz()
    t4 = time.perf_counter()
    from entropy_mcmc.benchmarks.summary import summary_while_writing

    summary = summary_while_writing(idata, args.out)
    t5 = time.perf_counter()
    setup = (t3 - t2) - result.warmup_time - result.sampling_time
    print(f"imports (torch, entropy_mcmc) {T1 - T0:.2f} s | parsing {t2 - T1:.2f} s | target, kernel, init "
          f"{setup:.2f} s | warmup {result.warmup_time:.2f} s | sampling {result.sampling_time:.2f} s | to_arviz "
          f"(imports arviz) {t4 - t3:.2f} s | summary + NetCDF {t5 - t4:.2f} s | total {t5 - T0:.2f} s; "
          f"min ESS bulk {summary['ess_bulk'].min():.0f}")


if __name__ == "__main__":
    main(sys.argv[1:])
