"""`entropy-mcmc sample-rbm`: block Gibbs from a trained RBM; a PNG of the visible rates after k steps.

    entropy-mcmc sample-rbm --model bars.pt --steps 1000 --out bars.png            # from held-out data
    entropy-mcmc sample-rbm --model cwt.pt --start noise --steps 1000 --out free.png

Chains start at held-out rows of the data the model was trained on (`--start data`, Fig. 2.1a,b) or
at random units (`--start noise`, Fig. 2.1c). The figure's first row is the start, then one row per
snapshot (`--snapshots`, default 1, 10, 100 and `--steps`). For a CAP-RBM started at data the
stability metrics of Fig. 2.1a (overlap, phase error, coherence) are printed; MNIST wavelet units
are shown as digits through the inverse transform.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from . import common
from .common import UsageError

HELP = "Gibbs-sample a trained RBM from held-out data or noise; save the visible rates after k steps as a PNG"


_snapshots = common.checked(lambda text: sorted({int(s) for s in text.split(",")}), lambda steps: steps[0] >= 1,
                            "expected comma-separated positive step counts")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="PATH", help="checkpoint written by train-rbm")
    p.add_argument("--steps", type=common.positive_int, default=1000)
    p.add_argument("--snapshots", type=_snapshots, default=None,
                   help="comma-separated step counts to show (default 1,10,100,STEPS)")
    p.add_argument("--chains", type=common.positive_int, default=8, help="chains (images) to run and show")
    p.add_argument("--start", choices=("data", "noise"), default="data")
    p.add_argument("--mnist-dir", default=None)
    p.add_argument("--seed", type=common.seed, default=0)
    p.add_argument("--threads", type=common.nonneg_int, default=1, help="torch threads; 0: torch's default")
    p.add_argument("--out", required=True, metavar="PNG")


def run(args) -> int:
    import torch

    from ..ebm_training import CAPRBM
    from ..ebm_training.rbm.checkpoint import load_model, read_payload
    from ..ebm_training.rbm.data import load_rbm_data
    from ..ebm_training.rbm.stability import gibbs_snapshots, plot_stability_grid, stability_metrics

    common.check_writable_file(args.out)
    out = Path(args.out)
    snapshots = args.snapshots
    if snapshots is None:
        snapshots = sorted({s for s in (1, 10, 100) if s < args.steps} | {args.steps})
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model)
    meta = read_payload(args.model).get("meta", {})
    name = meta.get("data")
    shape = (28, 28) if name == "mnist-cwt" else meta.get("image_shape")
    if shape is None:
        side = int(round(model.num_visible ** 0.5))
        if side * side != model.num_visible:
            raise UsageError(f"cannot show {model.num_visible} units as a square image")
        shape = (side, side)
    gen = torch.Generator().manual_seed(args.seed)
    is_cap = isinstance(model, CAPRBM)
    if args.start == "data":
        if name is None:
            raise UsageError(f"{args.model} does not say which data it was trained on; use --start noise")
        if name == "bars":   # fresh images from another seed stream than training's
            start = load_rbm_data("bars", num=args.chains, seed=args.seed, offset=10_000).data
        else:
            start = load_rbm_data(name, num=args.chains, offset=int(meta.get("num_data", 0)),
                                 mnist_dir=args.mnist_dir).data
        if name == "mnist-cwt":   # encode with the training set's statistics, not the held-out rows'
            from ..ebm_training.rbm.wavelet import WaveletCodec, load_mnist

            codec = WaveletCodec.from_state_dict(meta["codec"])
            images, _ = load_mnist(args.mnist_dir)
            start = codec.encode(images[int(meta["num_data"]):int(meta["num_data"]) + args.chains])
    elif is_cap:
        start = model.random_visible(args.chains, gen)
    else:
        start = (torch.rand(args.chains, model.num_visible, generator=gen) < 0.5).to(model.W.dtype)
    start = start.to(model.W.dtype if not is_cap else model.complex_dtype)
    rates, moduli = gibbs_snapshots(model, start, snapshots, seed=args.seed)
    if is_cap and args.start == "data":
        for s, r, m in zip(snapshots, rates, moduli):
            met = stability_metrics(r, m, start)
            print(f"after {s} steps: overlap {met['overlap']:.3f}, phase error {met['phase_error']:.3f} rad, "
                  f"coherence {met['coherence']:.3f}")
    first, shown = start, rates
    if name == "mnist-cwt":
        from ..ebm_training.rbm.wavelet import WaveletCodec

        codec = WaveletCodec.from_state_dict(meta["codec"])
        align = args.start == "noise"
        first = codec.decode(start, align=align).flatten(1)
        shown = torch.stack([codec.decode(r, align=align).flatten(1) for r in rates])
    title = f"{type(model).__name__} from {args.start}"
    plot_stability_grid([(title, first.cpu(), shown.cpu(), snapshots)], out, image_shape=tuple(shape),
                        first_label="data" if args.start == "data" else "random start")
    print(f"wrote {out}")
    return 0
