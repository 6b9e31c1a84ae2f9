"""`entropy-mcmc train-sampler` and `entropy-mcmc sample --kernel learned --sampler PATH`, end to end."""
import numpy as np
import pytest
import torch

from entropy_mcmc import cli
from entropy_mcmc.samplers import MALAKernel, MixtureKernel, WarmupHandoff, build_kernel, find_kernel, run_chains
from entropy_mcmc.samplers.learned import LearnedSampler, load_proposal
from entropy_mcmc.targets import get_target

arviz = pytest.importorskip("arviz")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("learned") / "german.pt"
    code = cli.main(["train-sampler", "--target", "german", "--out", str(path), "--seed", "0", "--steps", "40",
                     "--batch-size", "32", "--width", "16", "--no-progress"])
    assert code == 0
    return path


def test_train_sampler_writes_a_loadable_sampler_with_table_c1_settings(trained, capsys):
    model, meta = load_proposal(trained)
    assert model.config.width == 16 and model.config.num_steps == 1 and model.config.eps == 0.1
    cfg = meta["train_config"]
    assert (cfg["steps"], cfg["batch_size"], cfg["target_accept"], cfg["lr"]) == (40, 32, 0.7, 1e-3)
    assert meta["target"] == "german" and meta["sample_source"] == "bootstrap"
    assert len(meta["history"]["entropy"]) == 40
    # trained: the output layers left zero (MALA) behind
    assert any(p.abs().max() > 0 for n, p in model.named_parameters() if "w_out" in n)


def test_sample_with_the_learned_kernel(trained, tmp_path, capsys):
    out = tmp_path / "draws.nc"
    code = cli.main(["sample", "--target", "german", "--kernel", "learned", "--sampler", str(trained),
                     "--chains", "8", "--warmup", "0", "--draws", "50", "--seed", "0", "--out", str(out),
                     "--no-progress", "--no-summary"])
    assert code == 0
    idata = arviz.from_netcdf(out)
    assert idata.posterior["x"].shape == (8, 50, 25)
    assert idata.posterior.attrs["kernel_name"] == "learned"
    # the file holds what the library gives with the saved sampler: the CLI loaded and ran that sampler
    lib = run_chains("german", "learned", chains=8, num_warmup=0, num_draws=50, seed=0, sampler=str(trained),
                     warn=False)
    assert np.array_equal(idata.posterior["x"].values, lib.draws.numpy())
    # a kernel extra, kept where the learned kernel moved (NaN where the mixture's MALA share did)
    assert np.array_equal(idata.sample_stats["log_det"].values, lib.stats["log_det"].numpy(), equal_nan=True)
    mala_moved = lib.stats["mixture_component"] == 0
    assert torch.isnan(lib.stats["log_det"][mala_moved]).all() and 0 < int(mala_moved.sum()) < 8 * 50 // 5
    assert lib.stats["log_det"][~mala_moved].abs().max() > 0  # the trained flow moved away from MALA
    # warmup is adapted MALA (dense mass), handed over to a mixture of the learned kernel and a 0.05 share of
    # that MALA; no step-size adaptation of the learned kernel: eps stays what was trained
    kernel = build_kernel("learned", get_target("german"), num_warmup=20, sampler=str(trained))
    assert isinstance(kernel, WarmupHandoff) and isinstance(kernel.kernel, MixtureKernel) and kernel.kernel.p == 0.05
    mala, learned = kernel.kernel.parts
    assert mala is kernel.warmup_kernel and isinstance(mala.base, MALAKernel) and mala.adapt_mass_matrix == "dense"
    assert isinstance(learned, LearnedSampler) and float(learned.step_size) == pytest.approx(0.1)
    assert find_kernel(kernel, LearnedSampler) is learned
    pure = build_kernel("learned", get_target("german"), num_warmup=0, sampler=str(trained), mixture_share=0)
    assert isinstance(pure, LearnedSampler)


def test_learned_kernel_argument_errors(trained, capsys):
    with pytest.raises(SystemExit):
        cli.main(["sample", "--target", "german", "--kernel", "learned", "--draws", "5", "--no-progress"])
    assert "needs --sampler" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["sample", "--target", "heart", "--kernel", "learned", "--sampler", str(trained), "--draws", "5",
                  "--no-progress"])
    assert "german" in capsys.readouterr().err
