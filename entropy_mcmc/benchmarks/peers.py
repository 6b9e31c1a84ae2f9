"""Peer samplers on the same Bayesian logistic regression posteriors: Pyro NUTS and BlackJAX HMC/NUTS; and
TorchEBM's model wrapper for the energy-based model comparisons (`torchebm_energy`).

Importing this module needs only NumPy (and the dataset files): torch, Pyro, JAX and
BlackJAX are imported inside the runners, so a process that times BlackJAX
(`benchmarks/peer_blackjax_process.py`) never pays for importing torch.

Every runner returns a `PeerResult`: draws `[chains, draws, dim]` (NumPy) and the time
split into compilation (JAX), warmup (adaptation) and sampling, with gradient counts,
so the benchmark computes the same min-ESS rates for peers as for our kernels.
"""
from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass, field
from typing import Dict

import numpy as np

from ..datasets import load_dataset


@dataclass
class PeerResult:
    system: str
    kernel: str
    draws: np.ndarray
    warmup_time: float
    sampling_time: float
    compile_time: float = 0.0
    num_grad_evals: int = 0  # all chains, sampling phase
    num_grad_evals_warmup: int = 0
    acceptance: float = float("nan")
    divergences: int = 0
    step_size: float = float("nan")
    settings: Dict[str, object] = field(default_factory=dict)

    @property
    def num_chains(self) -> int:
        return self.draws.shape[0]

    @property
    def num_draws(self) -> int:
        return self.draws.shape[1]

    @property
    def total_time(self) -> float:
        return self.compile_time + self.warmup_time + self.sampling_time


def available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def blackjax_available() -> bool:
    return available("jax") and available("blackjax")


# --------------------------------------------------------------------------- Pyro


def pyro_nuts(dataset: str = "german", num_warmup: int = 1000, num_draws: int = 2000, num_chains: int = 1,
              seed: int = 0, dtype: str = "float32", target_accept: float = 0.8) -> PeerResult:
    """Pyro's NUTS on the BLR model written the usual Pyro way (Bernoulli likelihood in a plate).

    Chains run one after another in this process (Pyro's multi-chain mode spawns processes).
    Gradient evaluations are counted by wrapping the kernel's potential function.
    """
    import pyro
    import pyro.distributions as dist
    import torch
    from pyro.infer import MCMC, NUTS

    tdtype = getattr(torch, dtype)
    xnp, ynp = load_dataset(dataset)
    x, y = torch.tensor(xnp, dtype=tdtype), torch.tensor(ynp, dtype=tdtype)
    dim = x.shape[1]

    def model(x, y):
        w = pyro.sample("w", dist.Normal(torch.zeros(dim, dtype=tdtype), torch.ones(dim, dtype=tdtype)).to_event(1))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", dist.Bernoulli(logits=x @ w), obs=y)

    counter = {"n": 0}

    class CountingNUTS(NUTS):
        def setup(self, warmup_steps, *args, **kwargs):
            super().setup(warmup_steps, *args, **kwargs)
            inner = self.potential_fn

            def counted(params):
                counter["n"] += 1
                return inner(params)

            self.potential_fn = counted

    draws, warm_t, samp_t, grads_w, grads_s, divergent = [], 0.0, 0.0, 0, 0, 0
    step_sizes = []
    for c in range(num_chains):
        pyro.set_rng_seed(seed + c)
        kernel = CountingNUTS(model, target_accept_prob=target_accept)
        marks = {}

        def hook(kernel_, samples, stage, i):
            if stage == "Sample" and "sample" not in marks:
                marks["sample"] = time.perf_counter()
                marks["grads"] = counter["n"]

        counter["n"] = 0
        mcmc = MCMC(kernel, num_samples=num_draws, warmup_steps=num_warmup, hook_fn=hook, disable_progbar=True,
                    initial_params={"w": 0.1 * torch.randn(dim, dtype=tdtype)})
        t0 = time.perf_counter()
        mcmc.run(x, y)
        t2 = time.perf_counter()
        t1 = marks.get("sample", t2)
        warm_t += t1 - t0
        samp_t += t2 - t1
        grads_w += marks.get("grads", counter["n"])
        grads_s += counter["n"] - marks.get("grads", counter["n"])
        draws.append(mcmc.get_samples()["w"].detach().cpu().numpy())
        step_sizes.append(float(kernel.step_size))
        # Pyro lists the iterations (warmup included) that diverged
        divergent += sum(1 for t in mcmc.diagnostics().get("divergences", {}).get("chain 0", []) if t >= num_warmup)
    # Pyro's NUTS "acceptance rate" is the fraction of trees that moved, not a mean acceptance
    # probability, so it is not reported next to ours
    return PeerResult("pyro", "NUTS", np.stack(draws, 0), warm_t, samp_t, 0.0, grads_s, grads_w,
                      divergences=divergent, step_size=float(np.mean(step_sizes)),
                      settings=dict(chains=num_chains, warmup=num_warmup, draws=num_draws, dtype=dtype,
                                    target_accept=target_accept, version=pyro.__version__))


# --------------------------------------------------------------------------- BlackJAX


def _jax_logdensity(dataset: str, dtype: str):
    import jax
    import jax.numpy as jnp

    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    xnp, ynp = load_dataset(dataset)
    x, y = jnp.asarray(xnp, dtype=dtype), jnp.asarray(ynp, dtype=dtype)

    def logdensity(w):
        logits = x @ w
        return jnp.sum(y * logits - jax.nn.softplus(logits)) - 0.5 * jnp.sum(w * w)

    return logdensity, x.shape[1]


def blackjax_run(dataset: str = "german", algorithm: str = "hmc", num_chains: int = 256, num_warmup: int = 500,
                 num_draws: int = 1000, num_integration_steps: int = 10, seed: int = 0, dtype: str = "float32",
                 target_accept: float = 0.8, init_scale: float = 0.1, step_size_jitter: float = 0.0) -> PeerResult:
    """BlackJAX HMC (fixed `num_integration_steps`), NUTS, or ChEES-HMC, vectorized over chains with `jax.vmap`.

    `chees`: `chees_adaptation` over all the chains (Adam at 0.025, BlackJAX's diagonal mass matrix,
    target acceptance 0.651), then `dynamic_hmc` draws with the adapted jittered trajectory length.

    Each chain runs BlackJAX's Stan-style `window_adaptation` (step size and diagonal inverse
    mass matrix, per chain) for `num_warmup` steps, then `num_draws` steps with the adapted
    parameters. Warmup and sampling are compiled ahead of time (`jit(...).lower(...).compile()`),
    so `compile_time` is reported apart from the two run times. `step_size_jitter` j > 0 redraws
    every chain's step size uniformly in [s (1 - j), s (1 + j)] at every sampling step, as
    `entropy-mcmc sample` does for HMC (not a BlackJAX default; for like-for-like comparisons).
    """
    import blackjax
    import jax
    from blackjax.adaptation.base import get_filter_adapt_info_fn

    logdensity, dim = _jax_logdensity(dataset, dtype)
    if algorithm == "chees":
        return _blackjax_chees(logdensity, dim, num_chains, num_warmup, num_draws, seed, dtype, init_scale)
    if algorithm == "hmc":
        algo, extra = blackjax.hmc, {"num_integration_steps": num_integration_steps}
    elif algorithm == "nuts":
        algo, extra = blackjax.nuts, {}
    else:
        raise ValueError(f"algorithm must be 'hmc', 'nuts' or 'chees', got {algorithm!r}")

    def warmup_one(key, position):
        warmup = blackjax.window_adaptation(algo, logdensity, target_acceptance_rate=target_accept,
                                            adaptation_info_fn=get_filter_adapt_info_fn(), **extra)
        (state, params), _ = warmup.run(key, position, num_steps=num_warmup)
        return state, params

    def sample_one(key, state, params):
        kernel = algo(logdensity, **{**extra, **params})

        def one(st, k):
            if step_size_jitter > 0:
                k, kj = jax.random.split(k)
                u = jax.random.uniform(kj, dtype=params["step_size"].dtype)
                jittered = {**params, "step_size": params["step_size"] * (1.0 + step_size_jitter * (2.0 * u - 1.0))}
                st, info = algo(logdensity, **{**extra, **jittered}).step(k, st)
            else:
                st, info = kernel.step(k, st)
            steps = info.num_integration_steps if algorithm == "nuts" else num_integration_steps
            return st, (st.position, info.acceptance_rate, info.is_divergent, steps)

        _, out = jax.lax.scan(one, state, jax.random.split(key, num_draws))
        return out

    key = jax.random.PRNGKey(seed)
    k_init, k_warm, k_samp = jax.random.split(key, 3)
    init = init_scale * jax.random.normal(k_init, (num_chains, dim), dtype=dtype)
    warm_keys = jax.random.split(k_warm, num_chains)
    samp_keys = jax.random.split(k_samp, num_chains)

    t0 = time.perf_counter()
    warm_c = jax.jit(jax.vmap(warmup_one)).lower(warm_keys, init).compile()
    t1 = time.perf_counter()
    states, params = warm_c(warm_keys, init)
    jax.block_until_ready((states, params))
    t2 = time.perf_counter()
    samp_c = jax.jit(jax.vmap(sample_one)).lower(samp_keys, states, params).compile()
    t3 = time.perf_counter()
    positions, accept, divergent, steps = samp_c(samp_keys, states, params)
    jax.block_until_ready(positions)
    t4 = time.perf_counter()

    steps = np.asarray(steps)
    # warmup gradient count: fixed for HMC; for NUTS not returned by the filtered adaptation (left 0)
    grads_w = num_chains * num_warmup * num_integration_steps if algorithm == "hmc" else 0
    return PeerResult("blackjax", algorithm.upper(), np.asarray(positions, dtype=np.float64),
                      warmup_time=t2 - t1, sampling_time=t4 - t3, compile_time=(t1 - t0) + (t3 - t2),
                      num_grad_evals=int(steps.sum()), num_grad_evals_warmup=grads_w,
                      acceptance=float(np.mean(np.asarray(accept))), divergences=int(np.asarray(divergent).sum()),
                      step_size=float(np.mean(np.asarray(params["step_size"]))),
                      settings=dict(chains=num_chains, warmup=num_warmup, draws=num_draws, dtype=dtype,
                                    target_accept=target_accept, adaptation="window_adaptation per chain (vmap)",
                                    step_size_jitter=step_size_jitter,
                                    **({"num_integration_steps": num_integration_steps} if algorithm == "hmc"
                                       else {}),
                                    version=blackjax.__version__, jax=jax.__version__))


def _blackjax_chees(logdensity, dim: int, num_chains: int, num_warmup: int, num_draws: int, seed: int, dtype: str,
                    init_scale: float) -> PeerResult:
    import blackjax
    import jax
    import optax
    from blackjax.adaptation.base import get_filter_adapt_info_fn

    key = jax.random.PRNGKey(seed)
    k_init, k_warm, k_samp = jax.random.split(key, 3)
    init = init_scale * jax.random.normal(k_init, (num_chains, dim), dtype=dtype)
    warmup = blackjax.chees_adaptation(logdensity, num_chains, mass_matrix_estimation="diagonal",
                                       adaptation_info_fn=get_filter_adapt_info_fn())

    # the adapted parameters include functions, which a jitted function cannot return: warmup.run is called as
    # is (its lax.scan compiles the loop), so its compilation counts in warmup_time
    t0 = t1 = time.perf_counter()
    (states, params), _ = warmup.run(k_warm, init, step_size=0.1, optim=optax.adam(0.025), num_steps=num_warmup,
                                     max_sampling_steps=num_draws)
    jax.block_until_ready(states)
    t2 = time.perf_counter()
    kernel = blackjax.dynamic_hmc(logdensity, **params)
    steps_fn = params["integration_steps_fn"]
    n_params = params["integration_steps_params"]

    def sample_all(keys, states):
        def one(sts, k):
            n = jax.vmap(lambda st: steps_fn(st.random_generator_arg, *n_params))(sts)
            sts, info = jax.vmap(kernel.step)(jax.random.split(k, num_chains), sts)
            return sts, (sts.position, info.acceptance_rate, info.is_divergent, n)

        _, out = jax.lax.scan(one, states, keys)
        return out

    samp_keys = jax.random.split(k_samp, num_draws)
    t3 = time.perf_counter()
    samp_c = jax.jit(sample_all).lower(samp_keys, states).compile()
    t4 = time.perf_counter()
    positions, accept, divergent, steps = samp_c(samp_keys, states)
    jax.block_until_ready(positions)
    t5 = time.perf_counter()
    positions = np.swapaxes(np.asarray(positions, dtype=np.float64), 0, 1)  # [chains, draws, dim]
    return PeerResult("blackjax", "ChEES-HMC", positions, warmup_time=t2 - t1, sampling_time=t5 - t4,
                      compile_time=(t1 - t0) + (t4 - t3), num_grad_evals=int(np.asarray(steps).sum()),
                      num_grad_evals_warmup=0, acceptance=float(np.mean(np.asarray(accept))),
                      divergences=int(np.asarray(divergent).sum()), step_size=float(params["step_size"]),
                      settings=dict(chains=num_chains, warmup=num_warmup, draws=num_draws, dtype=dtype,
                                    adaptation="chees_adaptation (Adam 0.025, diagonal mass matrix)",
                                    mean_steps=float(np.asarray(steps).mean()),
                                    version=blackjax.__version__, jax=jax.__version__))


__all__ = ["PeerResult", "pyro_nuts", "blackjax_run", "blackjax_available"]


# --------------------------------------------------------------------------- TorchEBM
def torchebm_energy(network):
    """`network` (an energy `nn.Module`, `[batch, *event] -> [batch]`) as a TorchEBM 0.8 `BaseModel`, so its losses
    and samplers train and sample the same network as ours."""
    from torchebm.core import BaseModel

    class Energy(BaseModel):
        def __init__(self):
            super().__init__()
            self.net = network

        def forward(self, x):
            return self.net(x)

    return Energy()
