"""How well Gibbs sampling keeps an image (thesis Fig. 2.1a, measured instead of only pictured).

Chains start at test images; after t block Gibbs steps the visible rates E[v | h_t] (appendix A.3:
"the expectation of visible unit activity") are compared with the starting image:

* `overlap`: Jaccard index of the active pixels, {E|v| > 0.5} against the image's bars;
* `phase_error`: mean absolute circular difference on the image's bar pixels between the phase of
  E[v | h_t] and the image's phase, after removing the best global phase (the model is symmetric under
  a global phase shift, so only relative phases are meaningful);
* `coherence`: |sum_bars E[v] conj(v0)| / sum_bars |E[v]|, 1 when the phases on the bars are kept.
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import torch

from .caprbm import CAPRBM, check_units


def stability_metrics(rate: torch.Tensor, expected_modulus: torch.Tensor, v0: torch.Tensor) -> Dict[str, float]:
    """Overlap, phase error and coherence of visible rates `[n, V]` against starting images `v0` `[n, V]`,
    averaged over images."""
    on0 = v0.abs() > 0.5
    on = expected_modulus > 0.5
    inter = (on & on0).sum(1).double()
    union = (on | on0).sum(1).double().clamp_min(1)
    prod = torch.where(on0, rate * v0.conj(), torch.zeros_like(rate))
    global_phase = torch.exp(-1j * torch.angle(prod.sum(1, keepdim=True)))
    diff = torch.angle(prod * global_phase)
    n_on = on0.sum(1).double().clamp_min(1)
    err = torch.where(on0, diff.abs(), torch.zeros_like(diff)).sum(1).double() / n_on
    mass = torch.where(on0, rate.abs(), torch.zeros_like(rate.abs())).sum(1).double().clamp_min(1e-12)
    coherence = prod.sum(1).abs().double() / mass
    return {"overlap": float((inter / union).mean()), "phase_error": float(err.mean()),
            "coherence": float(coherence.mean())}


def gibbs_snapshots(model, start: torch.Tensor, steps: Sequence[int], seed: int = 0):
    """Block Gibbs from visible states `start` `[n, V]`; after each entry of `steps` (sorted), the visible
    rates given the current hidden sample: E[v | h] and E[|v| | h] for a CAP-RBM (complex and real),
    P(v = 1 | h) twice for a Bernoulli RBM. Returns two tensors `[len(steps), n, V]`."""
    from .training import gibbs_kernel

    kernel = gibbs_kernel(model, seed=seed, record_energy=False)
    rates, moduli = [], []
    with torch.no_grad():
        state = kernel.init(start)
        done = 0
        for target in sorted(steps):
            for _ in range(target - done):
                state, _ = kernel.step(state)
            done = target
            if isinstance(model, CAPRBM):
                rate, modulus = model._rates(*model.visible_input(state.hidden), model.visible_bias)
            else:
                rate = modulus = model.visible_probs(state.hidden)
            rates.append(rate)
            moduli.append(modulus)
    return torch.stack(rates), torch.stack(moduli)


def gibbs_stability(model: CAPRBM, images: torch.Tensor, steps: Sequence[int] = (1, 10, 100, 1000), seed: int = 0,
                    keep: int = 0):
    """Run block Gibbs from `images` and measure the rates after each number of `steps`.

    Returns `(rows, snapshots)`: one dict of metrics per entry of `steps` (sorted), and the complex visible
    rates of the first `keep` images at each entry (`[len(steps), keep, V]`) for the figure.
    """
    v0 = check_units(images, model.num_visible, "images", model.complex_dtype)
    steps = sorted(steps)
    rates, moduli = gibbs_snapshots(model, v0, steps, seed)
    rows = [{"steps": t, **stability_metrics(r, m, v0)} for t, r, m in zip(steps, rates, moduli)]
    return rows, rates[:, :keep].cpu() if keep else None


def complex_to_rgb(z: np.ndarray) -> np.ndarray:
    """Complex values to colours: hue = phase, brightness = modulus (clipped to 1)."""
    from matplotlib.colors import hsv_to_rgb

    hue = (np.angle(z) + np.pi) / (2 * np.pi)
    val = np.clip(np.abs(z), 0, 1)
    return hsv_to_rgb(np.stack([hue, np.ones_like(hue), val], -1))


def plot_stability_grid(blocks, path, image_shape=(24, 24), first_label: str = "data"):
    """Fig. 2.1a: for each (title, images `[n, V]`, snapshots `[len(steps), n, V]`, steps) block, a first row
    of data (labelled `first_label`) and one row of visible rates per number of Gibbs steps. Complex images are
    coloured (hue = phase, brightness = modulus), real ones grey. Saves a PNG at `path`."""
    from matplotlib.figure import Figure  # outside pyplot: the caller's backend and figures are left alone

    rows = sum(1 + len(b[3]) for b in blocks)
    cols = max(b[1].shape[0] for b in blocks)
    fig = Figure(figsize=(1.1 * cols + 1.2, 1.1 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    r = 0
    for title, images, snaps, steps in blocks:
        series = [(first_label, images)] + [(s if isinstance(s, str) else f"{s} steps", snaps[i])
                                       for i, s in enumerate(steps)]
        for label, z in series:
            for c in range(cols):
                ax = axes[r, c]
                ax.set_xticks([])
                ax.set_yticks([])
                if c < z.shape[0]:
                    img = z[c].reshape(image_shape).detach().cpu().numpy()
                    if np.iscomplexobj(img):
                        ax.imshow(complex_to_rgb(img), interpolation="nearest")
                    else:
                        ax.imshow(img, cmap="gray", interpolation="nearest")
                else:
                    ax.axis("off")
            axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
            r += 1
        axes[r - len(series), 0].text(0, 1.08, title, fontsize=8, transform=axes[r - len(series), 0].transAxes,
                                      va="bottom", in_layout=False)
    height = fig.get_size_inches()[1]
    fig.tight_layout(h_pad=1.4, rect=(0, 0, 1, 1 - 0.25 / height))   # room for the block titles
    fig.savefig(path, dpi=110)
