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


def feature_scaling(x: torch.Tensor, standardize: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mean and scale `[d]` for the rows of `x`: each feature's standard deviation (`standardize`; a constant
    feature keeps scale 1), or one scale for all, the root mean square of the centred features (keeps their
    relative scales, for features in one unit). `(x - mean) / scale` is the network's input."""
    mean = x.mean(0)
    centred = x - mean
    if standardize:
        std = centred.pow(2).mean(0).sqrt()
        return mean, torch.where(std > 0, std, torch.ones_like(std))
    scale = centred.pow(2).sum(1).mean().sqrt().clamp_min(1e-12) / x.shape[1] ** 0.5
    return mean, scale.expand(x.shape[1]).clone()


def load_digits() -> ClusterData:
    """scikit-learn's 8x8 digits (1797 images, 10 classes), shipped with scikit-learn (no download)."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = torch.from_numpy(d.images / 16.0).float()[:, None]
    return ClusterData(x, torch.from_numpy(d.target).long(), "digits")


# pixels per image -> (H, W) of face sets shared at sizes that are not square: ORL / AT&T (112x92, 56x46) and
# Extended Yale B (192x168 cropped, 96x84 and 48x42 as subspace clustering papers use it)
FACE_SIZES = {112 * 92: (112, 92), 56 * 46: (56, 46), 192 * 168: (192, 168), 96 * 84: (96, 84), 48 * 42: (48, 42)}


def _label_vector(raw, source: str) -> np.ndarray:
    y = np.asarray(raw)
    if y.ndim > 2 or (y.ndim == 2 and min(y.shape) != 1) or y.size == 0:
        raise ValueError(f"{source}: the labels must be a vector (1 x n or n x 1), got shape {y.shape}")
    return y.reshape(-1)


def _orient(fea: np.ndarray, n: int, images_in: Optional[str], source: str) -> np.ndarray:
    """`fea` with one image per row: the axis whose length is the number of labels holds the images."""
    if fea.ndim < 2:
        raise ValueError(f"{source}: expected a feature matrix [n, pixels] or images, got shape {fea.shape}")
    if fea.ndim > 2:
        if fea.shape[0] != n:
            raise ValueError(f"{source}: {n} labels for {fea.shape[0]} images; the labels do not match the data")
        return fea
    rows, cols = fea.shape
    if images_in is None:
        if rows == cols == n:
            raise ValueError(f"{source}: the feature matrix is {rows} x {cols} with {n} labels, so either axis could "
                             "hold the images; say which (images_in='rows' or 'columns', --images-in)")
        if n not in (rows, cols):
            raise ValueError(f"{source}: {n} labels for a {rows} x {cols} feature matrix; neither axis matches, "
                             "so the labels do not match the data")
        images_in = "rows" if rows == n else "columns"
    if images_in not in ("rows", "columns"):
        raise ValueError(f"images_in must be 'rows' or 'columns', got {images_in!r}")
    if (rows if images_in == "rows" else cols) != n:
        raise ValueError(f"{source}: {n} labels for the {rows if images_in == 'rows' else cols} {images_in} of a "
                         f"{rows} x {cols} feature matrix; the labels do not match the data")
    return fea if images_in == "rows" else fea.T


def _unit_pixels(x: np.ndarray, source: str) -> np.ndarray:
    """Pixels in [0, 1]: uint8 (and whole numbers in 0..255) over 255, floats in [0, 1] as they are, any other
    range min-max scaled."""
    if not (x.dtype == bool or np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(f"{source}: the pixels must be integers or real numbers, got dtype {x.dtype}")
    whole = x.dtype == bool or np.issubdtype(x.dtype, np.integer)
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"{source}: the pixels hold NaN or infinite values")
    lo, hi = x.min(), x.max()
    if lo >= 0 and hi <= 1:
        return x
    if lo >= 0 and hi <= 255 and (whole or np.array_equal(x, np.round(x))):
        return x / 255.0
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def _image_shape(d: int, source: str) -> Tuple[int, ...]:
    """The image shape of `d` pixels: square grey, square RGB, or a common face-set size."""
    side = int(round(math.sqrt(d)))
    if side * side == d:
        return side, side
    side = int(round(math.sqrt(d // 3)))
    if d % 3 == 0 and side * side == d // 3:
        return 3, side, side
    if d in FACE_SIZES:
        return FACE_SIZES[d]
    raise ValueError(f"{source}: cannot read an image size from {d} pixels per image; "
                     "give the image shape (e.g. --image-size 32x32)")


def _as_images(x: np.ndarray, image_shape: Optional[Tuple[int, ...]], order: str, source: str) -> torch.Tensor:
    """Images `[n, C, H, W]` in [0, 1] from rows of pixels (flattened in `order`) or from `[n, H, W(, ...)]`."""
    x = _unit_pixels(np.asarray(x), source)
    if x.ndim == 2:
        d = x.shape[1]
        shape = tuple(image_shape) if image_shape is not None else _image_shape(d, source)
        if int(np.prod(shape)) != d:
            raise ValueError(f"{source}: image shape {shape} does not hold {d} pixels per image")
        if len(shape) == 2:
            shape = (1,) + shape
        # MATLAB stores each image column-major: reverse the axes, reshape, then transpose back
        x = x.reshape((x.shape[0],) + shape[::-1]).transpose(0, 3, 2, 1) if order == "F" \
            else x.reshape((x.shape[0],) + shape)
    elif x.ndim == 3:
        x = x[:, None]
    elif x.ndim != 4:
        raise ValueError(f"{source}: expected a feature matrix [n, pixels] or images, got shape {x.shape}")
    return torch.from_numpy(np.ascontiguousarray(x)).float()


def load_mat(path, features: Optional[str] = None, labels: Optional[str] = None,
             image_shape: Optional[Tuple[int, ...]] = None, order: str = "F",
             images_in: Optional[str] = None) -> ClusterData:
    """An image set in a MATLAB `.mat` file: a feature matrix (`fea`, `X`, `data`...), a label vector (`gnd`, `y`...).

    The feature matrix may hold one image per row (n x pixels) or per column (pixels x n): the axis as long as
    the label vector holds the images (`images_in='rows'` or `'columns'` says it when both are). Images are
    flattened column-major (`order='F'`, MATLAB's `img(:)`, as COIL, ORL and Yale B are shared). Pixels may
    be uint8 (scaled by 1/255) or floats (kept when in [0, 1], else min-max scaled). The image size is read
    from the pixel count (square grey or RGB images, or a common face-set size, `FACE_SIZES`) unless
    `image_shape` is given.
    """
    from scipy import sparse
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
    fea = mat[fkey].toarray() if sparse.issparse(mat[fkey]) else np.asarray(mat[fkey])
    y = _label_vector(mat[lkey].toarray() if sparse.issparse(mat[lkey]) else mat[lkey], str(path))
    x = _as_images(_orient(fea, y.shape[0], images_in, str(path)), image_shape, order, str(path))
    _, y = np.unique(y, return_inverse=True)
    return ClusterData(x, torch.from_numpy(y.reshape(-1)).long(), path.stem)


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


def load_cluster_data(spec: str, seed: int = 0, n: int = 4096, image_shape=None, images_in=None) -> ClusterData:
    """By name (`digits`, `double-spiral`, `manifolds`, `manifolds-intersecting`) or path (`.mat` file, folder);
    `image_shape` and `images_in` go to `load_mat`."""
    named = {"digits": lambda: load_digits(), "double-spiral": lambda: double_spiral(n, seed=seed),
             "manifolds": lambda: union_of_manifolds(n, seed=seed),
             "manifolds-intersecting": lambda: union_of_manifolds(n, bias=False, seed=seed)}
    if spec in named:
        return named[spec]()
    path = Path(spec)
    if path.suffix.lower() == ".mat":
        return load_mat(path, image_shape=image_shape, images_in=images_in)
    if path.is_dir():
        return load_image_folder(path, image_shape)
    raise ValueError(f"unknown data set {spec!r}: give one of {', '.join(named)}, a .mat file or a folder of "
                     "class folders of PNG images")


__all__ = ["ClusterData", "FACE_SIZES", "feature_scaling", "double_spiral", "union_of_manifolds", "load_digits",
           "load_mat", "load_image_folder", "load_cluster_data"]
