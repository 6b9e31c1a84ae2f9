"""Elastic net subspace clustering (the thesis' clustering of TCR features on COIL): exact optimality of each
self-expression on the whole dictionary, subspace preservation on a union of subspaces, and its errors."""
import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from entropy_mcmc.clustering.ensc import ensc_assign, self_expression


def union_of_subspaces(k=4, dim=3, ambient=20, per=50, seed=0):
    """Unit vectors on k random dim-dimensional subspaces of R^ambient (through the origin: no centres)."""
    g = torch.Generator().manual_seed(seed)
    bases = torch.linalg.qr(torch.randn(k, ambient, dim, generator=g, dtype=torch.float64))[0]
    truth = torch.arange(k * per) % k
    x = torch.einsum("nad,nd->na", bases[truth], torch.randn(k * per, dim, generator=g, dtype=torch.float64))
    return x / x.norm(dim=1, keepdim=True), truth


def kkt_violation(x, c, gamma, tau):
    """Largest violation of the optimality conditions of every row's elastic net over all other points:
    alpha X r = tau sign(c_i) + (1 - tau) c_i where c_i != 0, |alpha X r| <= tau where c_i = 0."""
    X, C = x.numpy(), c.toarray()
    gram = X @ X.T
    np.fill_diagonal(gram, 0.0)
    worst = 0.0
    for j in range(len(X)):
        grad = gamma / np.abs(gram[j]).max() * (X @ (X[j] - C[j] @ X))
        on = C[j] != 0
        off = ~on
        off[j] = False
        worst = max(worst, np.abs(grad[on] - tau * np.sign(C[j, on]) - (1 - tau) * C[j, on]).max(initial=0.0),
                    (np.abs(grad[off]) - tau).max())
    return worst


@pytest.mark.parametrize("tau", [1.0, 0.9])
def test_self_expression_is_optimal_on_the_whole_dictionary(tau):
    """Working sets of 5 atoms (of 199) must grow to the exact solution; stopping after the first working set
    (no growth) leaves atoms that violate the conditions, so the check sees a missing active-set step."""
    x, _ = union_of_subspaces()
    c = self_expression(x, gamma=50.0, tau=tau, support=5, max_nonzero=200)
    assert kkt_violation(x, c, 50.0, tau) < 1e-6
    assert c.diagonal().max() == 0 and c.min() < 0 < c.max()
    truncated = self_expression(x, gamma=50.0, tau=tau, support=2, max_nonzero=200, max_rounds=1)
    assert kkt_violation(x, truncated, 50.0, tau) > 1e-2


def test_ensc_separates_a_union_of_subspaces():
    """Independent subspaces: every coefficient links points of one subspace (subspace preservation), and the
    labels are exact, where k-means (no centres to find) is near chance."""
    x, truth = union_of_subspaces()
    c = self_expression(x).tocoo()
    assert c.nnz > 0 and bool((truth[c.row] == truth[c.col]).all())
    assert (np.diff(self_expression(x, max_nonzero=2).indptr) <= 2).all()
    assert adjusted_rand_score(truth, ensc_assign(x, 4)) == 1.0
    assert adjusted_rand_score(truth, KMeans(4, n_init=10, random_state=0).fit_predict(x.numpy())) < 0.3


def test_ensc_errors():
    x, _ = union_of_subspaces(per=5)
    with pytest.raises(ValueError, match="gamma"):
        self_expression(x, gamma=1.0)
    with pytest.raises(ValueError, match="tau"):
        self_expression(x, tau=0.0)
    with pytest.raises(ValueError, match="three points"):
        self_expression(x[:2])
    with pytest.raises(ValueError, match="n_clusters"):
        ensc_assign(x, 1)


def test_run_clustering_labels_by_ensc():
    """The thesis' COIL path: TCR only (stages 2 and 3 of zero steps), labels by EnSC of the features."""
    from entropy_mcmc.clustering import double_spiral, run_clustering

    metrics = run_clustering(double_spiral(64), steps=(3, 0, 0), n_init=1, width=16, batch_size=64, assign="ensc",
                             progress=False, figures=False)
    assert metrics["assign"] == "ensc" and set(metrics["by_assignment"]) == {"head", "subspace", "spectral", "ensc"}
    assert metrics["acc"] == metrics["by_assignment"]["ensc"]["acc"]
