"""Bernoulli RBM: free energy and pseudo-likelihood by enumeration, block Gibbs exactness (and a broken
variant), training that lowers the exact NLL, and the scikit-learn estimator shape."""
import itertools

import numpy as np
import pytest
import torch

from entropy_mcmc.diagnostics import mcse
from entropy_mcmc.ebm_training import RBM, BernoulliRBM
from entropy_mcmc.ebm_training.rbm import BernoulliGibbs
from entropy_mcmc.ebm_training.rbm.training import RBMTrainConfig, Trainer, train_rbm
from entropy_mcmc.samplers import build_kernel, sample

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def all_states(n):
    return torch.tensor(list(itertools.product((0.0, 1.0), repeat=n)), dtype=torch.float64)


def small_rbm(nv=4, nh=3, seed=0, scale=1.5):
    torch.manual_seed(seed)
    m = RBM(nv, nh, dtype=torch.float64)
    with torch.no_grad():
        m.W.copy_(scale * torch.randn(nv, nh, dtype=torch.float64))
        m.visible_bias.copy_(torch.randn(nv, dtype=torch.float64) * 0.5)
        m.hidden_bias.copy_(torch.randn(nh, dtype=torch.float64) * 0.5)
    return m


def exact_visible_marginal(m):
    v, h = all_states(m.num_visible), all_states(m.num_hidden)
    e = m.energy(v.repeat_interleave(len(h), 0), h.repeat(len(v), 1)).reshape(len(v), len(h)).detach()
    p = torch.softmax(-e.reshape(-1), 0).reshape(len(v), len(h))
    return v, h, p


def test_free_energy_and_pseudo_likelihood_by_enumeration():
    m = small_rbm()
    v, h, p_joint = exact_visible_marginal(m)
    e = m.energy(v.repeat_interleave(len(h), 0), h.repeat(len(v), 1)).reshape(len(v), len(h)).detach()
    torch.testing.assert_close(m.free_energy(v).detach(), -torch.logsumexp(-e, 1))
    pv = p_joint.sum(1)
    pl = torch.zeros(len(v), dtype=torch.float64)
    index = {tuple(x.tolist()): i for i, x in enumerate(v)}
    for i, x in enumerate(v):
        for bit in range(m.num_visible):
            y = x.clone()
            y[bit] = 1 - y[bit]
            pl[i] += torch.log(pv[i] / (pv[i] + pv[index[tuple(y.tolist())]]))
    torch.testing.assert_close(m.pseudo_log_likelihood(v).detach(), pl)
    grads = m.free_energy_grad(v)
    m.zero_grad()
    m.free_energy(v).mean().backward()
    for name, param in m.named_parameters():
        torch.testing.assert_close(grads[name].detach(), param.grad)


class WrongVisibleConditional(RBM):
    """Broken: the visible conditional forgets its bias."""

    def visible_probs(self, h):
        return torch.sigmoid(h @ self.W.transpose(0, 1))


@pytest.mark.parametrize("broken", [False, True])
def test_gibbs_matches_enumeration_and_broken_variant_fails(broken):
    m = small_rbm()
    if broken:
        b = WrongVisibleConditional(4, 3, dtype=torch.float64)
        b.load_state_dict(m.state_dict())
        m = b
    v, h, p = exact_visible_marginal(m)
    exact = torch.cat([p.sum(1) @ v, p.sum(0) @ h]).numpy()
    kernel = build_kernel("bernoulli-gibbs", m, num_warmup=0)
    res = sample(kernel, torch.zeros(500, 4, dtype=torch.float64), num_draws=400, num_warmup=50, seed=1, warn=False,
                 progress=False)
    x = torch.cat([res.samples["visible"], res.samples["hidden"]], -1).numpy()
    z = np.abs(x.mean((0, 1)) - exact) / mcse(x)
    assert (z.max() > 15) if broken else (z.max() < 4.5), np.round(z, 2)


def test_cd_and_pcd_training_lower_the_exact_nll():
    teacher = small_rbm(5, 3, seed=1, scale=2.5)
    v, _, p = exact_visible_marginal(teacher)
    pv = p.sum(1)
    g = torch.Generator().manual_seed(0)
    data = v[torch.multinomial(pv, 3000, replacement=True, generator=g)]
    entropy = float(-(pv * pv.log()).sum())
    for persistent in (False, True):
        student = RBM(5, 3, dtype=torch.float64, seed=2)

        def nll(model):
            _, _, q = exact_visible_marginal(model)
            return float(-(pv * q.sum(1).log()).sum())

        before = nll(student)
        train_rbm(student, data, epochs=15, batch_size=50, learning_rate=0.1, momentum=0.5, cd_k=1,
                  persistent=persistent, progress=False)
        after = nll(student)
        # from ~log(32) = 3.47 nats to within 0.15 nats of the data entropy (a CD sign error would climb instead)
        assert after < before - 0.3 and after - entropy < 0.15, (before, after, entropy)


def test_pcd_resume_is_bitwise(tmp_path):
    data = (torch.rand(200, 6, generator=torch.Generator().manual_seed(0)) < 0.4).double()
    cfg = dict(epochs=2, batch_size=20, learning_rate=0.05, momentum=0.5, persistent=True, progress=False, seed=3)
    straight = RBM(6, 4, dtype=torch.float64, seed=0)
    train_rbm(straight, data, **cfg)
    first = RBM(6, 4, dtype=torch.float64, seed=0)
    ck = tmp_path / "rbm.pt"
    t = Trainer(first, RBMTrainConfig(**{**cfg, "epochs": 1}))
    t.fit(data, checkpoint=ck)
    resumed = Trainer.load(ck, epochs=2)
    resumed.fit(data)
    for a, b in zip(straight.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_estimator_shape_and_exact_pseudo_likelihood_against_sklearn():
    sk = pytest.importorskip("sklearn.neural_network")
    from sklearn.datasets import load_digits

    X = load_digits().data[:300] / 16.0
    rbm = BernoulliRBM(n_components=20, learning_rate=0.05, batch_size=10, n_iter=2, random_state=0,
                       dtype=np.float64).fit(X)
    assert rbm.components_.shape == (20, 64) and rbm.intercept_hidden_.shape == (20,)
    assert rbm.intercept_visible_.shape == (64,) and rbm.h_samples_.shape == (10, 20)
    assert rbm.transform(X).shape == (300, 20) and rbm.gibbs(X[:5]).dtype == bool
    ours = rbm.score_samples(X[:50])
    # scikit-learn's score_samples on the same parameters is a one-bit unbiased estimate of the exact value
    ref = sk.BernoulliRBM(n_components=20)
    ref.components_, ref.intercept_hidden_ = rbm.components_, rbm.intercept_hidden_
    ref.intercept_visible_ = rbm.intercept_visible_
    reps = []
    for seed in range(300):
        ref.random_state_ = np.random.RandomState(seed)
        reps.append(ref.score_samples(X[:50]))
    reps = np.array(reps)
    se = reps.std(0) / np.sqrt(len(reps))
    assert (np.abs(reps.mean(0) - ours) / se).max() < 4.5
    with pytest.raises(ValueError, match="features"):
        rbm.transform(X[:, :10])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        BernoulliRBM().fit(X * 16)
    with pytest.raises(ValueError, match="not fitted"):
        BernoulliRBM().transform(X)


def test_kernel_checks():
    m = RBM(4, 3)
    with pytest.raises(TypeError, match="Bernoulli RBM"):
        BernoulliGibbs(object())
    with pytest.raises(TypeError, match="real"):
        BernoulliGibbs(m).init(torch.ones(2, 4, dtype=torch.complex64))
