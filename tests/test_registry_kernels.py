"""Kernel property tests generated from the registry (issue 22, item 7): a kernel is tested by registering it.

Every kernel of `kernel_names()` runs on a known target of its declared state space (`capabilities.state_space`):
  real         a correlated 2-D Gaussian: mean and variance;
  binary       a 4x3 Bernoulli RBM: visible and hidden marginals against enumeration;
  phase        a 2x2 CAP-RBM: the phase-invariant moments of tests/test_caprbm_gibbs.py against quadrature;
  categorical  a linear logits network on 4 points: assignment frequencies against the softmax.
Exact kernels keep every statistic within 4 MCSE (ArviZ). Approximate ones run at step size `APPROX_STEP` with
their schedule spanning the warmup, and get a stated slack on top: the mean within 0.1 sd, the variance within 10%
(ULA's stationary variance at that step is 4.2% high here); a kernel with a schedule anneals, so its variance may
also shrink, down to 0 (annealed Langevin's default schedule ends at T=0). Then, for every kernel: one chain runs;
float32 and float64 inits give draws of that dtype; a NaN init, a wrong event shape and a target of another state
space are one-line ValueErrors/TypeErrors. A drifting RWM registered under a temporary name fails the same check.
"""
import math
from dataclasses import dataclass
from typing import Callable, List

import numpy as np
import pytest
import torch
from torch import nn

from entropy_mcmc.diagnostics import mcse
from entropy_mcmc.samplers import (Capabilities, KernelSpec, LearnedProposal, LearnedProposalConfig,
                                   RandomWalkMetropolis, build_kernel, get_kernel_spec, kernel_names,
                                   register_kernel, sample)
from entropy_mcmc.samplers import registry
from entropy_mcmc.samplers.metropolis import Proposal, broadcast_step_size
from entropy_mcmc.targets import Gaussian

from rbm_exact import joint_table
from test_caprbm_gibbs import invariant_statistics
from test_caprbm_model import make_model as make_caprbm
from test_rbm_bernoulli import exact_visible_marginal, small_rbm

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

F32, F64 = torch.float32, torch.float64
CHAINS, WARMUP, DRAWS = 64, 300, 500
Z_MAX = 4.0
APPROX_STEP = 0.4
MEAN_SLACK, VAR_SLACK = 0.1, 0.1  # approximate kernels: in sds, and relative
TUNING = {"step_size", "trajectory_length"}  # float64 whatever the chains' dtype (test_dtype_moves.py)


@dataclass
class Stat:
    """Draws `x` `[chains, draws]` of a statistic whose expectation is `exact`; accepted in
    [exact - lo - 4 MCSE, exact + hi + 4 MCSE]."""

    label: str
    x: np.ndarray
    exact: float
    lo: float = 0.0
    hi: float = 0.0


@dataclass
class Case:
    """A known target of one state space: `target(dtype)`, `init(chains, dtype)`, `bad_inits(dtype)` (label ->
    init) and `stats(result, capabilities)` (a list of `Stat`); `draws(result)` is the recorded state."""

    target: Callable
    init: Callable
    bad_inits: Callable
    stats: Callable
    draws: Callable


# ------------------------------------------------------------------ real: a correlated 2-D Gaussian

MEAN = torch.tensor([1.0, -0.5], dtype=F64)
COV = torch.tensor([[1.0, 0.6], [0.6, 1.5]], dtype=F64)


def real_stats(res, caps: Capabilities) -> List[Stat]:
    x = res.draws.double().numpy()
    mean, var = MEAN.numpy(), COV.diagonal().numpy()
    out = []
    for j in range(x.shape[-1]):
        slack = 0.0 if caps.exact else MEAN_SLACK * math.sqrt(var[j])
        out.append(Stat(f"mean[{j}]", x[..., j], mean[j], slack, slack))
        hi = 0.0 if caps.exact else VAR_SLACK * var[j]
        lo = var[j] if caps.schedule_option else hi
        out.append(Stat(f"var[{j}]", (x[..., j] - mean[j]) ** 2, var[j], lo, hi))
    return out


REAL = Case(target=lambda dtype: Gaussian(MEAN.to(dtype), COV.to(dtype)),
            init=lambda n, dtype: Gaussian(MEAN, COV).sample(n, torch.Generator().manual_seed(7), dtype=dtype),
            bad_inits=lambda dtype: {"NaN": torch.full((4, 2), math.nan, dtype=dtype),
                                     "event shape [3]": torch.zeros(4, 3, dtype=dtype)},
            stats=real_stats, draws=lambda res: res.draws)


# ------------------------------------------------------------------ binary: a 4x3 Bernoulli RBM

def binary_stats(res, caps) -> List[Stat]:
    v, h, p = exact_visible_marginal(small_rbm(4, 3))
    exact = torch.cat([p.sum(1) @ v, p.sum(0) @ h]).numpy()
    x = torch.cat([res.samples["visible"], res.samples["hidden"]], -1).double().numpy()
    labels = [f"P(v{j}=1)" for j in range(4)] + [f"P(h{k}=1)" for k in range(3)]
    return [Stat(label, x[..., i], exact[i]) for i, label in enumerate(labels)]


BINARY = Case(target=lambda dtype: small_rbm(4, 3).to(dtype),
              init=lambda n, dtype: torch.zeros(n, 4, dtype=dtype),
              bad_inits=lambda dtype: {"NaN": torch.full((4, 4), math.nan, dtype=dtype),
                                       "event shape [5]": torch.zeros(4, 5, dtype=dtype)},
              stats=binary_stats, draws=lambda res: res.samples["visible"])


# ------------------------------------------------------------------ phase: a 2x2 CAP-RBM

COMPLEX = {F32: torch.complex64, F64: torch.complex128}


def caprbm(dtype):
    return make_caprbm(2, 2, scale=1.5).to(dtype)


def phase_stats(res, caps) -> List[Stat]:
    with torch.no_grad():
        vj, hj, pj, _ = joint_table(caprbm(F64), n_grid=48)
        exact = (pj[:, None] * invariant_statistics(vj, hj)).sum(0).numpy()
    x = invariant_statistics(res.samples["visible"].to(torch.complex128),
                             res.samples["hidden"].to(torch.complex128)).numpy()
    return [Stat(f"phase-invariant moment {i}", x[..., i], exact[i]) for i in range(len(exact))]


PHASE = Case(target=caprbm,
             init=lambda n, dtype: caprbm(dtype).random_visible(n, torch.Generator().manual_seed(7)),
             bad_inits=lambda dtype: {"NaN": torch.full((4, 2), complex(math.nan, 0.0), dtype=COMPLEX[dtype]),
                                      "event shape [3]": torch.zeros(4, 3, dtype=COMPLEX[dtype])},
             stats=phase_stats, draws=lambda res: res.samples["visible"])


# ------------------------------------------------------------------ categorical: logits of 4 points

class LogitsNetwork(nn.Module):
    """Points `[n, 2]` -> logits over 3 clusters, fixed weights."""

    state_space = "categorical"

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 3, dtype=F64)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[1.5, 0.0], [-1.0, 1.0], [0.0, -2.0]]))
            self.linear.bias.copy_(torch.tensor([0.0, 0.5, -0.5]))

    def forward(self, x):
        return self.linear(x)


POINTS = torch.tensor([[0.0, 0.0], [1.0, 0.5], [-0.5, -1.0], [0.3, 1.2]], dtype=F64)


def categorical_stats(res, caps) -> List[Stat]:
    """Chain c is point c % 4; each point's frequencies over its chains against its softmax."""
    with torch.no_grad():
        p = torch.softmax(LogitsNetwork()(POINTS), -1).numpy()
    x = res.draws.double().numpy()
    return [Stat(f"P(point {i} in cluster {k})", x[i::len(POINTS), :, k], p[i, k])
            for i in range(len(POINTS)) for k in range(p.shape[1])]


CATEGORICAL = Case(target=lambda dtype: LogitsNetwork().to(dtype),
                   init=lambda n, dtype: POINTS.repeat(math.ceil(n / len(POINTS)), 1)[:n].to(dtype),
                   bad_inits=lambda dtype: {"NaN": torch.full((4, 2), math.nan, dtype=dtype),
                                            "event shape [3]": torch.zeros(4, 3, dtype=dtype)},
                   stats=categorical_stats, draws=lambda res: res.draws)

CASES = {"real": REAL, "binary": BINARY, "phase": PHASE, "categorical": CATEGORICAL}


# ------------------------------------------------------------------ building any registered kernel

def untrained_sampler(dtype):
    """A learned proposal with random weights: its MH correction must keep any target invariant."""
    model = LearnedProposal(LearnedProposalConfig(2, width=8, num_steps=1, eps=0.6)).to(dtype)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model


# values for options a kernel declares as required (the command line must give them)
REQUIRED_OPTIONS = {"sampler": untrained_sampler}


def options(spec: KernelSpec, dtype, num_warmup: int):
    """The build options the tests pass: the required ones, and for an approximate kernel `APPROX_STEP` and a
    schedule spanning the warmup."""
    out = {o.name: REQUIRED_OPTIONS[o.name](dtype) for o in spec.options if o.required}
    caps = spec.capabilities
    if not caps.exact:
        if caps.step_size:
            out["step_size"] = APPROX_STEP
        if caps.schedule_option:
            out[caps.schedule_option] = max(num_warmup, 1)
    return out


def make(name, dtype=F64, num_warmup=WARMUP):
    spec = get_kernel_spec(name)
    case = CASES[spec.capabilities.state_space]
    return case, build_kernel(name, case.target(dtype), num_warmup=num_warmup, **options(spec, dtype, num_warmup))


@dataclass
class Verdict:
    ok: bool
    report: str


def invariance(name, seed=0) -> Verdict:
    """Run kernel `name` on its state space's known target; ok when every statistic is within its bounds."""
    caps = get_kernel_spec(name).capabilities
    case, kernel = make(name)
    res = sample(kernel, case.init(CHAINS, F64), DRAWS, num_warmup=WARMUP, seed=seed, progress=False, warn=False)
    lines = []
    for s in case.stats(res, caps):
        est, se = float(s.x.mean()), float(mcse(s.x[..., None])[0])
        ok = np.isfinite(s.x).all() and s.exact - s.lo - Z_MAX * se <= est <= s.exact + s.hi + Z_MAX * se
        if not ok:
            lines.append(f"{s.label}: {est:.4f}, expected {s.exact:.4f} (-{s.lo:.3g}, +{s.hi:.3g}) "
                         f"within {Z_MAX:g} MCSE = {Z_MAX * se:.4f}")
    return Verdict(not lines, f"{name} on the {caps.state_space} target: " + ("; ".join(lines) or "ok"))


# ------------------------------------------------------------------ the generated tests

NAMES = kernel_names()


def test_every_state_space_and_required_option_has_a_case():
    """A kernel on a new state space, or with a new required option, needs a case here first."""
    for name in NAMES:
        spec = get_kernel_spec(name)
        assert spec.capabilities.state_space in CASES, name
        for o in spec.options:
            assert not o.required or o.name in REQUIRED_OPTIONS, f"{name}: add a value for option {o.name!r}"
    assert {"real", "binary", "phase", "categorical"} <= {get_kernel_spec(n).capabilities.state_space
                                                            for n in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_invariance_of_a_known_target(name, one_thread):
    verdict = invariance(name)
    assert verdict.ok, verdict.report


@pytest.mark.parametrize("name", NAMES)
def test_one_chain(name, one_thread):
    case, kernel = make(name, num_warmup=50)
    res = sample(kernel, case.init(1, F64), 20, num_warmup=50, seed=1, progress=False, warn=False)
    draws = case.draws(res)
    assert draws.shape[:2] == (1, 20) and bool(torch.isfinite(torch.view_as_real(draws) if draws.is_complex()
                                                              else draws).all())


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", NAMES)
def test_draws_keep_the_dtype_of_the_init(name, dtype, one_thread):
    case, kernel = make(name, dtype, num_warmup=20)
    init = case.init(4, dtype)
    res = sample(kernel, init, 5, num_warmup=20, seed=2, progress=False, warn=False)
    assert case.draws(res).dtype == init.dtype
    for key, v in res.stats.items():
        assert not v.is_floating_point() or v.dtype == (F64 if key in TUNING else dtype), f"stat {key} is {v.dtype}"


def one_line_error(fn, what):
    try:
        fn()
    except (ValueError, TypeError) as e:
        assert str(e) and "\n" not in str(e), f"{what}: {e}"
        return str(e)
    pytest.fail(f"{what}: no ValueError or TypeError")


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_is_one_line(name):
    case, kernel = make(name, num_warmup=5)
    for label, init in case.bad_inits(F64).items():
        one_line_error(lambda: sample(kernel, init, 2, num_warmup=5, seed=0, progress=False, warn=False),
                       f"{name} from a {label} init")
    spec = get_kernel_spec(name)
    space = spec.capabilities.state_space
    for other, other_case in CASES.items():
        if other != space:
            message = one_line_error(lambda: build_kernel(name, other_case.target(F64), num_warmup=5,
                                                          **options(spec, F64, 5)), f"{name} on a {other} target")
            assert f"moves {space} states, but target" in message and f"has {other} states" in message


# ------------------------------------------------------------------ a broken kernel fails the same check

class DriftingRWM(RandomWalkMetropolis):
    """Deliberately broken: the random walk drifts by 0.2 step sizes but is accepted as if symmetric."""

    def propose(self, state):
        x = state.position
        s = broadcast_step_size(self.step_size, x)
        return Proposal(self.evaluate(x + s * (self.randn_like(x) + 0.2)), torch.zeros_like(state.energy), 0)


@pytest.fixture
def broken_kernel():
    name = "test-drifting-rwm"
    register_kernel(name, KernelSpec(lambda target, **o: DriftingRWM(target, **o), "a broken RWM",
                                     target_accept=0.234, capabilities=Capabilities(needs_gradient=False)))
    yield name
    registry._KERNELS.pop(name)


def test_a_broken_kernel_fails_the_generated_check(broken_kernel, one_thread):
    verdict = invariance(broken_kernel)
    assert not verdict.ok and "mean[" in verdict.report, verdict.report
