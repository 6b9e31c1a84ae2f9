"""Training ends when it has learned: the held-out split, a validation criterion measured with common random
numbers, the stop on a plateau (with a broken criterion that never plateaus, which runs to the last update), the
time budget, the ML criterion, resume, and the CLI's report of why it stopped."""
import math

import pytest
import torch

from entropy_mcmc.ebm_training import ContrastiveTrainer, MLTrainConfig
from entropy_mcmc.ebm_training.networks import GaussianEnergy, QuadraticEnergy
from entropy_mcmc.ebm_training.trainer import EBMTrainConfig, EBMTrainer

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    return 1.5 * torch.randn(1000, 2, generator=g, dtype=torch.float64) + 2.0


def trainer(data, **kw):
    cfg = dict(loss="esm", steps=20000, batch_size=128, lr=0.05, standardize=False, dtype="float64",
               log_every=20, patience=3, min_delta=0.01)
    cfg.update(kw)
    return EBMTrainer(GaussianEnergy(2), data, EBMTrainConfig(**cfg), seed=0)


def test_the_held_out_points_are_a_disjoint_tenth(data):
    t = trainer(data)
    assert t.val_data.shape[0] == 100 and t.data.shape[0] == 900
    pooled = torch.cat([t.val_data, t.data])
    assert torch.equal(pooled.sort(0).values, data.sort(0).values)  # a split, nothing lost or repeated
    assert torch.equal(trainer(data).val_data, t.val_data)  # the same split for the same seed (resume)
    assert trainer(data, holdout=0.0).val_data is None


def test_the_criterion_changes_only_with_the_model(data):
    t = trainer(data)
    assert t.validation_criterion() == t.validation_criterion()
    t.update()
    assert t.validation_criterion() != trainer(data).validation_criterion()


def test_a_plateau_stops_training_after_it_has_learned(data):
    t = trainer(data).train(progress=False)
    assert t.stop_reason.startswith("plateau") and t.step < 20000
    # exact score matching of an isotropic Gaussian: the training points' mean and mean variance
    assert torch.allclose(t.model.mean.detach(), t.data.mean(0), atol=0.1), t.model.mean
    assert abs(float(t.model.var.detach()) / float(t.data.var(0, unbiased=False).mean()) - 1) < 0.1, t.model.var


def test_a_criterion_that_always_improves_runs_to_the_last_update(data, monkeypatch):
    values = iter(range(10 ** 6, 0, -1))  # deliberately broken: strictly decreasing, never a plateau
    monkeypatch.setattr(EBMTrainer, "validation_criterion", lambda self: float(next(values)))
    t = trainer(data, steps=400).train(progress=False)
    assert t.stop_reason is None and t.step == 400


def test_the_time_budget_ends_training(data):
    t = trainer(data, patience=0, time_budget=0.2).train(progress=False)
    assert t.stop_reason.startswith("time budget") and 0.2 <= t.seconds < 5 and t.step < 20000


def test_without_held_out_points_there_is_no_early_stop(data):
    t = trainer(data, holdout=0.0, steps=200).train(progress=False)
    assert t.stop_reason is None and t.step == 200 and all(math.isnan(v) for v in t.history["val"])


def test_maximum_likelihood_stops_on_the_mmd_to_held_out_points(data):
    cfg = MLTrainConfig(kernel="mala", steps=5000, batch_size=64, buffer_size=256, k_steps=3, lr=0.02,
                        standardize=False, dtype="float64", reinit_fraction=0.0, energy_penalty=0.0, log_every=25,
                        patience=4, min_delta=0.05)
    t = ContrastiveTrainer(QuadraticEnergy(2), data, cfg, seed=0).train(progress=False)
    vals = t.history["val"]
    assert t.stop_reason.startswith("plateau") and t.step < 5000
    assert vals[-1] < 0.2 * vals[0]  # the buffer has moved from N(0, I) noise to the data


def test_resume_keeps_the_plateau_count(data, tmp_path):
    path = str(tmp_path / "m.pt")
    t = trainer(data, steps=100)
    t.train(progress=False, checkpoint_path=path)
    r = EBMTrainer.resume(path, data)
    assert (r.best_val, r.stale_checks) == (t.best_val, t.stale_checks) and torch.equal(r.val_data, t.val_data)


def test_cli_says_why_training_stopped(tmp_path, capsys):
    from entropy_mcmc.cli import main

    out = tmp_path / "m.pt"
    assert main(["train-ebm", "--data", "two-moons", "--num", "512", "--steps", "400", "--log-every", "20",
                 "--patience", "2", "--min-delta", "0.5", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "stopped at update" in text and "plateau" in text
