"""Data for energy models: 2-D toys, scikit-learn's 8x8 digits, MNIST from IDX files, or a user's `.npy` array.

    x, info = load_data("two-moons", num=10000, seed=0)        # [10000, 2]
    x, info = load_data("digits")                               # [1797, 1, 8, 8] in [0, 1]
    x, info = load_data("mnist", root="../shared/data/mnist")   # [10000, 1, 28, 28] in [0, 1]
    x, info = load_data("points.npy")                           # [n, d] points or [n, (C,) H, W] images

Nothing downloads: MNIST is read from the IDX files (`*-images-idx3-ubyte[.gz]`, labels alike) in the folder
given, `$EMCMC_MNIST_DIR`, or the shared data folder next to the repository.
"""
from __future__ import annotations

import gzip
import math
import os
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch

TOYS = ("eight-gaussians", "two-moons", "swiss-roll", "checkerboard", "rings")
IMAGES = ("digits", "mnist")


def toy_data(name: str, num: int, seed: int = 0) -> np.ndarray:
    """`[num, 2]` float64 draws of a 2-D toy distribution, each of scale about 1-2."""
    rng = np.random.default_rng(seed)
    if name == "eight-gaussians":
        k = rng.integers(0, 8, num)
        centers = 2.0 * np.stack([np.cos(k * np.pi / 4), np.sin(k * np.pi / 4)], 1)
        return centers + 0.1 * rng.standard_normal((num, 2))
    if name == "two-moons":
        upper = rng.random(num) < 0.5
        t = np.pi * rng.random(num)
        x = np.where(upper, np.cos(t), 1 - np.cos(t))
        y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
        return np.stack([x, y], 1) + 0.05 * rng.standard_normal((num, 2))
    if name == "swiss-roll":
        t = 1.5 * np.pi * (1 + 2 * rng.random(num))
        pts = np.stack([t * np.cos(t), t * np.sin(t)], 1) / 5.0
        return pts + 0.1 * rng.standard_normal((num, 2))
    if name == "checkerboard":
        # the 8 dark cells of a 4x4 board on [-2, 2]^2, uniform inside each
        cells = np.array([(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0], dtype=np.float64)
        c = cells[rng.integers(0, 8, num)]
        return c - 2.0 + rng.random((num, 2))
    if name == "rings":
        radius = 0.5 * rng.integers(1, 5, num)
        t = 2 * np.pi * rng.random(num)
        return radius[:, None] * np.stack([np.cos(t), np.sin(t)], 1) + 0.04 * rng.standard_normal((num, 2))
    raise ValueError(f"unknown toy {name!r}; expected one of {', '.join(TOYS)}")


def digits_data() -> Tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 8x8 digits as `[n, 1, 8, 8]` in [0, 1], with their labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0)[:, None].astype(np.float64), d.target.astype(np.int64)


def _open_idx(path: Path) -> bytes:
    with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
        return f.read()


def read_idx(path) -> np.ndarray:
    """An IDX file (MNIST's format, optionally gzipped) as a numpy array of its dtype and shape."""
    raw = _open_idx(Path(path))
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in dtypes:
        raise ValueError(f"{path}: unknown IDX data type 0x{raw[2]:02x}")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=dtypes[raw[2]], offset=4 + 4 * ndim)
    if data.size != math.prod(shape):
        raise ValueError(f"{path}: header says {shape} but the file holds {data.size} values")
    return data.reshape(shape)


def default_mnist_dir() -> Optional[Path]:
    env = os.environ.get("EMCMC_MNIST_DIR")
    if env:
        return Path(env)
    shared = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"
    return shared if shared.is_dir() else None


def mnist_data(root=None, split: str = "t10k") -> Tuple[np.ndarray, np.ndarray]:
    """MNIST images `[n, 1, 28, 28]` in [0, 1] and labels from the IDX files of `split` ("t10k" or "train")
    in `root`."""
    root = Path(root) if root is not None else default_mnist_dir()
    if root is None or not root.is_dir():
        raise ValueError("MNIST needs the folder of its IDX files (e.g. ../shared/data/mnist): pass it as the data "
                         "path, or set EMCMC_MNIST_DIR; nothing is downloaded")

    def find(kind):
        for suffix in ("-ubyte.gz", "-ubyte", ".gz", ""):
            for sep in ("-", "."):
                p = root / f"{split}-{kind}{sep}idx{3 if kind == 'images' else 1}{suffix}"
                if p.exists():
                    return p
        raise ValueError(f"no {split} {kind} IDX file in {root}")

    images = read_idx(find("images")).astype(np.float64) / 255.0
    labels = read_idx(find("labels")).astype(np.int64)
    return images[:, None], labels


def read_npy(path) -> np.ndarray:
    """The array in `.npy` file `path`; ValueError, naming the file, for one that is not a plain numeric array."""
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as err:  # no .npy header, pickled objects, truncated data
        detail = (str(err).splitlines() or [type(err).__name__])[0]
        raise ValueError(f"{path} is not a readable .npy array ({detail})") from None


def check_points(x: np.ndarray, source: str) -> np.ndarray:
    """Data `[n, d]` points or `[n, C, H, W]` images (`[n, H, W]` gains a channel), finite, n >= 2."""
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise ValueError(f"{source}: expected a numeric array, got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim not in (2, 4) or x.shape[0] < 2 or 0 in x.shape:
        raise ValueError(f"{source}: expected an array [n, d] of points or [n, C, H, W] (or [n, H, W]) of images "
                         f"with n >= 2, got shape {list(x.shape)}")
    if x.ndim == 4 and x.shape[2] != x.shape[3]:
        raise ValueError(f"{source}: images must be square, got {x.shape[2]}x{x.shape[3]}")
    if not np.isfinite(x).all():
        raise ValueError(f"{source}: the array has non-finite values")
    return x.astype(np.float64)


def load_data(name: str, num: Optional[int] = None, seed: int = 0, root=None,
              dtype: torch.dtype = torch.float32) -> Tuple[torch.Tensor, Dict]:
    """A data set as a tensor `[n, *event]` and a dict (`name`, `kind` "points" or "images", `labels` where
    known). `num` keeps the first `num` points (toys: draws `num`, 10,000 by default)."""
    labels = None
    if name in TOYS:
        x = toy_data(name, num or 10000, seed)
    elif name == "digits":
        x, labels = digits_data()
    elif name == "mnist" or (os.path.isdir(str(name)) and Path(name, "t10k-images-idx3-ubyte.gz").exists()):
        x, labels = mnist_data(root if name == "mnist" else name)
        name = "mnist"
    elif str(name).endswith(".npy"):
        if not os.path.exists(name):
            raise ValueError(f"data file {name} does not exist")
        x = check_points(read_npy(name), name)
    else:
        raise ValueError(f"unknown data {name!r}; expected one of {', '.join(TOYS + IMAGES)}, a folder of MNIST IDX "
                         "files, or a path to a .npy array [n, *event]")
    if num is not None and name not in TOYS:
        x = x[:num]
        labels = labels[:num] if labels is not None else None
    x = check_points(x, str(name))
    info = {"name": str(name), "kind": "points" if x.ndim == 2 else "images", "labels": labels}
    return torch.as_tensor(x, dtype=dtype), info


__all__ = ["load_data", "toy_data", "digits_data", "mnist_data", "read_idx", "read_npy", "check_points", "TOYS",
           "IMAGES"]
