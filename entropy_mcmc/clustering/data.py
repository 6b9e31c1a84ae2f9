"""Data sets for NMCE: the double spiral (Figure 5.1), the union of manifolds of appendix D.1 (Table D.1),
scikit-learn's 8x8 digits, and any image set given as a `.mat` file (`fea`/`gnd`) or as folders of PNG
images per class. Images come back as float32 `[n, C, H, W]` in [0, 1], labels as int64 `0..K-1`."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn


@dataclass
class ClusterData:
    """Points `x` (`[n, d]` vectors or `[n, C, H, W]` images), ground-truth labels `y` when known."""

    x: torch.Tensor
    y: Optional[torch.Tensor]
    name: str

    @property
    def is_image(self) -> bool:
        return self.x.dim() == 4

    @property
    def num_classes(self) -> int:
        return int(self.y.max()) + 1 if self.y is not None else 0


def double_spiral(n: int = 4096, noise: float = 0.05, seed: int = 0) -> ClusterData:
    """Two interleaved spirals of radius about 15 (appendix D.2): r = t, angle t, t in [1.5 pi, 4.5 pi]."""
    g = torch.Generator().manual_seed(seed)
    half = n // 2
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g))
    arm = torch.stack([t * torch.cos(t), t * torch.sin(t)], 1)
    arm[half:] *= -1                       # the second spiral is the first rotated by pi
    x = arm + noise * torch.randn(n, 2, generator=g)
    y = torch.cat([torch.zeros(half), torch.ones(n - half)]).long()
    return ClusterData(x.float(), y, "double-spiral")


def union_of_manifolds(n: int = 4096, dims: Sequence[int] = (3, 6), ambient: int = 32, width: int = 128,
                       bias: bool = True, seed: int = 0) -> ClusterData:
    """Appendix D.1: Gaussian noise of dimension `dims[j]` through a random MLP (leaky ReLU, slope 0.2) per manifold.

    With random biases (`bias=True`) the manifolds lie apart and noise augmentation identifies them; without,
    they all pass through the origin and intersect there (the 'not identifiable' row of Table D.1).
    """
    per = [n // len(dims) + (1 if j < n % len(dims) else 0) for j in range(len(dims))]
    xs, ys = [], []
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for j, (k, d) in enumerate(zip(per, dims)):
            net = nn.Sequential(nn.Linear(d, width, bias=bias), nn.LeakyReLU(0.2),
                                nn.Linear(width, width, bias=bias), nn.LeakyReLU(0.2),
                                nn.Linear(width, ambient, bias=bias))
            if bias:  # biases of scale 1 (instead of PyTorch's small uniform ones) set the manifolds apart
                for layer in net[::2]:
                    nn.init.normal_(layer.bias)
            with torch.no_grad():
                xs.append(net(torch.randn(k, d)))
            ys.append(torch.full((k,), j))
    x = torch.cat(xs)
    x = (x - x.mean(0)) / x.std()          # one global scale, so the noise scale means the same for every set
    return ClusterData(x.float(), torch.cat(ys).long(), "manifolds" if bias else "manifolds-intersecting")


def load_digits() -> ClusterData:
    """scikit-learn's 8x8 digits (1797 images, 10 classes), shipped with scikit-learn (no download)."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = torch.from_numpy(d.images / 16.0).float()[:, None]
    return ClusterData(x, torch.from_numpy(d.target).long(), "digits")


def _labels(raw, n: int, source: str) -> torch.Tensor:
    y = np.asarray(raw).reshape(-1)
    if y.shape[0] != n:
        raise ValueError(f"{source}: {y.shape[0]} labels for {n} images; the labels do not match the data")
    _, y = np.unique(y, return_inverse=True)
    return torch.from_numpy(y.reshape(-1)).long()


def _as_images(x: np.ndarray, image_shape: Optional[Tuple[int, ...]], order: str, source: str) -> torch.Tensor:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        d = x.shape[1]
        if image_shape is None:
            side = int(round(math.sqrt(d)))
            if side * side == d:
                image_shape = (side, side)
            elif d % 3 == 0 and int(round(math.sqrt(d // 3))) ** 2 == d // 3:
                side = int(round(math.sqrt(d // 3)))
                image_shape = (3, side, side)
            else:
                raise ValueError(f"{source}: cannot read an image size from {d} features per row; "
                                 "give the image shape (e.g. --image-size 32x32)")
        shape = tuple(image_shape)
        if int(np.prod(shape)) != d:
            raise ValueError(f"{source}: image shape {shape} does not hold {d} features per row")
        if len(shape) == 2:
            shape = (1,) + shape
        # MATLAB stores each image column-major: reverse the axes, reshape, then transpose back
        x = x.reshape((x.shape[0],) + shape[::-1]).transpose(0, 3, 2, 1) if order == "F" \
            else x.reshape((x.shape[0],) + shape)
    elif x.ndim == 3:
        x = x[:, None]
    elif x.ndim != 4:
        raise ValueError(f"{source}: expected a feature matrix [n, pixels] or images, got shape {x.shape}")
    lo, hi = x.min(), x.max()
    x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    return torch.from_numpy(np.ascontiguousarray(x)).float()


def load_mat(path, features: Optional[str] = None, labels: Optional[str] = None,
             image_shape: Optional[Tuple[int, ...]] = None, order: str = "F") -> ClusterData:
    """An image set in a MATLAB `.mat` file: a feature matrix (`fea`, `X`, `data`...) and a label vector (`gnd`, `y`...).

    Rows are images flattened column-major (`order='F'`, MATLAB's layout, as COIL-20/100 are shared); the
    image size is read from the row length (square grey or RGB images) unless `image_shape` is given.
    """
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such .mat file: {path}")
    try:
        mat = {k: v for k, v in loadmat(str(path)).items() if not k.startswith("__")}
    except NotImplementedError as err:  # MATLAB v7.3 files are HDF5
        raise ValueError(f"{path}: MATLAB v7.3 (HDF5) files are not supported; save it with -v7") from err
    except Exception as err:
        raise ValueError(f"{path}: not a readable .mat file ({err})") from err
    fkey = features or next((k for k in ("fea", "X", "x", "data", "features", "images") if k in mat), None)
    lkey = labels or next((k for k in ("gnd", "y", "Y", "labels", "label", "gt") if k in mat), None)
    missing = [what for what, key in (("a feature matrix (fea)", fkey), ("a label vector (gnd)", lkey))
               if key is None or key not in mat]
    if missing:
        raise ValueError(f"{path}: found no {' and no '.join(missing)}; the file holds {sorted(mat) or 'nothing'}")
    x = _as_images(mat[fkey], image_shape, order, str(path))
    return ClusterData(x, _labels(mat[lkey], x.shape[0], str(path)), path.stem)


def load_image_folder(path, image_shape: Optional[Tuple[int, int]] = None) -> ClusterData:
    """PNG (or JPEG) images in one sub-folder per class; all resized to the first image's size (or `image_shape`)."""
    from PIL import Image

    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"no such folder: {root}")
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    files = [(f, c) for c, folder in enumerate(classes) for f in sorted(folder.iterdir())
             if f.suffix.lower() in (".png", ".jpg", ".jpeg")]
    if len(classes) < 2 or not files:
        raise ValueError(f"{root}: expected one sub-folder of PNG images per class (found {len(classes)} "
                         f"sub-folders and {len(files)} images)")
    first = Image.open(files[0][0])
    mode = "L" if first.mode in ("1", "L", "I", "I;16", "F", "LA") else "RGB"
    size = (image_shape[1], image_shape[0]) if image_shape else first.size
    arrays = [np.asarray(Image.open(f).convert(mode).resize(size), dtype=np.float32) / 255.0 for f, _ in files]
    x = torch.from_numpy(np.stack(arrays))
    x = x[:, None] if mode == "L" else x.permute(0, 3, 1, 2)
    return ClusterData(x.contiguous(), torch.tensor([c for _, c in files]), root.name)


def load_dataset(spec: str, seed: int = 0, n: int = 4096, image_shape=None) -> ClusterData:
    """By name (`digits`, `double-spiral`, `manifolds`, `manifolds-intersecting`) or path (`.mat` file, folder)."""
    named = {"digits": lambda: load_digits(), "double-spiral": lambda: double_spiral(n, seed=seed),
             "manifolds": lambda: union_of_manifolds(n, seed=seed),
             "manifolds-intersecting": lambda: union_of_manifolds(n, bias=False, seed=seed)}
    if spec in named:
        return named[spec]()
    path = Path(spec)
    if path.suffix.lower() == ".mat":
        return load_mat(path, image_shape=image_shape)
    if path.is_dir():
        return load_image_folder(path, image_shape)
    raise ValueError(f"unknown data set {spec!r}: give one of {', '.join(named)}, a .mat file or a folder of "
                     "class folders of PNG images")


__all__ = ["ClusterData", "double_spiral", "union_of_manifolds", "load_digits", "load_mat", "load_image_folder",
           "load_dataset"]
