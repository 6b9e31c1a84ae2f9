"""Pyro models as chain-vectorized targets: exact energies, the Jacobian, errors for models that do not vectorize."""
import math
import re
import warnings

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from entropy_mcmc.pyro import (PyroTarget, SiteLayout, blr_target, eight_schools_model, hierarchical_normal_data,
                               hierarchical_normal_model, load_blr_data, logistic_regression_model,
                               target_from_model)
from entropy_mcmc.pyro.models import EIGHT_SCHOOLS_SIGMA, EIGHT_SCHOOLS_Y
from entropy_mcmc.pyro.target import SequentialFallbackWarning
from entropy_mcmc.samplers import HMCKernel, StepSizeAdaptation, sample
from entropy_mcmc.targets import LogisticRegression

pytestmark = pytest.mark.usefixtures("one_thread")


def eight_schools():
    sigma = torch.tensor(EIGHT_SCHOOLS_SIGMA, dtype=torch.float64)
    return PyroTarget(eight_schools_model, (sigma, torch.tensor(EIGHT_SCHOOLS_Y, dtype=torch.float64)))


@pytest.mark.parametrize("name", ["german", "australian", "heart"])
def test_blr_potential_equals_native_energy_up_to_a_constant(name):
    target, native = blr_target(name), LogisticRegression.from_dataset(name)
    assert target.dim == native.dim
    w = 0.5 * torch.randn(16, native.dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    u, g = target.energy_and_grad(w)
    u_nat, g_nat = native.energy_and_grad(w)
    # the N(0, I) prior's normalizer d/2 log(2 pi) is the only difference
    torch.testing.assert_close(u - u_nat, torch.full_like(u, 0.5 * native.dim * math.log(2 * math.pi)))
    torch.testing.assert_close(g, g_nat)
    # Pyro's own potential (the one PyroKernel samples) agrees point by point
    loop = torch.stack([target.potential_fn({"w": wi}) for wi in w])
    torch.testing.assert_close(loop, u)


def test_vectorized_energy_and_grad_equal_pyros_potential_per_chain():
    target = eight_schools()
    x = 1.5 * torch.randn(40, target.dim, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    u, g = target.energy_and_grad(x)
    for i in range(0, 40, 7):
        xi = x[i].clone().requires_grad_(True)
        ui = target.potential_fn(target.layout.unflatten(xi))
        (gi,) = torch.autograd.grad(ui, xi)
        torch.testing.assert_close(u[i], ui.detach())
        torch.testing.assert_close(g[i], gi)


def test_jit_traced_energy_equals_the_plain_one_for_every_chain_count():
    plain = PyroTarget(hierarchical_normal_model, hierarchical_normal_data())
    traced = PyroTarget(hierarchical_normal_model, hierarchical_normal_data(), jit_compile=True)
    gen = torch.Generator().manual_seed(9)
    for chains in (5, 12, 5):
        x = torch.randn(chains, 6, generator=gen, dtype=torch.float64)
        for a, b in zip(traced.energy_and_grad(x), plain.energy_and_grad(x)):
            torch.testing.assert_close(a, b)
    assert sorted(k[0] for k in traced._jit_cache) == [5, 12]


def test_energy_includes_the_log_jacobian_of_the_positive_scale():
    """U(u) = -log p(mu, exp(u_tau), eta, y) - u_tau: the HalfCauchy scale is sampled as log tau."""
    target = eight_schools()
    x = torch.randn(5, target.dim, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    sigma, y = target.model_args
    for xi, ui in zip(x, target.energy(x)):
        values = target.constrain(xi)
        assert values["tau"] > 0
        tr = poutine.trace(poutine.condition(eight_schools_model, data=values)).get_trace(sigma, y)
        log_joint = tr.log_prob_sum()
        log_tau = target.unconstrained(xi)["tau"]
        torch.testing.assert_close(ui, -log_joint - log_tau)


def test_layout_round_trip_and_constrained_values():
    target = PyroTarget(hierarchical_normal_model, hierarchical_normal_data())
    assert target.layout.names == ("eta", "mu", "tau") and target.dim == 6
    x = torch.randn(3, 7, 6, dtype=torch.float64)
    params = target.unconstrained(x)
    assert params["eta"].shape == (3, 7, 4) and params["tau"].shape == (3, 7)
    torch.testing.assert_close(target.flatten(params, batch_dims=2), x)
    torch.testing.assert_close(target.constrain(x)["tau"], x[..., 5].exp())
    with pytest.raises(ValueError, match="last dimension of 6"):
        target.unconstrained(torch.zeros(2, 5))
    assert SiteLayout({"b": (2,), "a": ()}).names == ("a", "b")


def test_initial_positions_are_finite_and_reproducible():
    target = target_from_model(hierarchical_normal_model, *hierarchical_normal_data())
    a = target.initial_position(32, generator=torch.Generator().manual_seed(0))
    b = target.initial_position(32, generator=torch.Generator().manual_seed(0))
    assert a.shape == (32, 6) and torch.equal(a, b) and a.abs().max() <= 2.0
    assert torch.isfinite(target.energy(a)).all()


def _discrete_mixture(y):
    z = pyro.sample("z", dist.Bernoulli(torch.tensor(0.3)))
    loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.Normal(loc + z, 1.0), obs=y)


def _python_branch(y):
    loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
    scale = 1.0 if float(loc.detach()) > 0 else 2.0  # control flow on a sampled value
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.Normal(loc, scale), obs=y)


def _mixes_chains(y):
    loc = pyro.sample("loc", dist.Normal(torch.zeros(2), 1.0).to_event(1))
    center = loc.sum()  # sums over the chain dimension too under a chain plate
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.Normal(center, 1.0), obs=y)


@pytest.mark.parametrize("model, message, method", [
    (_discrete_mixture, r"latent site\(s\) \['z'\] are discrete", "sequential"),
    (_python_branch, r"failed with ValueError: only one element tensors.*under torch.func.vmap the model failed",
     "sequential"),
    (_mixes_chains, r"differs from Pyro's potential", "vmap"),
])
def test_models_the_chain_plate_breaks_fall_back_with_one_warning_and_the_exact_energy(model, message, method):
    y = torch.tensor([0.3, -0.5, 1.2, 0.8])
    if method == "sequential":
        with pytest.raises(ValueError, match=message) as err:
            PyroTarget(model, (y,), vectorize=True)
        assert "vectorize='auto' or False" in str(err.value)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        target = PyroTarget(model, (y,))
    fallbacks = [w for w in caught if issubclass(w.category, SequentialFallbackWarning)]
    assert target.method == method and len(fallbacks) == (method == "sequential")
    if fallbacks:
        assert re.search(message, str(fallbacks[0].message)) and "about C times slower" in str(fallbacks[0].message)
    x = torch.randn(4, target.dim, generator=torch.Generator().manual_seed(4))
    u, g = target.energy_and_grad(x)
    if method == "vmap":  # the chain plate, which the check refused, would have given a wrong energy
        assert re.search(message, target._verify("plate"))
        assert not torch.allclose(target._chain_plate_energy(x), u)
    for xi, ui, gi in zip(x, u, g):
        torch.testing.assert_close(ui, target.potential_fn(target.layout.unflatten(xi)))
        xi = xi.clone().requires_grad_(True)
        (ref,) = torch.autograd.grad(target.potential_fn(target.layout.unflatten(xi)), xi)
        torch.testing.assert_close(gi, ref)


def test_model_without_continuous_latents_is_rejected():
    def observed_only(y):
        pyro.sample("y", dist.Normal(0.0, 1.0), obs=y)

    with pytest.raises(ValueError, match="no continuous latent sites"):
        PyroTarget(observed_only, (torch.tensor(0.5),))


def test_float32_model_accepts_float64_positions():
    x, y = load_blr_data("heart", dtype=torch.float32)
    target = PyroTarget(logistic_regression_model, (x, y))
    assert target.dtype == torch.float32
    w = torch.zeros(3, target.dim, dtype=torch.float64)
    u = target.energy(w)
    assert u.dtype == torch.float64
    torch.testing.assert_close(u, torch.full((3,), x.shape[0] * math.log(2.0) + 0.5 * target.dim
                                             * math.log(2 * math.pi), dtype=torch.float64))


def test_runner_samples_many_chains_of_a_pyro_model_and_names_sites_in_arviz():
    target = PyroTarget(hierarchical_normal_model, hierarchical_normal_data())
    init = target.initial_position(16, generator=torch.Generator().manual_seed(5))
    kernel = StepSizeAdaptation(HMCKernel(target, 0.3, num_steps=3), 0.8)
    res = sample(kernel, init, 100, num_warmup=100, progress=False, seed=6)
    assert res.draws.shape == (16, 100, 6)
    assert 0.5 < res.acceptance_rate < 0.99
    idata = target.to_inference_data(res)
    assert set(idata.posterior.data_vars) == {"eta", "mu", "tau"}
    assert idata.posterior["eta"].shape == (16, 100, 4)
    assert float(idata.posterior["tau"].min()) > 0
    assert {"acceptance_rate", "step_size", "diverging", "energy"} <= set(idata.sample_stats.data_vars)
