"""Compiled transitions (`samplers.compiled`): the same draws as eager for the same seed, no recompilation when
adaptation changes the step size and the mass matrix, eager when torch.compile fails, and `--compile off` honoured.
A cold torch.compile takes tens of seconds on the dev machine: one compiling test runs by default, the rest are
slow."""
import warnings

import pytest
import torch

from entropy_mcmc import cli
from entropy_mcmc.samplers import build_kernel, compiled, sample
from entropy_mcmc.samplers.compiled import CompileWarning
from entropy_mcmc.targets import get_target


def _run(target, kernel, compile, seed=3, warmup=30, draws=20, **options):
    k = build_kernel(kernel, target, num_warmup=warmup, **options)
    init = target.initial_positions(6, 0, torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        return sample(k, init, draws, warmup, progress=False, seed=seed, warn=False, compile=compile)


def _same_draws(a, b):
    """Equal up to rounding, with the same accept decisions: compiled code rounds otherwise (German, HMC: 3e-14 after
    two transitions, which the step-size adaptation's feedback grows to 1e-8 over 30 warmup steps, then stays)."""
    assert torch.equal(a.stats["accepted"], b.stats["accepted"])
    torch.testing.assert_close(a.draws, b.draws, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(a.stats["step_size"], b.stats["step_size"], rtol=1e-6, atol=0)


def test_compiled_hmc_gives_the_eager_draws_without_recompiling():
    """Warmup changes the step size at every step and the diagonal mass matrix at the window's end, jitter then
    gives each chain its own step size: one compilation for all of it."""
    from torch._dynamo.utils import counters

    target = get_target("icg5")
    before = counters["stats"]["unique_graphs"]
    with torch._dynamo.config.patch(error_on_recompile=True):
        fast = _run(target, "hmc", "on", num_steps=3, adapt_mass="diag", jitter=0.5)
    assert counters["stats"]["unique_graphs"] - before == 1
    assert fast.attrs["compile"].startswith("compiled (torch.compile:")
    _same_draws(fast, _run(target, "hmc", "off", num_steps=3, adapt_mass="diag", jitter=0.5))


@pytest.mark.slow
@pytest.mark.parametrize("target,kernel,options", [
    ("icg5", "mala", {}),
    ("german", "hmc", {"num_steps": 4}),
    ("german", "mala", {}),  # a dense mass matrix from the first window: one more compilation
])
def test_compiled_matches_eager(target, kernel, options):
    t = get_target(target)
    fast = _run(t, kernel, "on", **options)
    assert fast.attrs["compile"].startswith("compiled")
    _same_draws(fast, _run(t, kernel, "off", **options))


def _fail_at_compile(fn, **kwargs):
    raise RuntimeError("no compiler here")


def _fail_when_called(fn, **kwargs):
    def broken(*args):
        raise RuntimeError("the compiled code failed")
    return broken


@pytest.mark.parametrize("fake", [_fail_at_compile, _fail_when_called])
def test_a_failed_compile_runs_eager_with_one_warning(monkeypatch, fake):
    target = get_target("icg5")
    eager = _run(target, "hmc", "off", num_steps=3)
    monkeypatch.setattr(torch, "compile", fake)
    k = build_kernel("hmc", target, num_warmup=30, num_steps=3)
    with pytest.warns(CompileWarning) as caught:
        res = sample(k, target.initial_positions(6, 0, torch.float64), 20, 30, progress=False, seed=3, warn=False,
                     compile="on")
    assert len(caught) == 1 and "running eager" in str(caught[0].message)
    assert res.attrs["compile"].startswith("eager (torch.compile failed: RuntimeError")
    assert torch.equal(res.draws, eager.draws)  # the random numbers were drawn before the failed step
    assert k.base.fused is None


def test_auto_and_kernels_without_a_fused_transition(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: calls.append(kw) or fn)
    target = get_target("icg5")
    short = _run(target, "hmc", "auto", num_steps=3)
    assert not calls and short.attrs["compile"].startswith("eager (auto: 50 steps x 3 gradients would save")
    nuts = _run(target, "nuts", "on", max_tree_depth=3)
    assert nuts.attrs["compile"] == "eager (NUTSKernel has no fused transition to compile)"
    # a run long enough to repay compiling: compiled, timed against eager, the faster kept
    kernel = build_kernel("hmc", target, num_steps=3)
    state = kernel.init(target.initial_positions(6, 0, torch.float64))
    with compiled.Compilation(kernel, "auto", 10 ** 9, "cpu") as plan:
        assert calls == [{"dynamic": False, "mode": None}]
        for _ in range(1 + 2 * compiled.AUTO_TIMED_STEPS):
            state, _ = kernel.step(state)
    assert plan.decision.split(" (")[0] in ("compiled", "eager") and "ms per step compiled against" in plan.decision
    assert kernel.fused is None


def test_cli_compile_off(monkeypatch, capsys):
    monkeypatch.setattr(torch, "compile", lambda *a, **k: pytest.fail("--compile off compiled"))
    assert cli.main(["sample", "--target", "icg5", "--kernel", "hmc", "--chains", "4", "--warmup", "20", "--draws",
                     "20", "--leapfrog-steps", "3", "--no-progress", "--no-summary", "--compile", "off"]) == 0
    assert "compile: off (eager)" in capsys.readouterr().out
