"""The score-matching trainer (resume bitwise, log, dtypes, errors), the data loaders and the train-ebm /
sample-ebm commands, at toy scale."""
import csv
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from entropy_mcmc.cli import main
from entropy_mcmc.ebm_training.data import load_data, read_idx
from entropy_mcmc.ebm_training.networks import GaussianEnergy, MLPEnergy
from entropy_mcmc.ebm_training import train_ebm
from entropy_mcmc.ebm_training.trainer import EBMTrainConfig, EBMTrainer, load_model

pytestmark = pytest.mark.usefixtures("one_thread")
SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


@pytest.fixture(scope="module")
def moons():
    return load_data("two-moons", num=512, seed=0)[0]


def small_trainer(data, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(steps=20, batch_size=32, lr=1e-3, log_every=5, sigma_min=0.05, sigma_max=2.0)
    cfg.update(kw)
    return EBMTrainer(MLPEnergy(2, 16, 2), data, EBMTrainConfig(**cfg), seed=seed)


@pytest.mark.parametrize("loss", ["mdsm", "ssm"])
def test_resume_continues_bitwise(moons, tmp_path, loss):
    whole = small_trainer(moons, loss=loss).train(progress=False)
    half = small_trainer(moons, loss=loss)
    half.train(steps=10, progress=False, checkpoint_path=str(tmp_path / "half.pt"))
    resumed = EBMTrainer.resume(str(tmp_path / "half.pt"), moons)
    assert resumed.step == 10
    resumed.train(progress=False)
    for (k, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert resumed.history["loss"] == whole.history["loss"]


def test_csv_log_and_checkpoint(moons, tmp_path):
    log, ckpt = tmp_path / "log.csv", tmp_path / "m.pt"
    trainer = small_trainer(moons)
    trainer.train(progress=False, log_path=str(log), checkpoint_path=str(ckpt))
    rows = list(csv.DictReader(open(log)))
    assert [int(r["step"]) for r in rows] == [5, 10, 15, 20]
    assert set(rows[0]) == {"step", "loss", "energy_data", "energy_noisy", "val", "seconds"}
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    model, state = load_model(str(ckpt))
    assert torch.equal(model.head.first.weight, trainer.model.head.first.weight)
    # standardized points: the normalization travels with the model
    assert torch.allclose(state["normalization"]["shift"], moons.double().mean(0))


def test_float64_training_and_wrong_architecture(moons, tmp_path):
    trainer = small_trainer(moons, dtype="float64", steps=3)
    trainer.train(progress=False, checkpoint_path=str(tmp_path / "m.pt"))
    assert all(p.dtype == torch.float64 for p in trainer.model.parameters())
    with pytest.raises(ValueError, match="checkpoint holds a mlp"):
        EBMTrainer.resume(str(tmp_path / "m.pt"), moons, model=MLPEnergy(2, 32, 2))
    with pytest.raises(ValueError, match="takes"):
        EBMTrainer(MLPEnergy(3, 8, 1), moons)
    with pytest.raises(ValueError, match="unknown loss"):
        EBMTrainConfig(loss="nce")


def test_trainer_fits_gaussian_with_mdsm():
    """Adam on fresh batches lands near the closed-form MDSM minimiser (a loose check of the loop; the exact
    one is in test_ebm_losses)."""
    from entropy_mcmc.ebm_training.losses import NoiseLevels, gaussian_minimiser

    x = 0.5 * torch.randn(4000, 2, generator=torch.Generator().manual_seed(0)) + torch.tensor([1.0, -1.0])
    torch.manual_seed(0)
    trainer = train_ebm(GaussianEnergy(2), x, "mdsm", steps=600, batch_size=256, lr=0.05, standardize=False,
                        progress=False, sigma_min=0.1, sigma_max=1.0, spacing="linear")
    expected = gaussian_minimiser("mdsm", 0.25, 0.1, NoiseLevels(0.1, 1.0, "linear")(256, x).tolist())
    assert abs(trainer.model.var.item() - expected) < 0.15 * expected
    assert torch.allclose(trainer.model.mean.detach(), torch.tensor([1.0, -1.0]), atol=0.1)


def test_data_loaders(tmp_path):
    for name in ("eight-gaussians", "two-moons", "swiss-roll", "checkerboard", "rings"):
        x, info = load_data(name, num=100, seed=1)
        assert x.shape == (100, 2) and info["kind"] == "points" and torch.isfinite(x).all()
    d, info = load_data("digits", num=50)
    assert d.shape == (50, 1, 8, 8) and 0 <= d.min() and d.max() <= 1 and len(info["labels"]) == 50
    np.save(tmp_path / "bad.npy", np.zeros(5))
    with pytest.raises(ValueError, match=r"expected an array \[n, d\]"):
        load_data(str(tmp_path / "bad.npy"))
    np.save(tmp_path / "rect.npy", np.zeros((4, 1, 8, 6)))
    with pytest.raises(ValueError, match="square"):
        load_data(str(tmp_path / "rect.npy"))
    with pytest.raises(ValueError, match="unknown data"):
        load_data("cifar")
    # an IDX file written by hand round-trips
    imgs = (np.arange(2 * 3 * 3) % 256).astype(np.uint8).reshape(2, 3, 3)
    with gzip.open(tmp_path / "t.gz", "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">III", 2, 3, 3) + imgs.tobytes())
    assert np.array_equal(read_idx(tmp_path / "t.gz"), imgs)


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="no shared MNIST folder")
def test_mnist_from_idx():
    x, info = load_data(str(SHARED_MNIST), num=20)
    assert x.shape == (20, 1, 28, 28) and info["labels"].shape == (20,) and info["name"] == "mnist"


def test_cli_train_then_sample(tmp_path, capsys):
    out = tmp_path / "moons.pt"
    assert main(["train-ebm", "--data", "two-moons", "--num", "400", "--steps", "30", "--seed", "0", "--out",
                 str(out), "--no-progress", "--log-every", "10"]) == 0
    assert (tmp_path / "moons.csv").exists()
    assert main(["sample-ebm", "--model", str(out), "--num", "50", "--seed", "0", "--steps", "27", "--out",
                 str(tmp_path / "s.npz"), "--no-progress"]) == 0
    z = np.load(tmp_path / "s.npz")
    assert z["samples"].shape == (50, 2) and np.isfinite(z["samples"]).all() and z["temperature"][-1] == 0.0
    assert main(["sample-ebm", "--model", str(out), "--num", "50", "--steps", "27", "--out",
                 str(tmp_path / "s.png"), "--no-progress"]) == 0
    assert (tmp_path / "s.png").stat().st_size > 1000
    # resume to more steps
    assert main(["train-ebm", "--data", "two-moons", "--num", "400", "--steps", "40", "--out", str(out),
                 "--resume", "--no-progress"]) == 0
    assert torch.load(out, weights_only=True)["step"] == 40


def test_cli_images_and_inpainting(tmp_path):
    out = tmp_path / "digits.pt"
    assert main(["train-ebm", "--data", "digits", "--num", "64", "--steps", "2", "--batch-size", "8", "--width", "4",
                 "--out", str(out), "--no-progress"]) == 0
    assert main(["sample-ebm", "--model", str(out), "--num", "4", "--steps", "27", "--inpaint", "bottom-half",
                 "--out", str(tmp_path / "inp.npz"), "--no-progress"]) == 0
    z = np.load(tmp_path / "inp.npz")
    truth = load_data("digits", num=4)[0].numpy()
    assert np.allclose(z["samples"][:, :, :4], truth[:, :, :4])  # the known top half is the data


def test_cli_errors(tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.zeros((3, 2, 2, 2, 2)))
    with pytest.raises(SystemExit):
        main(["train-ebm", "--data", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "m.pt")])
    assert "expected an array" in capsys.readouterr().err
    torch.save({"format": "something else"}, tmp_path / "x.pt")
    with pytest.raises(SystemExit):
        main(["sample-ebm", "--model", str(tmp_path / "x.pt"), "--out", str(tmp_path / "s.npz")])
    assert "not an entropy-mcmc energy-model checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sample-ebm", "--model", str(tmp_path / "x.pt"), "--out", str(tmp_path / "s.txt")])
    assert ".npz or .png" in capsys.readouterr().err
