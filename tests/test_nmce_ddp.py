"""Under DDP the coding rate sees the global batch: two gloo CPU processes give the loss and the gradients of
one process on the concatenated batch."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from entropy_mcmc.clustering.coding_rate import nmce_loss
from entropy_mcmc.clustering.distributed import gather_with_grad
from entropy_mcmc.clustering.gumbel import gumbel_softmax
from entropy_mcmc.clustering.networks import ClusterNetwork, MLPBackbone


def make_problem():
    torch.manual_seed(0)
    net = ClusterNetwork(MLPBackbone(3, 8, 2), 4, 3).double()
    g = torch.Generator().manual_seed(1)
    views = torch.randn(2, 16, 3, generator=g, dtype=torch.float64)
    noise = -torch.log(-torch.log(torch.rand(2, 16, 3, generator=g, dtype=torch.float64)))
    return net, views, noise


def loss_of(model, views, noise):
    v, b = views.shape[:2]
    z, logits = model(views.flatten(0, 1))
    z, logits = gather_with_grad(z.view(v, b, -1), 1), gather_with_grad(logits.view(v, b, -1), 1)
    probs = gumbel_softmax(logits, 0.5, noise=noise)
    return nmce_loss(z, probs, 0.01, lam=3.0, gamma=0.8).loss


def worker(rank, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        net, views, noise = make_problem()
        model = torch.nn.parallel.DistributedDataParallel(net)
        loss = loss_of(model, views[:, rank * 8:(rank + 1) * 8], noise)  # the Gumbel noise of the global batch
        loss.backward()
        torch.save({"loss": loss.detach(), "grads": [p.grad for p in net.parameters()]}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_two_processes_match_one_process_on_the_concatenated_batch(tmp_path):
    net, views, noise = make_problem()
    loss = loss_of(net, views, noise)
    loss.backward()
    mp.spawn(worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        res = torch.load(tmp_path / f"rank{rank}.pt")
        torch.testing.assert_close(res["loss"], loss.detach(), rtol=1e-12, atol=1e-12)
        for g, p in zip(res["grads"], net.parameters()):
            torch.testing.assert_close(g, p.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_cluster_command_under_torchrun_trains_on_both_ranks_and_rank_zero_writes(tmp_path):
    """`torchrun -m entropy_mcmc.cli cluster` must join one process group (world size 2 in metrics.json),
    finish every stage (restarts included) without a hang, and print and write its results once."""
    import json
    import subprocess
    import sys

    env = dict(os.environ, MASTER_ADDR="127.0.0.1", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env.pop("WORLD_SIZE", None)
    out = tmp_path / "spiral"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "-m", "entropy_mcmc.cli", "cluster", "--data", "double-spiral",
           "--steps", "3,2,2", "--n-init", "2", "--batch-size", "64", "--width", "16", "--no-progress",
           "--out", str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    printed = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(printed) == 1 and set(json.loads(printed[0])) >= {"acc", "nmi", "ari", "seconds"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert [r["restart"] for r in metrics["restart_scores"]] == [0, 1, metrics["restart_scores"][-1]["restart"]]
    assert (out / "log.csv").exists() and (out / "checkpoint.pt").exists()


def test_a_batch_that_does_not_split_over_the_ranks_is_refused(monkeypatch):
    from entropy_mcmc.clustering import training
    from entropy_mcmc.clustering.augment import GaussianNoise

    monkeypatch.setattr(training, "world", lambda: (0, 2))
    net = ClusterNetwork(MLPBackbone(2, 8, 2), 4, 2)
    trainer = training.NMCETrainer(net, GaussianNoise(0.1), training.NMCETrainConfig(batch_size=63), progress=False)
    with pytest.raises(ValueError, match="divisible by 2"):
        trainer.fit(torch.randn(100, 2))
