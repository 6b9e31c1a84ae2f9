"""Models and kernel states keep their numbers across float32 <-> float64 moves (issue 22, item 6).

Every model the package defines goes float32 -> float64 -> float32 by `.double()`/`.float()` and by `.to(...)`:
after each move the parameters (the same objects, so an optimizer keeps them), buffers and gradients have the
expected dtype (complex ones the matching complex dtype), their values are the originals, and the outputs have
that dtype and equal the float32 outputs within float32 tolerance. A CAP-RBM without its `_apply` shows the check
catches a complex weight left complex64 or cast to real.

Every registry kernel on real states samples float32 and float64 chains in the chains' dtype. Intended float64:
the tuned step size, mass matrix and ChEES trajectory length live in float64 whatever the chains' dtype and are cast
where used, so a kernel warmed on float32 chains samples float64 chains with the same tuning (and back).
"""
import math

import pytest
import torch
from torch import nn

from entropy_mcmc.clustering.networks import ClusterNetwork, MLPBackbone, SmallResNet
from entropy_mcmc.ebm_training import CAPRBM, RBM
from entropy_mcmc.ebm_training.networks import GaussianEnergy, MLPEnergy, QuadraticEnergy, ResNetEnergy
from entropy_mcmc.samplers import (LearnedProposal, LearnedProposalConfig, build_kernel,
                                   get_kernel_spec, kernel_names, sample, unwrap)
from entropy_mcmc.samplers.learned import AdaptiveMALAConfig, AdaptiveMALAProposal
from entropy_mcmc.samplers.learned.flow import CouplingFlow, random_masks
from entropy_mcmc.samplers.learned.networks import StepIndexedMLP
from entropy_mcmc.targets import Gaussian

F32, F64 = torch.float32, torch.float64
COMPLEX = {F32: torch.complex64, F64: torch.complex128}
MOVES = [("double()", lambda m: m.double(), F64), ("float()", lambda m: m.float(), F32),
         ("to(float64)", lambda m: m.to(F64), F64), ("to(float32)", lambda m: m.to(F32), F32),
         ("to(cpu, dtype=float64)", lambda m: m.to("cpu", dtype=F64), F64),
         ("to(dtype=float32)", lambda m: m.to(dtype=F32), F32)]


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def units(n, size, seed):
    """CAP-RBM units (modulus 0 or 1, any phase), complex128."""
    g = torch.Generator().manual_seed(seed)
    on = (torch.rand(n, size, generator=g, dtype=F64) < 0.6).to(F64)
    return torch.polar(on, 2 * math.pi * torch.rand(n, size, generator=g, dtype=F64))


def perturbed(model, seed=1):
    """`model` with every real floating parameter moved off its (often zero) initialization."""
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            if p.is_floating_point():
                p.add_(0.3 * randn(*p.shape, seed=seed + i).to(p.dtype))
    return model


def as_dtype(t, dtype):
    """An input built in float64/complex128 in the model's real dtype (complex: the matching complex dtype)."""
    return t.to(COMPLEX[dtype] if t.is_complex() else dtype)


class PlainApplyCAPRBM(CAPRBM):
    """The broken variant: nn.Module's `_apply` casts W like a real parameter."""

    _apply = nn.Module._apply


def caprbm(cls=CAPRBM, coupling=True):
    m = cls(5, 3, coupling=coupling, init_scale=0.5)
    with torch.no_grad():
        if coupling:
            m.J.copy_(0.5 * randn(5, 3, seed=2).float())
        m.visible_bias.copy_(0.5 * randn(5, seed=3).float())
        m.hidden_bias.copy_(0.5 * randn(3, seed=4).float())
    return m


def caprbm_outputs(m, dtype):
    v, h = as_dtype(units(4, 5, 10), dtype), as_dtype(units(4, 3, 11), dtype)
    return m.energy(v, h), m.free_energy(v), m.hidden_rates(v)[0]


def bernoulli_outputs(m, dtype):
    v = (randn(4, 5, seed=10) > 0).to(dtype)
    h = (randn(4, 3, seed=11) > 0).to(dtype)
    return m.energy(v, h), m.free_energy(v), m.hidden_probs(v)


def call(*inputs, **kwargs):
    """Outputs of `model(*inputs)` with the inputs in the model's dtype."""
    return lambda m, dtype: m(*(as_dtype(x, dtype) for x in inputs), **kwargs)


def flow_outputs(m, dtype):
    x, z0 = as_dtype(randn(4, 4, seed=10), dtype), as_dtype(randn(4, 4, seed=11), dtype)
    return m(z0, x, 0.05, lambda y: 0.5 * y)


def proposal_outputs(m, dtype):
    x, z0 = as_dtype(randn(4, 4, seed=10), dtype), as_dtype(randn(4, 4, seed=11), dtype)
    grad = 0.5 * x
    move = m.forward_move(x, grad, z0, 0.3, lambda y: 0.5 * y)
    back = m.log_density(x, grad, move.x_new.detach(), 0.3, lambda y: 0.5 * y)
    return move.x_new, move.log_q, move.log_det, back


def learned_proposal(variant, precondition):
    cfg = LearnedProposalConfig(4, width=8, num_steps=2, depth=3, variant=variant, precondition=precondition)
    m = perturbed(LearnedProposal(cfg))
    if precondition != "none":
        a = torch.eye(4) + 0.3 * randn(4, 4, seed=5).float()
        m.fit_preconditioner(randn(64, 4, seed=6).float() @ a.T + 1.0)
    return m


def cluster_network(backbone, pre_feature, x):
    m = ClusterNetwork(backbone, z_dim=3, n_clusters=2, pre_feature=pre_feature)
    m.train()
    m(x.float())  # batch norm running statistics away from their initial 0 and 1
    return m.eval()


IMAGES = randn(4, 1, 8, 8, seed=12)
MODELS = {
    "caprbm": (caprbm, caprbm_outputs),
    "caprbm-no-coupling": (lambda: caprbm(coupling=False), caprbm_outputs),
    "bernoulli-rbm": (lambda: perturbed(RBM(5, 3)), bernoulli_outputs),
    "mlp-energy": (lambda: perturbed(MLPEnergy(dim=3, width=8, depth=2)), call(randn(4, 3, seed=10))),
    "mlp-energy-linear": (lambda: perturbed(MLPEnergy(dim=3, width=8, depth=2, head="linear")),
                          call(randn(4, 3, seed=10))),
    "resnet-energy": (lambda: perturbed(ResNetEnergy(channels=1, image_size=6, filters=4, stages=1, blocks=2,
                                                     pad_to=8)), call(randn(4, 1, 6, 6, seed=10))),
    "gaussian-energy": (lambda: GaussianEnergy(dim=3, mean=0.5, var=2.0), call(randn(4, 3, seed=10))),
    "quadratic-energy": (lambda: perturbed(QuadraticEnergy(dim=3)), call(randn(4, 3, seed=10))),
    "step-indexed-mlp": (lambda: perturbed(StepIndexedMLP(4, 3, 8, num_steps=2, depth=3)),
                         call(randn(4, 4, seed=10), step=1)),
    "coupling-flow": (lambda: perturbed(CouplingFlow(4, 2, 8, random_masks(4, 2, torch.Generator().manual_seed(0)),
                                                     depth=3)), flow_outputs),
    "learned-proposal": (lambda: learned_proposal("full", "dense"), proposal_outputs),
    "learned-proposal-langevin-diag": (lambda: learned_proposal("langevin", "diag"), proposal_outputs),
    "learned-proposal-no-grad": (lambda: learned_proposal("no_grad", "none"), proposal_outputs),
    "adaptive-mala-proposal": (lambda: perturbed(AdaptiveMALAProposal(AdaptiveMALAConfig(4))), proposal_outputs),
    "cluster-network-mlp": (lambda: cluster_network(MLPBackbone(4, width=8, depth=2), 6, randn(8, 4, seed=13)),
                            call(randn(4, 4, seed=10))),
    "cluster-network-resnet": (lambda: cluster_network(SmallResNet(1, width=4), 0, IMAGES), call(IMAGES)),
}


def outputs(fn, model, dtype):
    out = fn(model, dtype)
    return list(out) if isinstance(out, (tuple, list)) else [out]


def check_moves(model, fn, moves=MOVES):
    """Run `moves` on `model` (float32), checking dtypes, values and outputs after each."""
    ref = outputs(fn, model, F32)
    sum(o.real.sum() for o in ref if o.requires_grad).backward()  # gradients travel with the moves too
    ref = [o.detach() for o in ref]
    params = list(model.parameters())
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for name, move, dtype in moves:
        assert move(model) is model, name
        assert all(p is q for p, q in zip(model.parameters(), params, strict=True)), f"{name}: parameters replaced"
        for key, t in model.state_dict().items():
            orig = state[key]
            want = COMPLEX[dtype] if orig.is_complex() else dtype if orig.is_floating_point() else orig.dtype
            assert t.dtype == want, f"{name}: {key} is {t.dtype}, expected {want}"
            assert torch.equal(t, orig.to(want)), f"{name}: {key} changed its values"
        for p in params:
            assert p.grad is None or p.grad.dtype == p.dtype, f"{name}: a gradient is {p.grad.dtype}, not {p.dtype}"
        config = model.config() if callable(getattr(model, "config", None)) else {}
        want = str(dtype).removeprefix("torch.")
        assert config.get("dtype", want) == want, f"{name}: config says {config['dtype']}"
        with torch.no_grad():
            out = outputs(fn, model, dtype)
        for o, r in zip(out, ref, strict=True):
            assert o.dtype == (COMPLEX[dtype] if r.is_complex() else dtype), f"{name}: output is {o.dtype}"
            torch.testing.assert_close(o, r.to(o.dtype), rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("name", MODELS)
def test_model_moves_between_float32_and_float64(name):
    build, fn = MODELS[name]
    torch.manual_seed(0)
    check_moves(build(), fn)


@pytest.mark.filterwarnings("ignore:Casting complex values to real discards the imaginary part")
@pytest.mark.parametrize("move", [m for m in MOVES if m[2] == F64], ids=[m[0] for m in MOVES if m[2] == F64])
def test_the_check_catches_a_caprbm_casting_w_as_a_real_parameter(move):
    """Without CAPRBM._apply, W stays complex64 on `.double()` and loses its imaginary part on `.to(float64)`."""
    with pytest.raises(AssertionError, match=r"W is torch.(complex64|float64), expected torch.complex128"):
        check_moves(caprbm(PlainApplyCAPRBM), caprbm_outputs, [move])


# ------------------------------------------------------------------ kernel states

REAL_KERNELS = [n for n in kernel_names() if get_kernel_spec(n).capabilities.state_space == "real"]
FLOAT64_STATS = {"step_size", "trajectory_length"}  # the tuning, float64 by design (module docstring)
WARMUP = 150  # long enough for Stan's mass-matrix windows


def gaussian(dtype):
    return Gaussian(torch.zeros(3, dtype=dtype), torch.diag(torch.tensor([0.5, 1.0, 2.0], dtype=dtype)))


def make_kernel(name, target):
    options = {"sampler": perturbed(LearnedProposal(LearnedProposalConfig(3, width=8, depth=3)))} \
        if name == "learned" else {}
    return build_kernel(name, target, num_warmup=WARMUP, **options)


def transition_kernels(kernel):
    """The kernels that transition (no wrappers), through the parts of composite kernels, each once."""
    found, stack = {}, [kernel]
    while stack:
        k = unwrap(stack.pop())[-1]
        parts = getattr(k, "parts", ())
        stack.extend(parts)
        if not parts:
            found[id(k)] = k
    return list(found.values())


def tuning(kernel):
    """(kernel type, name) -> the step size, mass matrix and trajectory length of every transition kernel."""
    return {(type(k).__name__, a): getattr(k, a) for k in transition_kernels(kernel)
            for a in ("step_size", "inv_mass", "trajectory_length") if getattr(k, a, None) is not None}


def models(kernel):
    return [k.model for k in transition_kernels(kernel) if isinstance(getattr(k, "model", None), nn.Module)]


def check_result(res, dtype):
    assert res.draws.dtype == dtype
    for stats in (res.stats, res.warmup_stats or {}):
        for key, v in stats.items():
            if v.is_floating_point():
                assert v.dtype == (F64 if key in FLOAT64_STATS else dtype), f"stat {key} is {v.dtype}"
    for key, v in vars(res.final_state).items():
        assert not (isinstance(v, torch.Tensor) and v.is_floating_point()) or v.dtype == dtype, \
            f"final state {key} is {v.dtype}"


def test_every_core_real_kernel_is_covered():
    assert {"rwm", "mala", "hmc", "nuts", "chees-hmc", "ula"} <= set(REAL_KERNELS)


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", REAL_KERNELS)
def test_kernel_samples_in_the_dtype_of_its_init(name, dtype):
    kernel = make_kernel(name, gaussian(dtype))
    res = sample(kernel, torch.zeros(4, 3, dtype=dtype), 5, num_warmup=WARMUP, collect_warmup=True, progress=False,
                 seed=0, warn=False)
    check_result(res, dtype)
    tuned = tuning(kernel)
    if get_kernel_spec(name).capabilities.mass_matrix:
        assert any(a == "inv_mass" for _, a in tuned), "no mass matrix adapted"
    for key, v in tuned.items():
        assert not isinstance(v, torch.Tensor) or v.dtype == F64, f"{key} is {v.dtype}"
    for model in models(kernel):
        assert all(p.dtype == dtype for p in model.parameters())


@pytest.mark.parametrize("first,then", [(F32, F64), (F64, F32)], ids=["float32-then-float64", "float64-then-float32"])
@pytest.mark.parametrize("name", REAL_KERNELS)
def test_kernel_warmed_in_one_dtype_samples_the_other_with_its_tuning(name, first, then):
    kernel = make_kernel(name, gaussian(F64))
    warm = sample(kernel, torch.zeros(4, 3, dtype=first), 0, num_warmup=WARMUP, progress=False, seed=0, warn=False)
    tuned = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in tuning(kernel).items()}
    weights = [{k: v.clone() for k, v in m.state_dict().items()} for m in models(kernel)]
    assert tuned
    res = sample(kernel, warm.final_state.position.to(then), 5, progress=False, seed=1, warn=False)
    check_result(res, then)
    back = sample(kernel, res.final_state.position.to(first), 5, progress=False, seed=2, warn=False)
    check_result(back, first)
    now = tuning(kernel)
    assert now.keys() == tuned.keys()
    for key, v in tuned.items():
        assert (torch.equal(now[key], v) if isinstance(v, torch.Tensor) else now[key] == v), f"{key} changed"
    for model, before in zip(models(kernel), weights, strict=True):  # moved to `then` and back, numbers kept
        for key, v in model.state_dict().items():
            assert torch.equal(v, before[key]), f"model {key} changed"
