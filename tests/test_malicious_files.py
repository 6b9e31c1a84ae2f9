"""Every file the project reads is loaded without running code: a crafted pickle whose unpickling would call
os.system is handed to each loader (learned sampler, energy-model checkpoint and model, ML samples, RBM
checkpoint, NMCE resume, and the CLI commands that read them) and each refuses it in one line, with no trace of
the command having run."""
import os

import pytest
import torch

from entropy_mcmc.cli import main


class RunsCode:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def _learned(path):
    from entropy_mcmc.samplers.learned.kernel import load_proposal
    load_proposal(path)


def _ebm_checkpoint(path):
    from entropy_mcmc.ebm_training.trainer import load_checkpoint
    load_checkpoint(str(path))


def _ebm_model(path):
    from entropy_mcmc.ebm_training.trainer import load_model
    load_model(str(path))


def _ml_samples(path):
    from entropy_mcmc.ebm_training.ml_sampling import sample_ml
    sample_ml(str(path), 4, steps=1)


def _rbm(path):
    from entropy_mcmc.ebm_training.rbm.checkpoint import load_model
    load_model(path)


def _nmce_resume(path):
    from entropy_mcmc.clustering.augment import GaussianNoise
    from entropy_mcmc.clustering.networks import ClusterNetwork, MLPBackbone
    from entropy_mcmc.clustering.training import NMCETrainer, NMCETrainConfig, three_stages

    os.replace(path, path.parent / "checkpoint.pt")
    config = NMCETrainConfig(stages=three_stages((1, 1, 1), lam=50.0, gamma_warmup=1), batch_size=16, log_every=1)
    trainer = NMCETrainer(ClusterNetwork(MLPBackbone(2, 8, 2), 2, 2), GaussianNoise(0.1), config,
                          out_dir=path.parent, progress=False)
    trainer.fit(torch.randn(32, 2))


LOADERS = [_learned, _ebm_checkpoint, _ebm_model, _ml_samples, _rbm, _nmce_resume]


def crafted(tmp_path):
    marker = tmp_path / "RAN"
    path = tmp_path / "evil.pt"
    torch.save({"format": "x", "config": RunsCode(marker), "model": RunsCode(marker)}, path)
    return path, marker


@pytest.mark.parametrize("load", LOADERS, ids=lambda f: f.__name__.strip("_"))
def test_every_loader_refuses_a_file_that_would_run_code(tmp_path, load):
    path, marker = crafted(tmp_path)
    with pytest.raises(ValueError) as err:
        load(path)
    assert "\n" not in str(err.value) and str(path.parent) in str(err.value)
    assert not marker.exists()


CLI = [["sample", "--kernel", "learned", "--target", "icg50", "--chains", "2", "--draws", "2", "--sampler", "{}"],
       ["sample-ebm", "--model", "{}", "--num", "4"],
       ["sample-rbm", "--model", "{}", "--chains", "2", "--draws", "2"]]


@pytest.mark.parametrize("argv", CLI, ids=lambda a: a[0])
def test_every_command_refuses_it_in_one_line(tmp_path, capsys, argv):
    path, marker = crafted(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main([a.format(path) for a in argv] + ["--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert not marker.exists() and not (tmp_path / "out").exists()
