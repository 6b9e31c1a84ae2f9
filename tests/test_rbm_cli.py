"""`entropy-mcmc train-rbm` and `sample-rbm`: end to end at small scale, and one-line errors."""
import numpy as np
import pytest
import torch

from entropy_mcmc.cli import main
from entropy_mcmc.ebm_training import CAPRBM, RBM
from entropy_mcmc.ebm_training.rbm.checkpoint import load_model
from entropy_mcmc.ebm_training.rbm.training import Trainer


def run_cli(argv, capsys):
    code = main(argv)
    return code, capsys.readouterr().out


def test_train_and_sample_caprbm_on_bars(tmp_path, capsys):
    ck, log = tmp_path / "bars.pt", tmp_path / "log.csv"
    code, out = run_cli(["train-rbm", "--model", "caprbm", "--data", "bars", "--num-data", "300", "--hidden", "16",
                         "--epochs", "2", "--batch-size", "50", "--out", str(ck), "--log", str(log),
                         "--no-progress"], capsys)
    assert code == 0 and "epoch 2:" in out and ck.is_file() and len(log.read_text().splitlines()) == 3
    m = load_model(ck, kind="caprbm")
    assert isinstance(m, CAPRBM) and m.coupling and m.num_visible == 576 and m.num_hidden == 16
    png = tmp_path / "bars.png"
    code, out = run_cli(["sample-rbm", "--model", str(ck), "--steps", "12", "--chains", "3", "--out", str(png)],
                        capsys)
    assert code == 0 and "after 12 steps: overlap" in out and png.stat().st_size > 1000
    # --no-coupling, then continue with PCD from the checkpoint
    ck2 = tmp_path / "noj.pt"
    run_cli(["train-rbm", "--data", "bars", "--num-data", "200", "--hidden", "8", "--epochs", "1", "--no-coupling",
             "--out", str(ck2), "--no-progress"], capsys)
    assert not load_model(ck2).coupling
    code, out = run_cli(["train-rbm", "--resume", str(ck2), "--pcd", "--epochs", "2", "--out", str(ck2),
                         "--no-progress"], capsys)
    assert code == 0 and "PCD-1, epochs 2..2" in out
    assert Trainer.load(ck2).epoch == 2


def test_train_and_sample_bernoulli_on_digits(tmp_path, capsys):
    pytest.importorskip("sklearn")
    ck = tmp_path / "digits.pt"
    code, _ = run_cli(["train-rbm", "--model", "bernoulli", "--data", "digits", "--num-data", "200", "--hidden", "20",
                       "--epochs", "1", "--out", str(ck), "--no-progress"], capsys)
    assert code == 0 and isinstance(load_model(ck), RBM)
    code, out = run_cli(["sample-rbm", "--model", str(ck), "--start", "noise", "--steps", "5", "--out",
                         str(tmp_path / "d.png")], capsys)
    assert code == 0 and (tmp_path / "d.png").is_file()


def test_train_on_a_npy_file(tmp_path, capsys):
    x = np.exp(1j * np.random.default_rng(0).uniform(-3, 3, (50, 9))) * (np.random.default_rng(1).random((50, 9)) < .5)
    np.save(tmp_path / "z.npy", x.astype(np.complex64))
    code, _ = run_cli(["train-rbm", "--data", str(tmp_path / "z.npy"), "--hidden", "4", "--epochs", "1", "--out",
                       str(tmp_path / "z.pt"), "--no-progress"], capsys)
    assert code == 0 and load_model(tmp_path / "z.pt").num_visible == 9


@pytest.mark.parametrize("argv, message", [
    (["train-rbm", "--model", "caprbm", "--data", "digits", "--out", "{tmp}/x.pt"], "needs complex data"),
    (["train-rbm", "--model", "bernoulli", "--data", "bars", "--out", "{tmp}/x.pt"], "is complex"),
    (["train-rbm", "--data", "nope", "--out", "{tmp}/x.pt"], "unknown data 'nope'"),
    (["train-rbm", "--data", "bars", "--out", "{tmp}/other.pt/x.pt"], "cannot be made"),
    (["sample-rbm", "--model", "{tmp}/other.pt", "--out", "{tmp}/x.png"], "not an RBM checkpoint"),
    (["sample-rbm", "--model", "{tmp}/absent.pt", "--out", "{tmp}/x.png"], "no such checkpoint"),
])
def test_errors_are_one_line(tmp_path, capsys, argv, message):
    torch.save({"proposal": torch.ones(3)}, tmp_path / "other.pt")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    with pytest.raises(SystemExit) as err:
        main(argv + (["--no-progress"] if argv[0] == "train-rbm" else []))
    assert err.value.code == 2
    stderr = capsys.readouterr().err
    assert message in stderr and "Traceback" not in stderr


def test_non_unit_complex_data_is_refused(tmp_path, capsys):
    np.save(tmp_path / "z.npy", (0.5 * np.ones((10, 4))).astype(np.complex64))
    with pytest.raises(SystemExit):
        main(["train-rbm", "--data", str(tmp_path / "z.npy"), "--out", str(tmp_path / "z.pt"), "--no-progress"])
    assert "modulus 0 or 1" in capsys.readouterr().err
