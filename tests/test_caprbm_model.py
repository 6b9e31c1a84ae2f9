"""CAP-RBM model: energy, closed-form free energy, conditionals, rates and learning rules 2.5-2.8,
each against quadrature over phases (tests/rbm_exact.py) or finite differences, in float64."""
import math

import numpy as np
import pytest
import torch
from scipy import special, stats

from entropy_mcmc.ebm_training import CAPRBM
from entropy_mcmc.ebm_training.rbm import to_unit_modulus
from entropy_mcmc.ebm_training.rbm.circular import i1_over_i0, log_i0, sample_von_mises

from rbm_exact import configurations, hidden_given_visible, joint_table


def make_model(nv, nh, coupling=True, seed=0, scale=1.2):
    torch.manual_seed(seed)
    m = CAPRBM(nv, nh, coupling=coupling, dtype=torch.float64)
    with torch.no_grad():
        m.W.copy_(torch.polar(scale * (0.5 + torch.rand(nv, nh, dtype=torch.float64)),
                              2 * math.pi * torch.rand(nv, nh, dtype=torch.float64)))
        if coupling:
            m.J.copy_(torch.randn(nv, nh, dtype=torch.float64) * 0.7)
        m.visible_bias.copy_(torch.randn(nv, dtype=torch.float64) * 0.5 + 0.5)
        m.hidden_bias.copy_(torch.randn(nh, dtype=torch.float64) * 0.5 + 0.5)
    return m


def random_units(n, size, seed, p=0.6):
    g = torch.Generator().manual_seed(seed)
    on = (torch.rand(n, size, generator=g, dtype=torch.float64) < p).double()
    return torch.polar(on, 2 * math.pi * torch.rand(n, size, generator=g, dtype=torch.float64))


def polar_energy_derivatives(model, v, h):
    """dE/d(parameter) per state, with W in polar form W = b e^{i theta} (the terms of rules 2.5-2.8)."""
    b, th = model.W.detach().abs(), model.W.detach().angle()
    diff = th[None] + h.angle()[:, None, :] - v.angle()[:, :, None]
    amp = v.abs()[:, :, None] * h.abs()[:, None, :]
    return {"b": -amp * torch.cos(diff), "theta": amp * b * torch.sin(diff), "J": -amp,
            "visible_bias": v.abs(), "hidden_bias": h.abs()}


def cartesian_to_polar(grad_w, w):
    """dL/db and dL/dtheta from torch's complex gradient dL/dRe W + i dL/dIm W."""
    return {"b": (grad_w.conj() * w / w.abs()).real, "theta": (grad_w.conj() * 1j * w).real}


def test_energy_matches_eq_a5_by_loops():
    m = make_model(3, 2)
    v, h = random_units(4, 3, 1), random_units(4, 2, 2)
    e = m.energy(v, h).detach()
    W, J, a, b = (t.detach() for t in (m.W, m.J, m.visible_bias, m.hidden_bias))
    for n in range(4):
        ref = 0.0
        for j in range(3):
            for k in range(2):
                ref -= (v[n, j].conj() * W[j, k] * h[n, k]).real + J[j, k] * v[n, j].abs() * h[n, k].abs()
            ref += a[j] * v[n, j].abs()
        ref += sum(b[k] * h[n, k].abs() for k in range(2))
        assert float(e[n]) == pytest.approx(float(ref), abs=1e-12)


@pytest.mark.parametrize("coupling", [True, False])
def test_free_energy_matches_quadrature_over_hidden(coupling):
    m = make_model(3, 2, coupling=coupling)
    v = random_units(6, 3, 3)
    _, _, f_ref = hidden_given_visible(m, v)
    torch.testing.assert_close(m.free_energy(v).detach(), f_ref.detach(), atol=1e-10, rtol=0)


def test_hidden_and_visible_conditionals_match_quadrature():
    m = make_model(3, 2)
    v = random_units(5, 3, 4)
    h, p, _ = hidden_given_visible(m, v)
    p = p.detach()
    rate, prob = m.hidden_rates(v)
    torch.testing.assert_close(prob.detach(), p @ h.abs(), atol=1e-10, rtol=0)
    torch.testing.assert_close(torch.sigmoid(m.hidden_logits(v)).detach(), p @ h.abs(), atol=1e-10, rtol=0)
    torch.testing.assert_close(rate.detach(), p.to(h.dtype) @ h, atol=1e-10, rtol=0)
    # the phase given active is von Mises(alpha, a): its first two circular moments
    u, _ = m.hidden_input(v)
    u = u.detach()
    for k in range(2):
        on = h[:, k].abs() > 0.5
        pk = p[:, on] / p[:, on].sum(1, keepdim=True)
        for n in (1, 2):
            moment = pk.to(h.dtype) @ torch.exp(1j * n * h[on, k].angle())
            kappa = u[:, k].abs().numpy()
            ref = special.iv(n, kappa) / special.iv(0, kappa) * np.exp(1j * n * u[:, k].angle().numpy())
            np.testing.assert_allclose(moment.numpy(), ref, atol=1e-10)
    # visible given hidden, by the same quadrature over visible states
    hh = random_units(4, 2, 5)
    vz, log_w = configurations(3, 40)
    e = m.energy(vz.repeat(4, 1), hh.repeat_interleave(vz.shape[0], 0)).reshape(4, -1).detach()
    pv = torch.softmax(-e + log_w, 1)
    vrate, vprob = m.visible_rates(hh)
    torch.testing.assert_close(vprob.detach(), pv @ vz.abs(), atol=1e-10, rtol=0)
    torch.testing.assert_close(vrate.detach(), pv.to(vz.dtype) @ vz, atol=1e-10, rtol=0)


def test_rates_are_stable_for_large_inputs():
    m = make_model(4, 3, scale=1.0)
    with torch.no_grad():
        m.W.mul_(5000.0)
    v = random_units(8, 4, 6, p=1.0)
    rate, prob = m.hidden_rates(v)
    assert torch.isfinite(rate).all() and torch.isfinite(prob).all()
    u, _ = m.hidden_input(v)
    # for a -> inf: P -> 1, I1/I0 -> 1 - 1/(2a)
    np.testing.assert_allclose(prob.detach().numpy(), 1.0, atol=1e-12)
    np.testing.assert_allclose(rate.abs().detach().numpy(), 1 - 1 / (2 * u.abs().detach().numpy()), rtol=1e-6)
    assert torch.isfinite(log_i0(torch.tensor([0.0, 1e-8, 1e4, 1e8], dtype=torch.float64))).all()
    assert float(log_i0(torch.tensor(1e4, dtype=torch.float64))) == pytest.approx(
        1e4 - 0.5 * math.log(2 * math.pi * 1e4) + 1 / 8e4, rel=1e-12)
    assert float(i1_over_i0(torch.tensor(0.0))) == 0.0


def test_free_energy_grad_matches_autograd_and_finite_differences():
    m = make_model(3, 4)
    v = random_units(7, 3, 7)
    grads = m.free_energy_grad(v)
    m.zero_grad()
    m.free_energy(v).mean().backward()
    for name, p in m.named_parameters():
        torch.testing.assert_close(grads[name].detach(), p.grad, atol=1e-12, rtol=0)
    # central finite differences on the real and imaginary parts of W and on J
    eps = 1e-6
    with torch.no_grad():
        for j, k in [(0, 0), (2, 3), (1, 2)]:
            for unit, take in ((1.0, lambda g: g.real), (1j, lambda g: g.imag)):
                m.W[j, k] += eps * unit
                fp = m.free_energy(v).mean()
                m.W[j, k] -= 2 * eps * unit
                fm = m.free_energy(v).mean()
                m.W[j, k] += eps * unit
                assert float(take(grads["W"][j, k])) == pytest.approx(float((fp - fm) / (2 * eps)), abs=1e-8)
            m.J[j, k] += eps
            fp = m.free_energy(v).mean()
            m.J[j, k] -= 2 * eps
            fm = m.free_energy(v).mean()
            m.J[j, k] += eps
            assert float(grads["J"][j, k]) == pytest.approx(float((fp - fm) / (2 * eps)), abs=1e-8)


def test_free_energy_grad_is_the_data_term_of_rules_2_5_to_2_8():
    """dF(v)/d(b, theta, J, a, b_h) = <dE/d.>_{p(h|v)}, with p(h|v) by quadrature and dE/d. written in
    the polar form of rules 2.5-2.8."""
    m = make_model(3, 2)
    v = random_units(5, 3, 8)
    h, p, _ = hidden_given_visible(m, v)
    p = p.detach()
    grads = {k: g.detach() for k, g in m.free_energy_grad(v).items()}
    polar = cartesian_to_polar(grads["W"], m.W.detach())
    n, P = v.shape[0], h.shape[0]
    d = polar_energy_derivatives(m, v.repeat_interleave(P, 0), h.repeat(n, 1))
    w = (p / n).reshape(-1)
    expect = {k: torch.einsum("p,p...->...", w, t) for k, t in d.items()}
    torch.testing.assert_close(polar["b"], expect["b"], atol=1e-10, rtol=0)
    torch.testing.assert_close(polar["theta"], expect["theta"], atol=1e-10, rtol=0)
    torch.testing.assert_close(grads["J"], expect["J"], atol=1e-10, rtol=0)
    torch.testing.assert_close(grads["visible_bias"], expect["visible_bias"], atol=1e-10, rtol=0)
    torch.testing.assert_close(grads["hidden_bias"], expect["hidden_bias"], atol=1e-10, rtol=0)


def test_rules_2_5_to_2_8_are_the_likelihood_gradient():
    """On a 2x2 model the exact negative log-likelihood (log Z by quadrature over all units) has
    finite-difference derivatives in (b_jk, theta_jk, J_jk, a_j, b_k) equal to minus the thesis'
    rules: <dE/d.>_data - <dE/d.>_model, with both averages by quadrature."""
    m = make_model(2, 2)
    v_data = random_units(6, 2, 9, p=0.7)

    def nll():
        _, _, _, log_z = joint_table(m, n_grid=40)
        return float(m.free_energy(v_data).mean() + log_z)

    with torch.no_grad():
        vj, hj, pj, _ = joint_table(m, n_grid=40)
        model_term = {k: torch.einsum("p,p...->...", pj, t) for k, t in polar_energy_derivatives(m, vj, hj).items()}
        hd, pd, _ = hidden_given_visible(m, v_data, n_grid=40)
        n, P = v_data.shape[0], hd.shape[0]
        dd = polar_energy_derivatives(m, v_data.repeat_interleave(P, 0), hd.repeat(n, 1))
        data_term = {k: torch.einsum("p,p...->...", (pd / n).reshape(-1), t) for k, t in dd.items()}
        # the thesis' rules give the update direction -dG; the NLL gradient is its negative
        rule = {k: -(data_term[k] - model_term[k]) for k in data_term}
        grad_nll = {k: -r for k, r in rule.items()}
        eps = 1e-5
        b, th = m.W.abs().clone(), m.W.angle().clone()

        def set_w(bb, tt):
            m.W.copy_(torch.polar(bb, tt))

        for j, k in [(0, 0), (0, 1), (1, 0), (1, 1)]:
            for name, base in (("b", b), ("theta", th)):
                up, dn = base.clone(), base.clone()
                up[j, k] += eps
                dn[j, k] -= eps
                set_w(up if name == "b" else b, up if name == "theta" else th)
                fp = nll()
                set_w(dn if name == "b" else b, dn if name == "theta" else th)
                fm = nll()
                set_w(b, th)
                assert grad_nll[name][j, k] == pytest.approx((fp - fm) / (2 * eps), abs=1e-7), (name, j, k)
            m.J[j, k] += eps
            fp = nll()
            m.J[j, k] -= 2 * eps
            fm = nll()
            m.J[j, k] += eps
            assert grad_nll["J"][j, k] == pytest.approx((fp - fm) / (2 * eps), abs=1e-7)
        for name, param in (("visible_bias", m.visible_bias), ("hidden_bias", m.hidden_bias)):
            for j in range(2):
                param[j] += eps
                fp = nll()
                param[j] -= 2 * eps
                fm = nll()
                param[j] += eps
                assert grad_nll[name][j] == pytest.approx((fp - fm) / (2 * eps), abs=1e-7)
        # and the library's closed-form data term minus the quadrature model term is the same gradient
        lib = {k: g for k, g in m.free_energy_grad(v_data).items()}
        polar = cartesian_to_polar(lib["W"], m.W)
        torch.testing.assert_close(polar["b"] - model_term["b"], grad_nll["b"], atol=1e-9, rtol=0)
        torch.testing.assert_close(polar["theta"] - model_term["theta"], grad_nll["theta"], atol=1e-9, rtol=0)
        torch.testing.assert_close(lib["J"] - model_term["J"], grad_nll["J"], atol=1e-9, rtol=0)


@pytest.mark.parametrize("kappa", [0.0, 0.3, 2.0, 30.0, 3000.0])
def test_von_mises_sampler_moments(kappa):
    n = 40000
    g = torch.Generator().manual_seed(int(kappa * 10) + 1)
    loc = torch.full((n,), 1.0, dtype=torch.float32)
    x = sample_von_mises(loc, torch.full((n,), kappa, dtype=torch.float32), g).double()
    assert x.dtype == torch.float64 and bool(((x >= -math.pi) & (x < math.pi)).all())
    for order in (1, 2):
        z = torch.exp(1j * order * (x - 1.0))
        ref = special.ive(order, kappa) / special.ive(0, kappa) if kappa > 0 else 0.0
        for part, target in ((z.real, ref), (z.imag, 0.0)):
            se = float(part.std()) / math.sqrt(n) + 1e-12
            assert abs(float(part.mean()) - target) / se < 4.5 or abs(float(part.mean()) - target) < 1e-6


def test_von_mises_sampler_distribution_ks():
    g = torch.Generator().manual_seed(5)
    x = sample_von_mises(torch.zeros(20000, dtype=torch.float64), torch.full((20000,), 2.0, dtype=torch.float64), g)
    assert stats.kstest(x.numpy(), stats.vonmises(2.0).cdf).pvalue > 1e-3


def test_float32_model_and_parameters():
    m = CAPRBM(6, 4)
    assert m.W.dtype == torch.complex64 and m.J.dtype == torch.float32 and isinstance(m.J, torch.nn.Parameter)
    m0 = CAPRBM(6, 4, coupling=False)
    assert "J" not in dict(m0.named_parameters()) and float(m0.J.abs().sum()) == 0.0
    assert set(m0.free_energy_grad(random_units(3, 6, 1).to(torch.complex64))) == {"W", "visible_bias",
                                                                                     "hidden_bias"}
    g = torch.Generator().manual_seed(0)
    v = m.random_visible(5, g)
    assert v.dtype == torch.complex64 and m.energy(v, m.sample_hidden(v, g)).shape == (5,)


def test_clear_errors_for_bad_units():
    m = CAPRBM(4, 3)
    with pytest.raises(TypeError, match="complex"):
        m.free_energy(torch.ones(2, 4))
    with pytest.raises(ValueError, match="modulus 0 or 1"):
        m.free_energy(0.5 * torch.ones(2, 4, dtype=torch.complex64))
    with pytest.raises(ValueError, match=r"shape \[batch, 4\]"):
        m.free_energy(torch.ones(2, 5, dtype=torch.complex64))
    with pytest.raises(ValueError, match="same batch size"):
        m.energy(torch.ones(2, 4, dtype=torch.complex64), torch.ones(3, 3, dtype=torch.complex64))
    with pytest.raises(ValueError, match="positive integer"):
        CAPRBM(0, 3)
    x = torch.tensor([[0.1 + 0.0j, 0.0 + 2.0j, -0.5 + 0.0j, 0.0j]])
    units = to_unit_modulus(x, threshold=0.15)
    torch.testing.assert_close(units, torch.tensor([[0.0j, 1.0j, -1.0 + 0.0j, 0.0j]]))
    m.free_energy(units)


def test_dtype_moves_keep_the_complex_weights_complex_and_their_imaginary_part():
    model = CAPRBM(5, 3, seed=1)
    with torch.no_grad():
        model.J.copy_(0.1 * torch.randn(5, 3))
    w0, names = model.W.detach().clone(), [n for n, _ in model.named_parameters()]
    gen = torch.Generator().manual_seed(0)
    v = torch.exp(1j * torch.rand(4, 5, dtype=torch.float64, generator=gen))
    h = torch.exp(1j * torch.rand(4, 3, dtype=torch.float64, generator=gen))
    e32 = model.energy(v.to(torch.complex64), h.to(torch.complex64))
    for move in (lambda m: m.double(), lambda m: m.float().to(torch.float64)):
        move(model)
        assert model.W.dtype == torch.complex128 and model.J.dtype == torch.float64
        torch.testing.assert_close(model.W.detach(), w0.to(torch.complex128))  # imaginary part kept
        torch.testing.assert_close(model.energy(v, h), e32.double(), rtol=1e-5, atol=1e-6)
    model.float()
    assert model.W.dtype == torch.complex64 and torch.equal(model.W.detach(), w0)
    assert [n for n, _ in model.named_parameters()] == names
    with pytest.raises(TypeError, match="float32 or float64"):
        model.half()
