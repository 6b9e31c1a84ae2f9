"""NMCE training: schedules, the three stages (frozen backbone in stage 2), bitwise resume, CSV log."""
import math

import pytest
import torch

from entropy_mcmc.clustering.augment import GaussianNoise
from entropy_mcmc.clustering.data import double_spiral
from entropy_mcmc.clustering.networks import ClusterNetwork, MLPBackbone, SmallResNet
from entropy_mcmc.clustering.training import NMCETrainer, Stage, NMCETrainConfig, embed, three_stages


def small_run(out_dir=None, steps=(6, 4, 4), seed=0):
    torch.manual_seed(seed)
    net = ClusterNetwork(MLPBackbone(2, 16, 2), 4, 2)
    config = NMCETrainConfig(stages=three_stages(steps, gamma_warmup=2), batch_size=32, seed=seed, log_every=2,
                         checkpoint_every=3)
    return net, NMCETrainer(net, GaussianNoise(0.1), config, out_dir=out_dir, progress=False)


def test_schedules():
    s = Stage("nmce", 100, lr_warmup=10, gamma=1.0, gamma_min=0.2, gamma_warmup=40)
    assert s.gamma_at(0) == pytest.approx(0.2) and s.gamma_at(20) == pytest.approx(0.6) and s.gamma_at(90) == 1.0
    assert s.lr_factor(0) == pytest.approx(0.1) and s.lr_factor(9) == pytest.approx(1.0)
    assert s.lr_factor(10) == pytest.approx(1.0) and s.lr_factor(55) == pytest.approx(0.5)
    assert s.lr_factor(99) == pytest.approx(0.5 * (1 + math.cos(math.pi * 89 / 90)))
    with pytest.raises(ValueError, match="objective"):
        Stage("mcr", 10)
    with pytest.raises(ValueError, match="steps"):
        Stage("tcr", -1)


def test_three_stages_freeze_the_backbone_in_stage_two(tmp_path):
    x = double_spiral(128, seed=1).x / 10
    net, trainer = small_run(tmp_path)
    snapshots = []
    original_setup = trainer._setup_stage

    def spy(stage, fresh):
        snapshots.append([p.detach().clone() for p in net.backbone.parameters()])
        original_setup(stage, fresh)

    trainer._setup_stage = spy
    history = trainer.fit(x)
    after = [p.detach().clone() for p in net.backbone.parameters()]
    # stage 2 leaves the backbone as stage 1 left it; stage 1 and stage 3 change it
    assert all(torch.equal(a, b) for a, b in zip(snapshots[1], snapshots[2]))
    assert not all(torch.equal(a, b) for a, b in zip(snapshots[0], snapshots[1]))
    assert not all(torch.equal(a, b) for a, b in zip(snapshots[2], after))
    assert {row["stage"] for row in history} == {1, 2, 3}
    assert all(math.isfinite(row["loss"]) for row in history)
    lines = (tmp_path / "log.csv").read_text().splitlines()
    assert lines[0].startswith("stage,step,loss,rate,cluster_rate,similarity") and len(lines) == len(history) + 1
    z, logits = embed(net, x)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(128))
    assert logits.shape == (128, 2)


def test_resume_from_checkpoint_is_bitwise(tmp_path):
    x = double_spiral(128, seed=2).x / 10
    reference, trainer = small_run(None)
    trainer.fit(x)
    # interrupted run: dies in the middle of stage 2, after a checkpoint taken in that stage ...
    crashed, trainer = small_run(tmp_path)
    calls = {"n": 0}
    step = trainer.train_step

    def dying_step(*args):
        calls["n"] += 1
        if calls["n"] == 10:  # stage 2, step 4: the last checkpoint is stage 2, step 3
            raise KeyboardInterrupt
        return step(*args)

    trainer.train_step = dying_step
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(x)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert (ckpt["stage"], ckpt["step"]) == (1, 3)
    # ... and a fresh process resumes from disk to the same parameters, bit for bit
    resumed, trainer = small_run(tmp_path)
    trainer.fit(x)
    for a, b in zip(resumed.state_dict().values(), reference.state_dict().values()):
        assert torch.equal(a, b)
    # a run with other settings in the same folder is refused, not silently continued from the old checkpoint
    torch.manual_seed(0)
    other = NMCETrainConfig(stages=three_stages((6, 4, 4), lam=50.0, gamma_warmup=2), batch_size=32, log_every=2)
    with pytest.raises(ValueError, match="other settings"):
        NMCETrainer(ClusterNetwork(MLPBackbone(2, 16, 2), 4, 2), GaussianNoise(0.1), other, out_dir=tmp_path,
                    progress=False).fit(x)


def test_small_resnet_network_shapes():
    net = ClusterNetwork(SmallResNet(1, width=4, blocks=(1, 1)), z_dim=5, n_clusters=3, pre_feature=16)
    z, logits = net(torch.rand(6, 1, 12, 12))
    assert z.shape == (6, 5) and logits.shape == (6, 3)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(6))


def pixel_blobs(n=384, k=3, seed=0):
    """`k` clearly separated classes of 64 'pixels' in [0, 1] (binary templates, small noise)."""
    g = torch.Generator().manual_seed(seed)
    templates = (torch.rand(k, 64, generator=g) < 0.3).float()
    y = torch.arange(n) % k
    return (0.8 * templates[y] + 0.05 * torch.randn(n, 64, generator=g)).clamp(0, 1), y


@pytest.mark.parametrize("pre_feature, works", [(128, True), (0, False)])
def test_stage_two_separates_clearly_separated_clusters(pre_feature, works):
    """Stage 2 must split k separated classes. The cluster head on the bare MLP (no batch-normalized pre-feature
    layer, the bug behind the digits' ACC 0.195) sees features that barely vary between points: its memberships
    stay uniform, the cluster rate equals the total rate (no rate reduction) and the clusters are not found."""
    from entropy_mcmc.clustering.metrics import clustering_scores

    x, y = pixel_blobs()
    torch.manual_seed(0)
    net = ClusterNetwork(MLPBackbone(64, 64, 3), 16, 3, pre_feature=pre_feature)
    config = NMCETrainConfig(stages=three_stages((40, 120, 0), lam=50, gamma_warmup=20), batch_size=256, log_every=10)
    last = NMCETrainer(net, GaussianNoise(0.05), config, progress=False).fit(x)[-1]
    acc = clustering_scores(y, embed(net, x)[1].argmax(1))["acc"]
    reduction = last["rate"] - last["cluster_rate"]
    if works:
        assert acc == 1.0 and reduction > 5.0
    else:
        assert acc < 0.9 and reduction < 0.5


def restart_run(restarts, steps=(6, 8, 0), seed=0, **stage_kw):
    torch.manual_seed(seed)
    net = ClusterNetwork(MLPBackbone(2, 16, 2), 4, 3, pre_feature=16)
    stages = three_stages(steps, gamma_warmup=2, restarts=restarts, **stage_kw)
    config = NMCETrainConfig(stages=stages, batch_size=64, seed=seed, log_every=2)
    return net, NMCETrainer(net, GaussianNoise(0.1), config, progress=False)


def test_stage_two_restarts_keep_the_largest_rate_reduction():
    """Each restart starts from the same stage-1 network (restart 0 is the run without restarts, bit for bit),
    new heads make the restarts differ, and the network kept is the restart with the largest Delta R: a version
    that kept the last or the first restart, or scored before training, fails here."""
    x = double_spiral(192, seed=3).x / 10
    single, trainer1 = restart_run(1)
    rows1 = trainer1.fit(x)
    multi, trainer = restart_run(4)
    rows = trainer.fit(x)
    stage2 = [[r["loss"] for r in rows if r["stage"] == 2 and r["restart"] == k] for k in range(4)]
    assert stage2[0] == [r["loss"] for r in rows1 if r["stage"] == 2]
    assert len({tuple(s) for s in stage2}) == 4
    scores = [s["rate_reduction"] for s in trainer.restart_scores if not s.get("chosen")]
    chosen = trainer.restart_scores[-1]
    best = max(range(4), key=scores.__getitem__)
    assert chosen["chosen"] and chosen["restart"] == best and chosen["rate_reduction"] == scores[best]
    assert best not in (0, 3)  # so that keeping the first or the last restart would fail the next line
    assert trainer.restart_score(x, trainer.config.stages[1]) == pytest.approx(scores[best], abs=1e-6)
    assert trainer.restart_score(x, trainer.config.stages[1]) > max(scores[0], scores[3])


def test_stage_eps_sq_overrides_the_run_value_and_restarts_are_checked():
    x = double_spiral(128, seed=4).x / 10
    _, a = restart_run(1, steps=(4, 4, 4), cluster_eps_sq=0.5)
    rows_a = a.fit(x)
    _, b = restart_run(1, steps=(4, 4, 4))
    b.config.eps_sq = 0.5
    for s in b.config.stages[1:]:
        s.eps_sq = None
    b.config.stages[0].eps_sq = 0.01
    rows_b = b.fit(x)
    assert [r["loss"] for r in rows_a] == [r["loss"] for r in rows_b]
    _, c = restart_run(1, steps=(4, 4, 4))
    rows_c = c.fit(x)
    assert [r["loss"] for r in rows_c if r["stage"] == 1] == [r["loss"] for r in rows_a if r["stage"] == 1]
    assert [r["loss"] for r in rows_c if r["stage"] == 2] != [r["loss"] for r in rows_a if r["stage"] == 2]
    with pytest.raises(ValueError, match="reset_heads"):
        Stage("tcr", 10, restarts=2)
    with pytest.raises(ValueError, match="restarts"):
        Stage("nmce", 10, reset_heads=True, restarts=0)
    with pytest.raises(ValueError, match="eps_sq"):
        Stage("nmce", 10, eps_sq=0.0)


def test_lars_step_follows_the_trust_ratio_formula():
    """Weights step by lr * eta ||w|| / ||g + wd w|| * (g + wd w) with momentum; 1-D tensors take plain SGD steps."""
    from entropy_mcmc.clustering.lars import LARS

    g = torch.Generator().manual_seed(0)
    w = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    lr, mom, wd, eta = 0.5, 0.9, 0.01, 0.02
    opt = LARS([w, b], lr=lr, momentum=mom, weight_decay=wd, eta=eta)
    w_ref, b_ref, buf_w, buf_b = w.detach().clone(), b.detach().clone(), None, None
    for step in range(3):
        gw, gb = torch.randn(3, 4, generator=g, dtype=torch.float64) * 10 ** step, torch.randn(4, generator=g,
                                                                                              dtype=torch.float64)
        w.grad, b.grad = gw.clone(), gb.clone()
        opt.step()
        d = gw + wd * w_ref
        d = d * eta * w_ref.norm() / d.norm()
        buf_w = d if buf_w is None else mom * buf_w + d
        buf_b = gb if buf_b is None else mom * buf_b + gb
        w_ref, b_ref = w_ref - lr * buf_w, b_ref - lr * buf_b
        torch.testing.assert_close(w.detach(), w_ref)
        torch.testing.assert_close(b.detach(), b_ref)
    with pytest.raises(ValueError, match="learning rate"):
        LARS([w], lr=0.0)


def test_stages_train_with_lars_and_refuse_unknown_optimizers():
    from entropy_mcmc.clustering.experiment import run_clustering
    from entropy_mcmc.clustering.lars import LARS

    x = double_spiral(64, seed=3).x / 10
    torch.manual_seed(0)
    net = ClusterNetwork(MLPBackbone(2, 16, 2), 4, 2)
    config = NMCETrainConfig(stages=three_stages((4, 3, 3), lr=0.25, optimizer="lars"), batch_size=32, log_every=1)
    trainer = NMCETrainer(net, GaussianNoise(0.1), config, progress=False)
    before = [p.detach().clone() for p in net.backbone.parameters()]
    history = trainer.fit(x)
    assert isinstance(trainer.optimizer, LARS) and all(math.isfinite(r["loss"]) for r in history)
    assert not all(torch.equal(a, p) for a, p in zip(before, net.backbone.parameters()))
    with pytest.raises(ValueError, match="optimizer"):
        Stage("tcr", 2, optimizer="sgd")
    with pytest.raises(ValueError, match="optimizer"):
        run_clustering(double_spiral(64), optimizer="rmsprop", progress=False)
    with pytest.raises(ValueError, match="assign"):
        run_clustering(double_spiral(64), assign="kmeans", progress=False)


def test_subspace_assignment_recovers_orthogonal_subspaces_from_noisy_labels():
    """Three orthogonal 2-D subspaces of R^6 with 20 % of the labels wrong: one round puts every point back in
    its subspace (the known answer). A cluster with fewer points than the rank has no subspace and gets none."""
    from entropy_mcmc.clustering.assign import subspace_assign

    g = torch.Generator().manual_seed(0)
    truth = torch.arange(300) % 3
    coeffs = torch.randn(300, 2, generator=g, dtype=torch.float64)
    z = torch.zeros(300, 6, dtype=torch.float64)
    for c in range(3):
        z[truth == c, 2 * c:2 * c + 2] = coeffs[truth == c]
    z = z / z.norm(dim=1, keepdim=True)
    noisy = truth.clone()
    flip = torch.rand(300, generator=g) < 0.2
    noisy[flip] = (truth[flip] + 1) % 3
    assert torch.equal(subspace_assign(z, noisy, 3, iters=1), truth)      # rank 6 // 3 = 2
    starved = truth.clone()
    starved[truth == 2] = 0
    starved[2] = 2                                                        # one point left in cluster 2
    assert not (subspace_assign(z, starved, 3, iters=1) == 2).any()
    with pytest.raises(ValueError, match="rank"):
        subspace_assign(z, noisy, 3, rank=7)


def test_nearest_subspace_is_the_largest_projection():
    """Against the definition: the label is argmax_c ||U_c^T U_c z|| with explicit projection matrices, on random
    (non-aligned) orthonormal bases of rank 3, where a slip in the energy (summing U_c z before squaring) differs."""
    from entropy_mcmc.clustering.assign import fit_subspaces, nearest_subspace

    g = torch.Generator().manual_seed(1)
    bases = torch.linalg.qr(torch.randn(4, 8, 3, generator=g, dtype=torch.float64))[0].transpose(1, 2)
    z = torch.randn(500, 8, generator=g, dtype=torch.float64)
    brute = torch.stack([(z @ (u.T @ u)).norm(dim=1) for u in bases], 1).argmax(1)
    valid = torch.ones(4, dtype=torch.bool)
    assert torch.equal(nearest_subspace(z, bases, valid), brute)
    valid[brute[0]] = False                                     # a cluster without a subspace receives no point
    assert not (nearest_subspace(z, bases, valid) == brute[0]).any()
    # fitted bases are orthonormal and span each cluster's points when those lie in a subspace
    fitted, ok = fit_subspaces(z[:, :3] @ bases[0], torch.zeros(500, dtype=torch.long), 2, rank=3, iters=1)
    assert ok.tolist() == [True, False]
    torch.testing.assert_close(fitted[0] @ fitted[0].T, torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(fitted[0].T @ fitted[0], bases[0].T @ bases[0])


def test_spectral_assignment_follows_the_neighbour_graph():
    """Two concentric rings are found exactly from the points alone (the known answer), where a clustering by
    distance to centres (k-means) cuts across them."""
    from sklearn.cluster import KMeans
    from sklearn.datasets import make_circles
    from sklearn.metrics import adjusted_rand_score

    from entropy_mcmc.clustering.assign import spectral_assign

    x, y = make_circles(400, factor=0.5, noise=0.04, random_state=1)
    x = torch.as_tensor(x)
    labels = spectral_assign(x, 2, n_neighbors=10, seed=0)
    assert labels.shape == (400,) and labels.dtype == torch.long
    assert adjusted_rand_score(y, labels) == 1.0
    assert adjusted_rand_score(y, KMeans(2, n_init=10, random_state=0).fit_predict(x.numpy())) < 0.1
    with pytest.raises(ValueError, match="n_clusters"):
        spectral_assign(x, 400)
    with pytest.raises(ValueError, match="n_neighbors"):
        spectral_assign(x, 2, n_neighbors=400)


def test_unlabelled_data_computes_only_the_labelling_asked_for(monkeypatch):
    """Without ground truth nothing is scored, so the other labellings (spectral clustering: seconds on thousands
    of points) are not computed; with it, all but EnSC are."""
    from entropy_mcmc.clustering import ClusterData, experiment

    def refuse(*args, **kwargs):
        raise AssertionError("spectral labels computed but not used")

    spiral = double_spiral(64)
    small = dict(n_clusters=2, steps=(2, 2, 0), n_init=1, width=16, batch_size=64, progress=False, figures=False)
    monkeypatch.setattr(experiment, "spectral_assign", refuse)
    metrics = experiment.run_clustering(ClusterData(spiral.x, None, "spiral"), assign="subspace", **small)
    assert metrics["assign"] == "subspace" and "by_assignment" not in metrics
    with pytest.raises(AssertionError, match="not used"):
        experiment.run_clustering(spiral, assign="subspace", **small)


class _RunsCode:
    """A pickle that calls `os.system` when loaded without weights_only."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_crafted_checkpoint_in_the_output_folder_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"config": _RunsCode(marker)}, tmp_path / "checkpoint.pt")
    torch.manual_seed(0)
    config = NMCETrainConfig(stages=three_stages((2, 2, 2), lam=50.0, gamma_warmup=2), batch_size=32, log_every=2)
    trainer = NMCETrainer(ClusterNetwork(MLPBackbone(2, 16, 2), 4, 2), GaussianNoise(0.1), config, out_dir=tmp_path,
                          progress=False)
    with pytest.raises(ValueError, match=r"checkpoint.pt: not a checkpoint of this trainer \(UnpicklingError") as err:
        trainer.fit(torch.randn(64, 2))
    assert not marker.exists() and "\n" not in str(err.value)
