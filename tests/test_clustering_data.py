"""Data loaders (.mat fea/gnd, PNG folders, toy sets), clustering metrics and the `cluster` command's errors."""
import importlib.util
import json
from argparse import ArgumentParser
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import savemat

from entropy_mcmc.clustering.data import double_spiral, load_dataset, load_image_folder, load_mat, union_of_manifolds
from entropy_mcmc.clustering.metrics import clustering_accuracy, clustering_scores

CLI_PATH = Path(__file__).resolve().parents[1] / "entropy_mcmc" / "cli" / "cluster.py"


def cluster_command():
    """The command module (imported by path until `entropy_mcmc.cli` is a package on this branch)."""
    try:
        from entropy_mcmc.cli import cluster
        return cluster
    except ImportError:
        spec = importlib.util.spec_from_file_location("entropy_mcmc.cli.cluster", CLI_PATH,
                                                      submodule_search_locations=None)
        mod = importlib.util.module_from_spec(spec)
        mod.__package__ = "entropy_mcmc.cli"
        spec.loader.exec_module(mod)
        return mod


def images(n=12, h=6, w=5, seed=0):
    g = np.random.default_rng(seed)
    return g.random((n, h, w)), np.repeat(np.arange(1, 4), n // 3)


def test_mat_round_trip_in_matlab_column_major_order(tmp_path):
    x, y = images()
    fea = np.stack([im.flatten(order="F") for im in x]) * 255
    savemat(tmp_path / "set.mat", {"fea": fea, "gnd": y[:, None]})
    data = load_mat(tmp_path / "set.mat", image_shape=(6, 5))
    assert data.x.shape == (12, 1, 6, 5) and data.y.tolist() == (y - 1).tolist()
    expect = (x - x.min()) / (x.max() - x.min())
    np.testing.assert_allclose(data.x[:, 0].numpy(), expect, rtol=1e-5, atol=1e-6)


def test_mat_square_size_is_read_from_the_rows(tmp_path):
    savemat(tmp_path / "sq.mat", {"X": np.random.rand(6, 16), "labels": np.arange(6) % 2})
    assert load_dataset(str(tmp_path / "sq.mat")).x.shape == (6, 1, 4, 4)


def test_mat_errors(tmp_path):
    savemat(tmp_path / "nolabels.mat", {"fea": np.random.rand(4, 16)})
    with pytest.raises(ValueError, match=r"no a label vector \(gnd\)"):
        load_mat(tmp_path / "nolabels.mat")
    savemat(tmp_path / "empty.mat", {"something": np.ones(3)})
    with pytest.raises(ValueError, match="feature matrix.*label vector.*something"):
        load_mat(tmp_path / "empty.mat")
    savemat(tmp_path / "mismatch.mat", {"fea": np.random.rand(4, 16), "gnd": np.arange(5)})
    with pytest.raises(ValueError, match="5 labels for 4 images"):
        load_mat(tmp_path / "mismatch.mat")
    savemat(tmp_path / "odd.mat", {"fea": np.random.rand(4, 15), "gnd": np.arange(4)})
    with pytest.raises(ValueError, match="image size"):
        load_mat(tmp_path / "odd.mat")
    (tmp_path / "junk.mat").write_text("not a mat file")
    with pytest.raises(ValueError, match="not a readable"):
        load_mat(tmp_path / "junk.mat")
    with pytest.raises(ValueError, match="no such"):
        load_mat(tmp_path / "missing.mat")
    with pytest.raises(ValueError, match="unknown data set"):
        load_dataset("nonsense")


def write_png_folder(root, n_per_class=4, size=(7, 9)):
    from PIL import Image

    for c in range(3):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(n_per_class):
            arr = np.full(size, 80 * c, dtype=np.uint8)
            arr[i % size[0], :] = 255
            Image.fromarray(arr).save(root / f"class{c}" / f"{i}.png")


def test_png_folder(tmp_path):
    write_png_folder(tmp_path / "set")
    data = load_image_folder(tmp_path / "set")
    assert data.x.shape == (12, 1, 7, 9) and data.y.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert float(data.x[4].min()) == pytest.approx(80 / 255)
    with pytest.raises(ValueError, match="sub-folder"):
        load_image_folder(tmp_path / "set" / "class0")


def test_exported_mnist_subset_reads_back_the_same_from_png_and_mat(tmp_path):
    """`benchmarks/export_mnist_subset.py` writes the two layouts a user brings; both must load to the exported
    images in order (a row-major .mat would come back transposed) with labels matching the digits."""
    import gzip
    import struct
    import subprocess
    import sys

    g = np.random.default_rng(0)
    imgs = g.integers(0, 256, size=(30, 28, 28)).astype(np.uint8)
    imgs[:, 0, 0], imgs[:, 0, 1] = 0, 255                     # fixes the .mat loader's min-max scaling
    digits = np.tile(np.arange(10), 3).astype(np.uint8)
    for name, arr in (("t10k-images-idx3-ubyte.gz", imgs), ("t10k-labels-idx1-ubyte.gz", digits)):
        header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
        with gzip.open(tmp_path / name, "wb") as f:
            f.write(header + arr.tobytes())
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "export_mnist_subset.py"
    proc = subprocess.run([sys.executable, str(script), "--mnist", str(tmp_path), "--per-class", "2",
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    keep = np.concatenate([np.flatnonzero(digits == d)[:2] for d in range(10)])
    expected = torch.from_numpy(imgs[keep] / 255.0).float()[:, None]
    for spec in ("png", "mnist.mat"):
        data = load_dataset(str(tmp_path / "out" / spec))
        assert data.x.shape == (20, 1, 28, 28)
        torch.testing.assert_close(data.x, expected, atol=1e-6, rtol=0)
        assert data.y.tolist() == digits[keep].tolist()


def test_toy_sets():
    d = double_spiral(100, noise=0.0, seed=0)
    assert d.x.shape == (100, 2) and d.y.sum() == 50
    r = d.x.norm(dim=1)
    assert float(r.min()) >= 1.5 * np.pi - 1e-4 and float(r.max()) <= 4.5 * np.pi + 1e-4
    m = union_of_manifolds(300, dims=(3, 6), ambient=10, seed=0)
    assert m.x.shape == (300, 10) and m.y.bincount().tolist() == [150, 150]
    assert torch.linalg.matrix_rank(m.x[m.y == 0] - m.x[m.y == 0].mean(0)) >= 3  # curved: more than 3 linear dims
    assert torch.equal(union_of_manifolds(50, seed=3).x, union_of_manifolds(50, seed=3).x)


def test_metrics():
    y = np.array([0, 0, 1, 1, 2, 2])
    assert clustering_accuracy(y, np.array([2, 2, 0, 0, 1, 1])) == 1.0
    assert clustering_accuracy(y, np.array([0, 0, 0, 1, 1, 1])) == pytest.approx(4 / 6)
    s = clustering_scores(y, [5, 5, 7, 7, 9, 9])
    assert s == {"acc": 1.0, "nmi": pytest.approx(1.0), "ari": pytest.approx(1.0)}
    with pytest.raises(ValueError, match="labels"):
        clustering_accuracy([0, 1], [0, 1, 1])


def parse(args):
    mod = cluster_command()
    parser = ArgumentParser()
    mod.add_arguments(parser)
    return mod, parser.parse_args(args)


def test_cluster_command_on_a_png_folder(tmp_path, capsys):
    write_png_folder(tmp_path / "set", n_per_class=6)
    mod, args = parse(["--data", str(tmp_path / "set"), "--out", str(tmp_path / "out"), "--steps", "3,2,2",
                       "--width", "32", "--batch-size", "18", "--n-init", "3", "--no-progress"])
    assert mod.run(args) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert {"acc", "nmi", "ari", "seconds"} <= set(metrics) and metrics["clusters"] == 3
    # three stage-2 restarts scored, then the kept one (the largest rate reduction)
    runs, kept = metrics["restart_scores"][:3], metrics["restart_scores"][3]
    assert [r["restart"] for r in runs] == [0, 1, 2] and kept["chosen"]
    assert kept["rate_reduction"] == max(r["rate_reduction"] for r in runs)
    assert 1 / 3 <= metrics["acc"] <= 1.0
    # the reported labels are the spectral ones (the default); every assignment is scored
    assert metrics["assign"] == "spectral" and set(metrics["by_assignment"]) == {"head", "subspace", "spectral"}
    assert metrics["acc"] == metrics["by_assignment"]["spectral"]["acc"]
    for name in ("log.csv", "checkpoint.pt", "singular_values.png", "clusters.png"):
        assert (tmp_path / "out" / name).exists(), name
    assert '"acc"' in capsys.readouterr().out


def test_cluster_command_errors(tmp_path):
    write_png_folder(tmp_path / "set")
    mod, args = parse(["--data", str(tmp_path / "set"), "--out", str(tmp_path / "o"), "--clusters", "20",
                       "--batch-size", "8"])
    with pytest.raises(ValueError, match="more than the batch"):
        mod.run(args)
    savemat(tmp_path / "bad.mat", {"fea": np.random.rand(4, 16)})
    mod, args = parse(["--data", str(tmp_path / "bad.mat"), "--out", str(tmp_path / "o")])
    with pytest.raises(ValueError, match="label vector"):
        mod.run(args)
    with pytest.raises(SystemExit):
        parse(["--data", "digits", "--out", "o", "--steps", "1,2"])
