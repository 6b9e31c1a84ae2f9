"""Data sets by name for the RBM commands: `bars` (complex, appendix A.3), `digits` (scikit-learn's 8x8
digits in [0, 1]), `mnist-cwt` (MNIST in the dual-tree complex wavelet domain, appendix A.3), or a
`.npy` file of rows."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch

from ..data import read_npy

DATASETS = ("bars", "digits", "mnist-cwt")


@dataclass
class Dataset:
    """Rows `[n, visible]` and what is needed to show them: `image_shape` for a plain image, or the
    wavelet `codec` state for `mnist-cwt`."""

    name: str
    data: torch.Tensor
    image_shape: Optional[Tuple[int, int]] = None
    meta: Dict[str, object] = field(default_factory=dict)


def load_rbm_data(name: str, num: Optional[int] = None, seed: int = 0, mnist_dir: Optional[str] = None,
                 offset: int = 0) -> Dataset:
    """The data set `name` (see the module docstring). `num` rows (default: all, or 40,000 generated bars);
    `offset` skips rows of a finite set (held-out rows for `sample-rbm`); bars use `seed` and `offset`
    as the generator seed, so different offsets give different images."""
    if name == "bars":
        from .bars import make_bars

        return Dataset("bars", make_bars(40000 if num is None else num, seed=seed + offset), (24, 24))
    if name == "digits":
        from sklearn.datasets import load_digits

        x = torch.as_tensor(load_digits().data / 16.0, dtype=torch.float32)
        return Dataset("digits", _rows(x, num, offset), (8, 8))
    if name == "mnist-cwt":
        from .wavelet import WaveletCodec, load_mnist

        images, _ = load_mnist(mnist_dir)
        images = _rows(images, num, offset)
        codec = WaveletCodec.fit(images)
        return Dataset("mnist-cwt", codec.encode(images), None, {"codec": codec.state_dict()})
    path = Path(name)
    if path.suffix == ".npy":
        if not path.is_file():
            raise ValueError(f"no such data file: {path}")
        x = torch.as_tensor(read_npy(path))
        if x.dim() != 2:
            raise ValueError(f"{path} must hold a 2-D array [rows, units], got shape {list(x.shape)}")
        return Dataset(path.stem, _rows(x, num, offset))
    raise ValueError(f"unknown data {name!r}: expected one of {', '.join(DATASETS)} or a .npy file")


def _rows(x: torch.Tensor, num: Optional[int], offset: int) -> torch.Tensor:
    if offset >= x.shape[0]:
        raise ValueError(f"offset {offset} is past the {x.shape[0]} rows of the data")
    end = x.shape[0] if num is None else min(x.shape[0], offset + num)
    return x[offset:end]
