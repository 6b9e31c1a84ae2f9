"""MDSM under torchrun: two gloo CPU processes, DistributedDataParallel, a few updates; both ranks must end
with bitwise identical weights that moved from the shared initialization, and write one checkpoint and log."""
import csv
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
