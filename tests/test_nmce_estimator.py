"""The scikit-learn-shaped NMCE estimator: fit/predict/transform/predict_proba/fit_predict and its errors."""
import warnings

import numpy as np
import pytest
import torch

from entropy_mcmc.clustering import NMCE, clustering_accuracy


def blobs(n=120, seed=0):
    g = np.random.default_rng(seed)
    centres = np.array([[8.0, 0.0, 0.0], [-8.0, 0.0, 0.0]])
    y = np.arange(n) % 2
    return centres[y] + 0.5 * g.standard_normal((n, 3)), y


# standardized, the two noise features span as much as the blobs' separation: 200 steps find the blobs, 60 did not
SMALL = dict(n_clusters=2, width=32, depth=2, steps=(100, 50, 50), batch_size=64, random_state=0)


@pytest.fixture(scope="module")
def fitted():
    torch.set_num_threads(1)
    X, y = blobs()
    return NMCE(**SMALL).fit(X), X, y


def test_fit_predict_transform_proba(fitted):
    model, X, y = fitted
    assert model.labels_.shape == (120,) and model.n_features_in_ == 3
    assert clustering_accuracy(y, model.labels_) == 1.0   # two blobs 16 standard deviations apart
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    z = model.transform(X)
    assert z.shape == (120, model.network_.z_dim)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")     # no cross-chain convergence warnings: each chain is its own point
        proba = model.predict_proba(X)
    assert proba.shape == (120, 2)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    # the sampler's frequencies estimate softmax(logits) within MCSE (200 independent draws)
    with torch.no_grad():
        p = torch.softmax(model.network_(torch.as_tensor((X - model.mean_.numpy()) / model.scale_.numpy(),
                                                         dtype=torch.float32))[1], 1).numpy()
    se = np.sqrt(p * (1 - p) / model.n_draws)
    assert np.all(np.abs(proba - p) <= 5 * se + 1e-9)
    assert len(model.history_) > 0


def test_labels_by_subspace_or_head(fitted):
    """The default labels are the nearest of the fitted subspaces, `assign='head'` gives the head's argmax; on
    points far from the data (uniform in a box) the two differ, so each check sees which rule `predict` used."""
    model, X, _ = fitted
    assert model.assign == "subspace"
    bases, valid = model.subspaces_
    far = np.random.default_rng(1).uniform(-12, 12, (400, 3))

    def nearest(rows):
        z = torch.as_tensor(model.transform(rows))
        energy = torch.stack([(z @ b.T).pow(2).sum(1) if ok else torch.full((len(z),), -1.0)
                              for b, ok in zip(bases, valid)], 1)
        return energy.argmax(1).numpy()

    def head(rows):
        with torch.no_grad():
            x = torch.as_tensor((rows - model.mean_.numpy()) / model.scale_.numpy(), dtype=torch.float32)
            return model.network_(x)[1].argmax(1).numpy()

    np.testing.assert_array_equal(model.labels_, nearest(X))
    np.testing.assert_array_equal(model.predict(far), nearest(far))
    assert (nearest(far) != head(far)).any()
    model.set_params(assign="head")
    try:
        np.testing.assert_array_equal(model.predict(far), head(far))
    finally:
        model.set_params(assign="subspace")
    with pytest.raises(ValueError, match="assign"):
        NMCE(n_clusters=2, assign="spectral").fit(X)


def test_each_feature_is_standardized(fitted):
    model, X, _ = fitted
    np.testing.assert_allclose(model.mean_.numpy(), X.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.scale_.numpy(), X.std(0), rtol=1e-4)
    one = NMCE(n_clusters=2, width=8, depth=1, steps=(1, 0, 0), n_init=1, standardize=False).fit(X)
    rms = np.sqrt(((X - X.mean(0)) ** 2).mean())
    np.testing.assert_allclose(one.scale_.numpy(), np.full(3, rms), rtol=1e-4)


def test_a_feature_in_large_units_does_not_drown_the_clusters():
    """Two blobs apart along a feature in units of 1 and noise in units of 1000 along another: standardized,
    the blobs are clusters; under one global scale they are 0.03 apart, below the augmentation's noise."""
    X, y = blobs()
    X[:, 1] = 1000 * np.random.default_rng(1).standard_normal(len(X))
    assert clustering_accuracy(y, NMCE(**SMALL).fit_predict(X)) == 1.0
    assert clustering_accuracy(y, NMCE(standardize=False, **SMALL).fit_predict(X)) < 0.9


def test_fit_predict_is_reproducible(fitted):
    model, X, _ = fitted
    again = NMCE(**SMALL).fit_predict(X)
    np.testing.assert_array_equal(again, model.labels_)
    assert model.get_params()["n_clusters"] == 2


def test_errors(fitted):
    model, X, _ = fitted
    with pytest.raises(ValueError, match="larger than the batch"):
        NMCE(n_clusters=50, batch_size=32).fit(X)
    with pytest.raises(ValueError, match="not fitted"):
        NMCE().predict(X)
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:, :2])
    with pytest.raises(ValueError, match="NaN"):
        NMCE(n_clusters=2).fit(np.full((4, 2), np.nan))
    with pytest.raises(ValueError, match="2-D"):
        NMCE(n_clusters=2).fit(np.ones(5))
