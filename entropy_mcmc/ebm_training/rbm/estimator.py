"""scikit-learn's `BernoulliRBM` estimator shape on the torch Bernoulli RBM: switch by changing one import.

    from entropy_mcmc.ebm_training import BernoulliRBM   # instead of sklearn.neural_network
    rbm = BernoulliRBM(n_components=100, learning_rate=0.06, batch_size=10, n_iter=10, random_state=0).fit(X)
    features = rbm.transform(X)

Training is scikit-learn's: persistent CD with `batch_size` chains, one Gibbs step per minibatch,
plain SGD on the batch-mean gradient, weights initialised from N(0, 0.01^2). Differences, stated:
`score_samples` returns the exact pseudo-log-likelihood (every bit flipped in turn; scikit-learn's
flips one random bit and multiplies by the number of features, an unbiased but noisy estimate of
it), and arrays are float32 unless `dtype=np.float64`.
"""
from __future__ import annotations

import time
from typing import Optional

import numpy as np
import torch

from .bernoulli import RBM


class BernoulliRBM:
    """Bernoulli RBM with the constructor, methods and fitted attributes of `sklearn.neural_network.BernoulliRBM`."""

    def __init__(self, n_components: int = 256, *, learning_rate: float = 0.1, batch_size: int = 10, n_iter: int = 10,
                 verbose: int = 0, random_state: Optional[int] = None, dtype=np.float32, device: str = "cpu"):
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.verbose = verbose
        self.random_state = random_state
        self.dtype = dtype
        self.device = device

    # ------------------------------------------------------------------ scikit-learn protocol

    def get_params(self, deep: bool = True):
        return {k: getattr(self, k) for k in ("n_components", "learning_rate", "batch_size", "n_iter", "verbose",
                                              "random_state", "dtype", "device")}

    def set_params(self, **params):
        for k, v in params.items():
            if k not in self.get_params():
                raise ValueError(f"invalid parameter {k!r} for BernoulliRBM")
            setattr(self, k, v)
        return self

    def _tensor(self, X, name="X") -> torch.Tensor:
        if hasattr(X, "toarray"):
            X = X.toarray()
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2-D [n_samples, n_features], got shape {X.shape}")
        if hasattr(self, "model_") and X.shape[1] != self.model_.num_visible:
            raise ValueError(f"{name} has {X.shape[1]} features, but BernoulliRBM was fitted with "
                             f"{self.model_.num_visible}")
        if X.size and (X.min() < 0 or X.max() > 1):
            raise ValueError(f"{name} must lie in [0, 1] (binary data or probabilities)")
        return torch.as_tensor(X, dtype=torch.float64 if self.dtype == np.float64 else torch.float32,
                               device=self.device)

    def _init(self, n_features: int):
        seed = np.random.RandomState(self.random_state).randint(0, 2 ** 31 - 1)
        dt = torch.float64 if self.dtype == np.float64 else torch.float32
        self.model_ = RBM(n_features, self.n_components, dtype=dt, device=self.device, seed=int(seed))
        self._generator = torch.Generator(device=self.device).manual_seed(int(seed) + 1)
        self._chains = None
        self.n_features_in_ = n_features

    def _fit_batch(self, v: torch.Tensor) -> None:
        """One PCD update, fused: the persistent chains' hidden sample gives the negative visibles, whose hidden
        probabilities serve both the update and the chains' next hidden sample (3 matrix products per batch)."""
        m, gen = self.model_, self._generator
        W, b, c = m.W.data, m.hidden_bias.data, m.visible_bias.data
        if self._chains is None:   # scikit-learn starts its persistent chains at hidden = 0
            self._chains = torch.zeros(self.batch_size, self.n_components, dtype=v.dtype, device=v.device)
        h_pos = torch.sigmoid(torch.addmm(b, v, W))
        p_neg = torch.sigmoid(torch.addmm(c, self._chains, W.t()))
        v_neg = (torch.rand(p_neg.shape, generator=gen, dtype=v.dtype, device=v.device) < p_neg).to(v.dtype)
        h_neg = torch.sigmoid(torch.addmm(b, v_neg, W))
        alpha = self.learning_rate / v.shape[0]
        W.addmm_(v.t(), h_pos, alpha=alpha).addmm_(v_neg.t(), h_neg, alpha=-alpha)
        b.add_(h_pos.sum(0) - h_neg.sum(0), alpha=alpha)
        c.add_(v.sum(0) - v_neg.sum(0), alpha=alpha)
        self._chains = (torch.rand(h_neg.shape, generator=gen, dtype=v.dtype, device=v.device) < h_neg).to(v.dtype)

    @torch.no_grad()
    def partial_fit(self, X, y=None):
        """One PCD update on `X` as a single minibatch."""
        v = self._tensor(X)
        if not hasattr(self, "model_"):
            self._init(v.shape[1])
        self._fit_batch(v)
        return self

    @torch.no_grad()
    def fit(self, X, y=None):
        """`n_iter` epochs of persistent CD over minibatches of `batch_size` (fresh start)."""
        for attr in ("model_", "_chains"):
            if hasattr(self, attr):
                delattr(self, attr)
        v = self._tensor(X)
        self._init(v.shape[1])
        n = v.shape[0]
        rng = np.random.RandomState(self.random_state)
        batches = max(1, int(np.ceil(n / self.batch_size)))
        for it in range(1, self.n_iter + 1):
            t0 = time.perf_counter()
            shuffled = v[torch.as_tensor(rng.permutation(n), device=v.device)]
            for b in range(batches):
                self._fit_batch(shuffled[b * self.batch_size:(b + 1) * self.batch_size])
            if self.verbose:
                pl = float(self.model_.pseudo_log_likelihood(v).mean())
                print(f"[BernoulliRBM] Iteration {it}, pseudo-likelihood = {pl:.2f}, "
                      f"time = {time.perf_counter() - t0:.2f}s")
        return self

    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise ValueError("This BernoulliRBM instance is not fitted yet. Call 'fit' with appropriate arguments "
                             "before using this estimator.")

    @torch.no_grad()
    def transform(self, X) -> np.ndarray:
        """P(h = 1 | v) for each row of `X`, `[n_samples, n_components]`."""
        self._check_fitted()
        return self.model_.hidden_probs(self._tensor(X)).cpu().numpy()

    def fit_transform(self, X, y=None) -> np.ndarray:
        return self.fit(X).transform(X)

    @torch.no_grad()
    def score_samples(self, X) -> np.ndarray:
        """Exact pseudo-log-likelihood of each row: sum_i log p(v_i | v_{-i})."""
        self._check_fitted()
        return self.model_.pseudo_log_likelihood(self._tensor(X)).cpu().numpy()

    @torch.no_grad()
    def gibbs(self, v) -> np.ndarray:
        """One Gibbs step from visible states `v`: h ~ p(h|v), then a visible sample from p(v|h) (boolean)."""
        self._check_fitted()
        x = self._tensor(v, "v")
        h = self.model_.sample_hidden(x, self._generator)
        return self.model_.sample_visible(h, self._generator).cpu().numpy().astype(bool)

    # ------------------------------------------------------------------ fitted attributes, as scikit-learn names them

    @property
    def components_(self) -> np.ndarray:
        self._check_fitted()
        return self.model_.W.detach().transpose(0, 1).cpu().numpy()

    @property
    def intercept_hidden_(self) -> np.ndarray:
        self._check_fitted()
        return self.model_.hidden_bias.detach().cpu().numpy()

    @property
    def intercept_visible_(self) -> np.ndarray:
        self._check_fitted()
        return self.model_.visible_bias.detach().cpu().numpy()

    @property
    def h_samples_(self) -> np.ndarray:
        self._check_fitted()
        if self._chains is None:
            return np.zeros((self.batch_size, self.n_components), dtype=self.dtype)
        return self._chains.cpu().numpy()

    def __repr__(self) -> str:
        return (f"BernoulliRBM(n_components={self.n_components}, learning_rate={self.learning_rate}, "
                f"batch_size={self.batch_size}, n_iter={self.n_iter}, random_state={self.random_state})")
