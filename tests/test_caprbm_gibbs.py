"""CAP-RBM block Gibbs kernel through the common runner: exactness on a 2x2 model against quadrature
(and a variant without the log I0 term that fails the same test), clamping, records, diagnostics."""
import numpy as np
import pytest
import torch

from entropy_mcmc.diagnostics import mcse
from entropy_mcmc.diagnostics.circular import circular_summary
from entropy_mcmc.ebm_training import CAPRBM
from entropy_mcmc.ebm_training.rbm import CAPRBMGibbs
from entropy_mcmc.samplers import build_kernel, sample

from rbm_exact import joint_table
from test_caprbm_model import make_model

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class CAPRBMWithoutI0(CAPRBM):
    """The broken variant: the amplitude logit loses log I0(|u|) (eq. A.3 without the phase integral)."""

    @staticmethod
    def _activation_logit(u, mu, bias):
        return mu - bias


def invariant_statistics(v, h):
    """Statistics invariant under a global phase shift, `[..., 20]` real: P(active) of the 4 units and
    Re/Im of v_j conj(h_k), v_1 conj(v_2), h_1 conj(h_2) (relative-phase circular moments)."""
    products = [v[..., j] * h[..., k].conj() for j in range(2) for k in range(2)]
    products += [v[..., 0] * v[..., 1].conj(), h[..., 0] * h[..., 1].conj()]
    c = torch.stack(products, -1)
    return torch.cat([v.abs(), h.abs(), c.real, c.imag], -1)


def z_scores(model, chains=1000, draws=500, seed=0):
    with torch.no_grad():
        vj, hj, pj, _ = joint_table(model, n_grid=48)
        exact = (pj[:, None] * invariant_statistics(vj, hj)).sum(0).numpy()
    kernel = build_kernel("caprbm-gibbs", model, num_warmup=0)
    init = model.random_visible(chains, torch.Generator().manual_seed(seed))
    res = sample(kernel, init, num_draws=draws, num_warmup=50, seed=seed + 1, progress=False, warn=False)
    v, h = res.samples["visible"], res.samples["hidden"]
    x = invariant_statistics(v, h).numpy()
    z = np.abs(x.mean((0, 1)) - exact) / mcse(x)
    # single-unit circular moments vanish by the global phase symmetry
    single = torch.cat([v, h], -1)
    parts = np.concatenate([single.real.numpy(), single.imag.numpy()], -1)
    z_single = np.abs(parts.mean((0, 1))) / mcse(parts)
    return np.concatenate([z, z_single])


def test_gibbs_marginals_match_the_exact_joint():
    z = z_scores(make_model(2, 2, scale=1.5))
    assert z.max() < 4.5, np.round(z, 2)


def test_gibbs_without_log_i0_fails_the_same_test():
    exact = make_model(2, 2, scale=1.5)
    broken = CAPRBMWithoutI0(2, 2, dtype=torch.float64)
    broken.load_state_dict(exact.state_dict())
    # the joint table uses only the energy, identical for both, so the reference is the true one
    assert z_scores(broken).max() > 20


def test_runner_records_and_arviz_variables():
    m = CAPRBM(6, 4, seed=1, init_scale=0.5)
    kernel = build_kernel("caprbm-gibbs", m, num_warmup=0)
    init = m.random_visible(8, torch.Generator().manual_seed(0))
    res = sample(kernel, init, num_draws=30, seed=2, progress=False)
    assert res.samples["visible"].shape == (8, 30, 6) and res.samples["hidden"].shape == (8, 30, 4)
    assert res.samples["visible"].dtype == torch.complex64
    mod = res.samples["visible"].abs()
    assert bool(((mod - 1).abs() < 1e-5).logical_or(mod == 0).all())
    assert float(res.stats["acceptance_prob"].min()) == 1.0
    e = res.stats["energy"]
    s = res.final_state
    torch.testing.assert_close(e[:, -1], m.energy(s.visible, s.hidden).detach())
    idata = res.to_arviz()
    for name, size in (("visible", 6), ("hidden", 4)):
        for part in ("amplitude", "phase"):
            assert idata.posterior[f"{name}_{part}"].shape == (8, 30, size)
    # same seed, same draws
    res2 = sample(kernel, init, num_draws=30, seed=2, progress=False)
    assert torch.equal(res.samples["hidden"], res2.samples["hidden"])


def test_clamped_visible_draws_hidden_from_its_conditional():
    m = make_model(3, 5, scale=1.0)
    v0 = torch.polar(torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64), torch.tensor([0.3, 0.0, -2.0],
                                                                                       dtype=torch.float64))
    init = v0.expand(400, 3).clone()
    kernel = CAPRBMGibbs(m, clamp_visible=True)
    res = sample(kernel, init, num_draws=200, seed=3, progress=False, warn=False)
    assert torch.equal(res.samples["visible"], init[:, None].expand(400, 200, 3))
    rate, prob = m.hidden_rates(v0[None])
    h = res.samples["hidden"]
    for est, ref in ((h.abs(), prob), (h.real, rate.real), (h.imag, rate.imag)):
        x = est.numpy()
        z = np.abs(x.mean((0, 1)) - ref.detach().numpy()[0]) / mcse(x)
        assert z.max() < 4.5
    # the circular summary of the clamped hidden draws: mean phase is the input phase
    summary = circular_summary(h)
    u, _ = m.hidden_input(v0[None])
    err = np.angle(np.exp(1j * (summary["mean_phase"].to_numpy() - u.detach().angle().numpy()[0])))
    assert np.abs(err).max() < 0.1
    assert (summary["ess_cos"] > 1000).all() and summary["p_active"].between(0, 1).all()


def test_kernel_errors():
    m = CAPRBM(4, 3)
    with pytest.raises(TypeError, match="CAPRBM"):
        CAPRBMGibbs(torch.nn.Linear(2, 2))
    kernel = CAPRBMGibbs(m)
    with pytest.raises(ValueError, match=r"shape \[batch, 4\]"):
        kernel.init(torch.ones(2, 5, dtype=torch.complex64))
    with pytest.raises(TypeError, match="complex"):
        kernel.init(torch.ones(2, 4))


def test_kernels_are_registered_and_declared_as_entry_points():
    import configparser
    import importlib
    from pathlib import Path

    from entropy_mcmc.samplers import get_kernel_spec

    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    lines = [ln.strip() for ln in cfg["options.entry_points"]["entropy_mcmc.kernels"].strip().splitlines()]
    declared = dict(ln.split(" = ") for ln in lines)
    for name in ("caprbm-gibbs", "bernoulli-gibbs"):
        module, obj = declared[name].split(":")
        assert getattr(importlib.import_module(module), obj) is get_kernel_spec(name)
    with pytest.raises(TypeError, match="CAPRBM"):
        build_kernel("caprbm-gibbs", torch.nn.Linear(2, 2), num_warmup=0)
    assert isinstance(build_kernel("caprbm-gibbs", CAPRBM(3, 2), num_warmup=0, clamp_visible=True), CAPRBMGibbs)


def test_circular_summary_on_known_draws():
    rng = np.random.default_rng(0)
    chains, draws = 4, 500
    on = rng.random((chains, draws)) < 0.3
    z = np.stack([np.exp(1j * 0.7) * np.ones((chains, draws)),                  # always on, fixed phase
                  on * np.exp(1j * rng.vonmises(-2.0, 4.0, (chains, draws))),   # 30% on, von Mises(-2, 4)
                  np.zeros((chains, draws))], -1)                                # never on
    s = circular_summary(torch.as_tensor(z))
    assert s.loc[0, "p_active"] == 1.0 and s.loc[0, "mean_phase"] == pytest.approx(0.7)
    assert s.loc[0, "resultant"] == pytest.approx(1.0) and s.loc[0, "circular_spread"] == pytest.approx(0, abs=1e-6)
    from scipy import special

    assert abs(s.loc[1, "p_active"] - 0.3) < 0.03 and abs(s.loc[1, "mean_phase"] + 2.0) < 0.08
    assert abs(s.loc[1, "resultant"] - special.i1(4.0) / special.i0(4.0)) < 0.03
    assert s.loc[1, "ess_cos"] > 1000 and np.isnan(s.loc[2, "mean_phase"]) and s.loc[2, "p_active"] == 0
    with pytest.raises(TypeError, match="complex"):
        circular_summary(np.ones((2, 3, 4)))
