"""The scikit-learn estimator shape for people who cluster their own arrays:
`NMCE(n_clusters=10, random_state=0).fit_predict(X)`, with `fit`, `predict`, `transform` (the embedding z)
and `predict_proba` (the cluster posterior from the Gumbel sampler's draws through the common runner)."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin

from ..samplers.runner import sample
from .assign import fit_subspaces, nearest_subspace
from .augment import GaussianNoise
from .data import feature_scaling
from .gumbel import GumbelClusterKernel, cluster_posterior
from .networks import ClusterNetwork, MLPBackbone
from .training import NMCETrainer, NMCETrainConfig, default_lr, embed, three_stages


class NMCE(ClusterMixin, TransformerMixin, BaseEstimator):
    """Neural manifold clustering and embedding of the rows of `X` (thesis ch. 5) with an MLP backbone.

    Each feature is standardized (zero mean, unit variance; `standardize=False`: centred and divided by one
    global scale, which keeps the features' relative scales); the augmentation adds Gaussian noise of standard
    deviation `aug_noise` in those units (the locality constraint). New rows are scaled as the fitted ones, and
    the outputs (labels, embedding, posterior) are not in data space, so nothing needs undoing. Training runs the
    three stages of `three_stages(steps)`; stage 2 runs `n_init` times with new heads and keeps the run with the
    largest rate reduction on all points (like k-means' `n_init`, no labels).
    `cluster_eps_sq` is eps^2 of the two NMCE stages (None: `eps_sq`, which the TCR stage uses). `optimizer` is
    'adam' or 'lars'; `lr` defaults to 1e-3 for Adam and batch / 256 for LARS. The defaults are those of
    `run_clustering` and the `cluster` command.

    Labels (`labels_`, `predict`): with `assign='subspace'` the cluster head's argmax refined by nearest subspace
    (`assign.subspace_assign`: each cluster's subspace of rank z_dim // k, two rounds; new points go to the nearest
    of the fitted subspaces), with `assign='head'` the head's argmax, the mode of `predict_proba`.

    Fitted attributes: `network_` (the `ClusterNetwork`), `labels_`, `embedding_`, `subspaces_` (bases
    `[k, rank, z_dim]` and the mask of clusters that have one), `history_` (the training log rows), `mean_` and
    `scale_` (`[n_features]`), `n_features_in_`.
    """

    def __init__(self, n_clusters: int = 10, z_dim: Optional[int] = None, width: int = 256, depth: int = 4,
                 aug_noise: float = 0.05, steps: Sequence[int] = (300, 300, 500), batch_size: int = 1024,
                 lam: float = 50.0, eps_sq: float = 0.01, lr: Optional[float] = None, optimizer: str = "adam",
                 tau: float = 0.5, n_draws: int = 200, n_init: int = 4, cluster_eps_sq: Optional[float] = 0.1,
                 assign: str = "subspace", standardize: bool = True, random_state: Optional[int] = None,
                 verbose: bool = False, out_dir=None):
        self.n_clusters, self.z_dim, self.width, self.depth = n_clusters, z_dim, width, depth
        self.aug_noise, self.steps, self.batch_size, self.lam = aug_noise, steps, batch_size, lam
        self.eps_sq, self.lr, self.optimizer, self.tau, self.n_draws = eps_sq, lr, optimizer, tau, n_draws
        self.n_init, self.cluster_eps_sq, self.assign, self.standardize = n_init, cluster_eps_sq, assign, standardize
        self.random_state, self.verbose, self.out_dir = random_state, verbose, out_dir

    def _check_X(self, X, fitting: bool) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(X, dtype=np.float32))
        if x.dim() != 2 or x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(f"X must be a non-empty 2-D array [n_samples, n_features], got shape {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError("X contains NaN or infinite values")
        if not fitting:
            if not hasattr(self, "network_"):
                raise ValueError("this NMCE instance is not fitted yet: call fit(X) first")
            if x.shape[1] != self.n_features_in_:
                raise ValueError(f"X has {x.shape[1]} features, the model was fitted on {self.n_features_in_}")
            return (x - self.mean_) / self.scale_
        return x

    def fit(self, X, y=None):
        x = self._check_X(X, fitting=True)
        n, d = x.shape
        k = int(self.n_clusters)
        if k < 1:
            raise ValueError(f"n_clusters must be a positive integer, got {self.n_clusters!r}")
        if self.assign not in ("subspace", "head"):
            raise ValueError(f"assign must be 'subspace' or 'head', got {self.assign!r}")
        batch = min(int(self.batch_size), n)
        if k > batch:
            raise ValueError(f"n_clusters={k} is larger than the batch ({batch} points): every cluster needs points "
                             "in a batch for its coding rate; use fewer clusters or a larger batch/data set")
        seed = 0 if self.random_state is None else int(self.random_state)
        self.mean_, self.scale_ = feature_scaling(x, bool(self.standardize))
        x = (x - self.mean_) / self.scale_
        z_dim = self.z_dim or max(6, min(128, 4 * k))
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            net = ClusterNetwork(MLPBackbone(d, self.width, self.depth), z_dim, k, pre_feature=2 * self.width)
            lr = self.lr if self.lr is not None else default_lr(self.optimizer, batch)
            stages = three_stages(tuple(self.steps), lr=lr, lam=self.lam, restarts=int(self.n_init),
                                  cluster_eps_sq=self.cluster_eps_sq, optimizer=self.optimizer)
            config = NMCETrainConfig(stages=stages,
                                 eps_sq=self.eps_sq, tau=self.tau, batch_size=batch, seed=seed)
            trainer = NMCETrainer(net, GaussianNoise(self.aug_noise), config, out_dir=self.out_dir,
                                  progress=self.verbose)
            self.history_ = trainer.fit(x)
        self.network_, self.n_features_in_ = net, d
        z, logits = embed(net, x)
        self.subspaces_ = fit_subspaces(z, logits.argmax(1), k)
        self.embedding_, self.labels_ = z.numpy(), self._labels(z, logits)
        return self

    def _labels(self, z: torch.Tensor, logits: torch.Tensor) -> np.ndarray:
        return (nearest_subspace(z, *self.subspaces_) if self.assign == "subspace" else logits.argmax(1)).numpy()

    def transform(self, X) -> np.ndarray:
        """The embedding z (unit vectors, `[n, z_dim]`)."""
        x = self._check_X(X, fitting=False)
        return embed(self.network_, x)[0].numpy()

    def predict(self, X) -> np.ndarray:
        """The cluster of each row, as `labels_` were found (`assign`)."""
        x = self._check_X(X, fitting=False)
        return self._labels(*embed(self.network_, x))

    def predict_proba(self, X) -> np.ndarray:
        """Each row's posterior over clusters: the frequencies of `n_draws` Gumbel-max draws from the
        cluster head (`GumbelClusterKernel` through `samplers.sample`, one chain per row)."""
        x = self._check_X(X, fitting=False)
        self.network_.eval()
        kernel = GumbelClusterKernel(self.network_, hard=True)
        seed = 0 if self.random_state is None else int(self.random_state)
        # chains are data points with different posteriors: cross-chain R-hat and ESS warnings do not apply
        result = sample(kernel, x, num_draws=int(self.n_draws), seed=seed, progress=False, warn=False)
        return cluster_posterior(result.draws).numpy()

    def fit_predict(self, X, y=None, **kwargs) -> np.ndarray:
        return self.fit(X).labels_


__all__ = ["NMCE"]
