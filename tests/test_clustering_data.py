"""Data loaders (.mat fea/gnd, PNG folders, toy sets), clustering metrics and the `cluster` command's errors."""
import importlib.util
import json
from argparse import ArgumentParser
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import savemat

from entropy_mcmc.clustering.data import (double_spiral, load_cluster_data, load_image_folder, load_mat,
                                       union_of_manifolds)
from entropy_mcmc.clustering.metrics import clustering_accuracy, clustering_scores

CLI_PATH = Path(__file__).resolve().parents[1] / "entropy_mcmc" / "cli" / "cluster.py"
FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"


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
    assert load_cluster_data(str(tmp_path / "sq.mat")).x.shape == (6, 1, 4, 4)


def test_mat_errors(tmp_path):
    savemat(tmp_path / "nolabels.mat", {"fea": np.random.rand(4, 16)})
    with pytest.raises(ValueError, match=r"no a label vector \(gnd\)"):
        load_mat(tmp_path / "nolabels.mat")
    savemat(tmp_path / "empty.mat", {"something": np.ones(3)})
    with pytest.raises(ValueError, match="feature matrix.*label vector.*something"):
        load_mat(tmp_path / "empty.mat")
    savemat(tmp_path / "mismatch.mat", {"fea": np.random.rand(4, 16), "gnd": np.arange(5)})
    with pytest.raises(ValueError, match="5 labels for a 4 x 16 feature matrix; neither axis"):
        load_mat(tmp_path / "mismatch.mat")
    savemat(tmp_path / "square.mat", {"fea": np.random.rand(16, 16), "gnd": np.arange(16) % 2})
    with pytest.raises(ValueError, match="either axis could hold the images"):
        load_mat(tmp_path / "square.mat")
    assert load_mat(tmp_path / "square.mat", images_in="columns").x.shape == (16, 1, 4, 4)
    savemat(tmp_path / "rows.mat", {"fea": np.random.rand(4, 16), "gnd": np.arange(4)})
    with pytest.raises(ValueError, match="4 labels for the 16 columns"):
        load_mat(tmp_path / "rows.mat", images_in="columns")
    savemat(tmp_path / "onehot.mat", {"fea": np.random.rand(4, 16), "gnd": np.eye(4)})
    with pytest.raises(ValueError, match="labels must be a vector"):
        load_mat(tmp_path / "onehot.mat")
    savemat(tmp_path / "nan.mat", {"fea": np.full((4, 16), np.nan), "gnd": np.arange(4)})
    with pytest.raises(ValueError, match="NaN"):
        load_mat(tmp_path / "nan.mat")
    savemat(tmp_path / "odd.mat", {"fea": np.random.rand(4, 15), "gnd": np.arange(4)})
    with pytest.raises(ValueError, match="image size"):
        load_mat(tmp_path / "odd.mat")
    (tmp_path / "junk.mat").write_text("not a mat file")
    with pytest.raises(ValueError, match="not a readable"):
        load_mat(tmp_path / "junk.mat")
    with pytest.raises(ValueError, match="no such"):
        load_mat(tmp_path / "missing.mat")
    with pytest.raises(ValueError, match="unknown data set"):
        load_cluster_data("nonsense")


@pytest.mark.parametrize("fea, gnd, message", [
    (np.random.rand(4, 16), np.arange(5), "neither axis matches"),
    (np.random.rand(16, 16), np.arange(16), "either axis could hold the images"),
    (np.random.rand(4, 15), np.arange(4), "cannot read an image size"),
    (np.eye(4), np.eye(4), "must be a vector"),
    (np.full((4, 16), np.inf), np.arange(4), "NaN or infinite")])
def test_cluster_command_refuses_bad_mat_files_in_one_line(tmp_path, capsys, fea, gnd, message):
    from entropy_mcmc import cli

    savemat(tmp_path / "bad.mat", {"fea": fea, "gnd": gnd})
    with pytest.raises(SystemExit) as exc:
        cli.main(["cluster", "--data", str(tmp_path / "bad.mat"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1 and message in err and "bad.mat" in err


@pytest.mark.parametrize("images_in", ["rows", "columns"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float64])
def test_mat_pixel_order_in_either_orientation_and_dtype(tmp_path, images_in, dtype):
    """An asymmetric 8x8 image (bright top-left corner, a dark bottom row) flattened MATLAB's way (`img(:)`),
    stored n x pixels or pixels x n, as uint8 or as floats in [0, 1]: it reads back in the same pixel order."""
    img = np.full((8, 8), 100, dtype=np.uint8)
    img[:2, :3] = 255
    img[-1] = 0
    stack = np.stack([img, img[:, ::-1], img])                        # three images, the second mirrored
    fea = np.stack([im.flatten(order="F") for im in stack])         # one image per row
    fea = fea if images_in == "rows" else fea.T
    fea = fea if dtype == np.uint8 else fea / 255.0
    gnd = np.array([[1, 2, 1]]) if images_in == "columns" else np.array([[1], [2], [1]])
    savemat(tmp_path / "set.mat", {"fea": fea.astype(dtype), "gnd": gnd})
    data = load_mat(tmp_path / "set.mat")
    assert data.x.shape == (3, 1, 8, 8) and data.y.tolist() == [0, 1, 0]
    np.testing.assert_allclose(data.x[:, 0].numpy(), stack / 255.0, atol=1e-6)
    assert data.x[0, 0, 0, 0] == 1.0 and data.x[1, 0, 0, -1] == 1.0 and float(data.x[0, 0, -1].max()) == 0.0


def test_mat_whole_float_pixels_and_face_set_sizes(tmp_path):
    """Floats holding 0..255 are scaled by 1/255 like uint8; 10304 pixels read as ORL's 112x92 images."""
    img = np.random.default_rng(0).integers(0, 200, size=(2, 112, 92)).astype(np.float64)
    fea = np.stack([im.flatten(order="F") for im in img]).T
    savemat(tmp_path / "orl.mat", {"fea": fea, "gnd": np.array([1, 2])})
    data = load_mat(tmp_path / "orl.mat")
    assert data.x.shape == (2, 1, 112, 92)
    np.testing.assert_allclose(data.x[:, 0].numpy(), img / 255.0, atol=1e-6)


@pytest.mark.skipif(not FACES.is_dir(), reason=f"no face sets at {FACES} (shared data not present)")
@pytest.mark.parametrize("name, n, k", [("YaleB", 2414, 38), ("orl", 400, 40)])
def test_shared_face_sets_read_upright(name, n, k):
    """The shared copies store fea pixels x images; read right, the mean face is nearly symmetric left to right
    and not top to bottom (read transposed, it would be the other way round)."""
    data = load_mat(FACES / f"{name}.mat")
    assert data.x.shape == (n, 1, 32, 32) and data.num_classes == k
    assert 0.0 <= float(data.x.min()) and float(data.x.max()) <= 1.0
    mean = data.x[:, 0].mean(0)
    assert (mean - mean.flip(1)).abs().mean() < 0.5 * (mean - mean.flip(0)).abs().mean()


def test_faces_benchmark_script_runs_every_method_on_a_mat_file(tmp_path):
    """`benchmarks/nmce_faces.py` on a tiny pixels x images uint8 file: every peer and NMCE scored, one table."""
    spec = importlib.util.spec_from_file_location("nmce_faces", CLI_PATH.parents[2] / "benchmarks" / "nmce_faces.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    g = np.random.default_rng(0)
    means = g.integers(40, 216, size=(3, 64))
    fea = np.clip(np.repeat(means, 8, 0) + g.integers(-20, 21, size=(24, 64)), 0, 255).astype(np.uint8)
    savemat(tmp_path / "tiny.mat", {"fea": fea.T, "gnd": np.repeat(np.arange(1, 4), 8)[None]})
    assert script.main(["--data", str(tmp_path / "tiny.mat"), "--out", str(tmp_path / "out"), "--steps", "2,1,1"]) == 0
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["tiny"]["rows"]
    assert {"k-means", "spectral (10-NN graph)", "ensc", "NMCE (default labels: spectral)"} <= set(rows)
    assert all(0 <= r["acc"] <= 1 and r["seconds"] >= 0 for r in rows.values())


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
        data = load_cluster_data(str(tmp_path / "out" / spec))
        assert data.x.shape == (20, 1, 28, 28)
        torch.testing.assert_close(data.x, expected, atol=1e-6, rtol=0)
        assert data.y.tolist() == digits[keep].tolist()


def test_prepare_standardizes_vectors_and_keeps_pixels():
    from entropy_mcmc.clustering.data import ClusterData
    from entropy_mcmc.clustering.experiment import prepare

    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, generator=g) * torch.tensor([1.0, 1000.0, 0.0]) + 5
    std = prepare(ClusterData(x, None, "v"))
    torch.testing.assert_close(std.mean(0), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(std.std(0, unbiased=False), torch.tensor([1.0, 1.0, 0.0]), atol=1e-4, rtol=0)
    one = prepare(ClusterData(x, None, "v"), standardize=False)          # one scale: the ratios are kept
    assert float(one[:, 1].std() / one[:, 0].std()) == pytest.approx(float(x[:, 1].std() / x[:, 0].std()))
    pixels = torch.rand(4, 1, 8, 8, generator=g)
    assert torch.equal(prepare(ClusterData(pixels, None, "img")), pixels)


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
