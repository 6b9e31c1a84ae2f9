"""MDSM and ML training under torchrun: two gloo CPU processes, DistributedDataParallel, a few updates; both ranks
must end with bitwise identical weights that moved from the shared initialization, and write one checkpoint and log."""
import csv

import pytest
import torch

from test_distributed import torchrun

RANK_WORKER = """
import sys, warnings
warnings.simplefilter("ignore")
import torch, torch.distributed as dist
from entropy_mcmc.ebm_training import EBMTrainConfig, EBMTrainer, MLPEnergy
from entropy_mcmc.ebm_training.data import load_data
torch.set_num_threads(1)
x, _ = load_data("two-moons", num=256)
torch.manual_seed(0)
trainer = EBMTrainer(MLPEnergy(2, 16, 2), x, EBMTrainConfig(steps=6, batch_size=16, lr=1e-2, log_every=3), seed=0)
init = {k: v.clone() for k, v in trainer.model.state_dict().items()}
trainer.train(progress=False, log_path=sys.argv[1] + "/log.csv", checkpoint_path=sys.argv[1] + "/ckpt.pt")
torch.save({"init": init, "final": trainer.model.state_dict(), "world": trainer.world_size},
           f"{sys.argv[1]}/rank{dist.get_rank()}.pt")
dist.destroy_process_group()
"""


def test_two_ranks_end_with_identical_weights(tmp_path):
    (tmp_path / "worker.py").write_text(RANK_WORKER)
    torchrun([str(tmp_path / "worker.py"), str(tmp_path)], cwd=tmp_path)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    for k in r0["final"]:
        assert torch.equal(r0["final"][k], r1["final"][k]), k
    moved = [k for k in r0["final"] if not torch.equal(r0["final"][k], r0["init"][k])]
    # every weight but the energy's additive constant (no score-matching loss reaches it) was updated
    assert set(r0["final"]) - set(moved) == {"head.square.bias"}
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert ckpt["step"] == 6 and ckpt["world_size"] == 2
    assert all(torch.equal(ckpt["model"][k], r0["final"][k]) for k in r0["final"])
    assert [int(r["step"]) for r in csv.DictReader(open(tmp_path / "log.csv"))] == [3, 6]


ML_WORKER = """
import sys, warnings
warnings.simplefilter("ignore")
import torch, torch.distributed as dist
from entropy_mcmc.ebm_training import ContrastiveTrainer, MLTrainConfig, MLPEnergy
from entropy_mcmc.ebm_training.data import load_data
torch.set_num_threads(1)
x, _ = load_data("two-moons", num=256)
torch.manual_seed(0)
trainer = ContrastiveTrainer(MLPEnergy(2, 16, 2), x, MLTrainConfig(
    kernel=sys.argv[2], steps=4, batch_size=16, buffer_size=64, k_steps=2, lr=1e-2, log_every=2, sampler_batch=16,
    sampler_updates=2, sampler_width=8, sampler_flow_steps=1, sampler_gate=1.0), seed=0)
init = {k: v.clone() for k, v in trainer.model.state_dict().items()}
trainer.train(progress=False, log_path=sys.argv[1] + "/log.csv", checkpoint_path=sys.argv[1] + "/ckpt.pt")
sampler = trainer.kernel.model.state_dict() if sys.argv[2] == "learned" else {}
torch.save({"init": init, "final": trainer.model.state_dict(), "world": trainer.world_size, "sampler": sampler,
            "buffer": trainer.buffer.positions, "step_size": trainer.kernel.base.step_size},
           f"{sys.argv[1]}/rank{dist.get_rank()}.pt")
dist.destroy_process_group()
"""


@pytest.mark.parametrize("kernel", ["mala", "learned"])
def test_ml_two_ranks_share_weights_and_sampler_and_save_both_buffers(tmp_path, kernel):
    """ML training under torchrun: identical energy weights (DDP), identical step size and learned-sampler weights
    (their statistics and gradients are averaged over the ranks), a buffer of its own per rank, both in the
    checkpoint, which a single process resumes."""
    (tmp_path / "worker.py").write_text(ML_WORKER)
    torchrun([str(tmp_path / "worker.py"), str(tmp_path), kernel], cwd=tmp_path)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    for k in r0["final"]:
        assert torch.equal(r0["final"][k], r1["final"][k]), k
    assert any(not torch.equal(r0["final"][k], r0["init"][k]) for k in r0["final"])
    assert torch.equal(r0["step_size"], r1["step_size"])
    for k in r0["sampler"]:
        assert torch.equal(r0["sampler"][k], r1["sampler"][k]), k
    assert r0["buffer"].shape == (32, 2) and not torch.equal(r0["buffer"], r1["buffer"])
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert [torch.equal(r["buffer"]["positions"], b["buffer"]) for r, b in zip(ckpt["ml"]["ranks"], (r0, r1))] == [
        True, True]
    from entropy_mcmc.ebm_training import ContrastiveTrainer
    from entropy_mcmc.ebm_training.data import load_data

    alone = ContrastiveTrainer.resume(str(tmp_path / "ckpt.pt"), load_data("two-moons", num=256)[0], steps=5)
    assert torch.equal(alone.buffer.positions, torch.cat([r0["buffer"], r1["buffer"]]))
    alone.train(progress=False)
    assert alone.step == 5
