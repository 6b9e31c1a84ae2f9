"""Loading a learned sampler runs no code from the file (`torch.load(weights_only=True)`), and what `save` writes
is plain data that such a load reads back."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from entropy_mcmc.learning import SamplerTrainConfig
from entropy_mcmc.samplers.learned import (LearnedProposal, LearnedProposalConfig, LearnedSampler, load_proposal,
                                           save_proposal)
from entropy_mcmc.targets import ill_conditioned_gaussian

ICG = ill_conditioned_gaussian(4)


class RunsCode:
    """Unpickling this calls os.system (what a malicious sampler file would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def model():
    return LearnedProposal(LearnedProposalConfig(ICG.dim, width=8))


def test_a_file_whose_unpickling_runs_code_is_refused(tmp_path):
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pt"
    m = model()
    payload = {"format": "entropy_mcmc.learned_sampler", "version": 1, "model": m.describe(),
               "state_dict": m.state_dict(), "dtype": "float32", "meta": {"note": RunsCode(marker)}}
    torch.save(payload, path)
    with pytest.raises(ValueError, match=r"evil\.pt was refused: it holds objects whose unpickling would run code"):
        LearnedSampler.load(path, ICG)
    with pytest.raises(ValueError, match="system"):  # the refused global is named
        load_proposal(path)
    assert not marker.exists()
    # the file is what it claims: an unrestricted load runs its code
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_saved_meta_is_plain_data_and_loads_back(tmp_path):
    m = model()
    path = tmp_path / "s.pt"
    meta = {"arr": np.arange(3.0), "score": np.float64(1.5), "count": np.int64(7),
            "config": SamplerTrainConfig(steps=3),
            "where": Path("/x/y"), "nested": [{"t": torch.ones(2, requires_grad=True)}, (1, "a")]}
    LearnedSampler(ICG, m).save(path, **meta)
    loaded = LearnedSampler.load(path, ICG, seed=0)
    got = loaded.meta
    assert got["target"] == ICG.name
    assert torch.equal(got["arr"], torch.arange(3.0, dtype=torch.float64))
    assert got["score"] == 1.5 and type(got["score"]) is float and got["count"] == 7 and type(got["count"]) is int
    assert got["config"]["steps"] == 3 and got["config"]["adam_betas"] == (0.9, 0.999)
    assert got["where"] == "/x/y"
    assert torch.equal(got["nested"][0]["t"], torch.ones(2)) and got["nested"][1] == (1, "a")
    for (name, a), b in zip(m.state_dict().items(), loaded.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_meta_that_is_not_plain_data_is_a_clear_error(tmp_path):
    with pytest.raises(TypeError, match=r"cannot save meta\['hook'\]: a function is not a tensor"):
        save_proposal(tmp_path / "s.pt", model(), hook=lambda: None)
    assert not (tmp_path / "s.pt").exists()


def test_files_written_before_the_change_still_load(tmp_path):
    """What save_proposal wrote before (its payload, unconverted) is plain data already."""
    m = model()
    payload = {"format": "entropy_mcmc.learned_sampler", "version": 1, "model": m.describe(),
               "state_dict": {k: v.detach().cpu() for k, v in m.state_dict().items()}, "dtype": "float32",
               "meta": {"target": ICG.name, "train_config": {"steps": 5, "adam_betas": (0.9, 0.999)},
                        "history": {"accept": [0.5, 0.6], "grad_norm": [float("inf"), 1.0]}, "train_time": 1.0}}
    torch.save(payload, tmp_path / "old.pt")
    loaded, meta = load_proposal(tmp_path / "old.pt")
    assert meta["history"]["grad_norm"][0] == float("inf")
    assert torch.equal(loaded.flow.masks, m.flow.masks)


@pytest.mark.parametrize("damage, message", [
    (lambda path: path.write_bytes(path.read_bytes()[:200]), "unreadable"),
    (lambda path: path.write_text("not a torch file"), "unreadable"),
    (lambda path: torch.save({**torch.load(path, weights_only=True), "model": {"kind": "learned"}}, path),
     "damaged learned sampler file"),
    (lambda path: torch.save({**torch.load(path, weights_only=True), "state_dict": {}}, path),
     r"damaged learned sampler file \(RuntimeError: Error\(s\) in loading state_dict"),
])
def test_a_truncated_or_damaged_file_is_one_value_error_line(tmp_path, damage, message):
    path = tmp_path / "s.pt"
    save_proposal(path, model())
    damage(path)
    with pytest.raises(ValueError, match=message) as err:
        load_proposal(path)
    assert "\n" not in str(err.value)
