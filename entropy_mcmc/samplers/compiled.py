"""Compiled transitions: a kernel's step under `torch.compile`, decided once per run (`sample(compile=...)`).

A kernel that can fuse (`PreconditionedKernel.can_fuse`: HMC, MALA) splits its step in two: the random numbers,
drawn eagerly from its generator (torch.compile breaks its graph on a generator), and `transition`, a pure function
of tensors (the trajectory, the kinetic energies, the MH decision, the selection of each chain's new state), which is
what gets compiled: the default mode on CPU, "reduce-overhead" (CUDA graphs) on CUDA. Its inputs keep one shape
through a run (a step size per chain, the diagonal of an identity mass matrix), so adaptation changing their values
does not recompile; a dense mass matrix chosen at the end of a window compiles once more. Adaptation and recording
stay eager. Compiled and eager steps draw the same random numbers, so a seed gives the same draws either way, within
float rounding (tests: float64, 50 steps); compiled code rounds otherwise, so over a long float32 run one accept
decision may flip, after which the chains differ, each as valid.

`compile`: "off" runs eager; "on" compiles, and falls back to eager with one `CompileWarning` if compiling or a
compiled step fails; "auto" compiles only where it is expected to repay its compile time over the run, then times a
few compiled and eager steps and keeps the faster (`AUTO_*` below, measured in BENCHMARKS.md). The decision is one
line, `Compilation.decision` (a run's `result.attrs["compile"]`).
"""
from __future__ import annotations

import statistics
import time
import warnings

import torch

from .base import TransitionKernel

COMPILE_CHOICES = ("auto", "on", "off")
# auto: compile when steps x gradients per step x AUTO_SAVING_PER_GRAD exceeds AUTO_COMPILE_SECONDS. Measured on the
# 2-core dev machine, HMC with 10 leapfrog steps, whole processes (BENCHMARKS.md, "Compiled transitions"): a first
# compile takes 18-47 s with an empty inductor cache (2-4 s from a warm one); a compiled step saves ~0.025 ms per
# gradient on a small model (icg50, 4 chains: 0.19 ms per step against 0.44) and ~0.08 ms on German at 256 chains,
# and loses at 4096 chains, where the eager gradient's in-place, cache-sized slices beat inductor's code. So auto
# compiles on a CPU for runs of ~10^6 gradients and more, then keeps the faster. The CUDA figures are guesses: no GPU
# was measured.
AUTO_COMPILE_SECONDS = {"cpu": 30.0, "cuda": 60.0}
AUTO_SAVING_PER_GRAD = {"cpu": 2.5e-5, "cuda": 5e-5}
AUTO_TIMED_STEPS = 5  # compiled and eager steps each that auto times after compiling


class CompileWarning(UserWarning):
    """torch.compile failed; the run goes on eager."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _clone(out):
    """Outputs of a CUDA-graphed function cloned out of its memory pool, which the next replay overwrites."""
    if isinstance(out, torch.Tensor):
        return out.clone()
    if isinstance(out, dict):
        return {k: _clone(v) for k, v in out.items()}
    if isinstance(out, tuple):
        return tuple(_clone(v) for v in out)
    return out


class Compilation:
    """How one run steps a kernel: installs its compiled (or eager) fused transition on `kernel.base`, decides
    once, and says what it decided in `decision`; `remove()` (or leaving it as a context) restores the kernel's
    own step."""

    def __init__(self, kernel: TransitionKernel, compile: str, num_steps: int, device):
        if compile not in COMPILE_CHOICES:
            raise ValueError(f"compile must be one of {', '.join(COMPILE_CHOICES)}, got {compile!r}")
        self.base = kernel.base
        self.device = torch.device(device)
        self.mode = compile
        self.decision = "off (eager)" if compile == "off" else ""
        self._state = "eager"
        self._times = {"compiled": [], "eager": []}
        self._compile_time = 0.0
        if compile == "off":
            return
        if not getattr(self.base, "can_fuse", False):
            self.decision = f"eager ({type(self.base).__name__} has no fused transition to compile)"
            return
        kind = self.device.type if self.device.type in AUTO_COMPILE_SECONDS else "cpu"
        if compile == "auto":
            saving = num_steps * self.base.grads_per_transition * AUTO_SAVING_PER_GRAD[kind]
            if saving < AUTO_COMPILE_SECONDS[kind]:
                self.decision = (f"eager (auto: {num_steps} steps x {self.base.grads_per_transition} gradients "
                                 f"would save about {saving:.2g} s compiled, less than the "
                                 f"~{AUTO_COMPILE_SECONDS[kind]:g} s torch.compile takes on {kind})")
                return
        self._cuda_graphs = self.device.type == "cuda"
        try:
            self._compiled = torch.compile(self.base.transition, dynamic=False,
                                           mode="reduce-overhead" if self._cuda_graphs else None)
        except Exception as err:  # noqa: BLE001 - any failure to compile means eager
            self._fail(err)
            return
        self._state = "first"
        self.base.fused = self

    def _fail(self, err: Exception) -> None:
        reason = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        self.decision = f"eager (torch.compile failed: {reason[:200]})"
        self._state = "eager"
        warnings.warn(f"compiled transitions: torch.compile failed ({reason[:200]}); running eager", CompileWarning,
                      stacklevel=3)

    def _call_compiled(self, args):
        if self._cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
            return _clone(self._compiled(*args))
        return self._compiled(*args)

    def _timed(self, kind: str, args):
        _sync(self.device)
        t0 = time.perf_counter()
        out = self._call_compiled(args) if kind == "compiled" else self.base.transition(*args)
        _sync(self.device)
        self._times[kind].append(time.perf_counter() - t0)
        return out

    def __call__(self, *args):
        # contiguous inputs: a gradient the compiled code returned transposed would otherwise recompile
        args = tuple(a.contiguous() if isinstance(a, torch.Tensor) else a for a in args)
        with torch.no_grad():
            if self._state == "eager":
                return self.base.transition(*args)
            try:
                if self._state == "compiled":
                    return self._call_compiled(args)
                if self._state == "first":
                    t0 = time.perf_counter()
                    out = self._call_compiled(args)
                    _sync(self.device)
                    self._compile_time = time.perf_counter() - t0
                    self._state = "timing" if self.mode == "auto" else "compiled"
                    if self.mode == "on":
                        self.decision = f"compiled (torch.compile: {self._compile_time:.1f} s to compile)"
                    return out
                return self._time_step(args)
            except Exception as err:  # noqa: BLE001 - a step that fails compiled runs eager, same random numbers
                self._fail(err)
                return self.base.transition(*args)

    def _time_step(self, args):
        """Auto, after compiling: alternate compiled and eager steps, then keep the faster."""
        n = len(self._times["compiled"]) + len(self._times["eager"])
        out = self._timed("compiled" if n % 2 == 0 else "eager", args)
        if n + 1 == 2 * AUTO_TIMED_STEPS:
            fast, slow = (statistics.median(self._times[k]) for k in ("compiled", "eager"))
            self._state = "compiled" if fast < slow else "eager"
            self.decision = (f"{self._state} (auto: {1e3 * fast:.3g} ms per step compiled against {1e3 * slow:.3g} "
                             f"eager, after {self._compile_time:.1f} s compiling)")
        return out

    def __enter__(self) -> "Compilation":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        """The kernel's own step back, and the decision said."""
        if getattr(self.base, "fused", None) is self:
            self.base.fused = None
        if not self.decision:  # compiled, and the run ended before auto finished timing
            self.decision = ("compiled (no step ran)" if self._state == "first" else
                             f"compiled (torch.compile: {self._compile_time:.1f} s to compile; the run ended before "
                             "auto timed it)")

