"""The shipped UCI logistic-regression datasets (German, Australian, Heart), loaded with NumPy alone.

Torch-free on purpose: the BlackJAX peer process (`benchmarks/peer_blackjax_process.py`)
loads the same design matrix as `entropy_mcmc.targets.LogisticRegression` without paying
for importing torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Tuple, Union

import numpy as np

DATASETS = ("german", "australian", "heart")


def package_data_dir() -> Path:
    """The folder of the shipped data (`entropy_mcmc/targets/data`): the datasets and `blr_reference.json`."""
    return Path(__file__).parent / "targets" / "data"


def load_dataset(name: str, data_dir: Union[str, Path, None] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Design matrix [n, 1 + features] (intercept, standardized features) and labels [n] for a UCI dataset."""
    if name not in DATASETS:
        raise ValueError(f"unknown logistic regression dataset {name!r}; expected one of {DATASETS}")
    path = (Path(data_dir) if data_dir is not None else package_data_dir()) / name
    x = np.load(path / "data.npy").astype(np.float64)
    y = np.load(path / "labels.npy").astype(np.float64).reshape(-1)
    sd = x.std(0)
    x = (x - x.mean(0)) / np.where(sd > 0, sd, 1.0)
    return np.concatenate([np.ones((x.shape[0], 1)), x], 1), y
