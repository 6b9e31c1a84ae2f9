"""The complex amplitude-phase restricted Boltzmann machine (CAP-RBM), thesis ch. 2 and appendix A.

Units are complex numbers of modulus 0 or 1 with any phase. The energy is the real part of eq. A.5,

    E(v, h) = -Re(v^H W h) - |v|^T J |h| + a^T |v| + b^T |h|,

with complex weights W, real amplitude coupling J and the amplitude biases a (visible) and b (hidden)
acting as penalties on activity. The base measure is the one eq. A.3 implies: an inactive unit has
weight 1, an active unit's phase is uniform on the circle (d theta / 2 pi).

Given the visible layer the hidden units are independent (and the other way round):

    u_k = sum_j conj(W_jk) v_j = a_k e^{i alpha_k},   mu_k = sum_j J_jk |v_j|,
    P(|h_k| = 1 | v) = sigmoid(log I0(a_k) + mu_k - b_k)                          (eq. A.3)
    p(theta_k | |h_k| = 1, v) = von Mises(alpha_k, a_k)                           (eq. A.4)

so the hidden units sum out of exp(-E) in closed form (free energy, `free_energy`), and
the gradient of the free energy (`free_energy_grad`) gives the learning rules 2.5-2.8.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from .circular import i1_over_i0, log_i0, sample_von_mises

# a modulus is "0 or 1" within this tolerance (float32 data that went through exp(i theta))
MODULUS_TOL = 1e-4


def check_units(x, size: int, name: str, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """`x` as a complex `[batch, size]` tensor of modulus 0 or 1, or a ValueError/TypeError saying what is wrong."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_complex():
        raise TypeError(f"{name} must be a complex tensor (units of modulus 0 or 1 with a phase), got {x.dtype}; "
                        "threshold complex data with entropy_mcmc.ebm_training.rbm.to_unit_modulus, or build it as "
                        "amplitude * exp(1j * phase)")
    if x.dim() != 2 or x.shape[1] != size:
        raise ValueError(f"{name} must have shape [batch, {size}], got {list(x.shape)}")
    mod = x.abs()
    bad = ~(torch.minimum(mod, (mod - 1).abs()) <= MODULUS_TOL)  # NaN is bad too
    if bool(bad.any()):
        raise ValueError(f"{name} must have modulus 0 or 1 (CAP-RBM units are on or off); found modulus "
                         f"{float(mod[bad][0]):.4g}; threshold the data with "
                         "entropy_mcmc.ebm_training.rbm.to_unit_modulus first")
    return x if dtype is None else x.to(dtype)


def to_unit_modulus(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """Complex data to CAP-RBM units: modulus > `threshold` becomes 1 (phase kept), the rest 0 (appendix A.3)."""
    if not x.is_complex():
        raise TypeError(f"to_unit_modulus needs complex data, got {x.dtype}")
    mod = x.abs()
    on = mod > threshold
    return torch.where(on, x / torch.where(on, mod, torch.ones_like(mod)), torch.zeros_like(x))


def check_layers(num_visible: int, num_hidden: int, dtype: torch.dtype) -> None:
    """ValueError/TypeError unless both layer sizes are positive integers and dtype is float32 or float64."""
    for name, v in (("num_visible", num_visible), ("num_hidden", num_hidden)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")


class CAPRBM(nn.Module):
    """CAP-RBM with `num_visible` and `num_hidden` complex units (thesis eq. A.5).

    Parameters: `W` complex `[visible, hidden]`, `J` real `[visible, hidden]` (a zero buffer when
    `coupling=False`, so the model without J is the same code with J fixed at 0), `visible_bias` and
    `hidden_bias` (real; a positive bias penalises activity). `dtype` is the real dtype (float32 or
    float64); W has the matching complex dtype.
    """

    kind = "caprbm"
    state_space = "phase"  # what its Gibbs kernel moves (`samplers.Capabilities`)

    def __init__(self, num_visible: int, num_hidden: int, coupling: bool = True, dtype: torch.dtype = torch.float32,
                 device=None, init_scale: float = 0.01, seed: Optional[int] = None):
        super().__init__()
        check_layers(num_visible, num_hidden, dtype)
        self.num_visible, self.num_hidden, self.coupling = int(num_visible), int(num_hidden), bool(coupling)
        gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
        cdtype = torch.complex64 if dtype == torch.float32 else torch.complex128
        w = init_scale * torch.randn(num_visible, num_hidden, dtype=cdtype, generator=gen)
        self.W = nn.Parameter(w.to(device))
        j = torch.zeros(num_visible, num_hidden, dtype=dtype, device=device)
        if coupling:
            self.J = nn.Parameter(j)
        else:
            self.register_buffer("J", j)
        self.visible_bias = nn.Parameter(torch.zeros(num_visible, dtype=dtype, device=device))
        self.hidden_bias = nn.Parameter(torch.zeros(num_hidden, dtype=dtype, device=device))

    def _apply(self, fn, recurse=True):
        """dtype and device moves (`.double()`, `.to(torch.float64)`, `.cuda()`) reach W through its real view, so W
        stays complex with the precision of the real parameters: `nn.Module` alone leaves a complex W as it is on
        `.double()` and drops its imaginary part on `.to(float64)`."""
        w = self.W
        self._parameters["W"] = None  # keeps W's place in the parameter order
        try:
            super()._apply(fn, recurse)
        finally:
            self._parameters["W"] = w
        w.data = torch.view_as_complex(fn(torch.view_as_real(w.data)).contiguous())
        if w.grad is not None:
            w.grad = torch.view_as_complex(fn(torch.view_as_real(w.grad)).contiguous())
        real = self.visible_bias.dtype
        if real not in (torch.float32, torch.float64):
            raise TypeError(f"CAPRBM holds float32 or float64 parameters (W complex64 or complex128), got {real}")
        return self

    def config(self) -> Dict[str, object]:
        return {"num_visible": self.num_visible, "num_hidden": self.num_hidden, "coupling": self.coupling,
                "dtype": str(self.visible_bias.dtype).replace("torch.", "")}

    @property
    def complex_dtype(self) -> torch.dtype:
        return self.W.dtype

    # ------------------------------------------------------------------ energy and free energy

    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """E(v, h), the real part of eq. A.5, `[batch]`."""
        v = check_units(v, self.num_visible, "v", self.complex_dtype)
        h = check_units(h, self.num_hidden, "h", self.complex_dtype)
        if v.shape[0] != h.shape[0]:
            raise ValueError(f"v and h must have the same batch size, got {v.shape[0]} and {h.shape[0]}")
        av, ah = v.abs(), h.abs()
        coupling = ((v.conj() @ self.W) * h).sum(-1).real + ((av @ self.J) * ah).sum(-1)
        return -coupling + av @ self.visible_bias + ah @ self.hidden_bias

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) = -log sum_|h| int d theta_h exp(-E(v, h)) = a^T|v| - sum_k softplus(logit_k), `[batch]`."""
        v = check_units(v, self.num_visible, "v", self.complex_dtype)
        return v.abs() @ self.visible_bias - F.softplus(self.hidden_logits(v)).sum(-1)

    # ------------------------------------------------------------------ conditionals (eq. A.3, A.4)

    @staticmethod
    def _activation_logit(u: torch.Tensor, mu: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """log I0(|u|) + mu - bias: the logit of P(|z| = 1 | input), eq. A.3."""
        return log_i0(u.abs()) + mu - bias

    def hidden_input(self, v: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The complex and amplitude input sums to the hidden units: ``u = W^H v`` and ``mu = J^T |v|``, each
        `[batch, hidden]`."""
        return v @ self.W.conj(), v.abs() @ self.J

    def visible_input(self, h: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The input sums to the visible units: ``u = W h`` and ``mu = J |h|``, each `[batch, visible]`."""
        return h @ self.W.transpose(0, 1), h.abs() @ self.J.transpose(0, 1)

    def hidden_logits(self, v: torch.Tensor) -> torch.Tensor:
        u, mu = self.hidden_input(v)
        return self._activation_logit(u, mu, self.hidden_bias)

    def visible_logits(self, h: torch.Tensor) -> torch.Tensor:
        u, mu = self.visible_input(h)
        return self._activation_logit(u, mu, self.visible_bias)

    def _rates(self, u, mu, bias) -> Tuple[torch.Tensor, torch.Tensor]:
        prob = torch.sigmoid(self._activation_logit(u, mu, bias))
        a = u.abs()
        direction = torch.where(a > 0, u / torch.where(a > 0, a, torch.ones_like(a)), torch.zeros_like(u))
        return prob * i1_over_i0(a) * direction, prob

    def hidden_rates(self, v: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Rates of the hidden units given v (appendix A.3): ``E[h | v]`` (complex) and ``E[|h| | v] = P(|h| = 1 | v)``.

        ``E[h] = P * I1(a)/I0(a) * e^{i alpha}``; note ``|E[h]| < E[|h|]`` whatever the input.
        """
        v = check_units(v, self.num_visible, "v", self.complex_dtype)
        return self._rates(*self.hidden_input(v), self.hidden_bias)

    def visible_rates(self, h: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Rates of the visible units given h: ``E[v | h]`` (complex) and ``E[|v| | h]``."""
        h = check_units(h, self.num_hidden, "h", self.complex_dtype)
        return self._rates(*self.visible_input(h), self.visible_bias)

    def _sample(self, u, mu, bias, generator) -> torch.Tensor:
        prob = torch.sigmoid(self._activation_logit(u, mu, bias))
        on = torch.rand(prob.shape, generator=generator, dtype=prob.dtype, device=prob.device) < prob
        phase = sample_von_mises(torch.angle(u), u.abs(), generator)
        return torch.polar(on.to(prob.dtype), phase)

    def sample_hidden(self, v: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """h ~ p(h | v): amplitude ~ Bernoulli(eq. A.3), phase ~ von Mises(alpha, a) (eq. A.4); `[batch, hidden]`."""
        return self._sample(*self.hidden_input(v), self.hidden_bias, generator)

    def sample_visible(self, h: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """v ~ p(v | h), `[batch, visible]`."""
        return self._sample(*self.visible_input(h), self.visible_bias, generator)

    # ------------------------------------------------------------------ learning rules (eq. 2.5-2.8)

    def free_energy_grad(self, v: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The batch mean of dF(v)/d(parameter), in closed form from the hidden rates.

        Keys are parameter names; W's entry follows torch's convention for complex parameters
        (dF/dRe W + i dF/dIm W), so `W - lr * grad` is a descent step. With W = b e^{i theta} this is
        ``dF/db_jk = -|v_j| <|h_k| cos(theta_jk + theta_k - theta_j)>_{h|v}`` (rule 2.5),
        ``dF/dtheta_jk = |v_j| <|h_k| b_jk sin(theta_jk + theta_k - theta_j)>_{h|v}`` (2.6),
        ``dF/dJ_jk = -|v_j| <|h_k|>`` (2.7), ``dF/da_j = |v_j|`` and ``dF/db_k = <|h_k|>`` (2.8). The gradient of
        the negative log-likelihood is this at the data minus its model average; the thesis writes
        the opposite sign, the update direction.
        """
        v = check_units(v, self.num_visible, "v", self.complex_dtype)
        rate, prob = self._rates(*self.hidden_input(v), self.hidden_bias)
        n = v.shape[0]
        av = v.abs()
        grads = {"W": -(v.transpose(0, 1) @ rate.conj()) / n, "visible_bias": av.mean(0),
                 "hidden_bias": prob.mean(0)}
        if self.coupling:
            grads["J"] = -(av.transpose(0, 1) @ prob) / n
        return grads

    # ------------------------------------------------------------------ helpers

    def random_visible(self, num: int, generator: torch.Generator, p_active: float = 0.5) -> torch.Tensor:
        """Independent units: active with probability `p_active`, uniform phase (a start for free sampling)."""
        shape = (num, self.num_visible)
        dev, dt = self.W.device, self.visible_bias.dtype
        on = torch.rand(shape, generator=generator, device=dev, dtype=dt) < p_active
        phase = (2 * torch.rand(shape, generator=generator, device=dev, dtype=dt) - 1) * torch.pi
        return torch.polar(on.to(dt), phase)

    def extra_repr(self) -> str:
        return f"num_visible={self.num_visible}, num_hidden={self.num_hidden}, coupling={self.coupling}"
