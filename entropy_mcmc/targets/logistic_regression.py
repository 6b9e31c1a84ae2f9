"""Bayesian logistic regression on the UCI German, Australian and Heart datasets (thesis Table 4.1).

Features standardized per column with an intercept column prepended, prior w ~ N(0, I):
U(w) = sum_n [softplus(x_n.w) - y_n x_n.w] + |w|^2 / 2, with the analytic gradient
dU/dw = X^T (sigmoid(X w) - y) + w.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from .base import CastCache, Target

DATASETS = ("german", "australian", "heart")


def _data_dir() -> Path:
    return Path(str(resources.files("entropy_mcmc.targets") / "data"))


def load_dataset(name: str, data_dir: Union[str, Path, None] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Design matrix [n, 1 + features] (intercept, standardized features) and labels [n] for a UCI dataset."""
    if name not in DATASETS:
        raise ValueError(f"unknown logistic regression dataset {name!r}; expected one of {DATASETS}")
    folder = Path(data_dir) / name if data_dir is not None else _data_dir() / name
    x = np.load(folder / "data.npy").astype(np.float64)
    y = np.load(folder / "labels.npy").astype(np.float64).reshape(-1)
    sd = x.std(0)
    x = (x - x.mean(0)) / np.where(sd > 0, sd, 1.0)
    return np.concatenate([np.ones((x.shape[0], 1)), x], 1), y


def load_reference(name: str) -> Optional[dict]:
    path = _data_dir() / "blr_reference.json"
    if not path.exists():
        return None
    return json.loads(path.read_text()).get("datasets", {}).get(name)


class LogisticRegression(Target):
    """Posterior of logistic regression weights under a N(0, prior_scale^2 I) prior."""

    def __init__(self, features, labels, prior_scale: float = 1.0, name: str = "logistic_regression"):
        x = torch.as_tensor(np.asarray(features), dtype=torch.float64)
        y = torch.as_tensor(np.asarray(labels), dtype=torch.float64).reshape(-1)
        if x.dim() != 2 or y.shape[0] != x.shape[0]:
            raise ValueError(f"LogisticRegression: expected features [n, d] and labels [n], got "
                             f"{list(x.shape)} and {list(y.shape)}")
        if not torch.all((y == 0) | (y == 1)):
            raise ValueError("LogisticRegression: labels must be 0 or 1")
        super().__init__((x.shape[1],))
        self.name = name
        self.prior_scale = float(prior_scale)
        self.num_data = x.shape[0]
        self._c = CastCache(x=x, xt=x.T.contiguous(), y=y)

    @classmethod
    def from_dataset(cls, name: str, data_dir=None) -> "LogisticRegression":
        target = cls(*load_dataset(name, data_dir), name=name)
        ref = load_reference(name)
        if ref is not None:
            target.mean = torch.tensor(ref["mean"], dtype=torch.float64)
            target.std = torch.tensor(ref["std"], dtype=torch.float64)
            target.reference = ref
        return target

    def energy_and_grad(self, w: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        logits = w @ self._c.get("xt", w)  # [chains, n]
        y = self._c.get("y", w)
        inv_var = 1.0 / self.prior_scale ** 2
        u = (F.softplus(logits) - y * logits).sum(1) + 0.5 * inv_var * (w * w).sum(1)
        g = (torch.sigmoid(logits) - y) @ self._c.get("x", w) + inv_var * w
        return u, g

    def energy(self, w: torch.Tensor) -> torch.Tensor:
        logits = w @ self._c.get("xt", w)
        return (F.softplus(logits) - self._c.get("y", w) * logits).sum(1) \
            + 0.5 / self.prior_scale ** 2 * (w * w).sum(1)
