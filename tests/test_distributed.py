"""Chains across processes: two gloo CPU processes under torchrun split the chains, rank 0 gathers them.

The gathered draws must be bitwise what each rank's share gives when run alone in this process
(`run_chains(..., rank=r, world_size=2)`), which in turn is `sample` on that rank's block of the
one-process initial positions with the kernel seed `spawn_seeds(kernel_seed, 2)[r]`; the pooled
draws must match the target's moments within their Monte Carlo standard error.
"""
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from entropy_mcmc.samplers import build_kernel, run_chains, sample
from entropy_mcmc.samplers.base import spawn_seeds
from entropy_mcmc.targets import get_target

from stats_helpers import moment_z_scores

RUN = dict(chains=8, num_warmup=300, num_draws=600, seed=3)
TARGET, KERNEL = "icg10", "mala"

WORKER = textwrap.dedent("""
    import sys, warnings
    import torch
    import torch.distributed as dist
    from entropy_mcmc.samplers import run_chains

    out, target, kernel, chains, warmup, draws, seed = sys.argv[1:]
    warnings.simplefilter("ignore")
    result = run_chains(target, kernel, chains=int(chains), num_warmup=int(warmup), num_draws=int(draws),
                        seed=int(seed))
    rank = dist.get_rank()
    torch.save({"samples": result.samples, "stats": result.stats, "world_size": result.attrs.get("world_size"),
                "num_chains": result.num_chains, "divergences": result.num_divergences},
               f"{out}/rank{rank}.pt")
    dist.destroy_process_group()
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args, cwd, timeout=120):
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def gathered(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    (out / "worker.py").write_text(WORKER)
    torchrun([str(out / "worker.py"), str(out), TARGET, KERNEL, *(str(RUN[k]) for k in
                                                                   ("chains", "num_warmup", "num_draws", "seed"))],
             cwd=out)
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]


def test_gathered_draws_are_bitwise_each_ranks_share_run_alone(gathered):
    rank0, rank1 = gathered
    assert rank0["world_size"] == 2 and rank0["num_chains"] == RUN["chains"]
    # the other rank returns its own share only
    assert rank1["num_chains"] == RUN["chains"] // 2

    target = get_target(TARGET)
    init_seed, kernel_seed = spawn_seeds(RUN["seed"], 2)
    init = target.initial_positions(RUN["chains"], init_seed)
    shares = []
    for r in (0, 1):
        alone = run_chains(TARGET, KERNEL, rank=r, world_size=2, warn=False, **RUN)
        assert alone.num_chains == RUN["chains"] // 2
        # the documented scheme: this rank's block of the one-process init, this rank's kernel seed
        kernel = build_kernel(KERNEL, target, num_warmup=RUN["num_warmup"])
        block = slice(4 * r, 4 * r + 4)
        ref = sample(kernel, init[block], num_draws=RUN["num_draws"], num_warmup=RUN["num_warmup"],
                     seed=spawn_seeds(kernel_seed, 2)[r], warn=False)
        assert torch.equal(alone.draws, ref.draws)
        shares.append(alone)
    assert torch.equal(rank1["samples"]["x"], shares[1].draws)
    assert set(rank0["samples"]) == set(shares[0].samples)
    for name in rank0["samples"]:
        assert torch.equal(rank0["samples"][name], torch.cat([s.samples[name] for s in shares]))
    for name in rank0["stats"]:
        assert torch.equal(rank0["stats"][name], torch.cat([s.stats[name] for s in shares])), name
    assert rank0["divergences"] == sum(s.num_divergences for s in shares)
    # each rank adapted its own step size, from its own chains
    step = rank0["stats"]["step_size"]
    assert step[:4].unique().numel() == 1 and step[4:].unique().numel() == 1 and step[0, 0] != step[4, 0]


def test_pooled_moments_match_the_target(gathered):
    target = get_target(TARGET)
    draws = gathered[0]["samples"]["x"]
    assert draws.shape == (RUN["chains"], RUN["num_draws"], 10)
    z_mean, z_var = moment_z_scores(draws, target.mean.numpy(), target.std.numpy() ** 2)
    assert np.all(z_mean < 4.5) and np.all(z_var < 4.5), (z_mean, z_var)


def test_cli_sample_under_torchrun_writes_one_file_with_every_chain(tmp_path):
    import arviz as az

    out = tmp_path / "draws.nc"
    proc = torchrun(["-m", "entropy_mcmc.cli", "sample", "--target", TARGET, "--kernel", KERNEL, "--chains", "6",
                     "--warmup", "100", "--draws", "200", "--seed", "1", "--no-progress", "--no-summary",
                     "--out", str(out)], cwd=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["draws.nc"]
    assert proc.stdout.count("wrote ") == 1 and "across 2 processes" in proc.stdout
    idata = az.from_netcdf(out)
    assert idata.posterior.sizes["chain"] == 6 and idata.posterior.sizes["draw"] == 200
    # the same chains as the two shares run one after the other in this process
    shares = [run_chains(TARGET, KERNEL, chains=6, num_warmup=100, num_draws=200, seed=1, rank=r, world_size=2,
                         warn=False) for r in (0, 1)]
    expected = torch.cat([s.draws for s in shares]).numpy()
    var = next(iter(idata.posterior.data_vars))
    np.testing.assert_array_equal(idata.posterior[var].values, expected)
