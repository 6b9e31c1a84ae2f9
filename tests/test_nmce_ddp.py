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
