"""Annealed Langevin (eq. 3.8), its schedules and registration, the denoising jump (eq. 3.9) and inpainting.

Stationary variance of unadjusted Langevin at fixed T on E(x) = x^2 / (2 v): the update
x' = (1 - eps^2 / (2 v)) x + eps sqrt(T) z is an AR(1) process whose stationary variance solves
V = (1 - eps^2/(2v))^2 V + eps^2 T, i.e. V = T v / (1 - eps^2 / (4 v)) (not T v: the O(eps^2) bias).
"""
import configparser
import importlib
import math
from pathlib import Path

import pytest
import torch

from entropy_mcmc.ebm_training.annealed_langevin import ANNEALED_LANGEVIN, AnnealedLangevin
from entropy_mcmc.ebm_training.denoising import denoise_jump
from entropy_mcmc.ebm_training.energy_target import EnergyTarget
from entropy_mcmc.ebm_training.networks import GaussianEnergy, MLPEnergy
from entropy_mcmc.ebm_training.sampling import sample_ebm
from entropy_mcmc.ebm_training.schedules import make_schedule, thesis_shape
from entropy_mcmc.samplers import build_kernel, sample


def gaussian_target(dim=4, var=1.0):
    return EnergyTarget(GaussianEnergy(dim, var=var).double())


def test_one_step_is_eq_3_8():
    target = gaussian_target(3, var=0.7)
    temps = [100.0, 50.0, 25.0]
    kernel = AnnealedLangevin(target, step_size=0.05, schedule=temps, seed=0)
    x0 = torch.randn(6, 3, dtype=torch.float64)
    state = kernel.init(x0, step=1)
    gen_copy = torch.Generator().set_state(kernel.generator.get_state())
    new, info = kernel.step(state)
    z = torch.randn(x0.shape, generator=gen_copy, dtype=x0.dtype)
    grad = x0 / 0.7
    expected = x0 - 0.5 * 0.05 ** 2 * grad + 0.05 * math.sqrt(50.0) * z
    assert torch.allclose(new.position, expected, atol=1e-12)
    assert torch.equal(new.step, torch.full((6,), 2))
    assert torch.allclose(info.extras["temperature"], torch.full((6,), 50.0, dtype=torch.float64))
    assert torch.allclose(new.energy, (expected ** 2).sum(1) / 1.4)
    assert not kernel.is_calibrated


class NoiseScaledByT(AnnealedLangevin):
    """Broken: noise eps T z instead of eps sqrt(T) z."""

    def temperature(self, state):
        return super().temperature(state) ** 2


@pytest.mark.parametrize("kernel_cls,ok", [(AnnealedLangevin, True), (NoiseScaledByT, False)])
def test_constant_temperature_reaches_ula_stationary_variance(kernel_cls, ok):
    v, eps, temp, dim, chains = 1.0, 1.0, 4.0, 4, 2000
    kernel = kernel_cls(gaussian_target(dim, v), step_size=eps, schedule=temp, seed=1)
    res = sample(kernel, torch.zeros(chains, dim, dtype=torch.float64), num_draws=20, num_warmup=60, thin=5,
                 progress=False, warn=False)
    x = res.draws  # [chains, 20, dim]: draws 5 steps apart, autocorrelation 0.5^10 ~ 1e-3 between them
    expected = temp * v / (1 - eps ** 2 / (4 * v))
    n = x[:, :, :].numel()
    var = float(x.pow(2).mean())
    se = expected * math.sqrt(2 / n) * 1.1  # chi-square spread, inflated for the small lag correlation
    assert (abs(var - expected) < 5 * se) == ok, (var, expected, se)
    if ok:
        assert abs(var - temp * v) > 5 * se  # and the O(eps^2) bias is visible: not the target's T v


def test_runner_and_stepping_by_hand_agree_and_record_the_trace():
    torch.manual_seed(0)
    model = MLPEnergy(2, 8, 2).double()
    schedule = make_schedule("geometric", num_steps=30, t_max=10.0, t_min=1.0)
    x0 = torch.randn(5, 2, dtype=torch.float64)
    kernel = build_kernel("annealed-langevin", model, num_warmup=0, schedule="geometric", anneal_steps=30,
                          t_max=10.0)
    assert isinstance(kernel, AnnealedLangevin) and kernel.step_size == 0.02
    res = sample(kernel, x0, num_draws=30, progress=False, seed=3, warn=False)
    by_hand = AnnealedLangevin(model, 0.02, schedule)
    by_hand.reseed(3)
    state = by_hand.init(x0)
    for _ in range(30):
        state, _ = by_hand.step(state)
    assert torch.equal(state.position, res.final_state.position)
    assert torch.equal(res.final_state.step, torch.full((5,), 30))
    assert torch.allclose(res.stats["temperature"][0], schedule.values().to(torch.float64))
    assert res.stats["energy"].shape == (5, 30)


def test_refresh_after_weights_change():
    model = GaussianEnergy(2).double()
    kernel = AnnealedLangevin(model, schedule=1.0, seed=0)
    state = kernel.init(torch.ones(3, 2, dtype=torch.float64))
    with torch.no_grad():
        model.log_var.fill_(math.log(2.0))
    fresh = kernel.refresh(state)
    assert torch.allclose(fresh.energy, torch.full((3,), 0.5, dtype=torch.float64))
    assert torch.equal(fresh.step, state.step)


def test_registered_with_an_entry_point():
    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    line = dict(l.split(" = ") for l in cfg["options.entry_points"]["entropy_mcmc.kernels"].strip().splitlines())
    module, obj = line["annealed-langevin"].split(":")
    assert getattr(importlib.import_module(module), obj) is ANNEALED_LANGEVIN
    from entropy_mcmc.samplers import get_kernel_spec

    assert get_kernel_spec("annealed-langevin") is ANNEALED_LANGEVIN


def test_denoising_jump_is_tweedie_posterior_mean():
    """Data N(m, s^2 I) smoothed by sigma_0 has the energy |x - m|^2 / (2 (s^2 + sigma_0^2)); eq. 3.9 on it is
    E[x | x~] = m + s^2 / (s^2 + sigma_0^2) (x~ - m)."""
    s, sigma0, m = 0.4, 0.1, torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    model = GaussianEnergy(3, var=s * s + sigma0 ** 2).double()
    with torch.no_grad():
        model.mean.copy_(m)
    x_noisy = m + torch.randn(10, 3, dtype=torch.float64)
    tweedie = m + s * s / (s * s + sigma0 ** 2) * (x_noisy - m)
    assert torch.allclose(denoise_jump(model, x_noisy, sigma0), tweedie, atol=1e-14)
    assert not torch.allclose(denoise_jump(model, x_noisy, 2 * sigma0), tweedie, atol=1e-3)


def test_inpainting_clamps_known_pixels_with_matched_noise():
    dim, chains, temp, sigma0 = 16, 400, 9.0, 0.1
    torch.manual_seed(0)
    model = MLPEnergy(dim, 16, 2).double()
    mask = torch.zeros(dim, dtype=torch.bool)
    mask[::2] = True
    ref = torch.rand(chains, dim, dtype=torch.float64)
    kernel = AnnealedLangevin(model, 0.05, schedule=temp, sigma0=sigma0, mask=mask, reference=ref, seed=0)
    state = kernel.init(torch.randn(chains, dim, dtype=torch.float64))
    resid = []
    for _ in range(10):
        state, _ = kernel.step(state)
        resid.append((state.position - ref)[:, mask] / (math.sqrt(temp) * sigma0))
    r = torch.stack(resid)
    n = r.numel()
    assert abs(float(r.mean())) < 5 / math.sqrt(n)
    assert abs(float(r.var()) - 1) < 5 * math.sqrt(2 / n)
    # with a schedule that ends at T = 0 the known pixels end exactly on the reference; the unknown ones moved
    x0 = torch.randn(chains, dim, dtype=torch.float64)
    out = sample_ebm(model, chains, init=x0, schedule="thesis", anneal_steps=27, mask=mask, reference=ref,
                     dtype=torch.float64, progress=False, denoise=False)
    assert torch.equal(out.noisy[:, mask], ref[:, mask])
    assert not torch.allclose(out.noisy[:, ~mask], x0[:, ~mask])
    jumped = denoise_jump(model, out.noisy, sigma0, mask, ref)
    assert torch.equal(jumped[:, mask], ref[:, mask])


def test_bad_masks_and_schedules_are_refused():
    model = MLPEnergy(4, 8, 1)
    with pytest.raises(ValueError, match="mask must have the event shape"):
        AnnealedLangevin(model, mask=torch.ones(3, dtype=torch.bool), reference=torch.zeros(4))
    with pytest.raises(ValueError, match="both a mask"):
        AnnealedLangevin(model, mask=torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="at or above T=0"):
        make_schedule([10.0, 1.0, -0.5])
    with pytest.raises(ValueError, match="t_min"):
        make_schedule("linear", num_steps=10, t_max=10.0, t_min=-1.0)
    kernel = AnnealedLangevin(model, schedule=lambda i: 1.0 - i, seed=0)
    state = kernel.init(torch.zeros(2, 4))
    state, _ = kernel.step(state)
    with pytest.raises(ValueError, match="T=-1.0 at step 2"):
        kernel.step(kernel.step(state)[0])


def test_schedules():
    t = make_schedule("thesis", num_steps=2700, t_max=100.0).values()
    assert t.shape == (2700,) and t[0] == 100.0 and t[499] == 100.0 and t[-1] == 0.0
    assert (t[1:] <= t[:-1] + 1e-12).all()
    assert abs(float(t[2499]) - 1.0) < 0.01  # cooled to T_min before the final linear ramp
    assert torch.equal(t, thesis_shape(2700, 100.0))
    g = make_schedule("geometric", num_steps=11, t_max=100.0, t_min=1.0).values()
    assert torch.allclose(g, 100.0 * 0.01 ** (torch.arange(11, dtype=torch.float64) / 10))
    c = make_schedule("cosine", num_steps=5, t_max=10.0, t_min=0.0).values()
    assert c[0] == 10.0 and abs(float(c[-1])) < 1e-12 and abs(float(c[2]) - 5.0) < 1e-12
    lin = make_schedule("linear", num_steps=3, t_max=3.0, t_min=1.0)
    assert torch.equal(lin(torch.tensor([0, 1, 2, 50])), torch.tensor([3.0, 2.0, 1.0, 1.0], dtype=torch.float64))
    assert make_schedule(lambda i: 2.0 ** -i)(torch.tensor([3]))[0] == 0.125
